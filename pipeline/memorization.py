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

A guess is not a solve: labels follow the grader, but seeds and kept solutions count
only real solves (`verifiers.consistency.counts_as_solve`): a correct rollout whose answer
the grader had to guess (no ``\\boxed{}`` or answer line: the last number, trailing
LaTeX) or whose completion was cut at the token limit (`metadata["finish_reason"] ==
"length"` or `metadata["truncated"]`) is reported, never a seed. Every problem's metrics
carry `answers/guessed_share` (of its correct rollouts) and `answers/truncated_share` (of
all its rollouts); the totals add the overall shares and `warnings` when they dominate.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from svs.core.records import RolloutGroup
from svs.pipeline import diversity
from svs.pipeline.diagnosis_types import (  # noqa: F401 - re-exported with the rule
    HISTORY_KEYS,
    KEEP_SOLUTIONS,
    LABELS,
    LEARNING,
    MEMORIZED,
    SOLVED_DIVERSE,
    UNSOLVED,
    Diagnosis,
    DiagnosisConfig,
    ProblemDiagnosis,
)
from svs.verifiers.answers import extract_answer
from svs.verifiers.consistency import counts_as_solve, is_guess, is_truncated
from svs.verifiers.textsim import grouped_oph_similarity, oph_signatures


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


def answer_method(rollout) -> str | None:
    """How the rollout's answer was found: recorded at grading (`metadata["answer_method"]`)
    or re-read with the grader's string cascade (`verifiers.answers.extract_answer`; pure
    string work, nothing is parsed as mathematics). None for incorrect rollouts."""
    if not rollout.correct:
        return None
    recorded = rollout.metadata.get("answer_method")
    return recorded if isinstance(recorded, str) else extract_answer(rollout.completion).method


def finish_reason(rollout) -> str | None:
    """"stop", "length" (cut at the token limit) or None when nobody recorded it."""
    recorded = rollout.metadata.get("finish_reason")
    if isinstance(recorded, str):
        return recorded
    return "length" if rollout.metadata.get("truncated") is True else None


def real_solves(group: RolloutGroup, config: DiagnosisConfig) -> list:
    """The group's correct rollouts that count as solves for seeds (a guess is not one)."""
    return [r for r in group.rollouts
            if counts_as_solve(r.correct, answer_method(r), finish_reason(r),
                               accept_guesses=config.seed_accept_guesses,
                               accept_truncated=config.seed_accept_truncated)]


def answer_metrics(group: RolloutGroup, config: DiagnosisConfig) -> dict[str, float]:
    correct = [r for r in group.rollouts if r.correct]
    guessed = sum(is_guess(answer_method(r)) for r in correct)
    truncated = sum(is_truncated(finish_reason(r)) for r in group.rollouts)
    return {"answers/n_guessed": float(guessed),
            "answers/guessed_share": guessed / len(correct) if correct else math.nan,
            "answers/n_truncated": float(truncated),
            "answers/truncated_share": truncated / group.n if group.n else math.nan,
            "answers/n_real_solves": float(len(real_solves(group, config)))}


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
            metrics.update(answer_metrics(group, config))
            per_problem[group.problem_id].append((group, metrics))
            bar.advance("metrics", 1)
    problems = [_diagnose_problem(history, config) for history in per_problem.values()]
    steps = sorted({g.step for g in groups if g.step is not None})
    return Diagnosis(problems=tuple(problems), config=config,
                     totals=diagnosis_totals(problems, groups, config), steps=tuple(steps))


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
    solved = real_solves(group, config)
    real_rate = len(solved) / group.n if group.n else 0.0
    graded = int(metrics["diversity/n_correct"])
    if graded > len(solved):
        reasons.append(f"{graded - len(solved)} of {graded} correct rollout(s) do not count as "
                       f"solves: {int(metrics['answers/n_guessed'])} guessed answer(s) (no "
                       f"\\boxed{{}} or answer line), {int(metrics['answers/n_truncated'])} "
                       f"rollout(s) cut at the token limit")
    in_band = label == LEARNING and bool(solved) and config.seed_band.contains(real_rate)
    is_seed = in_band or (label == MEMORIZED and config.seed_memorized and bool(solved))
    if is_seed:
        reasons.append("seed: " + (f"real solve rate {len(solved)}/{group.n} in the SvS band "
                                   f"[{low}, {high}]" if in_band
                                   else "memorized and seed_memorized is set"))
    elif label in (LEARNING, MEMORIZED) and not solved:
        reasons.append("not a seed: no correct rollout is a real solve")
    keep = config.keep_solutions == "all" or (config.keep_solutions == "seeds" and is_seed)
    solutions = tuple(r.completion for r in solved) if keep else ()
    return ProblemDiagnosis(
        problem_id=group.problem_id, prompt=group.prompt, answer=group.answer, label=label,
        reasons=tuple(reasons), is_seed=is_seed, metrics=metrics,
        history=tuple({"step": g.step, "label": label_problem(m, config)[0],
                       **{k: m[k] for k in HISTORY_KEYS}} for g, m in history),
        correct_solutions=solutions)


def diagnosis_totals(problems: Sequence[ProblemDiagnosis], groups: Sequence[RolloutGroup],
                     config: DiagnosisConfig | None = None) -> dict[str, Any]:
    config = config or DiagnosisConfig()
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
    totals.update(answer_totals(groups, config))
    return totals


def answer_totals(groups: Sequence[RolloutGroup], config: DiagnosisConfig) -> dict[str, Any]:
    """Overall guessed / truncated shares, and warnings when they dominate."""
    rollouts = [r for g in groups for r in g.rollouts]
    correct = [r for r in rollouts if r.correct]
    guessed = sum(is_guess(answer_method(r)) for r in correct)
    truncated = sum(is_truncated(finish_reason(r)) for r in rollouts)
    guessed_share = guessed / len(correct) if correct else math.nan
    truncated_share = truncated / len(rollouts) if rollouts else math.nan
    warnings = []
    if correct and guessed_share > config.warn_share:
        warnings.append(f"{guessed} of {len(correct)} correct rollouts ({guessed_share:.0%}) "
                        f"are guessed answers (no \\boxed{{}} or answer line): they are not "
                        f"solves and make no seeds")
    if rollouts and truncated_share > config.warn_share:
        warnings.append(f"{truncated} of {len(rollouts)} rollouts ({truncated_share:.0%}) were "
                        f"cut at the token limit: raise max_new_tokens or use a stronger "
                        f"policy")
    return {"answers/guessed": guessed, "answers/guessed_share": guessed_share,
            "answers/truncated": truncated, "answers/truncated_share": truncated_share,
            "warnings": warnings}


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
