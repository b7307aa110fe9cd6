"""Verifier workers that die, hang or run out of memory cost one verdict, never the run.

Workers are killed from outside (`os.kill` of the worker pid, read from the pool) while
they grade a slow item; the pool must charge that item alone, replace the worker and
grade everything after it. These tests look at the pool's private `_workers` to find
the pid of the busy worker; that is the only way to hit a worker mid-item on purpose.
"""

import json
import os
import resource
import signal
import threading
import time
from pathlib import Path

import pytest

from svs.verifiers.grader import HARD_GRACE_S, VerifierPool, grade_batch

# An item that keeps math-verify busy far beyond the timeouts used here (it hits any soft
# limit we set, see tests/test_hostile.py); its gold is used by no other item.
SLOW_GOLD = "1"
SLOW = (SLOW_GOLD, r"so the value is $\boxed{9^{9^{9^{9}}}}$")
NORMAL = [
    ("x+1", r"Rearranging gives $\boxed{1+x}$."),
    (r"\frac{1}{2}", r"Half of them: $\boxed{0.5}$."),
    ("[0,1)", r"The domain is $\boxed{[0,1]}$."),
    ("2x", r"Doubling gives $\boxed{x \cdot 2}$."),
]
NORMAL_EXPECTED = [(True, "correct"), (True, "correct"), (False, "wrong"), (True, "correct")]


def _verdicts(grades):
    return [(grade.correct, grade.reason) for grade in grades]


def _on_busy_worker(pool, action, gold=SLOW_GOLD, delay_s=0.3, limit_s=60.0):
    """Start a thread that calls `action(pid)` once a worker is `delay_s` into an item
    of `gold` (its reference answer already parsed)."""
    done = threading.Event()

    def watch():
        end = time.monotonic() + limit_s
        while time.monotonic() < end:
            for worker in list(pool._workers):
                chunk = worker.chunk
                if chunk is not None and chunk.gold == gold and chunk.gold_done:
                    time.sleep(delay_s)
                    action(worker.process.pid)
                    done.set()
                    return
            time.sleep(0.01)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread, done


def test_worker_killed_mid_item_is_replaced():
    with VerifierPool(workers=1, timeout_s=30.0) as pool:
        thread, killed = _on_busy_worker(pool, lambda pid: os.kill(pid, signal.SIGKILL))
        grades = pool.grade([SLOW, *NORMAL])
        thread.join(timeout=5)
        assert killed.is_set()
        assert (grades[0].correct, grades[0].reason) == (False, "worker_crash")
        assert "exit code" in grades[0].detail
        assert _verdicts(grades[1:]) == NORMAL_EXPECTED
        assert pool.restarts == 1
        # the replacement keeps working for later calls
        assert _verdicts(pool.grade(NORMAL)) == NORMAL_EXPECTED


def test_rest_of_the_chunk_is_graded_after_a_crash():
    # Same gold, so the slow item and the others travel in one chunk to one worker.
    same_gold = [(SLOW_GOLD, r"$\boxed{1}$"), (SLOW_GOLD, r"$\boxed{2}$"),
                 (SLOW_GOLD, r"$\boxed{\frac{2}{2}}$")]
    with VerifierPool(workers=1, timeout_s=30.0, fast_path=False) as pool:
        thread, killed = _on_busy_worker(pool, lambda pid: os.kill(pid, signal.SIGKILL))
        grades = pool.grade([SLOW, *same_gold])
        thread.join(timeout=5)
        assert killed.is_set()
    assert _verdicts(grades) == [(False, "worker_crash"), (True, "correct"), (False, "wrong"),
                                 (True, "correct")]


def test_hung_worker_is_killed_at_the_hard_deadline():
    # SIGSTOP freezes the worker the way C code that ignores the soft timer would.
    timeout_s = 1.0
    with VerifierPool(workers=1, timeout_s=timeout_s) as pool:
        thread, stopped = _on_busy_worker(pool, lambda pid: os.kill(pid, signal.SIGSTOP))
        start = time.monotonic()
        grades = pool.grade([SLOW])
        elapsed = time.monotonic() - start
        thread.join(timeout=5)
        assert stopped.is_set()
        assert (grades[0].correct, grades[0].reason) == (False, "timeout")
        assert grades[0].detail == f"killed after {timeout_s + HARD_GRACE_S:g}s"
        assert pool.restarts == 1
        # the deadline, not the 30 s soft limits of other tests, ended it
        assert elapsed < 10 * (timeout_s + HARD_GRACE_S)
        assert _verdicts(pool.grade(NORMAL)) == NORMAL_EXPECTED


