"""Reward functions for verl / TRL / OpenRLHF agree with the verifier, from any thread."""

from __future__ import annotations

import asyncio
import inspect
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

import pytest
import torch

from svs.trainer_bridge.rewards import (
    VERL_KEYS,
    async_math_reward,
    compute_score,
    compute_score_async,
    compute_score_batch,
    make_trl_reward,
    math_reward,
    response_of,
    reward_func,
)
from svs.verifiers.grader import grade_batch

# (gold, completion, correct): real shapes of model output, each a past or likely bug.
REGRESSION_TABLE = [
    ("7", "3 + 4 = 7, so the answer is \\boxed{7}.", True),
    ("7", "The answer is \\boxed{8}.", False),
    ("\\frac{1}{2}", "We get \\boxed{0.5}", True),
    ("\\frac{1}{2}", "so \\boxed{\\dfrac{1}{2}}", True),
    ("$\\frac{\\sqrt{3}}{2}$", "\\boxed{\\frac{\\sqrt3}{2}}", True),
    ("3", "First 1, then 2, and finally\nAnswer: 3", True),
    ("10", "Adding gives 4 then 10", True),  # last-number fallback, flagged
    ("12", "I am not sure.", False),  # no answer at all
    ("x^2+2x+1", "\\boxed{(x+1)^2}", True),
    ("(1, 2)", "The point is \\boxed{(1,2)}", True),
    ("\\boxed{42}", "\\boxed{42}", True),  # gold wrapped the way datasets write it
    ("2", "\\boxed{\\boxed{2}", True),  # unbalanced outer box: the inner one counts
    ("100", "\\boxed{" + "9" * 5000 + "}", False),  # past int()'s 4300-digit limit
    ("5", "Answer: \\boxed{}", False),  # empty box
    ("1000", "The total is \\boxed{1,000}", True),
    ("\\pi", "\\boxed{3.14159}", False),
]
GOLDS = [gold for gold, _, _ in REGRESSION_TABLE]
COMPLETIONS = [completion for _, completion, _ in REGRESSION_TABLE]


@pytest.fixture(scope="module")
def verifier_grades():
    return grade_batch(list(zip(GOLDS, COMPLETIONS, strict=True)))


def test_compute_score_matches_the_verifier_on_the_regression_table(verifier_grades):
    for (gold, completion, expected), grade in zip(REGRESSION_TABLE, verifier_grades,
                                                   strict=True):
        result = compute_score("svs", completion, gold, {"problem_id": "p-1"})
        assert tuple(result) == VERL_KEYS
        assert result["acc"] is grade.correct is expected, (gold, completion, grade)
        assert result["score"] == (1.0 if expected else 0.0)
        assert result["pred"] == (grade.extracted or "")
        assert result["reason"] == grade.reason
        assert result["problem_id"] == "p-1"


def test_compute_score_batch_matches_per_item_calls(verifier_grades):
    infos = [{"problem_id": f"p-{i}"} for i in range(len(GOLDS))]
    results = compute_score_batch(["svs"] * len(GOLDS), COMPLETIONS, GOLDS, infos)
    assert [r["acc"] for r in results] == [g.correct for g in verifier_grades]
    assert [r["problem_id"] for r in results] == [f"p-{i}" for i in range(len(GOLDS))]


def test_compute_score_from_four_threads_at_once(verifier_grades):
    expected = [g.correct for g in verifier_grades]
    jobs = [(i % len(GOLDS)) for i in range(4 * len(GOLDS))]

    def score(index):
        return compute_score("svs", COMPLETIONS[index], GOLDS[index],
                             extra_info={"problem_id": f"p-{index}", "index": index})

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(score, jobs))
    assert [r["acc"] for r in results] == [expected[i] for i in jobs]
    assert [r["problem_id"] for r in results] == [f"p-{i}" for i in jobs]


def test_compute_score_without_extra_info_or_with_numbers():
    result = compute_score("svs", "\\boxed{7}", 7)
    assert result["acc"] is True and result["problem_id"] == ""
    import numpy as np

    assert compute_score("svs", "\\boxed{7}", np.int64(7))["acc"] is True
    assert compute_score("svs", "\\boxed{7}", np.str_("7"))["acc"] is True
    with pytest.raises(TypeError, match="ground truth must be a string or a number"):
        compute_score("svs", "\\boxed{7}", ["7"])
    with pytest.raises(ValueError, match="timeout_s must be a number of seconds > 0"):
        compute_score("svs", "\\boxed{7}", "7", timeout_s=0)


def test_guessed_answers_can_be_refused():
    loose = compute_score("svs", "Adding gives 4 then 10", "10")
    strict = compute_score("svs", "Adding gives 4 then 10", "10", accept_guessed=False)
    assert loose["acc"] is True
    assert strict["acc"] is False and strict["reason"] == "guessed" and strict["pred"] == "10"


