"""Watch mode: each dump file is processed once across runs."""

import json
import os
import time

import pytest
from flow_fixtures import REFRESH_CONFIG, write_rollouts

from svs.flows.watch import (
    WatchLockedError,
    WatchStateError,
    load_state,
    record_processed,
    save_state,
    scan_folder,
    state_lock,
    watch_flow,
)
from svs.pipeline.store import PromptStore


def test_scan_finds_new_settling_and_changed_files(tmp_path):
    dumps = tmp_path / "dumps"
    dumps.mkdir()
    for step in (10, 2):
        (dumps / f"{step}.jsonl").write_text("{}\n")
    (dumps / ".hidden.jsonl").write_text("{}\n")
    (dumps / "notes.txt").write_text("not a dump")
    state = load_state(tmp_path / "state.json", dumps)
    scan = scan_folder(dumps, state, settle_s=0)
    assert scan.new == ("2.jsonl", "10.jsonl")  # step order, hidden and non-dump files left out
    state = record_processed(state, scan, scan.new, run="r1", outcome="processed")
    save_state(tmp_path / "state.json", state)
    state = load_state(tmp_path / "state.json", dumps)
    assert set(state["files"]) == {"2.jsonl", "10.jsonl"} and state["runs"][0]["files"] == 2
    (dumps / "11.jsonl").write_text("{}\n")
    with open(dumps / "2.jsonl", "a") as handle:
        handle.write("{}\n")
    later = scan_folder(dumps, state, settle_s=60)
    assert later.new == () and later.settling == ("11.jsonl",) and later.changed == ("2.jsonl",)
    assert scan_folder(dumps, state, settle_s=60, now=time.time() + 120).new == ("11.jsonl",)


def test_state_errors_say_how_to_recover(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    save_state(tmp_path / "s.json", load_state(tmp_path / "s.json", tmp_path / "a"))
    with pytest.raises(WatchStateError, match="one state file per watched folder"):
        load_state(tmp_path / "s.json", tmp_path / "b")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(WatchStateError, match="delete it"):
        load_state(tmp_path / "bad.json", tmp_path / "a")
    with pytest.raises(WatchStateError, match="does not exist"):
        scan_folder(tmp_path / "missing", {"files": {}}, settle_s=0)


def test_a_second_watcher_skips_while_the_state_is_locked(tmp_path):
    with state_lock(tmp_path / "s.json"):
        pid = os.fork()
        if pid == 0:  # another process: the flock is per open file description
            try:
                with state_lock(tmp_path / "s.json"):
                    os._exit(1)
            except WatchLockedError:
                os._exit(0)
        _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 0
    with state_lock(tmp_path / "s.json"):
        pass  # free again


@pytest.mark.usefixtures("prefect_harness")
def test_watch_refreshes_with_each_dump_file_once(workdir):
    dumps = workdir / "rollout_data_dir"
    dumps.mkdir()
    write_rollouts(dumps / "1.jsonl", step=1)
    refresh = {"store": str(workdir / "store"), "name": "demo", "config": REFRESH_CONFIG,
               "prompts": str(workdir / "problems.jsonl"), "io_retry_delay_s": 0.0}
    state = str(workdir / "watch.json")
    first = watch_flow(str(dumps), state_file=state, settle_s=0, refresh=refresh)
    assert first["processed"] == ["1.jsonl"]
    assert first["result"]["version"] == 2 and first["result"]["outcome"] == "published"
    store = PromptStore(workdir / "store")
    assert store.versions("demo") == [1, 2]
    idle = watch_flow(str(dumps), state_file=state, settle_s=0, refresh=refresh)
    assert idle["status"] == "idle" and store.versions("demo") == [1, 2]
    write_rollouts(dumps / "2.jsonl", step=2, seed=5, correct_of_8=[8, 8, 3, 2, 1, 8])
    second = watch_flow(str(dumps), state_file=state, settle_s=0, refresh=refresh)
    assert second["processed"] == ["2.jsonl"]
    assert store.versions("demo") == [1, 2, 3] and store.load("demo").parent == 2
    assert watch_flow(str(dumps), state_file=state, settle_s=0, refresh=refresh)["status"] == "idle"
    recorded = json.loads((workdir / "watch.json").read_text())["files"]
    assert set(recorded) == {"1.jsonl", "2.jsonl"}


@pytest.mark.usefixtures("prefect_harness")
def test_watch_without_a_store_diagnoses_new_files(workdir, monkeypatch):
    dumps = workdir / "dumps"
    dumps.mkdir()
    write_rollouts(dumps / "5.jsonl", step=5)
    state = str(workdir / "w.json")
    first = watch_flow(str(dumps), state_file=state, settle_s=0,
                       diagnose={"out": str(workdir / "reports")})
    assert first["processed"] == ["5.jsonl"] and first["result"]["labels"]["memorized"] == 2
    reports = list((workdir / "reports").glob("*/report.json"))
    assert len(reports) == 1 and json.loads(reports[0].read_text())["totals"]["problems"] == 6
    # a failing run records nothing: the file stays new and the next run takes it
    write_rollouts(dumps / "6.jsonl", step=6)
    import svs.flows.refresh_flow as refresh_flow_module

    def broken(*args, **kwargs):
        raise RuntimeError("cluster down")

    monkeypatch.setattr(refresh_flow_module, "diagnose_on_runner", broken)
    failed = watch_flow(str(dumps), state_file=state, settle_s=0,
                        diagnose={"out": str(workdir / "reports")}, return_state=True)
    assert failed.is_failed()
    monkeypatch.undo()
    retry = watch_flow(str(dumps), state_file=state, settle_s=0,
                       diagnose={"out": str(workdir / "reports")})
    assert retry["processed"] == ["6.jsonl"]
