"""The lab's experiment driver: arms on one bootstrapped policy, curves, summary, report.

The refresh arm runs the self-play Prefect flow and is tested under the Prefect test
server in tests/flows/test_lab_refresh_arm.py."""

from __future__ import annotations

import json

import pytest

from svs.flows.lab.bootstrap import LabConfig, bootstrap
from svs.flows.lab.curriculum import CurriculumConfig
from svs.flows.lab.experiment import ExperimentConfig, load_lab_config, run_experiment
from svs.flows.lab.summary import area_per_step, tail_mean

TINY = LabConfig(curriculum=CurriculumConfig(n_train=40, n_heldout=6), solve_steps=2,
                 train_steps=3, batch_size=4, hidden_size=32, num_layers=1, num_heads=1,
                 vocab_size=400, max_position_embeddings=1024, solve_max_new_tokens=8,
                 synthesis_max_new_tokens=8)

SHORT = dict(steps=2, refresh_every=1, n_prompts=4, prompts_per_step=2, group_size=2,
             max_new_tokens=8, synthesis_max_new_tokens=8, synthesis_samples=2,
             eval_every=2, eval_samples=4, n_eval=3)


@pytest.fixture(scope="module")
def tiny_policy(tmp_path_factory):
    return bootstrap(TINY, tmp_path_factory.mktemp("lab"))


