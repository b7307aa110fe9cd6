"""Per-response grade calls from many threads share the workers (verl's reward threads,
OpenRLHF's `asyncio.to_thread`), and a hung item costs only its own caller.

Timing bounds are generous and relative to the soft limit: a normal call must end well
before a hostile item's timeout would, never a tight speed ratio.
"""

import asyncio
import threading
import time

import pytest

from svs.verifiers.grader import HARD_GRACE_S, VerifierPool

TIMEOUT_S = 4.0
HOSTILE = ("1", r"so the value is $\boxed{9^{9^{9^{9}}}}$")  # runs to its soft limit
# each needs a worker: the fast path does not decide symbolic answers
NORMAL = [(f"x+{k}", f"Rearranging, the expression is $\\boxed{{{k}+x}}$.") for k in range(8)]


def _busy_workers(pool) -> int:
    return sum(worker.chunk is not None for worker in list(pool._workers))


def _wait_until_busy(pool, count: int, limit_s: float = 60.0) -> None:
    end = time.monotonic() + limit_s
    while _busy_workers(pool) < count:
        assert time.monotonic() < end, "the hostile item never reached a worker"
        time.sleep(0.01)


@pytest.fixture
def pool():
    with VerifierPool(workers=2, timeout_s=TIMEOUT_S) as shared:
        shared.grade([("2x", "x \\cdot 2")], extract=False)  # start the workers
        yield shared


def test_a_hung_item_costs_only_its_own_caller(pool):
    results: dict[str, tuple] = {}

    def call(name, pair):
        start = time.monotonic()
        grade = pool.grade([pair])[0]
        results[name] = (grade, time.monotonic() - start)

    hostile = threading.Thread(target=call, args=("hostile", HOSTILE))
    hostile.start()
    _wait_until_busy(pool, 1)
    normal = [threading.Thread(target=call, args=(f"normal{k}", pair))
              for k, pair in enumerate(NORMAL)]
    for thread in normal:
        thread.start()
    for thread in normal:
        thread.join(timeout=60)
    # every normal caller is done while the hostile item is still on its worker
    assert hostile.is_alive()
    hostile.join(timeout=60)
    for k in range(len(NORMAL)):
        grade, elapsed = results[f"normal{k}"]
        assert (grade.correct, grade.reason, grade.method) == (True, "correct", "boxed")
        assert elapsed < TIMEOUT_S, f"normal call {k} waited {elapsed:.2f}s for the hung item"
    grade, elapsed = results["hostile"]
    assert grade.reason in {"timeout", "wrong"} and not grade.correct
    assert elapsed < TIMEOUT_S + HARD_GRACE_S + 2.0


def test_concurrent_calls_use_all_workers(pool):
    """Two callers with one slow item each: both workers are busy at the same moment
    (one lock per batch would run the second call after the first)."""
    most_busy = 0
    stop = threading.Event()

    def watch():
        nonlocal most_busy
        while not stop.is_set():
            most_busy = max(most_busy, _busy_workers(pool))
            time.sleep(0.005)

    watcher = threading.Thread(target=watch)
    watcher.start()
    slow = [("1", r"$\boxed{9^{9^{9^{9}}}}$"), ("2", r"$\boxed{2^{2^{2^{2^{2^{2}}}}}}$")]
    grades: list = [None, None]

    def call(index):
        grades[index] = pool.grade([slow[index]], timeout_s=1.0)[0]

    callers = [threading.Thread(target=call, args=(index,)) for index in range(2)]
    for thread in callers:
        thread.start()
    for thread in callers:
        thread.join(timeout=60)
    stop.set()
    watcher.join()
    assert most_busy == 2
    assert all(grade is not None and not grade.correct for grade in grades)


def test_to_thread_calls_from_asyncio(pool):
    """OpenRLHF calls the reward per query through `asyncio.to_thread`."""

    async def main():
        return await asyncio.gather(*(asyncio.to_thread(pool.grade, [pair]) for pair in NORMAL))

    grades = [batch[0] for batch in asyncio.run(main())]
    assert [(g.correct, g.reason) for g in grades] == [(True, "correct")] * len(NORMAL)
