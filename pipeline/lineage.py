"""Lineage: which problem came from which, by which synthesizer, in which version.

The graph is a networkx `DiGraph` with one node per problem that was ever part of a
prompt set (retired problems stay, marked with the version that retired them) and one
edge parent -> variant per synthesized problem. It is cumulative: version N's graph
contains version N-1's. It is stored next to the problems as node-link JSON with nodes
and edges sorted, so the same graph always serializes to the same bytes.

Node attributes: `origin_id`, `generation`, `source`, `synthesizer` (None for
originals), `added_in` (version), `retired_in` (version or None).
Edge attributes: `synthesizer`, `seed_rollout` (id of the correct rollout the variant
was synthesized from, when the synthesizer recorded it), `generation` (the variant's),
`version` (the version that added the variant).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

import networkx as nx

from svs.core.records import Problem

LINEAGE_FORMAT = "svs-lineage/1"
# metadata keys synthesizers use for the seed rollout a variant came from, in the order
# they are looked up
SEED_ROLLOUT_KEYS = ("seed_rollout", "seed_rollout_id", "seed_id")


class LineageError(ValueError):
    """A lineage graph is inconsistent or could not be read."""


def seed_rollout_of(problem: Problem) -> str | None:
    for key in SEED_ROLLOUT_KEYS:
        value = problem.metadata.get(key)
        if value not in (None, ""):
            return str(value)
    return None


def add_problems(graph: nx.DiGraph, problems: Iterable[Problem], version: int, *,
                 allow_missing_parents: bool = False) -> None:
    """Add new problems (originals and variants) in place; existing nodes are left alone.

    A variant's parent must already be in the graph or among `problems`; otherwise the
    variant would be an orphan that no family query can find. Importers pass
    `allow_missing_parents=True`: an exported set holds active problems only, so a
    variant whose parent was retired arrives alone; its parent becomes a placeholder node
    (`placeholder=True`, retired) that keeps the family together.
    """
    problems = list(problems)
    new = [p for p in problems if p.id not in graph]
    for problem in new:
        graph.add_node(problem.id, origin_id=problem.origin_id, generation=problem.generation,
                       source=problem.source, synthesizer=problem.synthesizer,
                       added_in=version, retired_in=None)
    for problem in new:
        if problem.parent_id is None:
            continue
        if problem.parent_id not in graph and allow_missing_parents:
            graph.add_node(problem.parent_id, origin_id=problem.origin_id,
                           generation=problem.generation - 1, source="unknown",
                           synthesizer=None, added_in=version, retired_in=version,
                           placeholder=True)
        elif problem.parent_id not in graph:
            raise LineageError(f"variant {problem.id} names parent {problem.parent_id}, which "
                               f"is neither in the prompt set's lineage nor being added")
        graph.add_edge(problem.parent_id, problem.id, synthesizer=problem.synthesizer,
                       seed_rollout=seed_rollout_of(problem), generation=problem.generation,
                       version=version)


def mark_retired(graph: nx.DiGraph, problem_ids: Iterable[str], version: int) -> None:
    for pid in problem_ids:
        if pid not in graph:
            raise LineageError(f"cannot retire {pid}: it is not in the lineage graph")
        graph.nodes[pid]["retired_in"] = version


def mark_active(graph: nx.DiGraph, problem_ids: Iterable[str]) -> None:
    """Clear `retired_in` for problems that are back in the set (re-added, rolled forward)."""
    for pid in problem_ids:
        if pid in graph:
            graph.nodes[pid]["retired_in"] = None


def descendants(graph: nx.DiGraph, problem_id: str) -> set[str]:
    """Every problem derived from `problem_id`, directly or through other variants."""
    if problem_id not in graph:
        return set()
    return nx.descendants(graph, problem_id)


def depth(graph: nx.DiGraph, problem_id: str) -> int:
    """Edges between a problem and its original (0 for an original)."""
    if problem_id not in graph:
        raise LineageError(f"{problem_id} is not in the lineage graph")
    steps, node = 0, problem_id
    while True:
        parents = list(graph.predecessors(node))
        if not parents:
            return steps
        node, steps = parents[0], steps + 1


def family_size(graph: nx.DiGraph, origin_id: str, *, active_only: bool = False) -> int:
    """Variants descended from an original (the original itself not counted)."""
    members = descendants(graph, origin_id)
    if active_only:
        members = {m for m in members if graph.nodes[m].get("retired_in") is None}
    return len(members)


def family_sizes(graph: nx.DiGraph, active_ids: Iterable[str]) -> Counter[str]:
    """Variants per origin among `active_ids` (originals themselves not counted)."""
    counts: Counter[str] = Counter()
    for pid in active_ids:
        attrs = graph.nodes.get(pid)
        if attrs is not None and attrs.get("generation", 0) > 0:
            counts[attrs["origin_id"]] += 1
    return counts


def to_json(graph: nx.DiGraph) -> str:
    """Node-link JSON with sorted nodes and edges: equal graphs give equal bytes."""
    nodes = [{"id": node, **_clean(graph.nodes[node])} for node in sorted(graph.nodes)]
    edges = [{"source": u, "target": v, **_clean(graph.edges[u, v])}
             for u, v in sorted(graph.edges)]
    payload = {"format": LINEAGE_FORMAT, "directed": True, "multigraph": False,
               "graph": {}, "nodes": nodes, "edges": edges}
    return json.dumps(payload, sort_keys=True, ensure_ascii=False, indent=1) + "\n"


def from_json(text: str) -> nx.DiGraph:
    try:
        payload = json.loads(text)
    except json.JSONDecodeError as exc:
        raise LineageError(f"lineage is not valid JSON ({exc.msg} at line {exc.lineno})") from exc
    if not isinstance(payload, dict) or payload.get("format") != LINEAGE_FORMAT:
        raise LineageError(f"lineage is not in the {LINEAGE_FORMAT} format")
    graph = nx.node_link_graph(payload, directed=True, multigraph=False, edges="edges")
    if not nx.is_directed_acyclic_graph(graph):
        raise LineageError("lineage has a cycle: a problem cannot descend from itself")
    return graph


def graph_for(problems: Iterable[Problem], version: int) -> nx.DiGraph:
    """A fresh lineage for imported problems (originals, maybe with variants)."""
    graph = nx.DiGraph()
    add_problems(graph, sorted(problems, key=lambda p: p.generation), version,
                 allow_missing_parents=True)
    return graph


def _clean(attrs: Mapping[str, Any]) -> dict[str, Any]:
    return {key: attrs[key] for key in sorted(attrs)}
