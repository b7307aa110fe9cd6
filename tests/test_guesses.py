"""A guess is not a solve: consistency and seed selection count only real answers from
completions that ended by themselves; settings turn each back on."""

from __future__ import annotations

import math

import pytest

from svs.core.protocols import FINISH_LENGTH, FINISH_STOP, Generation
from svs.core.records import Problem, Rollout, RolloutGroup
from svs.pipeline.memorization import DiagnosisConfig, diagnose
from svs.synthesizers.registry import Candidate, Seed
from svs.verifiers.consistency import ConsistencyConfig, counts_as_solve, verify_candidates

BOXED = "Adding the parts gives 7, so the answer is \\boxed{7}."
GUESS = "Using the AM-PM (Arithmetic Mean, Roman Numeral System) 7 operations we get"


@pytest.mark.parametrize("correct, method, finish, guesses, truncated, expected", [
    (True, "boxed", "stop", False, False, True),
    (True, "final_answer", None, False, False, True),  # unknown finish: not truncated
    (True, "last_number", "stop", False, False, False),
    (True, "latex_tail", "stop", False, False, False),
    (True, "boxed", "length", False, False, False),
    (True, "last_number", "stop", True, False, True),
    (True, "boxed", "length", False, True, True),
    (False, "boxed", "stop", True, True, False),
])
def test_counts_as_solve(correct, method, finish, guesses, truncated, expected):
    assert counts_as_solve(correct, method, finish, accept_guesses=guesses,
                           accept_truncated=truncated) is expected


class ScriptedPolicy:
    """Answers every prompt with the same completions (text, finish reason)."""

    name = "scripted"

    def __init__(self, outputs):
        self.outputs = outputs

    def generate(self, prompts, params, *, progress=False):
        return [[Generation(text, (1,), (0.0,), finish) for text, finish in self.outputs]
                for _ in prompts]


def _candidate():
    seed = Seed(Problem("What is 3 + 4 in this sum?", "7"), BOXED, rollout_ref="r0")
    variant = seed.problem.variant("A box holds 3 red and 4 blue balls. How many balls are "
                                   "in the box?", synthesizer="svs")
    return Candidate(seed, variant, "", "svs")


def test_guessed_and_truncated_solves_do_not_put_a_variant_in_band():
    outputs = [(GUESS, FINISH_STOP)] * 3 + [(BOXED, FINISH_LENGTH)] * 2 + [("no idea", FINISH_STOP)] * 3
    config = ConsistencyConfig(n_solves=8, sympy_check=False)
    accepted, rejects = verify_candidates([_candidate()], ScriptedPolicy(outputs), config)
    assert not accepted
    assert rejects[0].reason == "unsolvable"
    assert "5 graded correct but 5 not counted" in rejects[0].detail
    assert "3 guessed answers, 2 cut at the token limit" in rejects[0].detail


def test_settings_turn_guesses_and_truncation_back_on_and_solves_are_recorded():
    outputs = [(GUESS, FINISH_STOP)] * 2 + [(BOXED, FINISH_LENGTH)] * 2 + [("no idea", FINISH_STOP)] * 4
    config = ConsistencyConfig(n_solves=8, sympy_check=False, accept_guesses=True,
                               accept_truncated=True)
    accepted, _ = verify_candidates([_candidate()], ScriptedPolicy(outputs), config)
    (variant,) = accepted
    assert variant.metadata["solve_rate"] == 0.5
    solves = variant.metadata["solves"]
    assert [s["method"] for s in solves[:4]] == ["last_number"] * 2 + ["boxed"] * 2
    assert [s["finish_reason"] for s in solves[:4]] == ["stop"] * 2 + ["length"] * 2
    assert sum(s["counted"] for s in solves) == 4


def _group(pid, completions, finishes):
    rollouts = [Rollout(pid, "What is 3 + 4?", "7", text, correct=ok, extracted="7",
                        metadata={"finish_reason": finish})
                for (text, ok), finish in zip(completions, finishes, strict=True)]
    return RolloutGroup.from_rollouts(rollouts)


def test_guessed_or_truncated_rollouts_never_become_seeds():
    wrong = ("I do not know the answer to this one at all", False)
    guessed = _group("guessed", [(GUESS, True)] * 2 + [wrong] * 6, ["stop"] * 8)
    cut = _group("cut", [(BOXED, True)] * 2 + [wrong] * 6, ["length"] * 2 + ["stop"] * 6)
    real = _group("real", [(BOXED, True)] * 2 + [wrong] * 6, ["stop"] * 8)
    diagnosis = diagnose([guessed, cut, real])
    assert {p.problem_id for p in diagnosis.seeds()} == {"real"}
    assert diagnosis["guessed"].label == "learning"  # labels keep the grader's verdict
    assert diagnosis["guessed"].metrics["answers/guessed_share"] == 1.0
    assert diagnosis["cut"].metrics["answers/truncated_share"] == 0.25
    assert any("not a seed" in r for r in diagnosis["guessed"].reasons)
    assert diagnosis.totals["answers/guessed"] == 2
    assert diagnosis.totals["answers/truncated"] == 2
    assert diagnosis.correct_solutions("real") == (BOXED, BOXED)
    lenient = diagnose([guessed, cut], DiagnosisConfig(seed_accept_guesses=True,
                                                       seed_accept_truncated=True))
    assert {p.problem_id for p in lenient.seeds()} == {"guessed", "cut"}


def test_diagnosis_warns_when_guesses_dominate():
    wrong = ("I do not know the answer to this one at all", False)
    groups = [_group(f"g{i}", [(GUESS, True)] + [wrong] * 7, ["length"] * 8) for i in range(3)]
    totals = diagnose(groups).totals
    assert totals["answers/guessed_share"] == 1.0 and totals["answers/truncated_share"] == 1.0
    assert len(totals["warnings"]) == 2
    assert "guessed answers" in totals["warnings"][0]
    assert "token limit" in totals["warnings"][1]
    assert not math.isnan(totals["answers/truncated_share"])
