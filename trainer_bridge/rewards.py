r"""Reward functions for verl, TRL and OpenRLHF, all backed by svs's verifier.

Each one extracts the final answer from the completion and checks it against the
reference with `verifiers.grader` (the machinery of `grade_batch`: math-verify in
sandboxed worker processes with hard timeouts), so a hostile completion costs one zero reward, never the run. The
reward is 1.0 for a correct answer and 0.0 otherwise.

Thread and process safety: every process gets its own small verifier pool (the same
`VerifierPool` that backs `grade_batch`), started on first use and replaced after a fork;
calls from several threads (verl's per-response executor threads, OpenRLHF's
`asyncio.to_thread`) share its workers at once, and a hung item costs only its own
caller the timeout. Trainers run rewards in many processes at once (verl: `reward.num_workers` Ray
workers, 8 by default), so the pool is small: `SVS_REWARD_WORKERS` sandbox processes per
trainer process (default 2), not one per core as `grade_batch`'s shared pool has.

- verl: `compute_score(data_source, solution_str, ground_truth, extra_info=None, **kw)`
  returns a dict; verl logs every key and writes them into `rollout_data_dir` dumps, so
  `problem_id` (from the `extra_info` our verl export writes) makes dumps groupable.
  `compute_score_batch` is the same for verl's batch reward manager.
- TRL: `math_reward(completions, solution, **kw) -> list[float | None]` (logged by TRL as
  `rewards/math_reward`); `make_trl_reward(...)` builds one with other settings. With
  TRL's `log_completions=True` it adds `problem_id`, `solution` and `pred` columns to
  TRL's completions parquet.
- OpenRLHF: `reward_func(queries, prompts, labels, **kw)` returning
  `{"rewards", "scores", "extra_logs"}` as float tensors.

Settings: `timeout_s` (seconds per answer check, default 5) and `accept_guessed` (default
True: an answer found only as the last number in the text still counts; False rewards
only answers the completion marked, boxed or "Answer: ..."). verl passes them through
`reward.custom_reward_function.reward_kwargs`.
"""

from __future__ import annotations

import asyncio
import atexit
import numbers
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from svs.verifiers.grader import Grade, VerifierPool

DEFAULT_TIMEOUT_S = 5.0
WORKERS_ENV = "SVS_REWARD_WORKERS"
DEFAULT_WORKERS = 2
VERL_KEYS = ("score", "acc", "pred", "problem_id", "reason")


def _gold(ground_truth: Any) -> str:
    if isinstance(ground_truth, str):
        return str(ground_truth)  # numpy.str_ too
    if isinstance(ground_truth, numbers.Real) and not isinstance(ground_truth, bool):
        return str(ground_truth.item() if hasattr(ground_truth, "item") else ground_truth)
    raise TypeError(f"ground truth must be a string or a number, got {type(ground_truth).__name__}"
                    f" ({ground_truth!r:.80}); export the prompt set with `svs export`")


def _check_settings(timeout_s: float, accept_guessed: bool) -> None:
    if not isinstance(timeout_s, (int, float)) or timeout_s <= 0:
        raise ValueError(f"timeout_s must be a number of seconds > 0, got {timeout_s!r}")
    if not isinstance(accept_guessed, bool):
        raise TypeError(f"accept_guessed must be true or false, got {accept_guessed!r}")


_pool: VerifierPool | None = None
_pool_pid: int | None = None
_pool_lock = threading.Lock()


def reward_workers() -> int:
    """Sandbox processes per trainer process: `SVS_REWARD_WORKERS`, default 2."""
    raw = os.environ.get(WORKERS_ENV, "").strip()
    if not raw:
        return DEFAULT_WORKERS
    if not raw.isdigit() or int(raw) < 1:
        raise ValueError(f"{WORKERS_ENV}={raw!r}: set it to a whole number >= 1 "
                         "(verifier processes per trainer process)")
    return int(raw)


def reward_pool() -> VerifierPool:
    """This process's verifier pool for rewards, started on first use (new after a fork)."""
    global _pool, _pool_pid
    with _pool_lock:
        if _pool is None or _pool_pid != os.getpid():
            _pool, _pool_pid = VerifierPool(workers=reward_workers()), os.getpid()
            atexit.register(_pool.close)
        return _pool


def _grades(golds: Sequence[str], completions: Sequence[str], timeout_s: float,
            accept_guessed: bool) -> list[Grade]:
    _check_settings(timeout_s, accept_guessed)
    texts = [c if isinstance(c, str) else "" for c in completions]
    grades = reward_pool().grade(list(zip(golds, texts, strict=True)), timeout_s=timeout_s)
    if accept_guessed:
        return grades
    return [Grade(False, "guessed", g.extracted, "answer taken from the last number only",
                  flagged=True, method=g.method) if g.correct and g.flagged else g
            for g in grades]


