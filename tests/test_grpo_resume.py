"""Stopping after a checkpoint and resuming equals the uninterrupted run, in both modes."""

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

from svs.trainer_bridge.checkpoint import latest_checkpoint
from svs.trainer_bridge.grpo import train
from svs.trainer_bridge.grpo_config import GRPOConfig


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    root = tmp_path_factory.mktemp("grpo-resume")
    model = build_addition_model(root / "model", warmup_steps=120, synthesis=True)
    return root, model, write_problems(root / "problems.jsonl", 30), write_template(root / "t.txt")


def _config(root, model, problems, template, out, mode):
    # Two mini-batches (so old log-probs and clipping matter), KL to a reference model,
    # warm-up of the learning rate, gradient accumulation over micro-batches of 8. The toy
    # problems ("3+4=") are shorter than the problem checks' minimum, so those are off.
    return GRPOConfig(
        model=str(model), output_dir=str(root / out), prompts_file=str(problems),
        heldout_file=str(problems), solve_template="{problem}", mode=mode, steps=4,
        prompts_per_step=4, group_size=4, max_new_tokens=4, lr=2e-3, mini_batches=2,
        micro_batch_size=8, warmup_steps=2, kl_coef=0.05, checkpoint_every=2, eval_every=2,
        eval_samples=2, progress=False, synthesis_template=str(template),
        synthesis_samples=4, synthesis_max_new_tokens=10, synthesis_checks=False,
        max_seeds_per_step=2)


def _weights(output_dir):
    folder = latest_checkpoint(output_dir)
    return {k: v for f in sorted(folder.glob("*.safetensors")) for k, v in load_file(f).items()}


def _metrics(output_dir):
    rows = [json.loads(line) for line in (output_dir / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in row.items() if k != "train/step_seconds"} for row in rows]


@pytest.mark.parametrize("mode", ["refresh", "svs"])
def test_stop_and_resume_equals_uninterrupted(toy, mode):
    root, model, problems, template = toy
    whole = _config(root, model, problems, template, f"whole-{mode}", mode)
    split = _config(root, model, problems, template, f"split-{mode}", mode)

    result = train(whole)
    assert result.steps_done == 4
    first = train(split, stop_after=2)
    assert first.steps_done == 2
    assert latest_checkpoint(split.output_dir).name == "step-000002"
    second = train(split)
    assert second.steps_done == 4

    a, b = _weights(whole.output_dir), _weights(split.output_dir)
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name
    start = {k: v for f in sorted(model.glob("*.safetensors")) for k, v in load_file(f).items()}
    assert any(not torch.equal(start[k], a[k]) for k in a), "training did not move parameters"
    assert _metrics(root / f"whole-{mode}") == _metrics(root / f"split-{mode}")
    trained = [row["train/trained_samples"] for row in _metrics(root / f"whole-{mode}")]
    assert sum(trained) > 0
    if mode == "svs":
        streams = {key.rsplit("/", 1)[1] for row in result.history for key in row
                   if key.startswith("train/samples/")}
        assert "synthesis" in streams


def test_resume_refuses_a_checkpoint_that_does_not_fit(toy, tmp_path):
    root, model, problems, template = toy
    config = _config(root, model, problems, template, "whole-refresh", "refresh")
    other = build_addition_model(tmp_path / "other", warmup_steps=1)
    cfg = GRPOConfig(**{**config.to_dict(), "model": str(other), "steps": 6})
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(other)
    base = AutoModelForCausalLM.from_pretrained(other).config.to_dict()
    wider = LlamaForCausalLM(LlamaConfig(**{**base, "hidden_size": 32, "intermediate_size": 64}))
    with pytest.raises(RuntimeError, match="does not fit the model|size mismatch"):
        train(cfg, model=wider, tokenizer=tokenizer)
