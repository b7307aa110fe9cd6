"""Bulk answer grading: extraction here, equivalence in sandboxed worker processes.

What this adds to math-verify (which does the equivalence itself):
- a pool of worker processes with a hard per-item deadline: a worker that hangs in C
  code, crashes or runs out of memory is killed and replaced, and only the item it was
  on gets `timeout` / `worker_crash` (math-verify's own timeout uses `signal.alarm`,
  which only works on a main thread and cannot interrupt C code);
- math-verify's own extraction: a completion goes to a worker whole and is read with
  math-verify's patterns (`verifiers.sandbox.make_completion_reader`), except where
  `verifiers.answers.sole_box` proves math-verify would read its one box; every row
  says how its answer was found (`Grade.method`);
- each distinct gold answer is parsed once per worker and batch, each distinct
  (gold, answer) pair is verified once, results fan back out to every input;
- concurrent calls share the workers: each call's chunks join one queue, the calling
  threads take turns driving the pool, and a hung item holds one worker and its own
  caller only (verl's and OpenRLHF's per-response reward threads);
- work is spread over the cores; results come back in input order.

Reasons on a `Grade`: correct, wrong, no_answer, timeout, worker_crash, bad_gold,
unsafe_input, answer_too_long.
"""

from __future__ import annotations

import atexit
import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

from svs.verifiers.answers import (
    MAX_COMPLETION_CHARS,
    box_problem,
    extract_answer,
    sole_box,
    strip_gold,
)
from svs.verifiers.fast_path import fast_equivalence, latex_spelling
from svs.verifiers.sandbox import looks_like_code
from svs.verifiers.workers import HARD_GRACE_S as HARD_GRACE_S  # re-exported for callers
from svs.verifiers.workers import Result, WorkerPool


@dataclass(frozen=True)
class Grade:
    """The verdict on one (gold, completion) pair.

    method: how the answer was found: boxed, final_answer (an "answer"/"final answer"
    phrase), latex_tail (the last LaTeX math in the text), last_number (a guess), none,
    or given (extract=False).
    """

    correct: bool
    reason: str
    extracted: str | None
    detail: str = ""
    flagged: bool = False  # the answer came from the last-number fallback: may be a guess
    method: str = "none"

    @property
    def ok(self) -> bool:
        return self.correct


class VerifierPool(WorkerPool):
    """A pool of sandboxed math-verify workers. Thread-safe; use as a context manager.

    workers: processes to run (default: the cores this process may use).
    timeout_s: soft limit per item (and per gold parse); the hard kill follows 1 s later.
    memory_mb: address-space limit per worker.
    fast_path: settle exact plain-text cases (`verifiers.fast_path.fast_equivalence`)
        without a worker; off, every distinct pair goes to math-verify.

    Calls from many threads run at once: their chunks share one queue and all workers;
    one calling thread at a time drives the workers for everybody (`_drive`).
    """

    def __init__(self, workers: int | None = None, timeout_s: float = 5.0,
                 memory_mb: int = 4096, chunk_size: int = 32, fast_path: bool = True) -> None:
        super().__init__(workers, timeout_s, memory_mb, chunk_size)
        self.fast_path = fast_path

    # -- grading ---------------------------------------------------------------
    def grade(self, pairs: Sequence[tuple[str, str]], *, extract: bool = True,
              timeout_s: float | None = None, progress: bool = False) -> list[Grade]:
        """Grade (gold, completion) pairs; with extract=False the second item is the answer.

        `timeout_s` overrides the pool's per-item limit for this call.
        """
        timeout_s = self.timeout_s if timeout_s is None else timeout_s
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be > 0, got {timeout_s}")
        # Per input: a finished Grade, or (task key, shown answer, method) for a task.
        plans: list[Grade | tuple] = []
        settled: dict[tuple, Result] = {}
        task_of: dict[tuple, int] = {}
        by_gold: OrderedDict[str, list[tuple[int, str, str]]] = OrderedDict()
        for gold, completion in pairs:
            gold_text = strip_gold(gold)
            plan = self._plan(gold_text, completion, extract)
            if isinstance(plan, Grade):
                plans.append(plan)
                continue
            kind, text, shown, method = plan
            key = (gold_text, kind, text)
            plans.append((key, shown, method))
            if key in settled or key in task_of:
                continue
            fast = (fast_equivalence(gold_text, text)
                    if self.fast_path and kind == "answer" else None)
            if fast is not None:
                settled[key] = (fast, "correct" if fast else "wrong", "", None, None)
                continue
            task_of[key] = len(task_of)
            by_gold.setdefault(gold_text, []).append((task_of[key], kind, text))
        results = self._run(by_gold, len(task_of), timeout_s, progress) if task_of else {}

        grades = []
        for plan in plans:
            if isinstance(plan, Grade):
                grades.append(plan)
                continue
            key, shown, method = plan
            correct, reason, detail, extracted, found_by = (
                settled[key] if key in settled else results[task_of[key]])
            if method is None:  # the worker read the completion
                shown, method = extracted, found_by or "none"
            grades.append(Grade(correct, reason, shown, detail,
                                flagged=method == "last_number", method=method))
        return grades

    @staticmethod
    def _plan(gold_text: str, completion, extract: bool) -> Grade | tuple:
        """A Grade settled without a worker, or (kind, text, shown answer, method) for one.

        method None: a worker reads the completion with math-verify's extraction and
        reports the answer and method.
        """
        if not isinstance(completion, str) or not completion.strip():
            return Grade(False, "no_answer", None, "no final answer found")
        if not extract:
            text = completion.strip()
            return "answer", latex_spelling(text), text, "given"
        problem = box_problem(completion)
        if problem is not None:
            reason = "answer_too_long" if "longer" in problem else "no_answer"
            return Grade(False, reason, None, problem)
        boxed = sole_box(completion)
        if boxed is not None:
            return "answer", latex_spelling(boxed), boxed, "boxed"
        # A screen with svs's own cascade: where it finds no answer at all (no box, answer
        # line or math at the end, no number in the last 2,000 characters) the verdict
        # is no_answer (deliberately stricter than math-verify, which might still find
        # math earlier in a long text); code-shaped answers never reach a parser.
        found = extract_answer(completion)
        if found.answer is None:
            return Grade(False, "no_answer", None, "no final answer found")
        if looks_like_code(found.answer):
            return Grade(False, "unsafe_input", found.answer, "answer looks like code",
                         method=found.method)
        return "completion", latex_spelling(completion[-MAX_COMPLETION_CHARS:]), None, None


_default_pool: VerifierPool | None = None
_default_lock = threading.Lock()


def get_default_pool() -> VerifierPool:
    """The process-wide pool, started on first use and closed at exit."""
    global _default_pool
    with _default_lock:
        if _default_pool is None or _default_pool._pid != os.getpid():
            _default_pool = VerifierPool()
            atexit.register(_default_pool.close)
        return _default_pool


def grade_batch(pairs: Sequence[tuple[str, str]], *, extract: bool = True,
                timeout_s: float | None = None, progress: bool = False) -> list[Grade]:
    """Grade (gold, completion) pairs in input order with the default sandboxed pool.

    Safe to call from any thread. `timeout_s` overrides the pool's per-item limit for
    this call.
    """
    return get_default_pool().grade(pairs, extract=extract, timeout_s=timeout_s,
                                    progress=progress)