def test_worker_that_died_while_idle_is_replaced_before_use():
    # Regression: the dead worker's chunk used to go to a replacement that was not yet
    # ready; its "ready" message reset the deadline to infinity and the next wait raised
    # OverflowError, in this call and in every later one.
    with VerifierPool(workers=1, timeout_s=0.5) as pool:
        assert _verdicts(pool.grade(NORMAL[:1])) == NORMAL_EXPECTED[:1]
        worker = pool._workers[0]
        os.kill(worker.process.pid, signal.SIGKILL)
        worker.process.wait(timeout=10)
        assert _verdicts(pool.grade(NORMAL)) == NORMAL_EXPECTED
        assert _verdicts(pool.grade(NORMAL)) == NORMAL_EXPECTED


class _Interrupt(Exception):
    """Stands in for Ctrl-C arriving while a batch is being graded."""


def test_interrupted_batch_does_not_leak_into_the_next(monkeypatch):
    # Regression: after an interrupted call, a worker still on its chunk answered into
    # the next call's results (task ids restart at 0), giving silently wrong verdicts.
    with VerifierPool(workers=2, timeout_s=3.0, fast_path=False) as pool:
        collect = pool._collect

        def collect_then_interrupt(*args):
            collect(*args)
            if any(w.chunk is not None and w.chunk.gold_done for w in pool._workers):
                raise _Interrupt

        monkeypatch.setattr(pool, "_collect", collect_then_interrupt)
        with pytest.raises(_Interrupt):
            pool.grade([SLOW, (SLOW_GOLD, r"$\boxed{5}$")])
        monkeypatch.undo()
        later = [("y+2", "2+y"), ("y+2", "y+2"), ("3z", "z")]
        assert _verdicts(pool.grade(later, extract=False)) == [
            (True, "correct"), (True, "correct"), (False, "wrong")]


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
def test_memory_blowup_costs_one_verdict():
    """Answers whose evaluation needs hundreds of MB, under a tight memory limit.

    math-verify catches `MemoryError` (it is an `Exception`) inside parse and verify and
    returns False, so most blow-ups come back as `wrong`; a MemoryError outside its
    handlers kills the worker (`worker_crash`), a slow one hits the deadline (`timeout`).
    Either way the caller survives and the next items are graded.
    """
    with VerifierPool(workers=1, timeout_s=2.0) as pool:
        pool.grade([("x+1", "1+x")], extract=False)  # a pair the fast path leaves to a worker
        pid = pool._workers[0].process.pid
        status = Path(f"/proc/{pid}/status").read_text()
        size_kb = next(int(line.split()[1]) for line in status.splitlines()
                       if line.startswith("VmSize:"))
        # 2^(2^30) is a 128 MB integer; 20 MB above the worker's current size is far short.
        limit = (size_kb + 20 * 1024) * 1024
        resource.prlimit(pid, resource.RLIMIT_AS, (limit, limit))
        bombs = [("1", r"$\boxed{2^{2^{30}}}$"), ("1", r"$\boxed{2^{2^{32}}}$")]
        grades = pool.grade([*bombs, *NORMAL])
    for grade in grades[:len(bombs)]:
        assert not grade.correct
        assert grade.reason in {"wrong", "worker_crash", "timeout"}, grade
    assert _verdicts(grades[len(bombs):]) == NORMAL_EXPECTED


def test_grade_batch_from_four_threads():
    table = Path(__file__).parent / "data" / "verifier_regression.jsonl"
    rows = [json.loads(line) for line in table.read_text(encoding="utf-8").splitlines()]
    slices = [rows[start::4] for start in range(4)]
    results: dict[int, list] = {}
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def run(index):
        try:
            barrier.wait(timeout=30)
            pairs = [(row["gold"], row["completion"]) for row in slices[index]]
            results[index] = _verdicts(grade_batch(pairs, timeout_s=5.0))
        except BaseException as exc:  # re-raised in the test's thread below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(index,)) for index in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    for index, part in enumerate(slices):
        assert results[index] == [(row["expected_correct"], row["expected_reason"])
                                  for row in part]
