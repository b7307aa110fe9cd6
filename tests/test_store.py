import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from svs.core.records import Problem
from svs.pipeline import lineage
from svs.pipeline.store import (
    CorruptVersionError,
    NewVersion,
    PromptStore,
    StaleParentError,
    StoreError,
    parse_version,
)
from svs.pipeline.store_diff import diff_versions
from svs.pipeline.store_files import StoreFileError, reject_row

ORIGINALS = [Problem("What is 1+1?", "2"), Problem("What is 2+3?", "5", metadata={"tags": [1, "a"]}),
             Problem("Solve x+1=4.", "3")]


def first_version(store: PromptStore, name: str = "math", run_key: str = "import-1"):
    graph = lineage.graph_for(ORIGINALS, 1)
    return store.publish(name, NewVersion(ORIGINALS, graph, note="import"), parent=None,
                         run_key=run_key)


def second_version(store: PromptStore, name: str = "math", run_key: str = "refresh-1"):
    base = store.load(name)
    variant = ORIGINALS[0].variant("Compute one plus one.", synthesizer="svs", seed_rollout="r-7")
    graph = base.lineage.copy()
    lineage.add_problems(graph, [variant], 2)
    lineage.mark_retired(graph, [ORIGINALS[2].id], 2)
    new = NewVersion([ORIGINALS[0], ORIGINALS[1], variant], graph,
                     weights={ORIGINALS[0].id: 0.25},
                     diagnosis={"problems": [{"problem_id": ORIGINALS[2].id, "label": "memorized"}]},
                     rejects=[reject_row(ORIGINALS[1].variant("What is 2+3?!", synthesizer="svs"),
                                         stage="verify", reason="too_easy", detail="8/8 solved")],
                     config={"memorized_action": "retire"},
                     summary={"retired": {ORIGINALS[2].id: "memorized"}})
    return store.publish(name, new, parent=base.version, run_key=run_key), variant


def test_publish_and_load_round_trip(tmp_path):
    store = PromptStore(tmp_path)
    result = first_version(store)
    assert (result.version, result.outcome) == (1, "published")
    loaded = store.load("math")
    assert loaded.problems == tuple(ORIGINALS)
    assert loaded.version == 1 and loaded.parent is None
    assert loaded.manifest["counts"]["source"] == {"original": 3}
    assert set(loaded.manifest["files"]) == {"problems.parquet", "lineage.json", "rejects.parquet"}
    assert store.names() == ["math"] and store.versions("math") == [1]


def test_second_version_records_parent_weights_rejects_and_diagnosis(tmp_path):
    store = PromptStore(tmp_path)
    first_version(store)
    result, variant = second_version(store)
    assert (result.version, result.parent) == (2, 1)
    v2 = store.load("math")
    assert v2.parent == 1
    assert v2.weight(ORIGINALS[0].id) == 0.25 and v2.weight(variant.id) == 1.0
    assert v2.rejects[0]["reason"] == "too_easy" and v2.rejects[0]["stage"] == "verify"
    assert v2.diagnosis["problems"][0]["label"] == "memorized"
    assert v2.manifest["counts"]["generation"] == {"0": 2, "1": 1}
    assert v2.manifest["counts"]["synthesizer"] == {"none": 2, "svs": 1}
    edge = v2.lineage.edges[ORIGINALS[0].id, variant.id]
    assert edge == {"synthesizer": "svs", "seed_rollout": "r-7", "generation": 1, "version": 2}
    # the old version is untouched
    assert store.load("math", 1).problems == tuple(ORIGINALS)


def test_same_run_key_never_publishes_twice(tmp_path):
    store = PromptStore(tmp_path)
    first_version(store)
    second_version(store)
    again, _ = second_version(store)
    assert again.outcome == "already" and again.version == 2
    assert store.versions("math") == [1, 2]


def test_stale_parent_is_refused(tmp_path):
    store = PromptStore(tmp_path)
    first_version(store)
    second_version(store)
    graph = store.load("math", 1).lineage
    with pytest.raises(StaleParentError, match="v2 is current now"):
        store.publish("math", NewVersion(ORIGINALS, graph), parent=1, run_key="other")
    assert store.versions("math") == [1, 2]


def test_rollback_goes_to_parent_and_a_new_refresh_builds_on_it(tmp_path):
    store = PromptStore(tmp_path)
    first_version(store)
    second_version(store)
    assert store.rollback("math") == (2, 1)
    assert store.current("math") == 1
    with pytest.raises(StoreError, match="first version"):
        store.rollback("math")
    # the same run again after a rollback is a new version, not a silent re-pointing
    result, _ = second_version(store)
    assert (result.version, result.outcome) == (3, "published")
    assert [h["action"] for h in store.history("math")] == ["publish", "publish", "rollback",
                                                            "publish"]


