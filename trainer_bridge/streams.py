"""Rollout streams of one training step: solving, and online SvS's synthesis streams.

A stream is a list of `Sample`s (prompt ids, completion ids, reward, group id). The
loop concatenates the streams of a step, computes advantages by group and trains on
them in one update; each stream's metrics are logged under its own name, so the
entropy and solve rate of the `original` stream are comparable with a plain GRPO run.

Online SvS (Liang et al., 2025), per step:
1. `original`: solve the sampled problems, n rollouts each, reward 1/0 by the verifier.
2. problems with a solve rate in `seed_band` ([0.125, 0.5]: 1 to 4 of 8) give seeds:
   each correct rollout is one.
3. `synthesis`: the policy writes `synthesis_samples` problems per seed from the seed's
   solution alone (one group per seed); `synthesizers.extract` pulls the problem out,
   and (svs additions) `verifiers.problems` rejects garbage, bad lengths and problems
   that state their answer, and `verifiers.consistency.sympy_verdict` rejects a problem
   sympy computes to another answer when it computes the original to its answer.
4. `synthetic`: each extracted problem is solved n times against the ORIGINAL answer.
5. a synthesis output earns 1 when its problem's solve rate lies in `synthesis_band`
   ([0.125, 0.625]: 1 to 5 of 8) and 0 otherwise (nothing extracted, unsolvable or
   answer-changing, too easy).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from svs.core.config import Band
from svs.core.constants import PROBLEM_SLOT, SOLUTION_SLOT, fill_slot
from svs.core.records import Problem
from svs.pipeline.policy.base import Generation, Policy, SamplingParams

ORIGINAL, SYNTHESIS, SYNTHETIC = "original", "synthesis", "synthetic"
SOLVE_STREAMS = (ORIGINAL, SYNTHETIC)

# (golds, completions) -> rewards in [0, 1]
RewardFn = Callable[[Sequence[str], Sequence[str]], list[float]]


def verifier_reward(golds: Sequence[str], completions: Sequence[str]) -> list[float]:
    """1.0 when the sandboxed verifier finds the completion's answer equal to the gold."""
    from svs.verifiers.grader import grade_batch

    grades = grade_batch(list(zip(golds, completions, strict=True)))
    return [1.0 if grade.correct else 0.0 for grade in grades]


@dataclass(frozen=True)
class Sample:
    """One completion ready for training."""

    stream: str
    group: str  # samples with the same group id share a baseline
    prompt_ids: tuple[int, ...]
    completion_ids: tuple[int, ...]
    reward: float
    truncated: bool  # ran into max_new_tokens
    text: str = ""
    logprobs: tuple[float, ...] = ()  # sampling log-probability of each completion token


def _samples(stream: str, group: str, prompt_ids: Sequence[int], generations: Sequence[Generation],
             rewards: Sequence[float]) -> list[Sample]:
    return [Sample(stream, group, tuple(prompt_ids), g.token_ids, float(r),
                   g.finish_reason == "length", g.text, g.token_logprobs)
            for g, r in zip(generations, rewards, strict=True)]


def solve_stream(policy: Policy, problems: Sequence[Problem], *, stream: str, template: str,
                 params: SamplingParams, reward_fn: RewardFn, golds: Sequence[str] | None = None,
                 progress: bool = False) -> tuple[list[Sample], list[list[float]]]:
    """n rollouts per problem, graded against `golds` (default: each problem's answer).

    Returns the samples and the rewards per problem (problem order).
    """
    if not problems:
        return [], []
    golds = [p.answer for p in problems] if golds is None else list(golds)
    prompts = [fill_slot(template, PROBLEM_SLOT, p.text) for p in problems]
    groups = policy.generate(prompts, params, progress=progress)
    flat_golds = [gold for gold, group in zip(golds, groups, strict=True) for _ in group]
    flat_texts = [g.text for group in groups for g in group]
    flat_rewards = reward_fn(flat_golds, flat_texts)
    samples: list[Sample] = []
    per_problem: list[list[float]] = []
    start = 0
    for problem, prompt, group in zip(problems, prompts, groups, strict=True):
        rewards = flat_rewards[start:start + len(group)]
        start += len(group)
        per_problem.append(rewards)
        samples += _samples(stream, f"{stream}:{problem.id}", policy.encode(prompt), group, rewards)
    return samples, per_problem