# -- verl ---------------------------------------------------------------------------

def _verl_result(grade: Grade, extra_info: Mapping[str, Any] | None) -> dict[str, Any]:
    problem = ""
    if isinstance(extra_info, Mapping):
        problem = str(extra_info.get("problem_id") or "")
    return {"score": 1.0 if grade.correct else 0.0, "acc": bool(grade.correct),
            "pred": grade.extracted or "", "problem_id": problem, "reason": grade.reason}


def compute_score(data_source: str, solution_str: str, ground_truth: Any,
                  extra_info: Mapping[str, Any] | None = None, *,
                  timeout_s: float = DEFAULT_TIMEOUT_S, accept_guessed: bool = True,
                  **kwargs: Any) -> dict[str, Any]:
    """verl custom reward: {score, acc, pred, problem_id, reason} for one response.

    `problem_id` comes from `extra_info` (our verl export puts it there); it is "" for
    rows that lack it. Other keyword arguments verl passes are ignored.
    """
    grade = _grades([_gold(ground_truth)], [solution_str], timeout_s, accept_guessed)[0]
    return _verl_result(grade, extra_info)


async def compute_score_async(data_source: str, solution_str: str, ground_truth: Any,
                              extra_info: Mapping[str, Any] | None = None, *,
                              timeout_s: float = DEFAULT_TIMEOUT_S, accept_guessed: bool = True,
                              **kwargs: Any) -> dict[str, Any]:
    """`compute_score` as a coroutine (verl 0.9 awaits `async def compute_score` on its
    reward loop): the check runs in a thread, so the loop keeps serving other responses
    while the verifier's processes work."""
    return await asyncio.to_thread(compute_score, data_source, solution_str, ground_truth,
                                   extra_info, timeout_s=timeout_s,
                                   accept_guessed=accept_guessed)


def compute_score_batch(data_sources: Sequence[str], solution_strs: Sequence[str],
                        ground_truths: Sequence[Any],
                        extra_infos: Sequence[Mapping[str, Any] | None] | None = None, *,
                        timeout_s: float = DEFAULT_TIMEOUT_S, accept_guessed: bool = True,
                        **kwargs: Any) -> list[dict[str, Any]]:
    """verl batch reward (`reward_manager=batch`): one dict per response, in order.

    Faster than per-response calls: identical answers are checked once and the work is
    spread over the verifier's worker processes.
    """
    if len(solution_strs) != len(ground_truths):
        raise ValueError(f"{len(solution_strs)} responses but {len(ground_truths)} ground truths")
    infos = list(extra_infos) if extra_infos is not None else [None] * len(solution_strs)
    if len(infos) != len(solution_strs):
        raise ValueError(f"{len(solution_strs)} responses but {len(infos)} extra_infos")
    grades = _grades([_gold(g) for g in ground_truths], solution_strs, timeout_s, accept_guessed)
    return [_verl_result(grade, info) for grade, info in zip(grades, infos, strict=True)]


# -- TRL ----------------------------------------------------------------------------

