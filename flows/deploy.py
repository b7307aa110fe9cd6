"""`svs serve`: the svs flows as Prefect deployments on cron or interval schedules.

A deployments file (YAML) lists what to run and when:

    deployments:
      - name: demo-watch
        flow: watch              # refresh | watch | diagnose | selfplay
        interval: 6h             # or: cron: "0 */6 * * *"   (one of the two)
        parameters:              # the flow's parameters (see `svs serve --help-flows`)
          folder: /data/verl/rollout_data_dir
          refresh: {store: svs-store, name: demo, config: refresh.yaml}

`serve` registers the deployments with the Prefect API the environment points at and
runs their flow runs in this process's children until it is stopped (Ctrl-C):

- with `PREFECT_API_URL=http://127.0.0.1:4200/api`, against a `prefect server start`
  on loopback (or anywhere), whose UI shows the runs and their artifacts;
- with no `PREFECT_API_URL` set, against an embedded server: Prefect's SQLite database
  under PREFECT_HOME, served on loopback by a child process that `svs serve` starts and
  stops. Prefect's own temporary server (what a plain flow call starts) does not run
  the scheduler service, so schedules would never fire on it; the child is a full
  `prefect server start`, scheduler and UI included, tied to the serve process (it gets
  SIGTERM when the serve process dies, even by SIGKILL).
"""

from __future__ import annotations

import inspect
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FLOW_NAMES = ("refresh", "watch", "diagnose", "selfplay")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def get_flow(name: str):
    """The Prefect flow object behind a deployment's `flow:` name."""
    if name == "refresh":
        from svs.flows.refresh_flow import refresh_flow

        return refresh_flow
    if name == "diagnose":
        from svs.flows.refresh_flow import diagnose_flow

        return diagnose_flow
    if name == "watch":
        from svs.flows.watch import watch_flow

        return watch_flow
    if name == "selfplay":
        from svs.flows.selfplay_flow import selfplay_flow

        return selfplay_flow
    raise ValueError(f"unknown flow {name!r}; choose one of {', '.join(FLOW_NAMES)}")


def parse_interval(text: str | int | float) -> float:
    """Seconds from `90`, `90s`, `15m`, `6h` or `1d`."""
    if isinstance(text, int | float):
        seconds = float(text)
    else:
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", str(text))
        if not match:
            raise ValueError(f"interval {text!r}: write a number of seconds or a number with "
                             f"s, m, h or d, e.g. 30m or 6h")
        seconds = float(match.group(1)) * _UNITS[match.group(2) or "s"]
    if seconds <= 0:
        raise ValueError(f"interval {text!r} must be positive")
    return seconds


@dataclass(frozen=True)
class DeploymentSpec:
    """One scheduled flow."""

    name: str = field(metadata={"help": "Deployment name, unique within the file."})
    flow: str = field(metadata={"help": f"Which flow: one of {FLOW_NAMES}."})
    parameters: Mapping[str, Any] = field(default_factory=dict, metadata={
        "help": "The flow's parameters, as its Python signature names them."})
    interval: str | float | None = field(default=None, metadata={
        "help": "Run every this long: seconds, or a number with s/m/h/d."})
    cron: str | None = field(default=None, metadata={
        "help": "Or run on this cron schedule (5 fields, server time zone UTC)."})
    paused: bool = field(default=False, metadata={"help": "Register without running."})
    concurrency_limit: int | None = field(default=1, metadata={
        "help": "Runs of this deployment at the same time; later ones wait. 1 by default: "
                "two refreshes of one set cannot both publish (the store's lock would fail "
                "the second), so they queue instead. null: no limit."})

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}", str(self.name)):
            raise ValueError(f"deployment name {self.name!r}: use letters, digits, '.', '_', '-'")
        if (self.interval is None) == (self.cron is None):
            raise ValueError(f"deployment {self.name!r}: give exactly one of `interval` "
                             f"(e.g. 6h) and `cron` (e.g. '0 */6 * * *')")
        if self.interval is not None:
            parse_interval(self.interval)
        if self.concurrency_limit is not None and self.concurrency_limit < 1:
            raise ValueError(f"deployment {self.name!r}: concurrency_limit must be >= 1 or "
                             f"null, got {self.concurrency_limit}")
        if self.cron is not None:
            from prefect.client.schemas.schedules import CronSchedule

            try:
                CronSchedule(cron=self.cron)
            except ValueError as exc:
                raise ValueError(f"deployment {self.name!r}: {self.cron!r} is not a valid "
                                 f"cron expression (5 fields: minute hour day month "
                                 f"weekday)") from exc
        fn = get_flow(self.flow).fn
        try:
            inspect.signature(fn).bind(**dict(self.parameters))
        except TypeError as exc:
            raise ValueError(f"deployment {self.name!r}: parameters do not fit the "
                             f"{self.flow} flow ({exc}); its parameters are "
                             f"{list(inspect.signature(fn).parameters)}") from exc


