"""The refresh policy: how version N+1 is formed from version N, the diagnosis and the
accepted variants. Pure: records in, a `RefreshPlan` out; the store writes it.

In order:
1. Memorized problems (diagnosis label `memorized`) are down-weighted, retired or kept
   (`memorized_action`). Down-weighting multiplies the weight, and a problem whose
   weight falls below `retire_below_weight` is retired: one noisy diagnosis costs a
   problem weight, a second one in a row retires it.
2. Accepted variants are added unless they break a rule; each refusal becomes a reject
   with its reason: `unknown_parent` (parent not in the set's lineage), `depth_cap`
   (too many generations from the original), `duplicate` (a problem with this id was
   ever in the set, retired ones included, or appears twice in this batch),
   `duplicate_text` (same normalized text as an active problem, different answer),
   `family_cap` (the original already has `max_variants_per_origin` active variants),
   `mix_cap` (the synthetic share would pass `max_synthetic_fraction`), `target_size`
   (the set is full).
3. If the set is still above `target_size`, problems are retired until it fits:
   lowest weight first, synthetic before original, older before newer.

Originals are never replaced by anything but retirement: a variant joins its family, it
does not overwrite its parent, so the lineage always leads back to the original.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import networkx as nx

from svs.core.config import from_mapping, option
from svs.core.records import Problem, normalize_text
from svs.pipeline import lineage
from svs.pipeline.store_files import reject_row

MEMORIZED = "memorized"  # pipeline.memorization's label; kept here so this module stays pure
MEMORIZED_ACTIONS = ("downweight", "retire", "keep")



@dataclass(frozen=True)
class RefreshConfig:
    """How a prompt set changes from one version to the next."""

    memorized_action: str = option(
        "downweight", "What happens to a problem diagnosed as memorized: `downweight` "
        "(multiply its weight by memorized_weight; retire it once below "
        "retire_below_weight), `retire` (drop it now), `keep`. Down-weighting is the default "
        "because one diagnosis rests on a handful of rollouts (8 in SvS) and can be noise; "
        "with the other defaults a problem is retired the second time in a row it is "
        "memorized.")
    memorized_weight: float = option(
        0.25, "Factor a memorized problem's weight is multiplied by (in (0, 1)). A quarter "
              "keeps it in view of the trainer while its variants take over.")
    retire_below_weight: float = option(
        0.1, "A down-weighted problem whose weight falls below this is retired "
             "(0.25 * 0.25 = 0.0625 < 0.1: retired on the second memorized diagnosis).")
    max_variants_per_origin: int = option(
        8, "Active variants allowed per original problem. SvS samples 8 problems per seed; "
           "capping the family at 8 keeps one memorized original from crowding out the rest "
           "of the set.")
    max_generation: int = option(
        2, "Deepest generation allowed (1 = variants of originals only). Each synthesis "
           "step can drift from the original's distribution while keeping its answer; two "
           "steps allows variants of variants once, deeper chains are refused.")
    max_synthetic_fraction: float = option(
        0.5, "Largest share of synthetic problems in the set after adding variants (in "
             "[0, 1]). SvS trains on originals and synthetic problems side by side; keeping "
             "originals at least half anchors the set to the task users care about. Only new "
             "additions are limited; existing variants are not retired to restore the mix.")
    target_size: int | None = option(
        None, "Largest number of problems in the new version (None: no limit). Additions "
              "past it are refused; if the set is already larger, the lowest-weight "
              "problems are retired (synthetic before original).")
    dedupe_text: bool = option(
        True, "Refuse a variant whose normalized text equals an active problem's text "
              "(same question, different answer). Near-duplicates are caught earlier by "
              "verifiers/problems.py.")

    def __post_init__(self) -> None:
        if self.memorized_action not in MEMORIZED_ACTIONS:
            raise ValueError(f"RefreshConfig.memorized_action must be one of "
                             f"{MEMORIZED_ACTIONS}, got {self.memorized_action!r}")
        if not 0 < self.memorized_weight < 1:
            raise ValueError(f"RefreshConfig.memorized_weight must be in (0, 1), got "
                             f"{self.memorized_weight}; use memorized_action='keep' to leave "
                             f"weights alone")
        if not 0 <= self.retire_below_weight < 1:
            raise ValueError(f"RefreshConfig.retire_below_weight must be in [0, 1), got "
                             f"{self.retire_below_weight}")
        if self.max_variants_per_origin < 0:
            raise ValueError(f"RefreshConfig.max_variants_per_origin must be >= 0, got "
                             f"{self.max_variants_per_origin}")
        if self.max_generation < 1:
            raise ValueError(f"RefreshConfig.max_generation must be >= 1 (1 = variants of "
                             f"originals only), got {self.max_generation}")
        if not 0 <= self.max_synthetic_fraction <= 1:
            raise ValueError(f"RefreshConfig.max_synthetic_fraction must be in [0, 1], got "
                             f"{self.max_synthetic_fraction}")
        if self.target_size is not None and self.target_size < 1:
            raise ValueError(f"RefreshConfig.target_size must be >= 1 or None, got "
                             f"{self.target_size}")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RefreshConfig:
        return from_mapping(cls, data, "refresh setting")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class RefreshPlan:
    """The next version, before it is written."""

    problems: tuple[Problem, ...]
    weights: Mapping[str, float]
    lineage: nx.DiGraph
    added: tuple[str, ...]
    retired: Mapping[str, str]  # problem id -> why (memorized, target_size)
    downweighted: Mapping[str, float]  # problem id -> new weight
    rejects: tuple[Mapping[str, Any], ...]  # one row per refused variant, with its reason

    def summary(self) -> dict[str, Any]:
        return {"added": len(self.added), "retired": dict(sorted(self.retired.items())),
                "downweighted": dict(sorted(self.downweighted.items())),
                "rejected": dict(sorted(Counter(r["reason"] for r in self.rejects).items())),
                "size": len(self.problems)}


def plan_refresh(problems: Sequence[Problem], weights: Mapping[str, float],
                 graph: nx.DiGraph, accepted: Sequence[Problem], labels: Mapping[str, str],
                 config: RefreshConfig, version: int) -> RefreshPlan:
    """Form version `version` from the current problems and weights, their lineage graph,
    the accepted variants and the diagnosis labels (problem id -> label)."""
    graph = graph.copy()
    weight = {p.id: float(weights.get(p.id, 1.0)) for p in problems}
    retired: dict[str, str] = {}
    downweighted: dict[str, float] = {}
    for problem in problems:
        if labels.get(problem.id) != MEMORIZED or config.memorized_action == "keep":
            continue
        if config.memorized_action == "retire":
            retired[problem.id] = MEMORIZED
            continue
        weight[problem.id] *= config.memorized_weight
        if weight[problem.id] < config.retire_below_weight:
            retired[problem.id] = MEMORIZED
        else:
            downweighted[problem.id] = weight[problem.id]
    kept = [p for p in problems if p.id not in retired]
    added, rejects = _admit(kept, accepted, graph, config)
    active = kept + added
    active, over = _trim(active, weight, graph, config)
    retired.update(dict.fromkeys(over, "target_size"))
    lineage.mark_retired(graph, retired, version)
    lineage.add_problems(graph, added, version)
    for problem in added:
        weight[problem.id] = 1.0
    return RefreshPlan(
        problems=tuple(active), weights={p.id: weight[p.id] for p in active}, lineage=graph,
        added=tuple(p.id for p in added if p.id not in over), retired=retired,
        downweighted={k: v for k, v in downweighted.items() if k not in retired},
        rejects=tuple(rejects))


def _admit(kept: list[Problem], accepted: Sequence[Problem], graph: nx.DiGraph,
           config: RefreshConfig) -> tuple[list[Problem], list[dict[str, Any]]]:
    active_ids = {p.id for p in kept}
    active_texts = {normalize_text(p.text) for p in kept}
    families = lineage.family_sizes(graph, active_ids)
    n_synthetic = sum(1 for p in kept if not p.is_original)
    n_original = len(kept) - n_synthetic
    added: list[Problem] = []
    rejects: list[dict[str, Any]] = []
    seen: set[str] = set()
    for candidate in accepted:
        parent_known = candidate.parent_id in graph or candidate.parent_id in seen
        reason, detail = None, ""
        if candidate.is_original:
            reason, detail = "unknown_parent", "an accepted variant must name its parent"
        elif not parent_known:
            reason, detail = "unknown_parent", (f"parent {candidate.parent_id} is not in the "
                                                f"prompt set's lineage")
        elif candidate.generation > config.max_generation:
            reason, detail = "depth_cap", (f"generation {candidate.generation} > "
                                           f"max_generation {config.max_generation}")
        elif candidate.id in graph or candidate.id in seen:
            reason, detail = "duplicate", "this problem is, or was, already in the set"
        elif config.dedupe_text and normalize_text(candidate.text) in active_texts:
            reason, detail = "duplicate_text", "an active problem has the same text"
        elif families[candidate.origin_id] >= config.max_variants_per_origin:
            reason, detail = "family_cap", (f"origin {candidate.origin_id} already has "
                                            f"{families[candidate.origin_id]} active variants")
        elif _synthetic_share(n_synthetic + 1, n_original) > config.max_synthetic_fraction:
            reason, detail = "mix_cap", (f"a synthetic share above {config.max_synthetic_fraction}")
        elif config.target_size is not None and len(kept) + len(added) >= config.target_size:
            reason, detail = "target_size", f"the set already holds {config.target_size} problems"
        if reason is not None:
            rejects.append(reject_row(candidate, stage="refresh", reason=reason, detail=detail))
            continue
        seen.add(candidate.id)
        active_texts.add(normalize_text(candidate.text))
        families[candidate.origin_id] += 1
        n_synthetic += 1
        added.append(candidate)
    return added, rejects


def apply_weights(problems: Sequence[Problem], weights: Mapping[str, float],
                  seed: int = 0) -> list[Problem]:
    """The problems a trainer should see, with weights turned into copies.

    A problem of weight w appears floor(w) times plus once more with probability
    frac(w), decided by a hash of (seed, id): the same seed always gives the same list,
    another seed (e.g. the epoch) another draw. Weight 0.25 keeps about a quarter of
    the down-weighted problems; weight 1 keeps every problem once. Order is preserved.
    """
    import hashlib

    out: list[Problem] = []
    for problem in problems:
        weight = float(weights.get(problem.id, 1.0))
        copies = int(weight)
        digest = hashlib.sha256(f"{seed}\x1f{problem.id}".encode()).digest()
        if int.from_bytes(digest[:8], "big") / 2**64 < weight - copies:
            copies += 1
        out.extend([problem] * copies)
    return out


def _synthetic_share(n_synthetic: int, n_original: int) -> float:
    return n_synthetic / (n_synthetic + n_original)


def _trim(active: list[Problem], weight: Mapping[str, float], graph: nx.DiGraph,
          config: RefreshConfig) -> tuple[list[Problem], list[str]]:
    if config.target_size is None or len(active) <= config.target_size:
        return active, []

    def expendable(problem: Problem) -> tuple[float, bool, int, str]:
        added_in = graph.nodes[problem.id]["added_in"] if problem.id in graph else 1 << 30
        return (weight.get(problem.id, 1.0), problem.is_original, added_in, problem.id)

    order = sorted(active, key=expendable)
    over = {p.id for p in order[: len(active) - config.target_size]}
    return [p for p in active if p.id not in over], sorted(over)
