"""Bulk answer grading: extraction here, equivalence in sandboxed worker processes.

What this adds to math-verify (which does the equivalence itself):
- a pool of worker processes with a hard per-item deadline: a worker that hangs in C
  code, crashes or runs out of memory is killed and replaced, and only the item it was
  on gets `timeout` / `worker_crash` (math-verify's own timeout uses `signal.alarm`,
  which only works on a main thread and cannot interrupt C code);
- each distinct gold answer is parsed once per worker and batch, each distinct
  (gold, extracted answer) pair is verified once, results fan back out to every input;
- work is spread over the cores; results come back in input order.

Reasons on a `Grade`: correct, wrong, no_answer, timeout, worker_crash, bad_gold,
unsafe_input, answer_too_long.
"""

from __future__ import annotations

import atexit
import math
import os
import socket
import subprocess
import sys
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait

from svs.verifiers.answers import canonical_answer, extract_answer, fast_equivalence, strip_gold

HARD_GRACE_S = 1.0  # the parent kills a worker this long after its soft deadline
STARTUP_TIMEOUT_S = 120.0  # importing sympy + math-verify on a loaded machine


@dataclass(frozen=True)
class Grade:
    """The verdict on one (gold, completion) pair."""

    correct: bool
    reason: str
    extracted: str | None
    detail: str = ""
    flagged: bool = False  # the answer came from the last-number fallback: may be a guess

    @property
    def ok(self) -> bool:
        return self.correct


class _Worker:
    def __init__(self, memory_mb: int, cpu_seconds: int) -> None:
        parent_sock, child_sock = socket.socketpair()
        child_fd = child_sock.fileno()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "svs.verifiers.sandbox", str(child_fd), str(memory_mb),
             str(cpu_seconds)],
            pass_fds=(child_fd,), stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )
        child_sock.close()
        self.conn = Connection(parent_sock.detach())
        self.chunk: _Chunk | None = None
        self.ready = False
        self.deadline = time.monotonic() + STARTUP_TIMEOUT_S

    @property
    def exitcode(self) -> int | None:
        return self.process.poll()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        self.conn.close()


@dataclass
class _Chunk:
    gold: str
    items: list[tuple[int, str]]  # (task_id, answer) not yet answered
    gold_done: bool = False