def completion_text(completion: Any) -> str:
    """TRL completions are strings, or chat messages for conversational datasets."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list):
        return "".join(m.get("content") or "" for m in completion
                       if isinstance(m, Mapping) and m.get("role") == "assistant"
                       and isinstance(m.get("content"), str))
    return ""


def make_trl_reward(*, timeout_s: float = DEFAULT_TIMEOUT_S, accept_guessed: bool = True,
                    name: str = "math_reward") -> Callable[..., list[float | None]]:
    """A TRL reward function; TRL logs it as `rewards/<name>`."""
    _check_settings(timeout_s, accept_guessed)

    def reward(completions: Sequence[Any], solution: Sequence[Any],
               **kwargs: Any) -> list[float | None]:
        if len(completions) != len(solution):
            raise ValueError(f"{len(completions)} completions but {len(solution)} solutions")
        # Rows without a reference get None: TRL leaves them out of this reward.
        scored = [i for i, gold in enumerate(solution) if gold is not None and gold != ""]
        grades = _grades([_gold(solution[i]) for i in scored],
                         [completion_text(completions[i]) for i in scored],
                         timeout_s, accept_guessed)
        rewards: list[float | None] = [None] * len(completions)
        predictions: list[str | None] = [None] * len(completions)
        for index, grade in zip(scored, grades, strict=True):
            rewards[index] = 1.0 if grade.correct else 0.0
            predictions[index] = grade.extracted
        _log_to_trl(kwargs, name, solution, predictions, grades)
        return rewards

    reward.__name__ = reward.__qualname__ = name
    return reward


math_reward = make_trl_reward()


def make_async_trl_reward(*, timeout_s: float = DEFAULT_TIMEOUT_S, accept_guessed: bool = True,
                          name: str = "async_math_reward") -> Callable[..., Any]:
    """An `async def` TRL reward (TRL awaits coroutine reward functions concurrently with
    the others); the same grading and logging as `make_trl_reward`, in a thread."""
    sync = make_trl_reward(timeout_s=timeout_s, accept_guessed=accept_guessed, name=name)

    async def reward(completions: Sequence[Any], solution: Sequence[Any],
                     **kwargs: Any) -> list[float | None]:
        return await asyncio.to_thread(sync, completions, solution, **kwargs)

    reward.__name__ = reward.__qualname__ = name
    return reward


async_math_reward = make_async_trl_reward()


def _log_to_trl(kwargs: Mapping[str, Any], name: str, solution: Sequence[Any],
                predictions: Sequence[str | None], grades: Sequence[Grade]) -> None:
    """TRL >= 1.x hands reward functions `log_extra` (a column of the completions table,
    written to `completions/*.parquet` with `log_completions=True`) and `log_metric`.
    The problem id, reference and extracted answer make those files groupable and
    gradable by `svs`; `svs_reward` names this reward's own column (the reader takes
    correctness from it, not from a format reward), and `mode` marks eval rows, which
    TRL writes under the same file names. Older TRL passes neither; nothing is logged."""
    log_extra, log_metric = kwargs.get("log_extra"), kwargs.get("log_metric")
    if callable(log_extra):
        rows = len(solution)
        if "problem_id" in kwargs:
            log_extra("problem_id", list(kwargs["problem_id"]))
        log_extra("solution", [None if gold is None else str(gold) for gold in solution])
        log_extra("pred", list(predictions))
        log_extra("svs_reward", [name] * rows)
        # log_extra is a bound method of the running GRPOTrainer; its model's mode is the
        # only place the reward can learn whether this is a training or an eval batch
        model = getattr(getattr(log_extra, "__self__", None), "model", None)
        if model is not None and hasattr(model, "training"):
            log_extra("mode", ["train" if model.training else "eval"] * rows)
    if callable(log_metric) and grades:
        log_metric("verify/no_answer", sum(g.reason == "no_answer" for g in grades) / len(grades))


# -- OpenRLHF -----------------------------------------------------------------------

def response_of(query: str, prompt: str) -> str:
    """OpenRLHF passes prompt+response as the query; grade only the response, since the
    prompt's own instruction mentions \\boxed{}."""
    if not isinstance(query, str):
        return ""
    if isinstance(prompt, str) and prompt:
        at = query.find(prompt)
        if at >= 0:
            return query[at + len(prompt):]
    return query


def grade_queries(queries: Sequence[str], prompts: Sequence[str], labels: Sequence[Any],
                  timeout_s: float = DEFAULT_TIMEOUT_S, accept_guessed: bool = True) -> list[Grade]:
    """OpenRLHF's (query, prompt, label) triples graded: the response after the prompt
    against the label (`reward_func` and `svs reward-server`)."""
    if not len(queries) == len(prompts) == len(labels):
        raise ValueError(f"got {len(queries)} queries, {len(prompts)} prompts and "
                         f"{len(labels)} labels; they must match one to one")
    return _grades([_gold(label) for label in labels],
                   [response_of(q, p) for q, p in zip(queries, prompts, strict=True)],
                   timeout_s, accept_guessed)


def reward_func(queries: Sequence[str], prompts: Sequence[str], labels: Sequence[Any],
                **kwargs: Any) -> dict[str, Any]:
    """OpenRLHF reward (`--reward.remote_url path/to/this_file.py`). OpenRLHF passes no
    keyword arguments, so `timeout_s`/`accept_guessed` keep their defaults here; set
    them with `svs reward-server` flags instead."""
    import torch

    grades = grade_queries(queries, prompts, labels, kwargs.get("timeout_s", DEFAULT_TIMEOUT_S),
                           kwargs.get("accept_guessed", True))
    rewards = torch.tensor([1.0 if g.correct else 0.0 for g in grades], dtype=torch.float32)
    no_answer = torch.tensor([float(g.reason == "no_answer") for g in grades])
    return {"rewards": rewards, "scores": rewards.clone(),
            "extra_logs": {"verify/no_answer": no_answer}}
