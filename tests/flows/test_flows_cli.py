"""`svs refresh` runs the refresh flow (a flow run appears in the API); `svs watch`."""

import pytest
from flow_fixtures import REFRESH_CONFIG, write_rollouts

from svs.flows.cli import app
from svs.pipeline.store import PromptStore

pytestmark = pytest.mark.usefixtures("prefect_harness")


def invoke(*args):
    """Run `svs ARGS` in this process. typer's CliRunner (and capsys) swap in streams and
    close them after each call, which breaks Prefect's console log handler on the next
    call; redirecting into a buffer that stays open does not."""
    import contextlib
    import io

    import typer

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(buffer):
        try:
            code = typer.main.get_command(app).main([str(a) for a in args], prog_name="svs",
                                                    standalone_mode=False)
        except SystemExit as exc:
            code = exc.code
    return code or 0, buffer.getvalue()


def test_svs_refresh_is_a_flow_run(workdir, monkeypatch):
    import yaml
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName

    monkeypatch.delenv("SVS_NO_PREFECT", raising=False)
    (workdir / "refresh.yaml").write_text(yaml.safe_dump(REFRESH_CONFIG))
    with get_client(sync_client=True) as client:
        flows = FlowFilter(name=FlowFilterName(any_=["svs-refresh"]))
        before = len(client.read_flow_runs(flow_filter=flows))
        code, output = invoke(
            "refresh", "--store", workdir / "store", "--set", "cli", "--prompts",
            workdir / "problems.jsonl", "--rollouts", workdir / "rollouts.jsonl",
            "--config", workdir / "refresh.yaml", "--export",
            f"verl={workdir}/cli-{{version}}.parquet")
        assert code == 0, output
        assert "cli@v2: published" in output and "exported verl" in output
        assert (workdir / "cli-2.parquet").exists()
        assert len(client.read_flow_runs(flow_filter=flows)) == before + 1


def test_svs_watch_processes_new_files(workdir):
    dumps = workdir / "dumps"
    dumps.mkdir()
    write_rollouts(dumps / "0001.jsonl", step=1)
    args = ["watch", str(dumps), "--settle", "0", "--out", str(workdir / "reports")]
    code, output = invoke(*args)
    assert code == 0, output
    assert "processed: 1 new file(s) processed (0001.jsonl)" in output
    assert "idle: 0 new file(s)" in invoke(*args)[1]
    code, output = invoke(*args, "--runner", "spark")
    assert code == 2 and "unknown task runner" in output
    code, output = invoke("watch", str(workdir / "missing"), "--settle", "0")
    assert code == 2 and "does not exist" in " ".join(output.split())
    assert not (workdir / "missing").exists()
    assert not PromptStore(workdir / "store").exists("demo")


def test_user_errors_under_prefect_keep_their_line_and_lose_the_traceback():
    """A bad set name or a missing file is reported by the command itself as one line;
    Prefect's failure logs keep their message but not a traceback. Other errors keep it."""
    import io
    import logging

    from svs.flows.cli_common import user_errors_without_tracebacks
    from svs.pipeline.store import StoreError

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger = logging.getLogger("prefect.flow_runs")
    logger.addHandler(handler)
    try:
        with user_errors_without_tracebacks():
            for error in (StoreError("no prompt set 'x'"), TypeError("a bug")):
                try:
                    raise error
                except Exception:
                    logger.error("Encountered exception during execution", exc_info=True)
        logger.error("after", exc_info=(StoreError, StoreError("later"), None))
    finally:
        logger.removeHandler(handler)
    text = stream.getvalue()
    assert text.count("Traceback") == 1 and "TypeError: a bug" in text
    assert "StoreError: no prompt set" not in text
    assert "StoreError: later" in text  # outside the command, nothing is filtered
