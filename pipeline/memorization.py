"""Label every problem `memorized`, `solved_diverse`, `learning` or `unsolved`.

The rule (defaults in `DiagnosisConfig`, reasoning in docs/diagnosis.md), applied to a
problem's latest step:

- `unsolved`:  no rollout is correct.
- `learning`:  some but fewer than `solved_min_solve_rate` of the rollouts are correct.
  Those with a solve rate inside `seed_band` (SvS's under-performing band, 1-4 of 8)
  are synthesis seeds.
- solved (solve rate >= `solved_min_solve_rate`) splits by how the correct solutions
  spread: they are clustered by word n-gram similarity (single linkage at
  `cluster_threshold`, so light rewordings of one trajectory stay one cluster) and
  `memorized` means the effective number of clusters (exp of the entropy of cluster
  shares) is at most `max_effective_solutions`; otherwise `solved_diverse`.
  With fewer than `min_correct_for_collapse` correct rollouts collapse cannot be
  judged and the problem counts as `solved_diverse`, saying so in its reasons.
"""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from svs.core.config import Band, field_help, from_mapping, option
from svs.core.records import RolloutGroup
from svs.pipeline import diversity
from svs.verifiers.textsim import grouped_oph_similarity, oph_signatures

MEMORIZED, SOLVED_DIVERSE, LEARNING, UNSOLVED = "memorized", "solved_diverse", "learning", "unsolved"
LABELS = (MEMORIZED, SOLVED_DIVERSE, LEARNING, UNSOLVED)
KEEP_SOLUTIONS = ("seeds", "all", "none")
# Per-step values kept in each problem's history (and plotted as trends).
HISTORY_KEYS = ("diversity/n", "diversity/solve_rate", "diversity/solution_diversity",
                "diversity/effective_solutions")



@dataclass(frozen=True)
class DiagnosisConfig:
    """Thresholds of the memorization rule and how similarity is measured."""

    solved_min_solve_rate: float = option(
        0.85, "A problem counts as solved when at least this share of its rollouts is "
        "correct (14/16 or 7/8: 'nearly always', tolerating occasional slips).")
    max_effective_solutions: float = option(
        2.0, "Solved problems whose correct solutions form at most this effective number "
        "of distinct trajectories (exp of cluster-share entropy) are memorized.")
    min_correct_for_collapse: int = option(
        4, "Fewest correct rollouts needed to call a solved problem collapsed; below it "
        "the problem is solved_diverse with a reason saying the evidence is thin.")
    cluster_threshold: float = option(
        0.4, "Word-3-gram Jaccard similarity at or above which two correct solutions are "
        "the same trajectory (light rewording measured at 0.45-0.8, different methods "
        "below 0.2 on the planted set).")
    ngram: int = option(3, "Words per shingle for solution similarity.")
    num_bins: int = option(128, "One-permutation-hashing bins per solution (power of two); "
                          "more bins, less estimation noise (sd ~0.04 at 128).")
    seed_band: tuple[float, float] = option(
        (0.125, 0.5), "Solve-rate band (inclusive) of learning problems marked as synthesis "
        "seeds: SvS's under-performing band, 1 to 4 of 8 correct.")
    seed_memorized: bool = option(False, "Also mark memorized problems as seeds.")
    keep_solutions: str = option(
        "seeds", "Which problems keep their correct completions in the diagnosis: "
        "'seeds' (what synthesis needs), 'all', or 'none'.")

    def __post_init__(self) -> None:
        if not 0.0 < self.solved_min_solve_rate <= 1.0:
            raise ValueError("solved_min_solve_rate must be in (0, 1], got "
                             f"{self.solved_min_solve_rate}")
        if self.max_effective_solutions < 1.0:
            raise ValueError("max_effective_solutions must be >= 1 (one trajectory), got "
                             f"{self.max_effective_solutions}")
        if self.min_correct_for_collapse < 2:
            raise ValueError("min_correct_for_collapse must be >= 2: collapse needs at least "
                             f"two correct solutions to compare, got {self.min_correct_for_collapse}")
        if not 0.0 < self.cluster_threshold <= 1.0:
            raise ValueError(f"cluster_threshold must be in (0, 1], got {self.cluster_threshold}")
        if self.ngram < 1:
            raise ValueError(f"ngram must be >= 1, got {self.ngram}")
        if self.num_bins < 2 or self.num_bins & (self.num_bins - 1):
            raise ValueError(f"num_bins must be a power of two >= 2, got {self.num_bins}")
        object.__setattr__(self, "seed_band", Band.of(self.seed_band, "seed_band"))
        high = self.seed_band.high
        if high >= self.solved_min_solve_rate:
            raise ValueError(f"seed_band's upper end ({high}) must be below solved_min_solve_rate "
                             f"({self.solved_min_solve_rate}): seeds are learning problems")
        if self.keep_solutions not in KEEP_SOLUTIONS:
            raise ValueError(f"keep_solutions must be one of {KEEP_SOLUTIONS}, got {self.keep_solutions!r}")

    @classmethod
    def help(cls) -> dict[str, str]:
        return field_help(cls)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DiagnosisConfig:
        return from_mapping(cls, data)


