"""`trainer_bridge.live_sets`: a stream that follows the store's current version."""

import itertools
from collections import Counter

import networkx as nx
import pytest

from svs.core.records import Problem
from svs.pipeline.lineage import add_problems
from svs.pipeline.store import NewVersion, PromptStore
from svs.trainer_bridge.live_sets import live_trl_rows, trl_live_dataset


def publish(store: PromptStore, problems, version, weights=None):
    graph = nx.DiGraph()
    add_problems(graph, problems, version=version)
    store.publish("demo", NewVersion(problems, graph, weights=weights or {}),
                  parent=None if version == 1 else version - 1)


V1 = [Problem(f"What is {i} + 1?", str(i + 1)) for i in range(6)]
V2 = [Problem(f"What is {i} * 3?", str(3 * i)) for i in range(4)]


def test_the_stream_switches_at_the_next_row_after_a_publish(tmp_path):
    store = PromptStore(tmp_path)
    publish(store, V1, 1)
    rows = live_trl_rows(str(tmp_path), "demo")
    first = list(itertools.islice(rows, 15))  # more than one pass over v1
    assert {r["version"] for r in first} == {"demo@v1"}
    assert Counter(r["problem_id"] for r in first[:6]) == Counter(p.id for p in V1)
    assert [r["problem_id"] for r in first[:6]] != [r["problem_id"] for r in first[6:12]]  # reshuffled
    assert first[0]["solution"] in {p.answer for p in V1}
    publish(store, V2, 2)
    after = list(itertools.islice(rows, 8))
    assert {r["version"] for r in after} == {"demo@v2"}
    assert {r["problem_id"] for r in after} == {p.id for p in V2}


def test_weights_hold_over_passes(tmp_path):
    store = PromptStore(tmp_path)
    problems = [Problem(f"Compute {i} - 2.", str(i - 2)) for i in range(20)]
    publish(store, problems, 1, weights={p.id: 0.0 for p in problems[:5]}
            | {p.id: 0.5 for p in problems[5:10]})
    seen = Counter(r["problem_id"] for r in itertools.islice(live_trl_rows(str(tmp_path), "demo"), 2000))
    assert not set(seen) & {p.id for p in problems[:5]}
    full = sum(seen[p.id] for p in problems[10:]) / 10
    half = sum(seen[p.id] for p in problems[5:10]) / 5
    assert 0.35 < half / full < 0.65


def test_an_empty_version_stops_the_stream_with_a_reason(tmp_path):
    store = PromptStore(tmp_path)
    publish(store, V1, 1)
    rows = live_trl_rows(str(tmp_path), "demo")
    next(rows)
    publish(store, [], 2)
    with pytest.raises(ValueError, match="demo@v2 has no problems"):
        list(itertools.islice(rows, 10))
    with pytest.raises(ValueError, match="no published set 'other'"):
        trl_live_dataset(tmp_path, "other")


def test_the_datasets_iterable_dataset_reads_the_stream(tmp_path):
    publish(PromptStore(tmp_path), V1, 1)
    dataset = trl_live_dataset(tmp_path, "demo")
    rows = list(itertools.islice(iter(dataset), 7))
    assert {r["version"] for r in rows} == {"demo@v1"}
    assert rows[0]["prompt"][0]["role"] == "user"