def test_trl_reward_plain_and_conversational_completions():
    completions = ["so \\boxed{7}", "\\boxed{8}", "no idea", "\\boxed{3}"]
    solutions = ["7", "7", "7", None]
    assert math_reward(completions, solutions, problem_id=["a"] * 4) == [1.0, 0.0, 0.0, None]
    chats = [[{"role": "assistant", "content": c}] for c in completions]
    assert math_reward(chats, solutions) == [1.0, 0.0, 0.0, None]
    assert math_reward.__name__ == "math_reward"


def test_trl_reward_is_thread_safe():
    reward = make_trl_reward(name="svs_accuracy")
    batch = (COMPLETIONS, GOLDS)
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda _: reward(*batch), range(4)))
    assert all(r == results[0] for r in results)
    assert results[0] == [1.0 if ok else 0.0 for _, _, ok in REGRESSION_TABLE]
    assert reward.__name__ == "svs_accuracy"


def test_openrlhf_reward_grades_only_the_response():
    prompt = "<|user|>\nWhat is 3+4? Please put your final answer within \\boxed{}.\n<|assistant|>\n"
    queries = [prompt + "It is \\boxed{7}", prompt + "I do not know", prompt + "\\boxed{6}"]
    result = reward_func(queries, [prompt] * 3, ["7", "7", "7"])
    assert set(result) == {"rewards", "scores", "extra_logs"}
    assert torch.equal(result["rewards"], torch.tensor([1.0, 0.0, 0.0]))
    assert torch.equal(result["scores"], result["rewards"])
    assert torch.equal(result["extra_logs"]["verify/no_answer"], torch.tensor([0.0, 1.0, 0.0]))
    assert response_of(queries[0], prompt) == "It is \\boxed{7}"
    with pytest.raises(ValueError, match="must match one to one"):
        reward_func(queries, [prompt], ["7"])


def test_trl_reward_logs_ids_and_answers_for_the_completions_table():
    logged, metrics = {}, {}
    rewards = math_reward(["\\boxed{7}", "nothing"], ["7", "7"], problem_id=["p-a", "p-a"],
                          log_extra=logged.__setitem__, log_metric=metrics.__setitem__)
    assert rewards == [1.0, 0.0]
    assert logged == {"problem_id": ["p-a", "p-a"], "solution": ["7", "7"], "pred": ["7", None],
                      "svs_reward": ["math_reward"] * 2}
    assert metrics == {"verify/no_answer": 0.5}


def test_async_rewards_agree_with_the_sync_ones(verifier_grades):
    async def all_at_once():
        return await asyncio.gather(*(compute_score_async("svs", c, g, {"problem_id": "p-1"})
                                      for g, c in zip(GOLDS, COMPLETIONS, strict=True)))

    results = asyncio.run(all_at_once())
    assert results == [compute_score("svs", c, g, {"problem_id": "p-1"})
                       for g, c in zip(GOLDS, COMPLETIONS, strict=True)]
    assert inspect.iscoroutinefunction(async_math_reward)
    logged = {}
    rewards = asyncio.run(async_math_reward(COMPLETIONS, GOLDS, log_extra=logged.__setitem__))
    assert rewards == math_reward(COMPLETIONS, GOLDS)
    assert logged["svs_reward"] == ["async_math_reward"] * len(GOLDS)


def test_reward_pool_size_comes_from_the_environment(monkeypatch):
    from svs.trainer_bridge.rewards import WORKERS_ENV, reward_workers

    monkeypatch.delenv(WORKERS_ENV, raising=False)
    assert reward_workers() == 2
    monkeypatch.setenv(WORKERS_ENV, "3")
    assert reward_workers() == 3
    monkeypatch.setenv(WORKERS_ENV, "0")
    with pytest.raises(ValueError, match="SVS_REWARD_WORKERS='0': set it to a whole number"):
        reward_workers()


def _score_in_child(index: int) -> tuple[int, bool]:
    return os.getpid(), compute_score("svs", COMPLETIONS[index], GOLDS[index])["acc"]


def test_compute_score_from_forked_worker_processes(verifier_grades):
    """Trainers call rewards from worker processes; a forked child must not reuse the
    parent's verifier workers (they are not its children): it starts its own pool."""
    from svs.trainer_bridge.rewards import reward_pool

    parent_pool = reward_pool()
    assert compute_score("svs", "\\boxed{1/2}", "0.5")["acc"] is True
    context = multiprocessing.get_context("fork")
    indices = [4, 8, 9, 7]  # need sympy in the child's own sandbox workers
    with ProcessPoolExecutor(max_workers=2, mp_context=context) as pool:
        results = list(pool.map(_score_in_child, indices))
    assert [acc for _, acc in results] == [verifier_grades[i].correct for i in indices]
    assert os.getpid() not in {pid for pid, _ in results}
    assert reward_pool() is parent_pool