@dataclass(frozen=True)
class ProblemDiagnosis:
    """One problem's verdict: label, why, seed flag, metrics of its latest step, history."""

    problem_id: str
    prompt: str
    answer: str
    label: str
    reasons: tuple[str, ...]
    is_seed: bool
    metrics: Mapping[str, float]
    history: tuple[Mapping[str, Any], ...] = ()
    correct_solutions: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"problem_id": self.problem_id, "prompt": self.prompt, "answer": self.answer,
                "label": self.label, "reasons": list(self.reasons), "is_seed": self.is_seed,
                "metrics": _json_numbers(self.metrics),
                "history": [_json_numbers(h) for h in self.history],
                "correct_solutions": list(self.correct_solutions)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ProblemDiagnosis:
        return cls(problem_id=data["problem_id"], prompt=data["prompt"], answer=data["answer"],
                   label=data["label"], reasons=tuple(data["reasons"]), is_seed=bool(data["is_seed"]),
                   metrics=_nan_numbers(data["metrics"]),
                   history=tuple(_nan_numbers(h) for h in data.get("history", ())),
                   correct_solutions=tuple(data.get("correct_solutions", ())))


@dataclass(frozen=True)
class Diagnosis:
    problems: tuple[ProblemDiagnosis, ...]
    config: DiagnosisConfig
    totals: Mapping[str, Any]
    steps: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_id", {p.problem_id: p for p in self.problems})

    def __getitem__(self, problem_id: str) -> ProblemDiagnosis:
        return self._by_id[problem_id]

    def by_label(self, label: str) -> list[ProblemDiagnosis]:
        if label not in LABELS:
            raise ValueError(f"unknown label {label!r}; valid: {LABELS}")
        return [p for p in self.problems if p.label == label]

    def seeds(self) -> list[ProblemDiagnosis]:
        return [p for p in self.problems if p.is_seed]

    def correct_solutions(self, problem_id: str) -> tuple[str, ...]:
        """Correct completions kept for a problem (see DiagnosisConfig.keep_solutions)."""
        return self._by_id[problem_id].correct_solutions

    def to_json(self, *, indent: int | None = None) -> str:
        payload = {"format": "svs-diagnosis/1", "config": asdict(self.config),
                   "totals": _json_numbers(self.totals), "steps": list(self.steps),
                   "problems": [p.to_dict() for p in self.problems]}
        return json.dumps(payload, indent=indent, ensure_ascii=False, allow_nan=False)

    @classmethod
    def from_json(cls, text: str) -> Diagnosis:
        data = json.loads(text)
        if data.get("format") != "svs-diagnosis/1":
            raise ValueError(f"not an svs diagnosis (format {data.get('format')!r}, "
                             "expected 'svs-diagnosis/1')")
        return cls(problems=tuple(ProblemDiagnosis.from_dict(p) for p in data["problems"]),
                   config=DiagnosisConfig.from_dict(data["config"]),
                   totals=_nan_numbers(data["totals"]), steps=tuple(data["steps"]))


def _json_numbers(values: Mapping[str, Any]) -> dict[str, Any]:
    """NaN and infinities become null: report.json stays strict JSON."""
    out = {}
    for key, value in values.items():
        if isinstance(value, Mapping):
            value = _json_numbers(value)
        elif isinstance(value, float) and not math.isfinite(value):
            value = None
        elif isinstance(value, np.generic):
            value = value.item()
        out[key] = value
    return out


def _nan_numbers(values: Mapping[str, Any]) -> dict[str, Any]:
    return {k: (math.nan if v is None else _nan_numbers(v) if isinstance(v, Mapping) else v)
            for k, v in values.items()}


