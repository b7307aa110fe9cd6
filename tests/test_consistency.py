"""Consistency verification: text-check and solve-rate reasons on crafted candidates."""

from __future__ import annotations

from dataclasses import asdict

import pytest
from tiny_models import (
    BAND,
    EASY,
    SEED_PROBLEM,
    UNSOLVABLE,
    one_torch_thread,
    toy_consistency,
    toy_seed,
)

from svs.core.records import Problem
from svs.pipeline.policy.hf import HFPolicy
from svs.synthesizers.registry import Candidate, Seed
from svs.synthesizers.svs import SvSConfig, candidates_from_outputs
from svs.verifiers.consistency import (
    ConsistencyConfig,
    band_verdict,
    reject_counts,
    solve_prompt,
    verify_candidates,
)


@pytest.fixture(scope="module")
def policy(toy_policy_dir):
    with one_torch_thread():
        yield HFPolicy.from_pretrained(toy_policy_dir, device="cpu", batch_size=48)


@pytest.mark.parametrize("n_correct, n, reason", [
    (0, 8, "unsolvable"), (1, 8, "in_band"), (5, 8, "in_band"), (6, 8, "too_easy"),
    (8, 8, "too_easy"), (0, 1, "unsolvable"),
])
def test_band_verdict_default_band(n_correct, n, reason):
    verdict = band_verdict(n_correct, n, ConsistencyConfig().band)
    assert verdict.reason == reason and verdict.ok == (reason == "in_band")


def test_band_floor_above_one_sample_says_too_hard():
    assert band_verdict(1, 8, (0.25, 0.75)).reason == "too_hard"
    assert band_verdict(2, 8, (0.25, 0.75)).ok


@pytest.mark.parametrize("kwargs", [{"band": (0.7, 0.2)}, {"band": (0, 1.5)}, {"n_solves": 0},
                                    {"grade_timeout_s": 0}, {"temperature": -1}])
def test_config_checks(kwargs):
    with pytest.raises(ValueError):
        ConsistencyConfig(**kwargs)


def test_config_round_trips_through_a_dict():
    config = ConsistencyConfig(band=[0.25, 0.5], text_checks={"min_chars": 5})
    assert config.band == (0.25, 0.5) and config.text_checks.min_chars == 5
    assert ConsistencyConfig(**asdict(config)) == config


def _candidates(*outputs: str) -> list[Candidate]:
    return candidates_from_outputs(toy_seed(), outputs, SvSConfig())


def test_crafted_outputs_are_rejected_with_their_reason(policy):
    candidates = _candidates(
        "I will not write a problem.",                                      # no fenced block
        "```text\nWhat is 3 + 4? The answer is 7.\n```",                   # answer leaked
        "```text\nCompute the sum 3 + 4 for me please.\n```",              # near the original
        "```text\n%%%% ### @@@ ))) ((( !!! ??? *** &&& $$$ ^^^\n```",      # gibberish
        "```text\nShow that \\boxed{7} is what 3 + 4 gives here.\n```",    # boxed answer
    )
    accepted, rejects = verify_candidates(candidates, policy, toy_consistency(),
                                         corpus=[SEED_PROBLEM])
    assert accepted == []
    assert [r.reason for r in rejects] == ["no_problem_extracted", "answer_leak",
                                           "near_duplicate", "garbage", "answer_leak"]
    assert all(r.detail for r in rejects)
    exact = _candidates(f"```text\n{SEED_PROBLEM.text}\n```")
    _, rejects_exact = verify_candidates(exact, policy, toy_consistency(), corpus=[SEED_PROBLEM])
    assert [(r.reason, r.detail) for r in rejects_exact] == [
        ("near_duplicate", f"identical to {SEED_PROBLEM.id}")]
    row = rejects[1].to_row()
    assert row["reason"] == "answer_leak" and row["parent_id"] == SEED_PROBLEM.id
    assert row["text"] == "What is 3 + 4? The answer is 7."
    assert reject_counts(rejects) == {"verify/reject/no_problem_extracted": 1,
                                      "verify/reject/answer_leak": 2,
                                      "verify/reject/near_duplicate": 1,
                                      "verify/reject/garbage": 1}


def test_candidates_must_not_duplicate_each_other(policy):
    # Two seeds of one problem write the same variant: the first one goes on to the
    # solve check (too easy here), the second is a duplicate of it.
    first, second = toy_seed(), Seed(SEED_PROBLEM, "7 = 3 + 4", rollout_ref="step=0/sample=5")
    candidates = (candidates_from_outputs(first, [f"```text\n{EASY}\n```"] * 2, SvSConfig())
                  + candidates_from_outputs(second, [f"```text\n{EASY} \n```"], SvSConfig()))
    _, rejects = verify_candidates(candidates, policy, toy_consistency(n_solves=4))
    assert [r.reason for r in rejects] == ["duplicate_sample", "near_duplicate", "too_easy"]
    assert rejects[1].candidate.seed is second


