"""The refresh flow end to end on tiny fixtures, under one Prefect test server."""

import json

import pytest
from flow_fixtures import REFRESH_CONFIG, write_rollouts

import svs.flows.refresh_flow as flow_module
from svs.flows.refresh_flow import export_targets, refresh_flow
from svs.pipeline import refresh_stages
from svs.pipeline.store import PromptStore

pytestmark = pytest.mark.usefixtures("prefect_harness")


def run(workdir, **overrides):
    params = dict(store=str(workdir / "store"), name="demo",
                  rollouts=[str(workdir / "rollouts.jsonl")],
                  prompts=str(workdir / "problems.jsonl"), config=REFRESH_CONFIG,
                  io_retry_delay_s=0.0)
    params.update(overrides)
    return refresh_flow(**params)


def artifacts(key):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        return client.read_artifacts(artifact_filter=ArtifactFilter(
            key=ArtifactFilterKey(any_=[key])))


def test_refresh_flow_publishes_exports_and_shows_artifacts(workdir):
    outcome = run(workdir, exports=[f"verl={workdir}/out/{{name}}-v{{version}}.parquet"],
                  report=str(workdir / "report"))
    store = PromptStore(workdir / "store")
    v2 = store.load("demo")
    assert (v2.version, v2.parent, outcome.summary.outcome) == (2, 1, "published")
    assert outcome.summary.labels == {"memorized": 2, "learning": 3, "unsolved": 1}
    assert outcome.summary.accepted > 0 and outcome.summary.added > 0
    assert set(v2.manifest["summary"]["retired"].values()) == {"memorized"}
    exported = outcome.exported["verl"]
    assert exported.endswith("out/demo-v2.parquet")
    import pyarrow.parquet as pq

    assert pq.read_table(exported).num_rows == len(v2.problems)
    assert json.loads((workdir / "report" / "report.json").read_text())["totals"]["problems"] == 6
    summary = artifacts("svs-refresh-demo")
    assert summary and "v1 -> v2" in summary[0].data and "published" in summary[0].data
    labels = artifacts("svs-refresh-demo-labels")[0].data
    rows = json.loads(labels) if isinstance(labels, str) else labels
    assert {r["label"]: r["problems"] for r in rows}["memorized"] == 2
    assert artifacts("svs-refresh-demo-rejects") and artifacts("svs-refresh-demo-version")


def test_flow_and_plain_mode_publish_the_same_version(workdir, tmp_path_factory):
    """One composition: the flow and `--no-prefect` run the same body, `refresh_steps`."""
    from svs.flows.refresh_flow import Steps, refresh_steps

    run(workdir)
    flow_set = PromptStore(workdir / "store").load("demo")
    other = tmp_path_factory.mktemp("plain")
    refresh_steps(Steps(False), str(other / "store"), "demo", [str(workdir / "rollouts.jsonl")],
                  str(workdir / "problems.jsonl"), config=REFRESH_CONFIG)
    plain_set = PromptStore(other / "store").load("demo")
    assert [p.id for p in flow_set.problems] == [p.id for p in plain_set.problems]
    assert dict(flow_set.weights) == dict(plain_set.weights)
    assert flow_set.manifest["summary"] == plain_set.manifest["summary"]


def test_rerun_with_the_same_inputs_publishes_nothing(workdir):
    run(workdir)
    again = run(workdir)
    assert again.summary.outcome == "already"
    assert PromptStore(workdir / "store").versions("demo") == [1, 2]


def test_publish_is_retried(workdir, monkeypatch):
    real, calls = flow_module.publish.fn, []

    def flaky(*args, **kwargs):
        calls.append(1)
        if len(calls) < 3:
            raise OSError("disk hiccup")
        return real(*args, **kwargs)

    monkeypatch.setattr(flow_module.publish, "fn", flaky)
    outcome = run(workdir, io_retries=2)
    assert len(calls) == 3 and outcome.summary.version == 2
    assert PromptStore(workdir / "store").current("demo") == 2


def test_final_failure_leaves_the_previous_version_current(workdir, monkeypatch):
    calls = []

    def broken(*args, **kwargs):
        calls.append(1)
        raise OSError("store unreachable")

    run(workdir)  # v2 from the first rollouts
    monkeypatch.setattr(flow_module.publish, "fn", broken)
    write_rollouts(workdir / "later.jsonl", step=4, seed=1)
    state = run(workdir, rollouts=[str(workdir / "later.jsonl")], io_retries=1,
                return_state=True)
    assert state.is_failed() and len(calls) == 2
    store = PromptStore(workdir / "store")
    assert store.current("demo") == 2 and store.versions("demo") == [1, 2]
    assert len(store.load("demo").problems) > 0


def test_errors_a_retry_cannot_mend_are_not_retried(workdir, monkeypatch):
    calls = []

    def missing(*args, **kwargs):
        calls.append(1)
        raise FileNotFoundError("no such store folder")

    monkeypatch.setattr(flow_module.publish, "fn", missing)
    state = run(workdir, io_retries=3, return_state=True)
    assert state.is_failed() and len(calls) == 1


def test_export_targets_are_checked_before_work():
    assert export_targets(["trl=a/{name}-{version}.jsonl"], "s", 3) == {"trl": "a/s-3.jsonl"}
    with pytest.raises(ValueError, match="FORMAT=PATH"):
        export_targets(["verl"], "s", 1)
    with pytest.raises(ValueError, match="unknown export format"):
        export_targets(["csv=a.csv"], "s", 1)


def test_no_prefect_mode_runs_the_same_body_without_an_api(workdir, tmp_path_factory):
    """`svs refresh --no-prefect`: the same steps as plain functions; no API is reached
    (the API URL points at a closed port)."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from svs.flows.refresh_flow import Steps, refresh_steps

    run(workdir)
    other = tmp_path_factory.mktemp("no-prefect")
    lines = []
    with temporary_settings({PREFECT_API_URL: "http://127.0.0.1:9/api"}):
        outcome = refresh_steps(Steps(False, say=lines.append), str(other / "store"), "demo",
                                [str(workdir / "rollouts.jsonl")],
                                str(workdir / "problems.jsonl"), config=REFRESH_CONFIG,
                                exports=[f"openrlhf={other}/x.jsonl"])
    assert outcome.summary.version == 2 and (other / "x.jsonl").exists()
    assert lines[0] == "[1/8] prompt set" and "[8/8] export" in lines
    plain = PromptStore(other / "store").load("demo")
    flow_set = PromptStore(workdir / "store").load("demo")
    assert [p.id for p in plain.problems] == [p.id for p in flow_set.problems]


def test_diagnosis_is_cached_on_its_inputs_and_code(tmp_path, monkeypatch):
    import svs.flows.refresh_flow as module
    from svs.flows.refresh_flow import diagnose_flow

    write_rollouts(tmp_path / "r.jsonl", step=9, seed=42)  # content no other test uses
    real, calls = refresh_stages.diagnose, []

    def counting(groups, config):
        calls.append(len(groups))
        return real(groups, config)

    monkeypatch.setattr(refresh_stages, "diagnose", counting)
    first = diagnose_flow([str(tmp_path / "r.jsonl")])
    again = diagnose_flow([str(tmp_path / "r.jsonl")])
    assert len(calls) == 1 and again.to_json() == first.to_json()
    diagnose_flow([str(tmp_path / "r.jsonl")], config={"cluster_threshold": 0.5})
    assert len(calls) == 2  # another config, another key
    monkeypatch.setattr(module, "diagnosis_code_version", lambda: "edited diagnosis code")
    diagnose_flow([str(tmp_path / "r.jsonl")])
    assert len(calls) == 3
