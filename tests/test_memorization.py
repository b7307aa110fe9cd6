import importlib.util
import json
import math
from pathlib import Path

import pytest

from svs.core.records import Rollout, RolloutGroup
from svs.pipeline.memorization import (
    LABELS,
    Diagnosis,
    DiagnosisConfig,
    diagnose,
    label_problem,
)
from svs.pipeline.rollouts import groups_from_rollouts, rollout_from_row

_spec = importlib.util.spec_from_file_location(
    "planted", Path(__file__).resolve().parent.parent / "benchmarks" / "planted.py")
planted = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(planted)


def _diagnose_rows(rows, config=None):
    return diagnose(groups_from_rollouts([rollout_from_row(row) for row in rows]), config)


@pytest.mark.parametrize("kind", planted.KINDS)
def test_planted_kinds_get_their_label(kind):
    for index in range(6):
        rows = planted.planted_problem(index, kind, seed=7)
        (problem,) = _diagnose_rows(rows).problems
        assert problem.label == kind, problem.reasons


def test_memorized_precision_and_recall_on_a_planted_set():
    rows = planted.planted_rows(240, seed=11)
    result = planted.score(rows, _diagnose_rows(rows))
    assert result["precision"] >= 0.95
    assert result["recall"] >= 0.95


def _group(n_correct, n=8, text="same words again and again in this solution", step=None, pid="p"):
    rollouts = [Rollout(pid, "prompt", "1", f"{text} {i if i >= n_correct else ''} so the "
                        f"answer is \\boxed{{{1 if i < n_correct else 2}}}.",
                        step=step, correct=i < n_correct, extracted="1" if i < n_correct else "2")
                for i in range(n)]
    return RolloutGroup.from_rollouts(rollouts, step=step)


def test_seed_band_marks_learning_problems_and_keeps_their_solutions():
    groups = [_group(c, pid=f"p{c}") for c in range(9)]
    diagnosis = diagnose(groups)
    labels = {p.problem_id: p.label for p in diagnosis.problems}
    assert labels["p0"] == "unsolved"
    assert all(labels[f"p{c}"] == "learning" for c in range(1, 7))
    assert labels["p7"] == labels["p8"] == "memorized"  # one trajectory, 7/8 and 8/8
    seeds = {p.problem_id for p in diagnosis.seeds()}
    assert seeds == {"p1", "p2", "p3", "p4"}  # 1/8 .. 4/8: the SvS band [0.125, 0.5]
    assert len(diagnosis.correct_solutions("p3")) == 3
    assert diagnosis.correct_solutions("p6") == ()  # not a seed: not kept by default
    assert any("seed" in r for r in diagnosis["p2"].reasons)


def test_seed_memorized_option():
    diagnosis = diagnose([_group(8, pid="m")], DiagnosisConfig(seed_memorized=True))
    assert diagnosis["m"].is_seed and diagnosis["m"].label == "memorized"
    assert len(diagnosis.correct_solutions("m")) == 8


def test_too_few_correct_rollouts_cannot_be_memorized():
    (problem,) = diagnose([_group(2, n=2)]).problems
    assert problem.label == "solved_diverse"
    assert any("fewer than 4" in reason for reason in problem.reasons)


def test_label_reasons_state_the_numbers():
    metrics = {"diversity/n": 16, "diversity/n_correct": 15, "diversity/solve_rate": 15 / 16,
               "diversity/effective_solutions": 1.2, "diversity/clusters": 2,
               "diversity/mean_similarity": 0.7}
    label, reasons = label_problem(metrics, DiagnosisConfig())
    assert label == "memorized"
    assert reasons[0].startswith("solve rate 15/16 = 0.94")
    assert "effective number 1.20" in reasons[1]


def test_history_across_steps_and_latest_step_decides():
    groups = [_group(2, step=1, pid="p"), _group(5, step=2, pid="p"), _group(8, step=3, pid="p")]
    (problem,) = diagnose(groups).problems
    assert problem.label == "memorized"
    assert [h["step"] for h in problem.history] == [1, 2, 3]
    assert [h["label"] for h in problem.history] == ["learning", "learning", "memorized"]
    assert problem.metrics["trend/solve_rate_slope"] == pytest.approx(0.375)
    assert any("from 0.25 to 1.00" in reason for reason in problem.reasons)


def test_json_round_trip_is_strict_json():
    diagnosis = diagnose([_group(c, pid=f"p{c}") for c in (0, 3, 8)])
    text = diagnosis.to_json()
    json.loads(text, parse_constant=lambda name: pytest.fail(f"non-strict JSON constant {name}"))
    again = Diagnosis.from_json(text)
    assert again.config == diagnosis.config
    assert [p.label for p in again.problems] == [p.label for p in diagnosis.problems]
    assert math.isnan(again["p0"].metrics["diversity/mean_similarity"])
    assert again.correct_solutions("p3") == diagnosis.correct_solutions("p3")
    assert again.totals["labels"] == diagnosis.totals["labels"]
    with pytest.raises(ValueError, match="svs-diagnosis/1"):
        Diagnosis.from_json('{"format": "other"}')


def test_ungraded_groups_are_refused():
    group = RolloutGroup.from_rollouts([Rollout("p", "q", "1", "text")])
    with pytest.raises(ValueError, match="load_rollout_groups"):
        diagnose([group])


@pytest.mark.parametrize("kwargs, message", [
    ({"solved_min_solve_rate": 0}, "solved_min_solve_rate"),
    ({"max_effective_solutions": 0.5}, "max_effective_solutions"),
    ({"min_correct_for_collapse": 1}, "min_correct_for_collapse"),
    ({"cluster_threshold": 1.5}, "cluster_threshold"),
    ({"num_bins": 100}, "power of two"),
    ({"seed_band": (0.5, 0.2)}, "seed_band"),
    ({"seed_band": (0.1, 0.9)}, "below solved_min_solve_rate"),
    ({"keep_solutions": "some"}, "keep_solutions"),
])
def test_config_checks_say_what_to_fix(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DiagnosisConfig(**kwargs)


def test_config_has_help_for_every_field():
    assert all(text for text in DiagnosisConfig.help().values())
    with pytest.raises(ValueError, match="unknown DiagnosisConfig"):
        DiagnosisConfig.from_dict({"nope": 1})


def test_totals_count_every_label():
    diagnosis = diagnose([_group(c, pid=f"p{c}") for c in range(9)])
    assert set(diagnosis.totals["labels"]) == set(LABELS)
    assert sum(diagnosis.totals["labels"].values()) == 9
    assert diagnosis.totals["rollouts"] == 72