def load_specs(path: Path | str) -> list[DeploymentSpec]:
    """Read and check a deployments file."""
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f"cannot read deployments file {path}: {exc}") from exc
    items = data.get("deployments") if isinstance(data, Mapping) else None
    if not isinstance(items, list) or not items:
        raise ValueError(f"{path}: expected a `deployments:` list with at least one entry")
    specs = []
    for index, item in enumerate(items):
        if not isinstance(item, Mapping):
            raise ValueError(f"{path}: deployment #{index + 1} is not a mapping")
        known = set(inspect.signature(DeploymentSpec).parameters)
        unknown = sorted(set(item) - known)
        if unknown:
            raise ValueError(f"{path}: deployment #{index + 1} has unknown key(s) {unknown}; "
                             f"valid: {sorted(known)}")
        try:
            specs.append(DeploymentSpec(**item))
        except TypeError as exc:
            raise ValueError(f"{path}: deployment #{index + 1}: {exc}") from exc
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise ValueError(f"{path}: deployment names must be unique, got {names}")
    return specs


def build_deployments(specs: Sequence[DeploymentSpec]) -> list[Any]:
    """Prefect RunnerDeployments for `specs`; flows are found by module path, so served
    runs load them from the installed package whatever the working directory."""
    from prefect.deployments.runner import EntrypointType

    deployments = []
    for spec in specs:
        schedule: dict[str, Any] = ({"interval": parse_interval(spec.interval)}
                                    if spec.interval is not None else {"cron": spec.cron})
        deployments.append(get_flow(spec.flow).to_deployment(
            name=spec.name, parameters=dict(spec.parameters), paused=spec.paused,
            concurrency_limit=spec.concurrency_limit,
            entrypoint_type=EntrypointType.MODULE_PATH, tags=["svs", spec.flow], **schedule))
    return deployments


def api_url() -> str | None:
    from prefect.settings import PREFECT_API_URL

    return PREFECT_API_URL.value() or None


def api_mode() -> str:
    """What `serve` will talk to, in words."""
    url = api_url()
    return f"server at {url}" if url else "embedded server (no PREFECT_API_URL set)"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _die_with_parent() -> None:  # runs in the child between fork and exec (Linux only)
    import ctypes

    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


@contextmanager
def local_server(port: int | None = None, host: str = "127.0.0.1",
                 startup_timeout_s: float = 180.0, log: Path | None = None) -> Iterator[str]:
    """Run `prefect server start` on loopback (database under PREFECT_HOME) for the
    duration of the block; yields its API URL. Stopped with SIGINT, then SIGKILL."""
    import httpx

    port = port or free_port(host)
    url = f"http://{host}:{port}/api"
    handle = open(log, "w") if log else subprocess.DEVNULL
    process = subprocess.Popen(
        [sys.executable, "-m", "prefect", "server", "start", "--host", host, "--port", str(port)],
        env={k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"},
        stdout=handle, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent)
    try:
        deadline = time.monotonic() + startup_timeout_s
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"`prefect server start` on port {port} exited with code "
                                   f"{process.returncode}"
                                   + (f"; its log: {log}" if log else "; is the port in use? "
                                      "pick another with --port"))
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the local Prefect server on port {port} did not answer "
                                   f"within {startup_timeout_s:.0f} s")
            time.sleep(0.5)
        yield url
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
        if log:
            handle.close()


def serve(specs: Sequence[DeploymentSpec], *, limit: int | None = None,
          port: int | None = None, say=print) -> None:
    """Register and serve until interrupted; `limit`: concurrent flow runs at most.
    Without PREFECT_API_URL a local server is started on `port` (default: a free one)
    and stopped after the deployments are (serve first, then its server)."""
    from prefect import serve as prefect_serve
    from prefect.settings import PREFECT_API_URL, temporary_settings

    deployments = build_deployments(specs)
    if api_url():
        prefect_serve(*deployments, limit=limit, print_starting_message=True)
        return
    home = os.environ.get("PREFECT_HOME", "~/.prefect")
    with local_server(port) as url:
        say(f"embedded server: {url} (database under {home}); UI at {url[:-len('/api')]}")
        os.environ["PREFECT_API_URL"] = url  # for the flow-run processes serve starts
        try:
            with temporary_settings({PREFECT_API_URL: url}):
                prefect_serve(*deployments, limit=limit, print_starting_message=True)
        finally:
            del os.environ["PREFECT_API_URL"]
