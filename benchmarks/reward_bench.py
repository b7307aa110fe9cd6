"""Reward functions as the trainers call them, against a plain math-verify loop.

Uses the realistic batch of `verify_bench.py` (1-2 KB completions, a mix of answer
kinds, answers repeating within a problem) and scores it:

  (a) baseline: math-verify `parse` + `verify` per rollout, in-process, one core (what
      a hand-written verl reward does; it cannot run off the main thread);
  (b) verl `compute_score`, one call per response from one thread;
  (c) verl `compute_score`, one call per response from 8 threads at once (verl 0.9's
      `NaiveRewardManager` runs each call in its event loop's thread pool);
  (d) `compute_score_batch` over the whole batch;
  (e) TRL `math_reward`, one call per GRPO batch of 64 completions;
  (f) the same per-response calls as (c), 8 threads, each sending its response to plain
      math-verify (`parse` + `verify`) in a process pool as large as the reward pool.

Prints throughput, the ratio to the baseline and agreement with it; the last line is
the concurrent headline, (c) against (f). The reward pool
size is `SVS_REWARD_WORKERS` (default 2) per process; each variant starts with freshly
started workers (their parse caches empty).

    python benchmarks/reward_bench.py [--problems 100] [--rollouts 8] [--seed 0]
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from verify_bench import make_batch, run_baseline  # noqa: E402

from svs.trainer_bridge.rewards import (  # noqa: E402
    compute_score,
    compute_score_batch,
    math_reward,
    reward_pool,
)


def fresh_pool() -> None:
    """Restart the reward pool's workers and wait until they answer: the workers cache
    parsed answers, so every variant starts from empty caches, start-up not timed."""
    pool = reward_pool()
    pool.close()
    warm = [(f"\\sqrt{{{k}}}", f"\\boxed{{{k}^{{1/2}}}}") for k in range(2, 2 + pool.n_workers)]
    compute_score_batch(["warm"] * len(warm), [c for _, c in warm], [g for g, _ in warm])


def plain_math_verify(gold: str, completion: str) -> bool:
    """One response checked by plain math-verify (in a process pool's worker)."""
    from math_verify import parse, verify

    logging.disable(logging.WARNING)
    return bool(verify(parse("$" + gold + "$"), parse(completion)))


def timed(label: str, fn, n: int, baseline_rate: float, baseline_verdicts,
          fresh: bool = True) -> float:
    if fresh:
        fresh_pool()
    start = time.perf_counter()
    verdicts = fn()
    elapsed = time.perf_counter() - start
    rate = n / elapsed
    agree = sum(a == b for a, b in zip(verdicts, baseline_verdicts, strict=True))
    print(f"{label:<44} {rate:8.0f} /s  x{rate / baseline_rate:6.2f}  "
          f"agree {agree}/{n}")
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", type=int, default=100)
    parser.add_argument("--rollouts", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=int, default=5)
    args = parser.parse_args()
    logging.disable(logging.WARNING)  # math-verify logs every parse failure

    pairs = make_batch(args.problems, args.rollouts, args.seed)
    golds = [gold for gold, _ in pairs]
    completions = [completion for _, completion in pairs]
    n = len(pairs)
    print(f"{n} rollouts ({args.problems} problems x {args.rollouts}); "
          f"reward pool: {reward_pool().n_workers} sandbox workers")

    baseline, _, elapsed = run_baseline(pairs, args.timeout)
    base_rate = n / elapsed
    print(f"{'(a) baseline: math-verify in-process, 1 core':<44} {base_rate:8.0f} /s  x  1.00")

    def one(index: int) -> bool:
        return compute_score("svs", completions[index], golds[index])["acc"]

    timed("(b) verl compute_score, 1 thread", lambda: [one(i) for i in range(n)],
          n, base_rate, baseline)

    def threaded() -> list[bool]:
        with ThreadPoolExecutor(max_workers=8) as pool:
            return list(pool.map(one, range(n)))

    threaded_rate = timed("(c) verl compute_score, 8 threads", threaded, n, base_rate, baseline)
    timed("(d) verl compute_score_batch, whole batch",
          lambda: [r["acc"] for r in compute_score_batch(["svs"] * n, completions, golds)],
          n, base_rate, baseline)

    def trl() -> list[bool]:
        out: list[bool] = []
        for start in range(0, n, 64):
            out += [r == 1.0 for r in math_reward(completions[start:start + 64],
                                                   golds[start:start + 64])]
        return out

    timed("(e) TRL math_reward, batches of 64", trl, n, base_rate, baseline)

    size = reward_pool().n_workers
    with ProcessPoolExecutor(max_workers=size) as processes:
        list(processes.map(plain_math_verify, ["1"] * size * 2, ["$1$"] * size * 2))  # started

        def plain_threaded() -> list[bool]:
            with ThreadPoolExecutor(max_workers=8) as threads:
                return list(threads.map(
                    lambda i: processes.submit(plain_math_verify, golds[i], completions[i]).result(),
                    range(n)))

        plain_rate = timed(f"(f) plain math-verify, 8 threads, {size} processes", plain_threaded,
                           n, base_rate, baseline, fresh=False)
    print(f"concurrent per-response rewards, 8 threads, {size} workers: svs compute_score "
          f"{threaded_rate:.0f}/s vs plain math-verify process pool {plain_rate:.0f}/s, "
          f"ratio {threaded_rate / plain_rate:.1f}")


if __name__ == "__main__":
    main()
