import dataclasses

import pytest

from svs.core.records import Problem, Rollout, RolloutGroup, Verdict, problem_id


def test_problem_id_is_stable_and_content_derived():
    a = Problem("What is  1+1?", "2")
    b = Problem("What is 1+1?", "2")  # white space differences do not change the id
    assert a.id == b.id == problem_id("What is 1+1?", "2")
    assert a.id.startswith("p-") and len(a.id) == 18
    assert Problem("What is 1+1?", "3").id != a.id


def test_original_and_variant_lineage():
    original = Problem("Solve 2x = 4.", "2")
    assert original.is_original and original.origin_id == original.id and original.generation == 0
    child = original.variant("Solve 3x = 6.", synthesizer="svs", seed_rollout="r1")
    grandchild = child.variant("Solve 5x = 10.", synthesizer="symbolic")
    assert child.answer == "2" and child.parent_id == original.id and child.generation == 1
    assert grandchild.origin_id == original.id and grandchild.parent_id == child.id
    assert grandchild.generation == 2 and grandchild.synthesizer == "symbolic"
    assert child.metadata["seed_rollout"] == "r1"


def test_records_are_frozen_and_round_trip():
    problem = Problem("Compute 3*4.", "12", metadata={"topic": "arithmetic"})
    with pytest.raises(dataclasses.FrozenInstanceError):
        problem.text = "changed"
    with pytest.raises(TypeError):
        problem.metadata["topic"] = "x"
    assert Problem.from_row(problem.to_row()) == problem


def test_problem_rejects_bad_fields():
    with pytest.raises(TypeError):
        Problem("text", 5)
    with pytest.raises(ValueError, match="generation"):
        Problem("text", "5", generation=-1)


def test_rollout_group_counts():
    rollouts = [Rollout("p", "q", "1", c, correct=ok) for c, ok in [("a", True), ("b", False), ("c", True)]]
    group = RolloutGroup.from_rollouts(rollouts, step=3)
    assert group.n == 3 and group.n_correct == 2 and group.is_graded and group.step == 3
    assert not RolloutGroup.from_rollouts([Rollout("p", "q", "1", "x")]).is_graded
    with pytest.raises(ValueError):
        RolloutGroup.from_rollouts([])


def test_verdict_truthiness():
    assert Verdict(True, "ok") and not Verdict(False, "answer_leak", "the answer 7 is in the text")


def test_rollout_row_round_trips_through_the_native_reader():
    from svs.core.records import Rollout
    from svs.pipeline.rollouts import rollout_from_row

    rollout = Rollout("p-1", "What is 2+3?", "5", "so \\boxed{5}", step=3, reward=1.0,
                      correct=True, token_logprobs=(-0.5, -0.25), metadata={"advantage": 0.5})
    row = rollout.to_row()
    assert row["advantage"] == 0.5 and "extracted" not in row
    assert rollout_from_row(row) == rollout