def label_problem(metrics: Mapping[str, float], config: DiagnosisConfig) -> tuple[str, list[str]]:
    """The label of one problem from its latest-step metrics, with the reasons."""
    n = int(metrics["diversity/n"])
    correct = int(metrics["diversity/n_correct"])
    rate = metrics["diversity/solve_rate"]
    rate_text = f"solve rate {correct}/{n} = {rate:.2f}"
    if correct == 0:
        return UNSOLVED, [f"{rate_text}: no rollout is correct"]
    if rate < config.solved_min_solve_rate:
        return LEARNING, [f"{rate_text} is below the solved threshold {config.solved_min_solve_rate:.2f}"]
    reasons = [f"{rate_text} >= solved threshold {config.solved_min_solve_rate:.2f}"]
    effective = metrics["diversity/effective_solutions"]
    clusters = int(metrics["diversity/clusters"])
    if correct < config.min_correct_for_collapse:
        reasons.append(f"only {correct} correct rollout(s), fewer than "
                       f"{config.min_correct_for_collapse} needed to judge collapse")
        return SOLVED_DIVERSE, reasons
    spread = (f"{correct} correct solutions form {clusters} cluster(s) of near-identical "
              f"trajectories (similarity >= {config.cluster_threshold:.2f}), effective "
              f"number {effective:.2f}")
    if effective <= config.max_effective_solutions:
        reasons.append(f"{spread} <= {config.max_effective_solutions:.2f}")
        reasons.append(f"mean pairwise similarity {metrics['diversity/mean_similarity']:.2f}")
        return MEMORIZED, reasons
    reasons.append(f"{spread} > {config.max_effective_solutions:.2f}")
    return SOLVED_DIVERSE, reasons


