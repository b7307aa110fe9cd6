"""The diagnosis's settings and results: `DiagnosisConfig` (the memorization rule's
thresholds, with help), `ProblemDiagnosis` and `Diagnosis` (JSON round trip). The rule
itself is `svs.pipeline.memorization`."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from svs.core.config import Band, field_help, from_mapping, option

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
        "'seeds' (what synthesis needs), 'all', or 'none'. Only real solves are kept "
        "(see seed_accept_guesses / seed_accept_truncated).")
    seed_accept_guesses: bool = option(
        False, "Let a correct rollout whose answer the grader only guessed (last number, "
        "trailing LaTeX; no \\boxed{} or answer line) count toward seeds and seed solutions.")
    seed_accept_truncated: bool = option(
        False, "Let a correct rollout cut at the token limit count toward seeds and seed "
        "solutions.")
    warn_share: float = option(
        0.5, "Warn (totals['warnings']) when guessed answers make up more than this share "
        "of the correct rollouts, or truncated completions of all rollouts.")

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
        if not 0.0 <= self.warn_share <= 1.0:
            raise ValueError(f"warn_share must be in [0, 1], got {self.warn_share}")
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