def test_corrupt_file_is_named_and_rollback_still_works(tmp_path):
    store = PromptStore(tmp_path)
    first_version(store)
    second_version(store)
    parquet = tmp_path / "math" / "versions" / "v2" / "problems.parquet"
    parquet.write_bytes(parquet.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(CorruptVersionError, match="problems.parquet is corrupt: sha256") as err:
        store.load("math")
    assert err.value.file == "problems.parquet"
    assert store.rollback("math", 1) == (2, 1)
    assert store.load("math").version == 1
    with pytest.raises(CorruptVersionError):
        store.rollback("math", 2)  # never point CURRENT at a corrupt version


def test_tampered_manifest_and_missing_file_are_named(tmp_path):
    store = PromptStore(tmp_path)
    first_version(store)
    folder = tmp_path / "math" / "versions" / "v1"
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["n_problems"] = 99
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(CorruptVersionError, match="manifest.json is corrupt: its checksum"):
        store.load("math")
    first_version(store, "other")
    (tmp_path / "other" / "versions" / "v1" / "lineage.json").unlink()
    with pytest.raises(CorruptVersionError, match="lineage.json is corrupt: the file is missing"):
        store.load("other")


def test_clear_errors_for_unknown_names_and_versions(tmp_path):
    store = PromptStore(tmp_path)
    with pytest.raises(StoreError, match="no prompt set 'nope'.*svs import"):
        store.load("nope")
    first_version(store)
    with pytest.raises(StoreError, match="no version v7; it has v1"):
        store.load("math", 7)
    with pytest.raises(StoreError, match="not allowed"):
        store.set_dir("../escape")
    assert parse_version("v12") == 12 and parse_version("3") == 3
    with pytest.raises(StoreError, match="not a version"):
        parse_version("latest")


def test_publish_refuses_duplicates_and_problems_missing_from_lineage(tmp_path):
    store = PromptStore(tmp_path)
    graph = lineage.graph_for(ORIGINALS[:1], 1)
    with pytest.raises(StoreError, match="missing from the lineage"):
        store.publish("math", NewVersion(ORIGINALS, graph), parent=None)
    with pytest.raises(StoreError, match="same problem twice"):
        store.publish("math", NewVersion(ORIGINALS[:1] * 2, graph), parent=None)
    assert not store.exists("math")


def test_lock_is_reentrant_in_process_and_cleans_staging(tmp_path):
    store = PromptStore(tmp_path)
    leftover = tmp_path / "math" / "staging" / "v1-123-dead"
    leftover.mkdir(parents=True)
    with store.lock("math", purpose="refresh"):
        assert not leftover.exists()
        assert "refresh since" in (tmp_path / "math" / "lock").read_text()
        first_version(store)  # publish inside a held lock
    assert store.current("math") == 1


def test_diff_reports_added_retired_and_changed(tmp_path):
    store = PromptStore(tmp_path)
    first_version(store)
    _, variant = second_version(store)
    diff = diff_versions(store.load("math", 1), store.load("math", 2))
    assert [p.id for p in diff.added] == [variant.id]
    assert [p.id for p in diff.retired] == [ORIGINALS[2].id]
    assert diff.retired_by_reason == {"memorized": 1}
    assert diff.added_by_synthesizer == {"svs": 1}
    assert [(c.problem_id, c.field, c.old, c.new) for c in diff.changed] == [
        (ORIGINALS[0].id, "weight", 1.0, 0.25)]
    assert diff.changed_by_label == {"weight/unlabelled": 1}
    assert diff.to_dict()["a"] == "math@v1"


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.tuples(
    st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=30),
    st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=8),
    st.dictionaries(st.text(max_size=5), st.integers() | st.text(max_size=5) | st.none(),
                    max_size=3),
    st.floats(0, 4)), min_size=1, max_size=6))
def test_any_problems_and_weights_round_trip_through_the_store(tmp_path_factory, rows):
    problems = list({p.id: p for p in (Problem(t, a, metadata=m) for t, a, m, _ in rows)}.values())
    weights = {Problem(t, a).id: w for t, a, _, w in rows}
    store = PromptStore(tmp_path_factory.mktemp("store"))
    store.publish("s", NewVersion(problems, lineage.graph_for(problems, 1), weights=weights),
                  parent=None)
    loaded = store.load("s")
    assert loaded.problems == tuple(problems)
    assert all(loaded.weight(p.id) == weights[p.id] for p in problems)


def test_text_that_cannot_be_stored_is_named(tmp_path):
    bad = Problem("lone \ud800 surrogate", "1")
    with pytest.raises(StoreFileError, match=f"problem {bad.id}: its text is not valid Unicode"):
        PromptStore(tmp_path).publish("s", NewVersion([bad], lineage.graph_for([bad], 1)),
                                      parent=None)
    assert not PromptStore(tmp_path).exists("s")
