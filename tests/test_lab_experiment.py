"""The lab's experiment driver: arms on one bootstrapped policy, same seed same numbers."""

from __future__ import annotations

import json

import pytest

from flows.lab import LabConfig, bootstrap
from flows.lab_experiment import ExperimentConfig, run_experiment, summarize
from pipeline.curriculum import CurriculumConfig

TINY = LabConfig(curriculum=CurriculumConfig(n_train=40, n_heldout=6), solve_steps=2,
                 train_steps=3, batch_size=4, hidden_size=32, num_layers=1, num_heads=1,
                 vocab_size=400, max_position_embeddings=1024, solve_max_new_tokens=8,
                 synthesis_max_new_tokens=8)

SHORT = ExperimentConfig(steps=2, n_prompts=4, prompts_per_step=2, group_size=2,
                         max_new_tokens=8, synthesis_max_new_tokens=8, eval_every=2,
                         eval_samples=2, n_eval=3)


@pytest.mark.parametrize("kwargs, message", [
    ({"arms": ("refresh-every-3",)}, "arms"),
    ({"steps": 0}, "steps"),
    ({"n_prompts": 4, "prompts_per_step": 8}, "must not exceed"),
])
def test_bad_config_names_the_field(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ExperimentConfig(**kwargs)


def test_summary_takes_final_and_mean_of_logged_values_only():
    history = [{"train/entropy/original": 0.5}, {"eval/pass@1": 0.25},
               {"train/entropy/original": 0.25, "eval/pass@1": 0.75}]
    summary = summarize(history)
    assert summary["train/entropy/original/final"] == 0.25
    assert summary["train/entropy/original/mean"] == 0.375
    assert summary["eval/pass@1/mean"] == 0.5
    assert summary["train/solve_rate/original/final"] is None


def test_every_arm_trains_the_budget_and_the_same_seed_gives_the_same_numbers(tmp_path):
    policy = bootstrap(TINY, tmp_path / "lab")
    first = run_experiment(policy, SHORT, tmp_path / "one")
    second = run_experiment(policy, SHORT, tmp_path / "two")
    assert set(first["arms"]) == {"fixed", "svs"}
    for arm in ("fixed", "svs"):
        assert [row["step"] for row in first["arms"][arm]["history"]] == [1, 2]
        assert first["arms"][arm]["summary"] == second["arms"][arm]["summary"]
        assert first["arms"][arm]["summary"]["eval/pass@1/final"] is not None
    saved = json.loads((tmp_path / "one" / "summary.json").read_text())
    assert saved["arms"]["fixed"]["summary"] == first["arms"]["fixed"]["summary"]
    assert (tmp_path / "one" / "prompts.jsonl").read_text().count("\n") == 4


def test_cli_runs_the_arms_on_a_bootstrapped_folder(tmp_path):
    from typer.testing import CliRunner

    from flows.cli import app

    policy = bootstrap(TINY, tmp_path / "lab")
    runner = CliRunner()
    args = ["lab", "experiment", "--policy", str(policy.folder), "--out", str(tmp_path / "exp"),
            "--arms", "fixed", "--steps", "1", "--n-prompts", "2", "--prompts-per-step", "2",
            "--group-size", "2", "--n-eval", "2", "--eval-every", "1"]
    done = runner.invoke(app, args)
    assert done.exit_code == 0, done.output
    assert "fixed: " in done.output and (tmp_path / "exp" / "summary.json").is_file()
    missing = runner.invoke(app, ["lab", "experiment", "--policy", str(tmp_path)])
    assert missing.exit_code == 2 and "no lab.json" in missing.output
