"""The sandboxed worker processes behind `VerifierPool`, and the scheduler that shares
them between concurrent calls.

Each worker is a fresh interpreter (`python -m svs.verifiers.sandbox`) with an
address-space limit; the parent kills it `HARD_GRACE_S` after an item's soft deadline
and starts a new one, charging only that item (`timeout`, `worker_crash`). Calls from
many threads put their chunks on one queue; one calling thread at a time drives every
worker for everybody (`_drive`), and each result goes back to its own call.
"""

from __future__ import annotations

import math
import os
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait

HARD_GRACE_S = 1.0  # the parent kills a worker this long after its soft deadline
STARTUP_TIMEOUT_S = 120.0  # importing sympy + math-verify on a loaded machine


class Worker:
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
        self.chunk: Chunk | None = None
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


class Call:
    """One `grade` call's tasks: results land here, whichever thread drives the pool."""

    def __init__(self, n_tasks: int, timeout_s: float, bar) -> None:
        self.results: dict[int, tuple] = {}
        self.pending = n_tasks
        self.timeout_s = timeout_s
        self.bar = bar
        self.done = threading.Event()
        self.cancelled = False
        self.error: BaseException | None = None
        if n_tasks == 0:
            self.done.set()

    def finish(self, task_id: int, result: tuple) -> None:
        if task_id in self.results:
            return
        self.results[task_id] = result
        self.pending -= 1
        if self.bar is not None:
            self.bar.advance()
        if self.pending <= 0:
            self.done.set()


@dataclass
class Chunk:
    gold: str
    items: list[tuple[int, str, str]]  # (task_id, kind, text) not yet answered
    call: Call
    gold_done: bool = False


# (correct, reason, detail, extracted, method): what a worker says about one task
Result = tuple[bool, str, str, "str | None", "str | None"]


