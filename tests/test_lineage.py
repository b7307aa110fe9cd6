import pytest

from svs.core.records import Problem
from svs.pipeline import lineage

ROOT = Problem("What is 6*7?", "42")
OTHER = Problem("What is 40+2?", "42")


def family():
    child = ROOT.variant("Compute six times seven.", synthesizer="svs", seed_rollout="r1")
    grandchild = child.variant("Multiply 6 by 7.", synthesizer="symbolic")
    sibling = ROOT.variant("What is 7*6?", synthesizer="symbolic")
    return child, grandchild, sibling


def test_graph_edges_carry_synthesizer_seed_generation_and_version():
    child, grandchild, sibling = family()
    graph = lineage.graph_for([ROOT, OTHER], 1)
    lineage.add_problems(graph, [grandchild, child], 2)  # order inside one batch does not matter
    lineage.add_problems(graph, [sibling], 3)
    assert graph.edges[ROOT.id, child.id] == {"synthesizer": "svs", "seed_rollout": "r1",
                                              "generation": 1, "version": 2}
    assert graph.edges[child.id, grandchild.id]["seed_rollout"] is None
    assert graph.nodes[sibling.id]["added_in"] == 3
    assert lineage.descendants(graph, ROOT.id) == {child.id, grandchild.id, sibling.id}
    assert lineage.descendants(graph, OTHER.id) == set()
    assert lineage.depth(graph, grandchild.id) == 2 and lineage.depth(graph, ROOT.id) == 0
    assert lineage.family_size(graph, ROOT.id) == 3


def test_retired_members_leave_active_counts_but_stay_in_the_graph():
    child, grandchild, sibling = family()
    graph = lineage.graph_for([ROOT, child, grandchild, sibling], 1)
    lineage.mark_retired(graph, [child.id], 2)
    assert lineage.family_size(graph, ROOT.id, active_only=True) == 2
    assert lineage.family_sizes(graph, [ROOT.id, grandchild.id, sibling.id]) == {ROOT.id: 2}
    lineage.mark_active(graph, [child.id])
    assert lineage.family_size(graph, ROOT.id, active_only=True) == 3


def test_json_is_stable_and_round_trips():
    child, grandchild, sibling = family()
    graph = lineage.graph_for([ROOT, OTHER, child, grandchild, sibling], 1)
    text = lineage.to_json(graph)
    shuffled = lineage.graph_for([sibling, grandchild, OTHER, child, ROOT], 1)
    assert lineage.to_json(shuffled) == text
    back = lineage.from_json(text)
    assert lineage.to_json(back) == text
    assert dict(back.nodes(data=True)) == dict(graph.nodes(data=True))


def test_orphan_variant_is_refused_unless_importing():
    child, grandchild, _ = family()
    graph = lineage.graph_for([ROOT], 1)
    with pytest.raises(lineage.LineageError, match="neither in the prompt set's lineage"):
        lineage.add_problems(graph, [grandchild], 2)
    imported = lineage.graph_for([grandchild], 1)  # an export of active problems only
    assert imported.nodes[child.id]["placeholder"] is True
    assert imported.nodes[child.id]["retired_in"] == 1


def test_bad_json_and_cycles_are_reported():
    with pytest.raises(lineage.LineageError, match="not valid JSON"):
        lineage.from_json("{nope")
    with pytest.raises(lineage.LineageError, match="format"):
        lineage.from_json('{"nodes": []}')
    graph = lineage.graph_for([ROOT, OTHER], 1)
    graph.add_edge(ROOT.id, OTHER.id)
    graph.add_edge(OTHER.id, ROOT.id)
    with pytest.raises(lineage.LineageError, match="cycle"):
        lineage.from_json(lineage.to_json(graph))
