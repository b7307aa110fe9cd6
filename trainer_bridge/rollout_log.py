"""The learner's rollout log: each step's original-stream rollouts as native rollout rows.

`svs diagnose` reads them and `svs selfplay` hands a round's files to its refresh. Each
row also carries the entropy ledger's per-sequence fields, enough to recompute the
covariance term C from a dump (`ledger.sequence_covariance`): `advantage` (the
sequence's advantage), `logprob_sum` (sum of the sampled tokens' log-probabilities as
the rollout scored them), `tokens` (completion length) and `trained` (False when its
group was dropped as zero-variance).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from svs.core.records import Problem, Rollout
from svs.trainer_bridge.streams import ORIGINAL, Sample

ROLLOUTS_FOLDER = "rollouts"


def rollouts_path(output_dir: str | Path, step: int) -> Path:
    return Path(output_dir) / ROLLOUTS_FOLDER / f"step_{step:06d}.jsonl"


def write_rollouts(output_dir: str | Path, step: int, problems: Sequence[Problem],
                   samples: Sequence[Sample], advantages: Sequence[float] | None = None,
                   trained: Sequence[bool] | None = None) -> Path:
    """The step's original-stream rollouts (`Rollout.to_row()`: problem id, text,
    reference answer, completion, step, reward, `correct` = reward >= 1, token
    log-probs, and the ledger fields as extra columns). Written whole then renamed, so
    a reader (or a resumed run rewriting the step) never sees half a file."""
    by_group = {f"{ORIGINAL}:{p.id}": p for p in problems}
    path = rollouts_path(output_dir, step)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = []
    for index, sample in enumerate(samples):
        problem = by_group.get(sample.group) if sample.stream == ORIGINAL else None
        if problem is None:
            continue
        metadata = {"logprob_sum": float(sum(sample.logprobs)),
                    "tokens": len(sample.completion_ids)}
        if advantages is not None:
            metadata["advantage"] = float(advantages[index])
        if trained is not None:
            metadata["trained"] = bool(trained[index])
        rollout = Rollout(problem.id, problem.text, problem.answer, sample.text, step=step,
                          reward=sample.reward, correct=sample.reward >= 1.0,
                          token_logprobs=tuple(sample.logprobs), metadata=metadata)
        lines.append(json.dumps(rollout.to_row()))
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    tmp.replace(path)
    return path
