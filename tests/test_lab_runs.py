"""The lab end to end on a tiny scale: a bootstrap with its gates off (CI's smoke), one
few-step run of every arm kind, the cache, determinism, and a two-seed study.

Real components throughout: a model built and trained here, the bundled learner, the
sandboxed verifier, the svs refresh flow (plain functions), the prompt store."""

from __future__ import annotations

import json

import pytest

from svs.flows.lab.arms import Arm, Budget, run_key
from svs.flows.lab.bootstrap import GateConfig, GateError, LabConfig, bootstrap, load_bootstrap
from svs.flows.lab.curriculum import CurriculumConfig

TINY = LabConfig(
    curriculum=CurriculumConfig(n_heldout=24, n_pool=48, n_bootstrap=300),
    gates=GateConfig(enabled=False), hidden_size=32, num_layers=1, num_heads=1,
    solve_steps=30, train_steps=10, batch_size=16, threads=1, n_measure=8, n_synthesis=4,
    max_new_tokens=48, synthesis_max_new_tokens=24)
BUDGET = Budget(steps=4, eval_steps=(0, 2, 4), n_prompts=8, prompts_per_step=2, group_size=4,
                max_new_tokens=48, n_eval=6, eval_samples=4, train_eval_samples=2,
                n_canonical=4)
ARMS = [
    Arm(name="fixed", kind="fixed"),
    Arm(name="oracle", kind="oracle", refresh_every=2),
    Arm(name="variants", kind="variants", refresh_every=2),
    Arm(name="svs_refresh", kind="svs_refresh", refresh_every=2,
        refresh={"svs": {"n_samples": 2}}),
    Arm(name="online_svs", kind="online_svs", learner={"synthesis_samples": 2,
                                                       "max_seeds_per_step": 1}),
    Arm(name="mb2_clip_cov", kind="fixed", side="loss",
        learner={"mini_batches": 2, "policy_loss": "clip_cov", "clip_cov_ratio": 0.01}),
    Arm(name="kl_cov", kind="fixed", side="loss",
        learner={"mini_batches": 2, "policy_loss": "kl_cov", "kl_cov_ratio": 0.01}),
    Arm(name="rloo", kind="fixed", side="loss", learner={"advantage": "rloo"}),
    Arm(name="dg", kind="fixed", side="loss", learner={"policy_loss": "dg"}),
    Arm(name="passk", kind="fixed", side="loss", learner={"advantage": "passk",
                                                          "passk_k": 2}),
]


@pytest.fixture(scope="module")
def boot(tmp_path_factory):
    return bootstrap(TINY, tmp_path_factory.mktemp("lab"))


def test_the_gates_fail_loudly_on_a_weak_policy(boot):
    assert boot.cached is False and boot.gate_failures == ()
    with pytest.raises(GateError, match="held-out pass@1"):
        load_bootstrap(boot.folder, GateConfig())
    failures = GateConfig().failures(boot.metrics | {"lab/pass1_heldout": 0.45,
                                                     "lab/pass1_pool": 0.9})
    assert any("gap" in f for f in failures)


@pytest.mark.slow
def test_every_arm_runs_a_few_steps_and_reports_every_metric(boot, tmp_path):
    from svs.flows.lab.runner import run_one

    for arm in ARMS:
        result = run_one(boot, TINY, BUDGET, arm, 0, tmp_path)
        m = result["metrics"]
        for step in BUDGET.eval_steps:
            for key in ("heldout/pass@1", "heldout/pass@4", "heldout/method_entropy",
                        "heldout/distinct_correct_methods", "train/pass@1",
                        "train/method_entropy", "gap", "canonical_entropy"):
                assert f"{key}/step{step}" in m, (arm.name, key, step)
            shares = [v for k, v in m.items() if k.startswith("heldout/method_share/")
                      and k.endswith(f"/step{step}")]
            assert sum(shares) == pytest.approx(1.0)
        assert m["tokens"] > 0 and len(result["curve"]) == BUDGET.steps
        if arm.kind in ("oracle", "variants", "svs_refresh"):
            assert [r["round"] for r in result["rounds"]] == [1]
    starts = {json.dumps({k: v for k, v in json.loads(p.read_text()).items()}, sort_keys=True)
              for p in (tmp_path / "start").glob("*.json")}
    assert len(starts) == 1  # the start evaluation is shared by every arm of a seed