def _similarities(groups: Sequence[RolloutGroup], config: DiagnosisConfig,
                  advance: Callable[[str, int], None]) -> list[np.ndarray]:
    """Pairwise similarity of each group's correct completions, computed in bulk."""
    texts: list[str] = []
    offsets = [0]
    for group in groups:
        texts.extend(r.completion for r in group.rollouts if r.correct)
        offsets.append(len(texts))
    signatures = oph_signatures(texts, ngram=config.ngram, num_bins=config.num_bins,
                                on_chunk=lambda done: advance("hashing", done))
    del texts
    out: list[np.ndarray] = [np.zeros((0, 0))] * len(groups)
    by_size: dict[int, list[int]] = defaultdict(list)
    for index in range(len(groups)):
        by_size[offsets[index + 1] - offsets[index]].append(index)
    for size, members in by_size.items():
        if size == 0:
            continue
        per_batch = max(1, (32 << 20) // (size * size * config.num_bins))
        for start in range(0, len(members), per_batch):
            batch = members[start:start + per_batch]
            rows = np.concatenate([np.arange(offsets[i], offsets[i + 1]) for i in batch])
            stacked = signatures[rows].reshape(len(batch), size, config.num_bins)
            for index, matrix in zip(batch, grouped_oph_similarity(stacked), strict=True):
                out[index] = matrix
            advance("comparing", len(batch))
    return out


def _step_key(step: int | None) -> int:
    return -1 if step is None else step


def diagnose(groups: Sequence[RolloutGroup], config: DiagnosisConfig | None = None, *,
             progress: bool = False) -> Diagnosis:
    """Metrics, label, reasons and seed flag for every problem in `groups`.

    Groups are per (problem, step); a problem's label comes from its latest step and its
    history holds every step's solve rate and diversity, with least-squares trends.
    """
    config = config or DiagnosisConfig()
    ungraded = [g.problem_id for g in groups if not g.is_graded]
    if ungraded:
        raise ValueError(f"{len(ungraded)} group(s) have ungraded rollouts (e.g. {ungraded[0]}); "
                         "load them with pipeline.rollouts.load_rollout_groups, which grades them")
    with _Progress(progress, sum(g.n_correct for g in groups),
                   sum(1 for g in groups if g.n_correct), len(groups)) as bar:
        similarities = _similarities(groups, config, bar.advance)
        per_problem: dict[str, list[tuple[RolloutGroup, dict[str, float]]]] = defaultdict(list)
        for group, similarity in zip(groups, similarities, strict=True):
            metrics = diversity.group_metrics(group, similarity=similarity,
                                              cluster_threshold=config.cluster_threshold)
            per_problem[group.problem_id].append((group, metrics))
            bar.advance("metrics", 1)
    problems = [_diagnose_problem(history, config) for history in per_problem.values()]
    steps = sorted({g.step for g in groups if g.step is not None})
    return Diagnosis(problems=tuple(problems), config=config,
                     totals=diagnosis_totals(problems, groups), steps=tuple(steps))


def _diagnose_problem(history: list[tuple[RolloutGroup, dict[str, float]]],
                      config: DiagnosisConfig) -> ProblemDiagnosis:
    history = sorted(history, key=lambda item: _step_key(item[0].step))
    group, metrics = history[-1]
    metrics = dict(metrics)
    label, reasons = label_problem(metrics, config)
    if len(history) > 1:
        steps = [_step_key(g.step) for g, _ in history]
        for key in ("diversity/solve_rate", "diversity/solution_diversity"):
            metrics["trend/" + key.split("/")[1] + "_slope"] = diversity.trend_slope(
                steps, [m[key] for _, m in history])
        first_rate = history[0][1]["diversity/solve_rate"]
        reasons.append(f"over {len(history)} steps ({steps[0]}..{steps[-1]}) the solve rate "
                       f"went from {first_rate:.2f} to {metrics['diversity/solve_rate']:.2f}")
    metrics["trend/steps"] = float(len(history))
    low, high = config.seed_band
    rate = metrics["diversity/solve_rate"]
    is_seed = (label == LEARNING and config.seed_band.contains(rate)) or (label == MEMORIZED and config.seed_memorized)
    if is_seed:
        reasons.append("seed: " + (f"solve rate in the SvS band [{low}, {high}]"
                                   if label == LEARNING else "memorized and seed_memorized is set"))
    keep = config.keep_solutions == "all" or (config.keep_solutions == "seeds" and is_seed)
    solutions = tuple(r.completion for r in group.rollouts if r.correct) if keep else ()
    return ProblemDiagnosis(
        problem_id=group.problem_id, prompt=group.prompt, answer=group.answer, label=label,
        reasons=tuple(reasons), is_seed=is_seed, metrics=metrics,
        history=tuple({"step": g.step, "label": label_problem(m, config)[0],
                       **{k: m[k] for k in HISTORY_KEYS}} for g, m in history),
        correct_solutions=solutions)


def diagnosis_totals(problems: Sequence[ProblemDiagnosis], groups: Sequence[RolloutGroup]) -> dict[str, Any]:
    labels = Counter(p.label for p in problems)

    def mean(key: str) -> float:
        values = [p.metrics.get(key, math.nan) for p in problems]
        values = [v for v in values if not math.isnan(v)]
        return float(np.mean(values)) if values else math.nan

    totals: dict[str, Any] = {
        "problems": len(problems), "groups": len(groups),
        "rollouts": sum(g.n for g in groups), "seeds": sum(p.is_seed for p in problems),
        "labels": {label: labels.get(label, 0) for label in LABELS},
        "diversity/solve_rate": mean("diversity/solve_rate"),
        "diversity/solution_diversity": mean("diversity/solution_diversity"),
        "diversity/effective_solutions": mean("diversity/effective_solutions"),
    }
    for k in diversity.pass_at_k_ks(max((g.n for g in groups), default=0)):
        totals[f"diversity/pass@{k}"] = mean(f"diversity/pass@{k}")
    return totals


class _Progress:
    """A rich progress bar over the three bulk stages, or nothing."""

    def __init__(self, enabled: bool, n_texts: int, n_solved: int, n_groups: int) -> None:
        self.enabled = enabled
        self.totals = {"hashing": n_texts, "comparing": n_solved, "metrics": n_groups}
        self._progress = None
        self._tasks: dict[str, Any] = {}

    def __enter__(self) -> _Progress:
        if self.enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

            self._progress = Progress("[progress.description]{task.description}", BarColumn(),
                                      MofNCompleteColumn(), TimeRemainingColumn())
            for name, total in self.totals.items():
                self._tasks[name] = self._progress.add_task(name, total=total)
            self._progress.start()
        return self

    def advance(self, stage: str, amount: int) -> None:
        if self._progress is not None:
            self._progress.advance(self._tasks[stage], amount)

    def __exit__(self, *exc: Any) -> None:
        if self._progress is not None:
            self._progress.stop()