class VerifierPool:
    """A pool of sandboxed math-verify workers. Thread-safe; use as a context manager.

    workers: processes to run (default: the cores this process may use).
    timeout_s: soft limit per item (and per gold parse); the hard kill follows 1 s later.
    memory_mb: address-space limit per worker.
    fast_path: settle exact plain-text cases (`verifiers.answers.fast_equivalence`)
        without a worker; off, every distinct pair goes to math-verify.
    """

    def __init__(self, workers: int | None = None, timeout_s: float = 5.0,
                 memory_mb: int = 4096, chunk_size: int = 32, fast_path: bool = True) -> None:
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be > 0, got {timeout_s}")
        if workers is not None and workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self.n_workers = workers or max(1, len(os.sched_getaffinity(0)))
        self.timeout_s = timeout_s
        self.memory_mb = memory_mb
        self.chunk_size = chunk_size
        self.fast_path = fast_path
        # Hard CPU cap per worker lifetime; generous, it only stops runaway workers.
        self.cpu_seconds = 0
        self._workers: list[_Worker] = []
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self.restarts = 0
        self._timeout_s = timeout_s

    # -- lifecycle -------------------------------------------------------------
    def _spawn(self) -> _Worker:
        return _Worker(self.memory_mb, self.cpu_seconds)

    def _ensure_started(self) -> None:
        if self._pid != os.getpid():  # inherited through fork: the workers are not ours
            self._workers, self._pid = [], os.getpid()
        while len(self._workers) < self.n_workers:
            self._workers.append(self._spawn())

    def close(self) -> None:
        with self._lock:
            for worker in self._workers:
                try:
                    worker.conn.send(("stop",))
                except (OSError, ValueError):
                    pass
            for worker in self._workers:
                try:
                    worker.process.wait(timeout=2)
                except subprocess.TimeoutExpired:
                    pass
                worker.kill()
            self._workers = []

    def __enter__(self) -> VerifierPool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- grading ---------------------------------------------------------------
    def grade(self, pairs: Sequence[tuple[str, str]], *, extract: bool = True,
              timeout_s: float | None = None, progress: bool = False) -> list[Grade]:
        """Grade (gold, completion) pairs; with extract=False the second item is the answer.

        `timeout_s` overrides the pool's per-item limit for this call.
        """
        timeout_s = self.timeout_s if timeout_s is None else timeout_s
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be > 0, got {timeout_s}")
        extracted: list[str | None] = []
        flagged: list[bool] = []
        for _, completion in pairs:
            if extract:
                found = extract_answer(completion if isinstance(completion, str) else "")
                extracted.append(found.answer)
                flagged.append(found.flagged)
            else:
                text = completion.strip() if isinstance(completion, str) else ""
                extracted.append(text or None)
                flagged.append(False)

        # De-duplicate: one task per distinct canonical (gold, answer), grouped by gold;
        # pairs that plain text comparison settles never reach a worker.
        keys: list[tuple[str, str] | None] = []
        settled: dict[tuple[str, str], tuple[bool, str, str]] = {}
        task_of: dict[tuple[str, str], int] = {}
        by_gold: OrderedDict[str, list[tuple[int, str]]] = OrderedDict()
        for (gold, _), answer in zip(pairs, extracted, strict=True):
            if answer is None:
                keys.append(None)
                continue
            gold_text = strip_gold(gold)
            key = (canonical_answer(gold_text), canonical_answer(answer))
            keys.append(key)
            if key in settled or key in task_of:
                continue
            fast = fast_equivalence(gold_text, answer) if self.fast_path else None
            if fast is not None:
                settled[key] = (fast, "correct" if fast else "wrong", "")
                continue
            task_of[key] = len(task_of)
            by_gold.setdefault(key[0], []).append((task_of[key], key[1]))
        results = self._run(by_gold, len(task_of), timeout_s, progress) if task_of else {}

        grades = []
        for key, answer, guess in zip(keys, extracted, flagged, strict=True):
            if key is None:
                grades.append(Grade(False, "no_answer", None, "no final answer found"))
                continue
            correct, reason, detail = settled[key] if key in settled else results[task_of[key]]
            grades.append(Grade(correct, reason, answer, detail, flagged=guess))
        return grades

    def _run(self, by_gold, n_tasks: int, timeout_s: float,
             progress: bool) -> dict[int, tuple[bool, str, str]]:
        queue: deque[_Chunk] = deque()
        for gold, items in by_gold.items():
            for start in range(0, len(items), self.chunk_size):
                queue.append(_Chunk(gold, items[start:start + self.chunk_size]))
        results: dict[int, tuple[bool, str, str]] = {}
        bar = _progress(n_tasks) if progress else None
        with self._lock:
            self._ensure_started()
            self._timeout_s = timeout_s
            try:
                while queue or any(w.chunk for w in self._workers):
                    self._dispatch(queue)
                    self._collect(queue, results, bar)
            except BaseException:
                # Interrupted (Ctrl-C, an error): a worker still on a chunk would answer
                # into the next batch's results, whose task ids restart at 0.
                for index, worker in enumerate(self._workers):
                    if worker.chunk is not None:
                        worker.kill()
                        self._workers[index] = self._spawn()
                raise
            finally:
                if bar is not None:
                    bar.stop()
        return results

    def _dispatch(self, queue: deque[_Chunk]) -> None:
        for index, worker in enumerate(self._workers):
            if worker.ready and worker.chunk is None and queue:
                chunk = queue.popleft()
                try:
                    if worker.exitcode is not None:
                        raise OSError("worker exited while idle")
                    worker.conn.send(("chunk", chunk.gold, chunk.items, self._timeout_s))
                except (OSError, ValueError):
                    # Died while idle: replace it and give the chunk to a worker that is
                    # ready (the replacement's "ready" would reset a running deadline).
                    worker.kill()
                    self._workers[index] = self._spawn()
                    queue.appendleft(chunk)
                    continue
                worker.chunk = chunk
                worker.deadline = time.monotonic() + self._timeout_s + HARD_GRACE_S

    def _collect(self, queue, results, bar) -> None:
        busy = [w for w in self._workers if w.chunk is not None or not w.ready]
        timeout = max(0.0, min(w.deadline for w in busy) - time.monotonic())
        ready = wait([w.conn for w in busy], timeout=timeout)
        now = time.monotonic()
        for worker in busy:
            if worker.conn in ready:
                try:
                    message = worker.conn.recv()
                except (EOFError, OSError):
                    self._replace(worker, queue, results, bar, "worker_crash",
                                  f"worker died (exit code {worker.exitcode})")
                    continue
                self._handle(worker, message, queue, results, bar)
            elif now >= worker.deadline and not worker.ready:
                raise RuntimeError(
                    f"a verifier worker did not start within {STARTUP_TIMEOUT_S:g}s; "
                    "check that `python -m verifiers.sandbox` can import math_verify")
            elif now >= worker.deadline:
                self._replace(worker, queue, results, bar, "timeout",
                              f"killed after {self._timeout_s + HARD_GRACE_S:g}s")

    def _handle(self, worker, message, queue, results, bar) -> None:
        chunk = worker.chunk
        kind = message[0]
        if kind == "ready":
            worker.ready = True
            worker.deadline = math.inf
            return
        if kind == "gold":
            _, ok, detail = message
            if not ok:
                self._finish_all(chunk, results, bar, "bad_gold", detail)
                worker.chunk = None
                return
            chunk.gold_done = True
        elif kind == "item":
            _, task_id, correct, reason, detail = message
            results[task_id] = (correct, reason, detail)
            chunk.items = [item for item in chunk.items if item[0] != task_id]
            if bar is not None:
                bar.advance()
        elif kind == "fatal":
            self._replace(worker, queue, results, bar, "worker_crash", message[1])
            return
        if chunk.gold_done and not chunk.items:
            worker.chunk = None
        else:
            worker.deadline = time.monotonic() + self._timeout_s + HARD_GRACE_S

    def _replace(self, worker, queue, results, bar, reason: str, detail: str) -> None:
        """Kill `worker`, charge its current item, requeue the rest of its chunk."""
        chunk = worker.chunk
        worker.kill()
        if chunk is None:
            raise RuntimeError(
                f"a verifier worker exited during start-up ({detail}); "
                "check that `python -m verifiers.sandbox` can import math_verify")
        self.restarts += 1
        self._workers[self._workers.index(worker)] = self._spawn()
        if not chunk.gold_done:
            self._finish_all(chunk, results, bar, "bad_gold" if reason == "timeout" else reason,
                             "reference answer: " + detail)
            return
        task_id, _ = chunk.items[0]
        results[task_id] = (False, reason, detail)
        if bar is not None:
            bar.advance()
        if len(chunk.items) > 1:
            queue.appendleft(_Chunk(chunk.gold, chunk.items[1:]))

    @staticmethod
    def _finish_all(chunk, results, bar, reason: str, detail: str) -> None:
        for task_id, _ in chunk.items:
            results[task_id] = (False, reason, detail)
            if bar is not None:
                bar.advance()


def _progress(total: int):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    progress = Progress("[progress.description]{task.description}", BarColumn(),
                        MofNCompleteColumn(), TimeRemainingColumn(), transient=False)
    task = progress.add_task("verifying answers", total=total)
    progress.start()

    class _Bar:
        def advance(self) -> None:
            progress.advance(task)

        def stop(self) -> None:
            progress.stop()

    return _Bar()


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
