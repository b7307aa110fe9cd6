"""Periodic refresh: a version published mid-run is picked up at the next boundary."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from grpo_toy import build_addition_model, one_torch_thread  # noqa: F401 - autouse fixture

from svs.core.records import Problem
from svs.pipeline.lineage import graph_for
from svs.pipeline.store import NewVersion, PromptStore
from svs.trainer_bridge.checkpoint import latest_checkpoint
from svs.trainer_bridge.grpo import sample_problems, train
from svs.trainer_bridge.grpo_config import GRPOConfig
from svs.trainer_bridge.streams import verifier_reward

V1 = [Problem(f"0+{b}=", str(b)) for b in range(9)]  # answers 0..8
V2 = [Problem(f"9+{b}=", str(9 + b)) for b in range(10)]  # answers 9..18


def test_refresh_picks_up_a_new_version_at_the_boundary(tmp_path):
    model = build_addition_model(tmp_path / "model", warmup_steps=20)
    store = PromptStore(tmp_path / "store")
    store.publish("toy", NewVersion(V1, graph_for(V1, 1)), parent=None)
    golds_per_step: list[set[str]] = []

    def reward(golds, completions):
        golds_per_step.append(set(golds))
        if len(golds_per_step) == 2:  # during step 2, someone publishes v2
            # the refresh flow retired-by-weight half of v2: weight 0 is never sampled
            weights = {p.id: 0.0 for p in V2[5:]}
            store.publish("toy", NewVersion(V2, graph_for(V2, 2), weights=weights), parent=1)
        return verifier_reward(golds, completions)

    config = GRPOConfig(model=str(model), output_dir=str(tmp_path / "run"),
                        prompt_store=str(tmp_path / "store"), prompt_set="toy",
                        refresh_every=2, steps=4, prompts_per_step=4, group_size=2,
                        max_new_tokens=3, lr=1e-3, solve_template="{problem}", progress=False,
                        tensorboard=False)
    result = train(config, reward_fn=reward)

    v1, v2 = {p.answer for p in V1}, {p.answer for p in V2[:5]}
    assert [g <= v1 for g in golds_per_step] == [True, True, False, False]
    assert all(g <= v2 for g in golds_per_step[2:])
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["train/prompt_version"] for r in rows] == ["toy@v1", "toy@v1", "toy@v2", "toy@v2"]
    assert [r["train/prompt_refreshed"] for r in rows] == [0.0, 0.0, 1.0, 0.0]
    assert result.prompt_version == "toy@v2"
    state = json.loads((latest_checkpoint(tmp_path / "run") / "state.json").read_text())
    assert state["prompt_version"] == "toy@v2" and state["step"] == 4


def test_sampling_follows_weights():
    problems = [Problem(f"{i}+1=", str(i + 1)) for i in range(3)]
    weights = [1.0, 0.25, 0.0]
    counts = Counter(sample_problems(problems, weights, 1, seed)[0].answer
                     for seed in range(4000))
    assert "3" not in counts  # weight 0: never
    assert counts["2"] / counts["1"] == pytest.approx(0.25, abs=0.05)
    assert {p.answer for p in sample_problems(problems, weights, 2, 0)} == {"1", "2"}
    assert len(sample_problems(problems, weights, 5, 0)) == 5  # more than available
    with pytest.raises(ValueError, match="weight 0"):
        sample_problems(problems, [0.0, 0.0, 0.0], 1, 0)


def test_config_errors_say_what_to_fix(tmp_path):
    with pytest.raises(ValueError, match="exactly one of prompts_file and prompt_set"):
        GRPOConfig(model="m")
    with pytest.raises(ValueError, match="refresh_every needs a prompt store"):
        GRPOConfig(model="m", prompts_file="p.jsonl", refresh_every=5)
    with pytest.raises(ValueError, match="unknown loss aggregation 'mean'"):
        GRPOConfig(model="m", prompts_file="p.jsonl", loss_aggregation="mean")
    with pytest.raises(ValueError, match="dual_clip must exceed"):
        GRPOConfig(model="m", prompts_file="p.jsonl", dual_clip=1.1)
    with pytest.raises(ValueError, match=r"unknown training setting\(s\) \['lr_rate'\]"):
        GRPOConfig.from_dict({"model": "m", "prompts_file": "p.jsonl", "lr_rate": 1})
    path = tmp_path / "cfg.yaml"
    path.write_text("model: m\nprompts_file: p.jsonl\nseed_band: [0.1, 0.4]\n")
    assert GRPOConfig.from_yaml(path).seed_band == (0.1, 0.4)
    assert "clip-higher" in GRPOConfig.help()["clip_high"]


def test_svs_train_cli(tmp_path):
    from typer.testing import CliRunner

    from svs.flows.cli import app

    model = build_addition_model(tmp_path / "model", warmup_steps=20)
    problems = tmp_path / "problems.jsonl"
    problems.write_text("".join(json.dumps(p.to_row()) + "\n" for p in V1))
    config = tmp_path / "train.yaml"
    config.write_text(f"model: {model}\nprompts_file: {problems}\nsolve_template: '{{problem}}'\n"
                      f"steps: 5\nprompts_per_step: 2\ngroup_size: 2\nmax_new_tokens: 3\n"
                      f"lr: 1.0e-3\nprogress: false\n")
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["train", "--config", str(config), "--steps", "2",
                                      "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "trained 2 steps on problems.jsonl" in result.output
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 2
    assert list((out / "tb").glob("events.out.tfevents.*"))
    assert (latest_checkpoint(out) / "model.safetensors").is_file()

    config.write_text(f"model: {model}\nprompts_file: {problems}\nclip_hgh: 0.3\n")
    result = CliRunner().invoke(app, ["train", "--config", str(config)])
    assert result.exit_code == 2
    assert "unknown training setting(s) ['clip_hgh']" in result.output


def test_problems_file_errors_name_the_line(tmp_path):
    from svs.trainer_bridge.prompt_source import load_problems_file

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "1+1=", "answer": "2"}\n{"text": "2+2=", "answer": 4\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:2: invalid JSON"):
        load_problems_file(bad)
    bad.write_text('{"text": "1+1=", "answer": "2"}\n{"question": "2+2=", "answer": "4"}\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:2: missing key 'text'"):
        load_problems_file(bad)
    csv = tmp_path / "p.csv"
    csv.write_text("text,answer\n1+1=,2\n")
    with pytest.raises(ValueError, match="use a .jsonl or .parquet"):
        load_problems_file(csv)
    good = tmp_path / "good.jsonl"
    good.write_text('{"text": "1+1=", "answer": 2}\n\n')
    assert [(p.text, p.answer) for p in load_problems_file(good)] == [("1+1=", "2")]


def test_logged_rollouts_are_native_rows_a_refresh_can_diagnose(tmp_path):
    from svs.pipeline.rollouts import load_rollout_groups
    from svs.trainer_bridge.grpo import rollouts_path

    model = build_addition_model(tmp_path / "model", warmup_steps=20)
    problems = tmp_path / "problems.jsonl"
    problems.write_text("".join(json.dumps({"text": p.text, "answer": p.answer}) + "\n"
                                for p in V1))
    config = GRPOConfig(model=str(model), output_dir=str(tmp_path / "run"),
                        prompts_file=str(problems), steps=2, prompts_per_step=3, group_size=4,
                        max_new_tokens=3, lr=1e-3, solve_template="{problem}", progress=False,
                        tensorboard=False, log_rollouts=True, heldout_file=str(problems),
                        eval_every=2, eval_samples=2)
    result = train(config)
    assert result.history[-1]["eval/nll"] > 0 and "eval/nll" not in result.history[0]
    for row in result.history:
        path = rollouts_path(config.output_dir, row["step"])
        lines = [json.loads(line) for line in path.read_text().splitlines()]
        assert len(lines) == 3 * 4 and {line["step"] for line in lines} == {row["step"]}
        assert sum(line["correct"] for line in lines) / 12 == row["train/solve_rate/original"]
        tokens = [lp for line in lines for lp in line["token_logprobs"]]
        assert row["train/generated_tokens"] == len(tokens)  # refresh mode: one stream
        assert row["train/nll/original"] == pytest.approx(-sum(tokens) / len(tokens))
        groups = load_rollout_groups([path])  # the reader accepts them, correctness kept
        assert {g.problem_id for g in groups} <= {p.id for p in V1} and len(groups) == 3
        assert sum(r.correct for g in groups for r in g.rollouts) == sum(x["correct"] for x in lines)
    assert not (tmp_path / "run" / "rollouts" / "step_000002.jsonl.tmp").exists()
