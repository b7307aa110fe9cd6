"""`svs serve` against a real `prefect server start` on loopback, started by the test."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from flow_fixtures import REFRESH_CONFIG, write_rollouts

from svs.flows.deploy import DeploymentSpec, build_deployments, load_specs, parse_interval
from svs.pipeline.store import PromptStore

BIN = Path(sys.executable).parent


def test_intervals_and_spec_checks(tmp_path):
    assert [parse_interval(x) for x in ("90", "15m", "6h", "1d", 30)] == [90, 900, 21600, 86400, 30]
    with pytest.raises(ValueError, match="s, m, h or d"):
        parse_interval("6 hours")
    with pytest.raises(ValueError, match="exactly one of"):
        DeploymentSpec(name="x", flow="diagnose", parameters={"rollouts": []})
    with pytest.raises(ValueError, match="not a valid cron"):
        DeploymentSpec(name="x", flow="diagnose", cron="every day", parameters={"rollouts": []})
    with pytest.raises(ValueError, match="parameters do not fit the watch flow"):
        DeploymentSpec(name="x", flow="watch", interval="1h", parameters={"dir": "a"})
    with pytest.raises(ValueError, match="unknown flow"):
        DeploymentSpec(name="x", flow="train", interval="1h")
    path = tmp_path / "d.yaml"
    path.write_text(yaml.safe_dump({"deployments": [
        {"name": "w", "flow": "watch", "cron": "0 */6 * * *", "parameters": {"folder": "a"}},
        {"name": "w", "flow": "watch", "interval": "1h", "parameters": {"folder": "b"}}]}))
    with pytest.raises(ValueError, match="must be unique"):
        load_specs(path)
    deployment = build_deployments(load_specs_first(path))[0]
    assert deployment.entrypoint == "svs.flows.watch.watch_flow"
    assert deployment.schedules[0].schedule.cron == "0 */6 * * *"


def load_specs_first(path):
    data = yaml.safe_load(path.read_text())
    path.write_text(yaml.safe_dump({"deployments": data["deployments"][:1]}))
    return load_specs(path)


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(predicate, timeout, what, procs):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        for proc in procs:
            if proc.poll() is not None:
                raise AssertionError(f"{proc.args[:3]} exited ({proc.returncode}) while waiting "
                                     f"for {what}: {Path(proc.log).read_text()[-3000:]}")
        time.sleep(1)
    raise AssertionError(f"timed out waiting for {what}")


def start(args, env, log, cwd):
    handle = open(log, "w")
    proc = subprocess.Popen(args, env=env, cwd=cwd, stdout=handle, stderr=subprocess.STDOUT,
                            start_new_session=True)
    proc.log = log
    return proc


def stop(proc):
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


@pytest.mark.slow  # a Prefect server and a serve process start: ~40-90 s on 2 busy cores
def test_served_deployment_fires_and_publishes(workdir):
    import httpx

    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(PREFECT_HOME=str(workdir / "prefect-home"), PREFECT_SERVER_ANALYTICS_ENABLED="false",
               PREFECT_UI_ENABLED="false", PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS="2",
               PREFECT_LOGGING_LEVEL="INFO")
    (workdir / "deployments.yaml").write_text(yaml.safe_dump({"deployments": [{
        "name": "demo-refresh", "flow": "refresh", "interval": "5s",
        "parameters": {"store": str(workdir / "store"), "name": "demo",
                       "prompts": str(workdir / "problems.jsonl"),
                       "rollouts": [str(workdir / "rollouts.jsonl")], "config": REFRESH_CONFIG,
                       "exports": [f"trl={workdir}/exports/{{name}}-v{{version}}.jsonl"]}}]}))
    server = start([str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port",
                    str(port)], env, workdir / "server.log", workdir)
    procs = [server]
    try:
        def healthy():
            try:
                return httpx.get(f"{api}/health", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(healthy, 120, "the Prefect server", procs)
        serve = start([str(BIN / "svs"), "serve", str(workdir / "deployments.yaml")],
                      {**env, "PREFECT_API_URL": api, "PREFECT_RUNNER_POLL_FREQUENCY": "1"},
                      workdir / "serve.log", workdir)
        procs.append(serve)
        store = PromptStore(workdir / "store")
        wait_for(lambda: store.exists("demo") and store.versions("demo")[-1] >= 2, 180,
                 "a published version", procs)
        wait_for(lambda: (workdir / "exports" / "demo-v2.jsonl").exists(), 60, "the export", procs)

        def states():
            runs = httpx.post(f"{api}/flow_runs/filter", json={}, timeout=10).json()
            return [r["state_type"] for r in runs]

        wait_for(lambda: "COMPLETED" in states(), 60, "a completed flow run", procs)
        stop(serve)
        # runs never overlapped (concurrency limit 1), so none failed on the store's lock;
        # later runs found the inputs already refreshed and published nothing
        assert "FAILED" not in states()
        assert store.versions("demo") == [1, 2] and store.load("demo").parent == 1
        keys = {a["key"] for a in httpx.post(f"{api}/artifacts/filter", json={}, timeout=10).json()}
        assert "svs-refresh-demo" in keys and "svs-refresh-demo-labels" in keys
        assert "serving 1 deployment(s) against the server at" in (workdir / "serve.log").read_text()
    finally:
        for proc in reversed(procs):  # serve before the server it talks to
            stop(proc)


@pytest.mark.slow  # the serve process starts its own server: ~40-90 s on 2 busy cores
def test_serve_without_an_api_url_runs_an_embedded_server(workdir):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(PREFECT_HOME=str(workdir / "prefect-home"), PREFECT_SERVER_ANALYTICS_ENABLED="false",
               PREFECT_UI_ENABLED="false", PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS="2",
               PREFECT_RUNNER_POLL_FREQUENCY="1")
    write_rollouts(workdir / "dump.jsonl", step=1)
    (workdir / "deployments.yaml").write_text(yaml.safe_dump({"deployments": [{
        "name": "embedded-diagnose", "flow": "diagnose", "interval": "5s",
        "parameters": {"rollouts": [str(workdir / "dump.jsonl")], "out": str(workdir / "report")}}]}))
    serve = start([str(BIN / "svs"), "serve", str(workdir / "deployments.yaml"), "--port", str(port)],
                  env, workdir / "serve.log", workdir)
    try:
        wait_for(lambda: (workdir / "report" / "report.json").exists(), 240, "the diagnosis report",
                 [serve])
        log = (workdir / "serve.log").read_text()
        assert "against the embedded server" in log and f"127.0.0.1:{port}/api" in log
        assert (workdir / "prefect-home" / "prefect.db").exists()
    finally:
        stop(serve)
    time.sleep(2)
    with socket.socket() as sock:  # the embedded server went with its serve process
        assert sock.connect_ex(("127.0.0.1", port)) != 0
