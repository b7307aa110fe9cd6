"""The probe set of the entropy ledger: exact entropy along fixed teacher-forced solutions.

Every `probe_every` steps the learner measures the full-softmax entropy of the policy at
every position of a fixed set of (solve prompt, reference solution) pairs, teacher
forced: the same tokens at every step and in every run that shares the probe set, so
consecutive values give a measured entropy change dH that does not depend on what the
policy happened to sample. The solution is the problem's `metadata["solution"]` when it
has one, else its reference answer, followed by the end-of-sequence token.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from svs.core.constants import PROBLEM_SLOT, fill_slot
from svs.core.records import Problem
from svs.trainer_bridge import losses
from svs.trainer_bridge.streams import Sample
from svs.trainer_bridge.update import completion_logits, pack


def probe_samples(problems: Sequence[Problem], template: str, encode: Any,
                  tokenizer: Any) -> list[Sample]:
    """Teacher-forced probe sequences: `encode(prompt)` ids + the solution's ids + eos."""
    samples = []
    for problem in problems:
        prompt = fill_slot(template, PROBLEM_SLOT, problem.text)
        solution = str(problem.metadata.get("solution") or problem.answer)
        ids = list(tokenizer(solution, add_special_tokens=False)["input_ids"])
        if tokenizer.eos_token_id is not None:
            ids.append(tokenizer.eos_token_id)
        samples.append(Sample("probe", problem.id, tuple(encode(prompt)), tuple(ids), 0.0, False))
    return samples


@torch.no_grad()
def probe_entropy(model: Any, samples: Sequence[Sample], pad_id: int, *, bf16: bool = False,
                  batch_size: int = 16) -> float:
    """Token-mean exact entropy of the policy over the probe tokens (NaN without any)."""
    device = next(model.parameters()).device
    total, count = 0.0, 0.0
    for start in range(0, len(samples), batch_size):
        chunk = samples[start:start + batch_size]
        batch = pack(chunk, torch.zeros(len(chunk)), pad_id, device)
        entropy = losses.entropy_from_logits(completion_logits(model, batch, bf16))  # (N, T)
        total += float((entropy * batch.mask).sum())
        count += float(batch.mask.sum())
    return total / count if count else float("nan")
