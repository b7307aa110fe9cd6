"""The lab's evaluation of one policy at one step: the same prompts for every arm.

At each of the study's evaluation steps (and once at the start, shared by every arm of
a seed) the policy is measured, sampling at temperature 1 with a seed that depends only
on (run seed, step), so two arms see the same random numbers:

- held-out probe (`n_eval` problems x `eval_samples`): pass@k (k = 1, 2, 4, ... with the
  unbiased estimator 1 - C(n-c, k) / C(n, k)), exact method entropy and method shares
  (the next-token distribution over the kind's method tags, `flows.lab.methods`), the
  mean number of distinct methods among a problem's correct samples;
- the seed's original training prompts (`train_eval_samples` each): pass@1 and exact
  method entropy; `gap` = train pass@1 - held-out pass@1;
- `canonical_entropy`: the exact per-token entropy of the policy's distribution along
  teacher-forced canonical solutions of held-out problems (one per method, cycling).
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from typing import Any

from svs.flows.lab import curriculum
from svs.flows.lab.curriculum import CurriculumConfig, CurriculumItem


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples with c correct (Chen et al. 2021)."""
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def _ks(n: int) -> list[int]:
    ks, k = [], 1
    while k <= n:
        ks.append(k)
        k *= 2
    return ks


def sample_and_grade(policy: Any, cur: CurriculumConfig, items: Sequence[CurriculumItem],
                     n: int, max_new_tokens: int, seed: int) -> list[list[tuple[str | None, bool]]]:
    """Per item: (method tag, correct) of each of n samples at temperature 1."""
    from svs.core.protocols import SamplingParams
    from svs.verifiers.grader import grade_batch

    params = SamplingParams(n=n, temperature=1.0, max_new_tokens=max_new_tokens, seed=seed)
    groups = policy.generate([curriculum.solve_prompt(cur, i.problem.text) for i in items],
                             params)
    grades = grade_batch([(item.problem.answer, g.text) for item, group in
                          zip(items, groups, strict=True) for g in group])
    out, it = [], iter(grades)
    for group in groups:
        out.append([(curriculum.method_of(g.text), next(it).correct) for g in group])
    return out


def canonical_entropy(policy: Any, cur: CurriculumConfig, items: Sequence[CurriculumItem]) -> float:
    """Mean exact entropy (nats per token) of the policy's next-token distribution along
    each item's canonical solution (method cycled over the kind's methods), teacher-forced."""
    import torch

    model, tokenizer = policy.model, policy.tokenizer
    device = next(model.parameters()).device
    total, count = 0.0, 0
    with torch.no_grad():
        for index, item in enumerate(items):
            methods = curriculum.METHODS[item.kind]
            solution = curriculum.solution_of(item.spec, methods[index % len(methods)],
                                              random.Random(index))
            prompt = policy.encode(curriculum.solve_prompt(cur, item.problem.text))
            completion = tokenizer(solution, add_special_tokens=False)["input_ids"]
            ids = torch.tensor([prompt + completion], device=device)  # (1, T)
            logits = model(input_ids=ids).logits[0, len(prompt) - 1:-1].float()  # (C, V)
            logp = torch.log_softmax(logits, dim=-1)
            total += float(-(logp.exp() * logp).sum(-1).sum())
            count += len(completion)
    return total / max(count, 1)


def evaluate(policy: Any, cur: CurriculumConfig, heldout: Sequence[CurriculumItem],
             train: Sequence[CurriculumItem], budget: Any, seed: int, step: int) -> dict[str, float]:
    """The lab's metrics of `policy` (keys without the step suffix)."""
    from svs.flows.lab.methods import entropy, mean_shares, method_distributions

    probe = list(heldout[:budget.n_eval])
    m: dict[str, float] = {}
    samples = sample_and_grade(policy, cur, probe, budget.eval_samples, budget.max_new_tokens,
                               seed=1_000_003 * (seed + 1) + step)
    n = budget.eval_samples
    for k in _ks(n):
        m[f"heldout/pass@{k}"] = sum(pass_at_k(n, sum(c for _, c in s), k)
                                     for s in samples) / len(samples)
    m["heldout/distinct_correct_methods"] = sum(
        len({meth for meth, c in s if c and meth}) for s in samples) / len(samples)
    m["heldout/untagged_share"] = sum(meth is None for s in samples for meth, _ in s) / (
        len(samples) * n)
    dists = method_distributions(policy, [curriculum.solve_prompt(cur, i.problem.text)
                                          for i in probe], [i.kind for i in probe])
    m["heldout/method_entropy"] = sum(entropy(d) for d, _ in dists) / len(dists)
    for method, share in mean_shares([d for d, _ in dists]).items():
        m[f"heldout/method_share/{method}"] = share

    train = list(train)
    tsamples = sample_and_grade(policy, cur, train, budget.train_eval_samples,
                                budget.max_new_tokens, seed=2_000_003 * (seed + 1) + step)
    m["train/pass@1"] = sum(c for s in tsamples for _, c in s) / (
        len(train) * budget.train_eval_samples)
    tdists = method_distributions(policy, [curriculum.solve_prompt(cur, i.problem.text)
                                           for i in train], [i.kind for i in train])
    m["train/method_entropy"] = sum(entropy(d) for d, _ in tdists) / len(tdists)
    m["gap"] = m["train/pass@1"] - m["heldout/pass@1"]
    m["canonical_entropy"] = canonical_entropy(policy, cur, probe[:budget.n_canonical])
    return m
