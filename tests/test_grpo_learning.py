"""Learning for real: a tiny model on CPU raises its reward on one-digit addition.

The model gets a short supervised warm-up (it answers with a number, right ~40% of
the time), then GRPO with the verifier's 0/1 reward. Both modes: periodic refresh
(plain GRPO on the prompt set) and online SvS (three streams per step).
"""

from __future__ import annotations

import json

import pytest
import torch
from grpo_toy import (  # noqa: F401 - one_torch_thread is an autouse fixture
    build_addition_model,
    one_torch_thread,
    write_problems,
    write_template,
)
from safetensors.torch import load_file

from svs.trainer_bridge.grpo import train
from svs.trainer_bridge.grpo_config import GRPOConfig

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    root = tmp_path_factory.mktemp("grpo-learning")
    model = build_addition_model(root / "model", warmup_steps=900, synthesis=True)
    return root, model, write_problems(root / "problems.jsonl", 24), write_template(root / "t.txt")


def _mean(values):
    values = [v for v in values if v is not None]
    return sum(values) / len(values)


@pytest.mark.parametrize("mode", ["refresh", "svs"])
def test_reward_rises_and_parameters_move(toy, mode):
    root, model, problems, template = toy
    steps = 120
    config = GRPOConfig(
        model=str(model), output_dir=str(root / mode), prompts_file=str(problems),
        heldout_file=str(problems), solve_template="{problem}", mode=mode, steps=steps,
        prompts_per_step=16, group_size=8, max_new_tokens=4, lr=5e-4, micro_batch_size=64,
        eval_every=steps, eval_samples=4, checkpoint_every=steps, progress=False,
        synthesis_template=str(template), synthesis_samples=4, synthesis_max_new_tokens=10,
        synthesis_checks=False, max_seeds_per_step=4)
    result = train(config)
    rows = [json.loads(line) for line in (root / mode / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == steps
    solve = [row["train/solve_rate/original"] for row in rows]
    early, late = _mean(solve[:20]), _mean(solve[-20:])
    assert late > early + 0.08, (early, late)

    start = {k: v for f in model.glob("*.safetensors") for k, v in load_file(f).items()}
    final = result.history[-1]
    assert final["eval/pass@1"] > early
    from svs.trainer_bridge.checkpoint import latest_checkpoint

    end = {k: v for f in latest_checkpoint(config.output_dir).glob("*.safetensors")
           for k, v in load_file(f).items()}
    moved = sum(float((end[k] - start[k]).abs().sum()) for k in start)
    assert moved > 0
    assert all(torch.isfinite(v).all() for v in end.values())
    assert all(row["train/entropy/original"] is None or row["train/entropy/original"] >= 0
               for row in rows)
    if mode == "svs":
        synthesis = [row.get("train/reward/synthesis") for row in rows]
        assert sum(1 for r in synthesis if r is not None) > steps // 2
        assert _mean(synthesis) > 0  # some synthesized problems land in the 1..5-of-8 band
        assert any("train/solve_rate/synthetic" in row for row in rows)
        assert any("train/entropy/synthesis" in row for row in rows)