@dataclass(frozen=True)
class SvSSettings:
    template: str  # synthesis prompt with a {solution} slot
    seed_band: Band
    synthesis_band: Band
    max_seeds: int | None
    synthesis_params: SamplingParams
    solve_params: SamplingParams
    solve_template: str
    check: Callable[[str, str], Any] | None = None  # (text, answer) -> Verdict
    # (text, answer, original text) -> Verdict: verifiers.consistency.sympy_verdict
    answer_check: Callable[[str, str, str], Any] | None = None


def select_seeds(problems: Sequence[Problem], rewards: Sequence[Sequence[float]],
                 texts: Sequence[Sequence[str]], band: Band | tuple[float, float],
                 max_seeds: int | None) -> list[tuple[Problem, str]]:
    """(problem, correct solution) for every correct rollout of an in-band problem
    (`Band.contains`: the boundary rule offline diagnosis uses too)."""
    band = Band.of(band, "seed_band")
    seeds = []
    for problem, problem_rewards, problem_texts in zip(problems, rewards, texts, strict=True):
        solve_rate = sum(problem_rewards) / len(problem_rewards)
        if band.contains(solve_rate):
            seeds += [(problem, text) for text, r in zip(problem_texts, problem_rewards,
                                                         strict=True) if r >= 1.0]
    return seeds if max_seeds is None else seeds[:max_seeds]


def synthesis_streams(policy: Policy, seeds: Sequence[tuple[Problem, str]], settings: SvSSettings,
                      reward_fn: RewardFn, progress: bool = False,
                      ) -> tuple[dict[str, list[Sample]], Counter]:
    """The `synthesis` and `synthetic` streams grown from `seeds`, and why outputs were
    rejected before solving (extraction failure, or `settings.check`'s verdict reason)."""
    from svs.synthesizers.extract import NO_PROBLEM, extract_problem

    rejected: Counter = Counter()
    if not seeds:
        return {SYNTHESIS: [], SYNTHETIC: []}, rejected
    prompts = [fill_slot(settings.template, SOLUTION_SLOT, solution) for _, solution in seeds]
    outputs = policy.generate(prompts, settings.synthesis_params, progress=progress)
    # Every extracted problem is solved against its ORIGINAL's answer.
    variants: list[Problem] = []
    owner: list[tuple[int, int]] = []  # (seed index, output index) of each variant
    for seed_index, ((problem, _), group) in enumerate(zip(seeds, outputs, strict=True)):
        for output_index, generation in enumerate(group):
            extracted = extract_problem(generation.text)
            if not extracted.ok:
                rejected[NO_PROBLEM] += 1
                continue
            verdict = settings.check(extracted.text, problem.answer) if settings.check else None
            if (verdict is None or verdict.ok) and settings.answer_check is not None:
                verdict = settings.answer_check(extracted.text, problem.answer, problem.text)
            if verdict is not None and not verdict.ok:
                rejected[verdict.reason] += 1  # reward 0, like an output with no problem
                continue
            variants.append(problem.variant(extracted.text, synthesizer="svs-online"))
            owner.append((seed_index, output_index))
    synthetic, solve_rewards = solve_stream(
        policy, variants, stream=SYNTHETIC, template=settings.solve_template,
        params=settings.solve_params, reward_fn=reward_fn, progress=progress)
    # Groups by variant id would merge identical texts written for different seeds.
    synthetic = [replace(s, group=f"{s.group}#{i // settings.solve_params.n}")
                 for i, s in enumerate(synthetic)]
    synthesis_rewards = [[0.0] * len(group) for group in outputs]
    band = Band.of(settings.synthesis_band, "synthesis_band")
    for (seed_index, output_index), rewards in zip(owner, solve_rewards, strict=True):
        solve_rate = sum(rewards) / len(rewards)
        synthesis_rewards[seed_index][output_index] = 1.0 if band.contains(solve_rate) else 0.0
    synthesis: list[Sample] = []
    for seed_index, (prompt, group) in enumerate(zip(prompts, outputs, strict=True)):
        synthesis += _samples(SYNTHESIS, f"{SYNTHESIS}:{seed_index}", policy.encode(prompt),
                              group, synthesis_rewards[seed_index])
    return {SYNTHESIS: synthesis, SYNTHETIC: synthetic}, rejected
