"""`svs doctor`: reads a learner run and a TRL run, names the cause, says what it cannot."""

from __future__ import annotations

import json
import math

import pytest
from grpo_toy import build_addition_model, one_torch_thread, write_problems  # noqa: F401

from svs.trainer_bridge.doctor import FLOOR, Run, causes, diagnose, fit_r2, read_run


def test_fit_r2_is_least_squares():
    fit = fit_r2([0.0, 1.0, 2.0, 3.0], [1.0, 3.0, 5.0, 7.0])
    assert fit["slope"] == pytest.approx(2.0) and fit["r2"] == pytest.approx(1.0)
    assert math.isnan(fit_r2([1.0, 2.0], [1.0, 2.0])["r2"])  # too few points


def test_leading_cause_is_the_largest_evidence_over_the_floor():
    rows = [{"step": s, "entropy/solved_share/original": 0.6, "train/optimizer_steps": 1.0,
             "entropy/removed/clip_high/token_share": 0.0,
             "entropy/removed/clip_low/token_share": 0.0, "entropy/ratio_outside_unclipped": 0.0,
             "entropy/cov": 0.1, "entropy/cov/pos_likely": 0.08, "entropy/cov/neg_unlikely": 0.03,
             "entropy/cov/pos_unlikely": -0.01, "entropy/cov/neg_likely": 0.0}
            for s in range(1, 5)]
    (window,) = diagnose(Run("svs", rows), window=10)
    assert window.leading == "memorization" and window.quadrant == "pos_likely"
    quiet = [{**r, "entropy/solved_share/original": FLOOR / 2} for r in rows]
    assert diagnose(Run("svs", quiet), window=10)[0].leading == "covariance"
    several = {"train/optimizer_steps": 4.0, "entropy/ratio_outside_unclipped": 0.2,
               "entropy/removed/clip_high/token_share": 0.1,
               "entropy/removed/clip_low/token_share": 0.05}
    evidence = causes(several)
    assert evidence["multi_update"] == 0.2 and math.isnan(evidence["precision"])
    assert evidence["clip_high"] == pytest.approx(0.05)


def test_doctor_reads_a_learner_run(tmp_path):
    from typer.testing import CliRunner

    from svs.flows.cli import app
    from svs.trainer_bridge.grpo import train
    from svs.trainer_bridge.grpo_config import GRPOConfig

    model = build_addition_model(tmp_path / "model", warmup_steps=20)
    problems = write_problems(tmp_path / "problems.jsonl", 12)
    out = tmp_path / "run"
    train(GRPOConfig(model=str(model), output_dir=str(out), prompts_file=str(problems),
                     steps=6, prompts_per_step=4, group_size=4, max_new_tokens=3, lr=1e-3,
                     solve_template="{problem}", progress=False, tensorboard=False,
                     probe_every=1, drop_zero_variance=False))
    result = CliRunner().invoke(app, ["doctor", str(out), "--window", "3"])
    assert result.exit_code == 0, result.output
    assert "steps 1-3: leading cause" in result.output and "steps 4-6" in result.output
    assert "fit of dH on lr*C: R^2" in result.output and "mitigations for" in result.output
    assert "cannot compute" not in result.output
    page = (out / "doctor.html").read_text()
    assert "data:image/png;base64," in page and "leading cause" in page
    # a run without ledger and probe says so, with the settings that would enable them
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "metrics.jsonl").write_text("".join(
        json.dumps({k: v for k, v in r.items() if not k.startswith("entropy/")}) + "\n"
        for r in rows))
    text = CliRunner().invoke(app, ["doctor", str(bare), "--no-html"]).output
    assert "set entropy_ledger: true" in text and "set probe_every" in text
    result = CliRunner().invoke(app, ["doctor", str(tmp_path / "model")])
    assert result.exit_code == 2 and "neither metrics.jsonl" in result.output


@pytest.mark.slow
def test_doctor_reads_a_real_trl_run(tmp_path):
    """TRL 1.16's own GRPOTrainer writes the run (log history, completions parquet)."""
    pytest.importorskip("trl")
    from datasets import Dataset
    from transformers import AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    model = build_addition_model(tmp_path / "model", warmup_steps=20)
    rows = [json.loads(line) for line in write_problems(tmp_path / "p.jsonl", 8).read_text().splitlines()]
    dataset = Dataset.from_dict({"prompt": [r["text"] for r in rows],
                                 "solution": [r["answer"] for r in rows]})

    def exact(completions, solution, **_):
        return [1.0 if c.strip() == s else 0.0 for c, s in zip(completions, solution, strict=True)]

    args = GRPOConfig(output_dir=str(tmp_path / "trl"), per_device_train_batch_size=8,
                      num_generations=4, max_completion_length=3, learning_rate=1e-3,
                      max_steps=3, logging_steps=1, log_completions=True, use_cpu=True,
                      report_to="none", save_strategy="steps", save_steps=3, bf16=False,
                      gradient_checkpointing=False, disable_tqdm=True)
    GRPOTrainer(model=str(model), reward_funcs=exact, args=args, train_dataset=dataset,
                processing_class=AutoTokenizer.from_pretrained(model)).train()
    run = read_run(tmp_path / "trl")
    assert run.kind == "trl" and len(run.steps) == 3
    assert all("trl/entropy" in r and "entropy/zero_variance_share" in r for r in run.steps)
    assert any("covariance term C" in item for item in run.cannot)
    solved = [r.get("entropy/solved_share/original") for r in run.steps]
    if not any(s is not None for s in solved):  # completions carry no usable reward column
        assert any("log_completions" in item for item in run.cannot)
    (window,) = diagnose(run, window=10)
    assert window.leading in ("memorization", "clip_high", "covariance")


@pytest.mark.slow
def test_doctor_names_each_toggled_cause(tmp_path):
    import torch

    from svs.trainer_bridge.ledger_validation import EXPECTED, build_toy, toggled_runs

    torch.set_num_threads(1)
    model = build_toy(tmp_path / "model")
    results = toggled_runs(tmp_path, model, steps=60)
    assert {name: r["leading"] for name, r in results.items()} == EXPECTED, {
        name: r["causes"] for name, r in results.items()}