class WorkerPool:
    """Worker processes and the scheduler: `_run` grades a call's chunks (gold, items)
    and returns {task id: result}. `VerifierPool` (grader.py) plans the work."""

    def __init__(self, workers: int | None = None, timeout_s: float = 5.0,
                 memory_mb: int = 4096, chunk_size: int = 32) -> None:
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be > 0, got {timeout_s}")
        if workers is not None and workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self.n_workers = workers or max(1, len(os.sched_getaffinity(0)))
        self.timeout_s = timeout_s
        self.memory_mb = memory_mb
        self.chunk_size = chunk_size
        # Hard CPU cap per worker lifetime; generous, it only stops runaway workers.
        self.cpu_seconds = 0
        self._workers: list[Worker] = []
        self._drive_lock = threading.Lock()  # held by the thread driving the workers
        self._queue_lock = threading.Lock()  # guards _queue (any thread appends)
        self._queue: deque[Chunk] = deque()
        self._wake_read, self._wake_write = socket.socketpair()
        self._wake_read.setblocking(False)
        self._pid = os.getpid()
        self.restarts = 0

    # -- lifecycle -------------------------------------------------------------
    def _spawn(self) -> Worker:
        return Worker(self.memory_mb, self.cpu_seconds)

    def _ensure_started(self) -> None:
        if self._pid != os.getpid():  # inherited through fork: the workers are not ours
            self._workers, self._pid = [], os.getpid()
        while len(self._workers) < self.n_workers:
            self._workers.append(self._spawn())

    def close(self) -> None:
        with self._drive_lock:
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

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _run(self, by_gold, n_tasks: int, timeout_s: float,
             progress: bool) -> dict[int, Result]:
        bar = progress_bar(n_tasks) if progress else None
        call = Call(n_tasks, timeout_s, bar)
        # A gold's items are spread over the workers (a few slow ones must not queue on
        # one worker); each worker parses that gold once and caches it.
        chunks = []
        for gold, items in by_gold.items():
            size = max(1, min(self.chunk_size, -(-len(items) // self.n_workers)))
            chunks += [Chunk(gold, items[start:start + size], call)
                       for start in range(0, len(items), size)]
        with self._queue_lock:
            self._queue.extend(chunks)
        self._wake()
        try:
            # Drive the workers when nobody does; otherwise wait for the driver to finish
            # this call (the event wakes us at once) or to hand over (polled).
            while not call.done.is_set():
                if self._drive_lock.acquire(blocking=False):
                    try:
                        self._drive(call)
                    finally:
                        self._drive_lock.release()
                else:
                    call.done.wait(0.005)
        except BaseException:
            # Interrupted (Ctrl-C, an error): drop this call's queued chunks; the driver
            # replaces workers still on its chunks (their answers belong to no one).
            call.cancelled = True
            with self._queue_lock:
                self._queue = deque(c for c in self._queue if c.call is not call)
            if self._drive_lock.acquire(blocking=False):
                try:
                    self._drop_cancelled()
                finally:
                    self._drive_lock.release()
            raise
        finally:
            if bar is not None:
                bar.stop()
        if call.error is not None:
            raise call.error
        return call.results

    def _wake(self) -> None:
        try:
            self._wake_write.send(b"x")
        except OSError:
            pass

    def _drive(self, call: Call) -> None:
        """Run the workers for every caller until `call` is done (drive lock held)."""
        self._ensure_started()
        try:
            while not call.done.is_set():
                self._drop_cancelled()
                self._dispatch()
                self._collect()
        except BaseException as exc:
            if isinstance(exc, RuntimeError):  # the pool cannot start: every caller fails
                for worker in self._workers:
                    if worker.chunk is not None:
                        worker.chunk.call.error = exc
                        worker.chunk.call.done.set()
                with self._queue_lock:
                    for chunk in self._queue:
                        chunk.call.error = exc
                        chunk.call.done.set()
                    self._queue.clear()
            call.cancelled = True
            self._drop_cancelled()
            raise

    def _drop_cancelled(self) -> None:
        for index, worker in enumerate(self._workers):
            if worker.chunk is not None and worker.chunk.call.cancelled:
                worker.kill()
                self._workers[index] = self._spawn()

    def _dispatch(self) -> None:
        for index, worker in enumerate(self._workers):
            if not (worker.ready and worker.chunk is None):
                continue
            with self._queue_lock:
                if not self._queue:
                    return
                chunk = self._queue.popleft()
            try:
                if worker.exitcode is not None:
                    raise OSError("worker exited while idle")
                worker.conn.send(("chunk", chunk.gold, chunk.items, chunk.call.timeout_s))
            except (OSError, ValueError):
                # Died while idle: replace it and give the chunk to a worker that is
                # ready (the replacement's "ready" would reset a running deadline).
                worker.kill()
                self._workers[index] = self._spawn()
                with self._queue_lock:
                    self._queue.appendleft(chunk)
                continue
            worker.chunk = chunk
            worker.deadline = time.monotonic() + chunk.call.timeout_s + HARD_GRACE_S

    def _collect(self) -> None:
        busy = [w for w in self._workers if w.chunk is not None or not w.ready]
        deadlines = [w.deadline for w in busy]
        # nothing running: wait for a new chunk (the wake socket), re-checking now and then
        timeout = max(0.0, min(deadlines) - time.monotonic()) if deadlines else 0.05
        ready = wait([w.conn for w in busy] + [self._wake_read], timeout=timeout)
        if self._wake_read in ready:
            try:
                while self._wake_read.recv(4096):
                    pass
            except (BlockingIOError, OSError):
                pass
        now = time.monotonic()
        for worker in busy:
            if worker.conn in ready:
                try:
                    message = worker.conn.recv()
                except (EOFError, OSError):
                    self._replace(worker, "worker_crash",
                                  f"worker died (exit code {worker.exitcode})")
                    continue
                self._handle(worker, message)
            elif now >= worker.deadline and not worker.ready:
                raise RuntimeError(
                    f"a verifier worker did not start within {STARTUP_TIMEOUT_S:g}s; "
                    "check that `python -m svs.verifiers.sandbox` can import math_verify")
            elif now >= worker.deadline:
                self._replace(worker, "timeout",
                              f"killed after {worker.chunk.call.timeout_s + HARD_GRACE_S:g}s")

    def _handle(self, worker, message) -> None:
        chunk = worker.chunk
        kind = message[0]
        if kind == "ready":
            worker.ready = True
            worker.deadline = math.inf
            return
        if kind == "gold":
            _, ok, detail = message
            if not ok:
                self._finish_all(chunk, "bad_gold", detail)
                worker.chunk = None
                return
            chunk.gold_done = True
        elif kind == "item":
            _, task_id, *result = message
            chunk.call.finish(task_id, tuple(result))
            chunk.items = [item for item in chunk.items if item[0] != task_id]
        elif kind == "fatal":
            self._replace(worker, "worker_crash", message[1])
            return
        if chunk.gold_done and not chunk.items:
            worker.chunk = None
        else:
            worker.deadline = time.monotonic() + chunk.call.timeout_s + HARD_GRACE_S

    def _replace(self, worker, reason: str, detail: str) -> None:
        """Kill `worker`, charge its current item, requeue the rest of its chunk."""
        chunk = worker.chunk
        worker.kill()
        if chunk is None:
            raise RuntimeError(
                f"a verifier worker exited during start-up ({detail}); "
                "check that `python -m svs.verifiers.sandbox` can import math_verify")
        self.restarts += 1
        self._workers[self._workers.index(worker)] = self._spawn()
        if not chunk.gold_done:
            self._finish_all(chunk, "bad_gold" if reason == "timeout" else reason,
                             "reference answer: " + detail)
            return
        task_id = chunk.items[0][0]
        chunk.call.finish(task_id, (False, reason, detail, None, None))
        if len(chunk.items) > 1:
            with self._queue_lock:
                self._queue.appendleft(Chunk(chunk.gold, chunk.items[1:], chunk.call))

    @staticmethod
    def _finish_all(chunk, reason: str, detail: str) -> None:
        for task_id, _, _ in chunk.items:
            chunk.call.finish(task_id, (False, reason, detail, None, None))




def progress_bar(total: int):
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