def test_a_run_is_cached_and_repeats_exactly(boot, tmp_path):
    from svs.flows.lab.runner import run_one

    arm = Arm(name="fixed", kind="fixed")
    first = run_one(boot, TINY, BUDGET, arm, 1, tmp_path / "a")
    path = tmp_path / "a" / "results" / f"{run_key(TINY.key(), BUDGET, arm, 1)}.json"
    stamp = path.stat().st_mtime_ns
    assert run_one(boot, TINY, BUDGET, arm, 1, tmp_path / "a") == first
    assert path.stat().st_mtime_ns == stamp
    again = run_one(boot, TINY, BUDGET, arm, 1, tmp_path / "b")
    strip = lambda r: {k: v for k, v in r["metrics"].items()  # noqa: E731
                       if not k.startswith("seconds")}
    assert set(first["metrics"]) >= {"seconds", "seconds/train", "seconds/evaluate",
                                     "seconds/refresh"}
    assert strip(again) == strip(first)
    other = run_one(boot, TINY, BUDGET, arm, 2, tmp_path / "a")
    assert strip(other) != strip(first)


def test_arm_and_budget_errors_say_what_to_fix():
    with pytest.raises(ValueError, match="kind must be one of"):
        Arm(name="x", kind="magic")
    with pytest.raises(ValueError, match="budget"):
        Arm(name="x", learner={"steps": 3})
    with pytest.raises(ValueError, match="svs_refresh only"):
        Arm(name="x", refresh={"svs": {}})
    with pytest.raises(ValueError, match="eval_steps"):
        Budget(steps=10, eval_steps=(0, 5))
    with pytest.raises(ValueError, match="unknown arm setting"):
        Arm.from_dict({"name": "x", "colour": "red"})


def test_committed_study_configs_parse():
    from pathlib import Path

    from svs.flows.lab.main_job import MAIN_CONFIG
    from svs.flows.lab.study import load_study

    root = Path(__file__).resolve().parents[1]
    configs = [*sorted((root / "examples" / "lab").glob("study-*.yaml")), MAIN_CONFIG]
    assert len(configs) >= 4
    for path in configs:
        study = load_study(path)
        assert study.arms and study.seeds


def test_study_config_errors():
    from svs.flows.lab.study import study_from_dict

    base = {"name": "s", "seeds": [0, 1], "arms": [{"name": "fixed"}]}
    with pytest.raises(ValueError, match="unknown section"):
        study_from_dict(base | {"colour": 1})
    with pytest.raises(ValueError, match="distinct"):
        study_from_dict(base | {"arms": [{"name": "fixed"}, {"name": "fixed"}]})
    with pytest.raises(ValueError, match="seeds"):
        study_from_dict(base | {"seeds": [1, 1]})
    with pytest.raises(ValueError, match="missing"):
        study_from_dict({"name": "s", "arms": []})


@pytest.mark.slow
def test_a_two_seed_study_applies_its_rules_and_writes_its_report(boot, tmp_path):
    from svs.flows.lab.study import run_study, study_from_dict

    study = study_from_dict({
        "name": "smoke", "seeds": [0, 1],
        "bootstrap": json.loads(json.dumps(_asdict(TINY))),
        "budget": json.loads(json.dumps(_asdict(BUDGET))),
        "arms": [{"name": "fixed"}, {"name": "rloo", "side": "loss",
                                     "learner": {"advantage": "rloo"}}],
        "rules": {"late_step": 4, "metric": "heldout/pass@4"},
        "controls": [{"name": "halves", "kind": "share_below", "arm": "fixed",
                      "metric": "heldout/method_entropy"}]})
    record = run_study(study, tmp_path, workers=2, progress=False)
    analysis = record["analysis"]
    assert set(analysis["arms"]) == {"fixed", "rloo"}
    assert analysis["arms"]["rloo"]["comparison"]["verdict"] in (
        "shown", "shown, over budget", "refuted", "inconclusive", "not read")
    for name in ("study.json", "report.html", "figure.png"):
        assert (tmp_path / "smoke" / name).is_file()
    again = run_study(study, tmp_path, workers=1, progress=False)  # all cached now
    assert again["per_seed"] == record["per_seed"]
    # the doctor's reading of every run, windows covering the run's steps
    from svs.trainer_bridge.doctor import MITIGATIONS

    assert {arm: sorted(by) for arm, by in record["ledger"].items()} == {
        "fixed": ["0", "1"], "rloo": ["0", "1"]}
    for by_seed in record["ledger"].values():
        for windows in by_seed.values():
            assert (windows[0]["first"], windows[-1]["last"]) == (1, BUDGET.steps)
            assert all(w["leading"] in MITIGATIONS and "memorization" in w["evidence"]
                       for w in windows)
    assert again["ledger"] == record["ledger"]
    assert "what <code>svs doctor</code> reads" in (tmp_path / "smoke" / "report.html").read_text()


def _asdict(config):
    import dataclasses

    return dataclasses.asdict(config)