def test_solve_rate_decides_with_the_original_answer(policy):
    candidates = _candidates(f"```text\n{EASY}\n```", f"```text\n{BAND}\n```",
                             f"```text\n{UNSOLVABLE}\n```")
    accepted, rejects = verify_candidates(candidates, policy, toy_consistency(),
                                          corpus=[SEED_PROBLEM])
    assert [p.text for p in accepted] == [BAND]
    assert {r.candidate.problem.text: r.reason for r in rejects} == {
        EASY: "too_easy", UNSOLVABLE: "unsolvable"}
    variant = accepted[0]
    assert 1 / 8 <= variant.metadata["solve_rate"] <= 5 / 8
    assert variant.answer == "7" and variant.parent_id == SEED_PROBLEM.id
    assert variant.metadata["seed_rollout"] == "step=0/sample=0"
    assert rejects[0].solve_rate is not None


def test_proven_candidates_may_skip_the_policy_but_unproven_ones_may_not():
    seed = toy_seed()
    proven = Candidate(seed, seed.problem.variant("What is the value of 2 + 5 here?",
                                                  synthesizer="symbolic"),
                       "", "symbolic", answer_proven=True)
    accepted, rejects = verify_candidates([proven], None)
    assert [p.text for p in accepted] == ["What is the value of 2 + 5 here?"] and not rejects
    with pytest.raises(ValueError, match="pass a policy"):
        verify_candidates(_candidates(f"```text\n{EASY}\n```"), None)


def test_solve_prompt_appends_the_method_instruction():
    assert solve_prompt(" Find x. ").endswith("put your final answer within \\boxed{}.")
    assert solve_prompt("Find x.", suffix="") == "Find x."


def test_candidate_needs_a_problem_or_a_reason():
    with pytest.raises(ValueError):
        Candidate(toy_seed(), None, "", "svs")
    with pytest.raises(ValueError):
        Candidate(toy_seed(), Problem("t", "1"), "", "svs", reason="x")


@pytest.mark.parametrize("original, answer, variant, reason", [
    ("Compute the value of 3 + 4.", "7", "Compute the value of 2 + 5.", "ok"),
    ("Compute the value of 3 + 4.", "7", "Compute the value of 3 + 5.", "sympy_mismatch"),
    ("Compute the value of 3 + 4 * 5.", "23", "Compute the value of 3 + 4 * 5 - 2.",
     "sympy_mismatch"),
    ("Solve for x: 2x + 1 = 7.", "3", "Solve for x: 3x = 9.", "ok"),
    ("Solve for x: 2x + 1 = 7.", "3", "Solve for x: x + 1 = 5.", "sympy_mismatch"),
    # a fraction against an integer reference: decided exactly, not left undecided
    ("Solve for x: 2x + 1 = 7.", "3", "Solve for x: 3x - 5 = 45.", "sympy_mismatch"),
    ("Solve for x: 2x = 1.", "$\\frac{1}{2}$", "Solve for x: 4x = 2.", "ok"),
    ("Solve for x: 2x = 1.", "0.5", "Solve for x: 6x = 3.", "ok"),
    # not a computation sympy checks: left to the solve rate
    ("Tom has 3 apples and buys 4 + 2 more. How many now?", "9",
     "Tom has 3 pears and buys 4 + 3 more. How many now?", "ok"),
    # the original is computable but its reference disagrees: no basis to judge
    ("Compute the value of 3 + 4.", "8", "Compute the value of 3 + 5.", "ok"),
    # the variant is no single computation: left to the solve rate
    ("Compute the value of 3 + 4.", "7", "Add the numbers three and four together.", "ok"),
])
def test_sympy_check_rejects_variants_computed_to_another_answer(original, answer, variant,
                                                                   reason):
    from svs.verifiers.sympy_answers import sympy_verdict

    verdict = sympy_verdict(variant, answer, original)
    assert verdict.reason == reason, verdict.detail
    if reason == "sympy_mismatch":
        assert answer in verdict.detail


@pytest.mark.parametrize("hostile", ["Compute the value of 9^9^9^9^9.",
                                     "Compute the value of " + "(" * 5000 + "1" + ")" * 5000,
                                     "Solve for x: x^999999 + 1 = 0.", "\x00" * 100])
def test_sympy_check_on_hostile_text_is_a_verdict(hostile):
    from svs.verifiers.sympy_answers import computed_answer, sympy_verdict

    assert computed_answer(hostile) is None
    assert sympy_verdict(hostile, "7", "Compute the value of 3 + 4.").ok


def test_verify_rejects_sympy_mismatches_before_solving(policy):
    seed = Seed(Problem("Compute the value of 3 + 4 here.", "7"), "3 + 4 = 7. \\boxed{7}")
    wrong = Candidate(seed, seed.problem.variant("Compute the value of 3 + 5 here.",
                                                 synthesizer="svs"), "", "svs")
    accepted, rejects = verify_candidates([wrong], policy, toy_consistency(n_solves=2))
    assert not accepted and [r.reason for r in rejects] == ["sympy_mismatch"]
    assert rejects[0].solve_rate is None  # never solved: no tokens spent on it
    off = verify_candidates([wrong], policy, toy_consistency(n_solves=2, sympy_check=False))
    assert "sympy_mismatch" not in [r.reason for r in off[1]]