@pytest.mark.parametrize("kwargs, message", [
    ({"arms": ("refresh-every-3",)}, "arms must be distinct names"),
    ({"arms": ("fixed", "fixed")}, "arms must be distinct names"),
    ({"steps": 0}, "steps must be >= 1"),
    ({"group_size": 1}, "group_size must be >= 2"),
    ({"n_prompts": 4, "prompts_per_step": 8}, "must not exceed"),
    ({"steps": 25, "refresh_every": 10}, "multiple of refresh_every"),
])
def test_bad_config_names_the_field(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ExperimentConfig(**kwargs)


def test_a_fixed_and_svs_run_need_no_refresh_multiple():
    assert ExperimentConfig(arms=("fixed", "svs"), steps=25, refresh_every=10).steps == 25


def test_area_per_step_is_the_mean_height_and_tail_mean_the_last_window():
    assert area_per_step([(0, 1.0), (10, 1.0)]) == 1.0
    assert area_per_step([(0, 0.0), (10, 1.0), (20, 1.0)]) == pytest.approx(0.75)
    assert area_per_step([(5, 0.4)]) == 0.4 and area_per_step([]) is None
    points = [(s, float(s)) for s in range(1, 21)]
    assert tail_mean(points, 5) == pytest.approx(18.0)  # steps 16..20
    assert tail_mean([], 5) is None


def test_lab_config_file_sections_and_errors(tmp_path):
    good = tmp_path / "lab.yaml"
    good.write_text("bootstrap:\n  hidden_size: 64\n  num_heads: 2\n  curriculum:\n"
                    "    n_train: 500\nexperiment:\n  steps: 40\n  refresh_every: 10\n")
    lab, experiment = load_lab_config(good)
    assert lab.hidden_size == 64 and lab.curriculum.n_train == 500
    assert experiment.steps == 40 and experiment.arms == ("fixed", "refresh", "svs")
    bad = tmp_path / "bad.yaml"
    bad.write_text("experiment:\n  stepz: 3\n")
    with pytest.raises(ValueError, match="unknown experiment setting.*stepz"):
        load_lab_config(bad)
    bad.write_text("bootstrap:\n  width: 3\n")
    with pytest.raises(ValueError, match="unknown bootstrap setting.*width"):
        load_lab_config(bad)
    bad.write_text("arms: [fixed]\n")
    with pytest.raises(ValueError, match="sections bootstrap and experiment"):
        load_lab_config(bad)


def test_arms_train_the_budget_log_the_curves_and_the_same_seed_gives_the_same_numbers(
        tmp_path, tiny_policy):
    config = ExperimentConfig(arms=("fixed", "svs"), **SHORT)
    first = run_experiment(tiny_policy, config, tmp_path / "one")
    second = run_experiment(tiny_policy, config, tmp_path / "two")
    assert list(first["arms"]) == ["fixed", "svs"]
    assert set(first["start"]) == {"eval/pass@1", "eval/pass@2", "eval/pass@4", "eval/nll"}
    for arm in ("fixed", "svs"):
        curve = first["arms"][arm]["curve"]
        assert [p["step"] for p in curve] == [1, 2]
        for point in curve:
            assert 0 <= point["memorized"] <= point["prompts"] == 2
            assert point["tokens"] > 0 and point["entropy"] > 0
        assert curve[-1]["tokens_total"] == sum(p["tokens"] for p in curve)
        assert "eval/pass@4" in curve[1] and "eval/pass@4" not in curve[0]
        summary = first["arms"][arm]["summary"]
        assert summary["heldout/pass@4/final"] == curve[1]["eval/pass@4"]
        assert first["arms"][arm] == second["arms"][arm]
    assert first["start"] == second["start"]
    fixed, svs = (first["arms"][a]["summary"] for a in ("fixed", "svs"))
    assert fixed["tokens/cost_ratio"] == 1.0
    assert svs["tokens/cost_ratio"] == svs["tokens/total"] / fixed["tokens/total"]
    saved = json.loads((tmp_path / "one" / "summary.json").read_text())
    assert saved["arms"] == json.loads(json.dumps(first["arms"]))
    page = (tmp_path / "one" / "report.html").read_text()
    assert "held-out pass@4" in page and "online SvS" in page and "data:image/png" in page


def test_cli_runs_the_arms_and_redraws_the_report(tmp_path, tiny_policy):
    from typer.testing import CliRunner

    from svs.flows.cli import app

    config = tmp_path / "lab.yaml"
    config.write_text("experiment:\n" + "".join(f"  {k}: {v}\n" for k, v in SHORT.items()))
    runner = CliRunner()
    args = ["lab", "experiment", "--policy", str(tiny_policy.folder), "--out",
            str(tmp_path / "exp"), "--config", str(config), "--arms", "fixed", "--steps", "1",
            "--seed", "3"]
    done = runner.invoke(app, args)
    assert done.exit_code == 0, done.output
    assert "report -> " in done.output and "generated tokens" in done.output
    summary = tmp_path / "exp" / "summary.json"
    assert json.loads(summary.read_text())["config"]["seed"] == 3
    (tmp_path / "exp" / "report.html").unlink()
    redraw = runner.invoke(app, ["lab", "report", str(summary)])
    assert redraw.exit_code == 0 and (tmp_path / "exp" / "report.html").is_file()
    missing = runner.invoke(app, ["lab", "experiment", "--policy", str(tmp_path)])
    assert missing.exit_code == 2 and "no lab.json" in missing.output
    bad = runner.invoke(app, ["lab", "experiment", "--policy", str(tiny_policy.folder),
                              "--steps", "25", "--refresh-every", "10"])
    assert bad.exit_code == 2 and "multiple of refresh_every" in bad.output
    not_summary = runner.invoke(app, ["lab", "report", str(config)])
    assert not_summary.exit_code == 2 and "not a lab summary.json" in not_summary.output

    # a second seed, then the seeds compared arm by arm
    other = runner.invoke(app, [*args[:5], str(tmp_path / "exp4"), *args[6:-1], "4"])
    assert other.exit_code == 0, other.output
    compared = runner.invoke(app, ["lab", "compare", str(summary),
                                   str(tmp_path / "exp4" / "summary.json")])
    assert compared.exit_code == 0, compared.output
    assert "seeds 3, 4" in compared.output and "±" in compared.output
    same_seed = runner.invoke(app, ["lab", "compare", str(summary), str(summary)])
    assert same_seed.exit_code == 2 and "two summaries have the same" in same_seed.output


def test_compare_seeds_maths_and_refuses_different_settings():
    from svs.flows.lab.report import compare_seeds

    def record(seed, value, steps=2):
        return {"config": {"seed": seed, "steps": steps},
                "start": {"eval/pass@1": 0.1, "eval/pass@2": 0.2},
                "arms": {"fixed": {"title": "GRPO on the fixed set",
                                   "summary": {"entropy/final": value, "tokens/total": 10}}}}

    titles, rows = compare_seeds([record(0, 0.1), record(1, 0.3)])
    assert titles == ["GRPO on the fixed set"]
    cells = dict(rows)
    assert cells["solving entropy, last eval_every steps"] == ["0.200 ± 0.141 (0.100..0.300)"]
    assert cells["held-out pass@1, final"] == ["–"]
    with pytest.raises(ValueError, match="more than their seed"):
        compare_seeds([record(0, 0.1), record(1, 0.3, steps=3)])


def test_the_documented_long_config_loads():
    from pathlib import Path

    lab, experiment = load_lab_config(Path(__file__).parent.parent / "examples/lab/long.yaml")
    assert lab.hidden_size > LabConfig().hidden_size and lab.num_layers > LabConfig().num_layers
    assert experiment.steps == 2 * ExperimentConfig().steps
    assert experiment.arms == ("fixed", "refresh", "svs")
    same_policy, no_retire = load_lab_config(Path(__file__).parent.parent
                                             / "examples/lab/long-noretire.yaml")
    assert same_policy == lab and no_retire.retire_below_weight == 0.0


def test_refresh_settings_are_a_valid_refresh_config():
    from svs.flows.lab.experiment import refresh_settings
    from svs.pipeline.refresh_config import RefreshRunConfig

    config = ExperimentConfig(retire_below_weight=0.0, memorized_action="downweight",
                              synthesis_samples=4, seed=7)
    run = RefreshRunConfig.from_dict(refresh_settings(config))
    assert run.synthesizers == ("svs",) and run.refresh.retire_below_weight == 0.0
    assert run.synthesizer_configs["svs"].n_samples == 4 and run.consistency.sympy_check
    assert run.consistency.n_solves == config.group_size and run.diagnosis.keep_solutions == "all"
    with pytest.raises(ValueError, match="retire_below_weight"):  # at once, not at a refresh
        ExperimentConfig(retire_below_weight=1.0)
    with pytest.raises(ValueError, match="memorized_action"):
        ExperimentConfig(memorized_action="forget")
    assert ExperimentConfig(arms=("fixed",), memorized_action="forget").arms == ("fixed",)