@pytest.mark.slow
def test_the_main_job_runs_its_arms_and_shows_the_committed_verdicts(boot, tmp_path, capsys):
    from svs.flows.lab.main_job import committed_verdicts, run_main
    from svs.flows.lab.study import study_from_dict

    study = study_from_dict({
        "name": "main", "seeds": [3],
        "bootstrap": json.loads(json.dumps(_asdict(TINY))),
        "budget": json.loads(json.dumps(_asdict(BUDGET))),
        "arms": [{"name": "fixed"}, {"name": "svs_refresh", "kind": "svs_refresh",
                                     "refresh_every": 2, "refresh": {"svs": {"n_samples": 2}}}]})
    record = run_main(study, tmp_path, workers=1)
    shown = capsys.readouterr().out
    assert "[3/3] the committed study's verdicts" in shown
    for line in committed_verdicts():
        assert line in shown
    assert set(record["metrics"]) == {"fixed", "svs_refresh"}
    assert (tmp_path / "run-seed3" / "figure.png").stat().st_size > 1000
    saved = json.loads((tmp_path / "run-seed3" / "run.json").read_text())
    assert saved["metrics"] == record["metrics"]


def test_lab_commands_fail_with_one_clear_line(tmp_path):
    from typer.testing import CliRunner

    from svs.flows.cli import app

    result = CliRunner().invoke(app, ["lab", "study", str(tmp_path / "none.yaml")])
    assert result.exit_code == 2 and "error: cannot read study config" in result.output
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nseeds: [0]\narms: [{name: a, kind: nope}]\n")
    result = CliRunner().invoke(app, ["lab", "study", str(bad)])
    assert result.exit_code == 2 and "kind must be one of" in result.output
    result = CliRunner().invoke(app, ["lab", "report", str(bad)])
    assert result.exit_code == 2 and "is not a lab study.json" in result.output
    # One line whatever the terminal's width (CliRunner has none: rich folds at 80 unless told not to).
    assert result.output.count("\n") == 1 and len(result.output) > 80


def test_a_variant_never_repeats_a_problem_of_the_set_or_its_lineage():
    import random

    from svs.flows.lab import curriculum as cur
    from svs.flows.lab.runner import _fresh_variant

    problem = cur.draw(TINY.curriculum, 5).problem
    first = _fresh_variant(problem, TINY, random.Random(0), set())
    assert first is not None and first.parent_id == problem.id
    assert first.answer == problem.answer and first.text != problem.text
    second = _fresh_variant(problem, TINY, random.Random(0), {first.id})
    assert second is not None and second.id != first.id
    assert _fresh_variant(problem, TINY, random.Random(0), {first.id}, tries=1) is None


def test_a_failing_run_is_named_and_the_others_are_still_cached(boot, tmp_path):
    from svs.flows.lab.study import run_jobs, study_from_dict

    study = study_from_dict({
        "name": "broken", "seeds": [0],
        "bootstrap": json.loads(json.dumps(_asdict(TINY))),
        "budget": json.loads(json.dumps(_asdict(BUDGET))),
        "arms": [{"name": "bad", "learner": {"advantage": "passk", "passk_k": 99}},
                 {"name": "fixed"}]})
    with pytest.raises(RuntimeError, match=r"1 run\(s\) of study broken failed.*bad seed 0.*passk_k"):
        run_jobs(study, boot, tmp_path, workers=1, progress=False)
    assert len(list((tmp_path / "cache" / "results").glob("*.json"))) == 1


def test_a_start_evaluation_in_progress_is_waited_for_not_computed_again(boot, tmp_path):
    """While one worker holds a seed's start-evaluation lock, another blocks on it and
    then reads what the first wrote (here a planted record) instead of evaluating."""
    import fcntl
    import hashlib
    import threading
    import time
    from dataclasses import asdict

    from svs.flows.lab.bootstrap import read_items
    from svs.flows.lab.runner import seed_prompts, start_metrics

    heldout = read_items(boot.heldout_file)
    fixed, _ = seed_prompts(read_items(boot.pool_file), BUDGET, 0)
    blob = json.dumps({"b": TINY.key(), "budget": asdict(BUDGET), "seed": 0}, sort_keys=True)
    path = tmp_path / "start" / f"{hashlib.sha256(blob.encode()).hexdigest()[:16]}.json"
    path.parent.mkdir(parents=True)
    got = {}
    with path.with_suffix(".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        worker = threading.Thread(target=lambda: got.update(
            start_metrics(boot, TINY, BUDGET, 0, heldout, fixed, tmp_path)))
        worker.start()
        time.sleep(1.0)  # the worker is blocked on the lock by now (or computing, without it)
        path.write_text(json.dumps({"planted": 1.0}))
    worker.join()
    assert got == {"planted": 1.0}
