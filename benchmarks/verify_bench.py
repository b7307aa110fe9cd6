"""Bulk verification: svs's batch API against a plain sequential math-verify loop.

Builds a realistic batch (default 200 problems x 16 rollouts, completions of 1-2 KB of
worked solution, answers repeating within a problem the way real rollouts do: 3-5
distinct answers per problem, about 40% of rollouts wrong, a mix of answer types:
integers, decimals with and without a leading digit, fractions, radicals, multiples of
pi written several ways, polynomials, intervals, sets, tuples, equations, percents,
thousands separators; answer endings in the shapes models use) and grades it:

  (a) baseline: for every rollout, math-verify `parse(gold)`, `parse(completion)`,
      `verify(gold, pred)`, one after another on one core;
  (b) svs: `VerifierPool.grade` over all pairs on the available cores, timed from a
      warm pool as a trainer sees it (the workers' start-up is reported separately as
      the cold start).

Prints the ablation without the exact fast paths, then the headline as the last line:
both throughputs, identical verdicts and the ratio (target >= 10). Items where the
baseline itself hit its timeout are excluded from the comparison and counted.

    python benchmarks/verify_bench.py [--problems 200] [--rollouts 16] [--seed 0]
"""

from __future__ import annotations

import argparse
import logging
import random
import statistics
import time

# (gold as written in a dataset, equivalent correct surface forms, wrong answers)
ANSWER_KINDS = [
    lambda r: _integer(r),
    lambda r: _fraction(r),
    lambda r: _decimal(r),
    lambda r: _radical(r),
    lambda r: _pi_multiple(r),
    lambda r: _interval(r),
    lambda r: _set(r),
    lambda r: _tuple(r),
    lambda r: _equation(r),
    lambda r: _percent(r),
    lambda r: _thousands(r),
    lambda r: _pi_fraction(r),
    lambda r: _polynomial(r),
    lambda r: _small_decimal(r),
]


def _integer(r):
    n = r.randint(-200, 999)
    return str(n), [str(n), f"{n}.0" if r.random() < 0.2 else str(n)], [str(n + 1), str(-n), str(n * 2 + 3)]


def _fraction(r):
    a, b = r.randint(1, 19), r.randint(2, 23)
    while a % b == 0:
        b += 1
    return f"\\frac{{{a}}}{{{b}}}", [f"\\frac{{{a}}}{{{b}}}", f"{a}/{b}", f"\\dfrac{{{a}}}{{{b}}}"], [
        f"\\frac{{{b}}}{{{a}}}", f"\\frac{{{a + 1}}}{{{b}}}", f"{a}/{b + 1}"]


def _decimal(r):
    v = round(r.uniform(0, 100), 2)
    return f"{v}", [f"{v}", f"{v:.3f}"], [f"{v + 0.1:.2f}", f"{v * 10:.1f}", f"{-v}"]


def _radical(r):
    k, m = r.randint(2, 9), r.choice([2, 3, 5, 6, 7])
    return f"{k}\\sqrt{{{m}}}", [f"{k}\\sqrt{{{m}}}", f"\\sqrt{{{k * k * m}}}", f"{k}\\sqrt{m}"], [
        f"{k}\\sqrt{{{m + 1}}}", f"{k + 1}\\sqrt{{{m}}}", f"\\sqrt{{{k * m}}}"]


def _pi_multiple(r):
    k = r.randint(2, 40)
    return f"{k}\\pi", [f"{k}\\pi", f"{k} \\pi", f"\\pi \\cdot {k}"], [f"{k + 2}\\pi", f"{2 * k}\\pi", f"{k}"]


def _interval(r):
    a = r.randint(-10, 5)
    b = a + r.randint(1, 9)
    return f"[{a},{b})", [f"[{a},{b})", f"[{a}, {b})"], [f"({a},{b})", f"[{a},{b}]", f"[{a},{b + 1})"]


def _set(r):
    a, b = sorted(r.sample(range(-9, 15), 2))
    return f"\\{{{a}, {b}\\}}", [f"\\{{{a},{b}\\}}", f"\\{{{b}, {a}\\}}"], [
        f"\\{{{a}, {b + 1}\\}}", f"\\{{{-a}, {-b}\\}}", f"\\{{{a}\\}}"]


def _tuple(r):
    a, b = r.randint(-9, 9), r.randint(-9, 9)
    return f"({a},{b})", [f"({a}, {b})", f"({a},{b})"], [f"({b},{a + 1})", f"({a},{b + 2})", f"({-a},{b})"]


def _equation(r):
    n = r.randint(-20, 20)
    return str(n), [f"x = {n}", f"x={n}", str(n)], [f"x = {n + 2}", f"x = {-n - 1}", str(n - 3)]


def _percent(r):
    p = r.randint(5, 95)
    return f"{p}\\%", [f"{p}\\%", f"{p}\\%"], [f"{p + 5}\\%", f"{100 - p + 1}\\%", f"{p * 2}\\%"]


def _thousands(r):
    n = r.randint(1000, 99999)
    return f"{n}", [f"{n:,}", str(n)], [f"{n + 10:,}", str(n - 1), str(n * 10)]


def _pi_fraction(r):
    a, b = r.choice([(1, 2), (1, 3), (2, 3), (3, 4), (5, 6), (1, 4), (7, 12)])
    return f"\\frac{{{a}\\pi}}{{{b}}}", [f"\\frac{{{a}\\pi}}{{{b}}}", f"\\frac{{{a}}}{{{b}}}\\pi",
                                          f"{a}\\pi/{b}"], [
        f"\\frac{{{b}\\pi}}{{{a + b}}}", f"\\frac{{{a}\\pi}}{{{b + 1}}}", f"{a}\\pi"]


def _polynomial(r):
    a, b = r.randint(2, 9), r.randint(1, 9)
    return f"x^2+{a}x+{b}", [f"x^2+{a}x+{b}", f"x^2 + {a}x + {b}", f"{b}+{a}x+x^2"], [
        f"x^2+{a}x-{b}", f"x^2+{b}x+{a}", f"x^2-{a}x+{b}"]


def _small_decimal(r):
    v = r.randint(1, 99)
    return f"0.{v:02d}", [f"0.{v:02d}", f".{v:02d}", f"\\frac{{{v}}}{{100}}"], [
        f"{v}", f"0.{v + 1:02d}", f"-.{v:02d}"]


ENDINGS = [
    "\n\nTherefore, the final answer is $\\boxed{{{answer}}}$.",
    "\n\nSo the answer is $\\boxed{{{answer}}}$.",
    "\n\n**Final Answer**\n\\[\n\\boxed{{{answer}}}\n\\]",
    "\n\nFinal Answer: The final answer is $\\boxed{{{answer}}}$. I hope it is correct.",
    "\n\nThus $x = \\boxed{{{answer}}}$.",
]


FILLER = [
    "First we restate the problem in our own words and name the unknown quantity.",
    "Substituting the given values, the left-hand side becomes $3 \\cdot 7 + 2 = 23$.",
    "We check the boundary case separately, since the formula assumes $n \\geq 1$.",
    "Multiplying both sides by the common denominator $12$ clears the fractions.",
    "By the Pythagorean theorem, $a^2 + b^2 = c^2$, so $c = \\sqrt{9 + 16} = 5$.",
    "Grouping like terms gives $4x - 2x = 10 - 4$, that is $2x = 6$.",
    "Note that the sequence is arithmetic with common difference $d = 3$.",
    "The discriminant is $b^2 - 4ac = 25 - 24 = 1 > 0$, so there are two real roots.",
    "Since the function is increasing on this interval, the minimum is at the left end.",
    "Let us double-check the arithmetic: $17 \\times 3 = 51$ and $51 - 6 = 45$.",
    "Counting the cases one by one, we find $6 + 4 + 2 = 12$ arrangements.",
    "We can also verify the result numerically to be safe.",
]


def make_batch(n_problems: int, n_rollouts: int, seed: int) -> list[tuple[str, str]]:
    pairs = []
    for index in range(n_problems):
        r = random.Random(seed * 1_000_003 + index)
        gold, right_forms, wrong = r.choice(ANSWER_KINDS)(r)
        # Real groups concentrate on a few answers: 3-5 distinct ones per problem, one or
        # two right spellings and a few wrong answers, 40% of rollouts wrong.
        right = list(dict.fromkeys(right_forms))[: r.randint(1, 2)]
        favourite_wrong = wrong[: r.randint(3, 5) - len(right)] or wrong[:1]
        for rollout in range(n_rollouts):
            if rollout < len(favourite_wrong) or (rollout >= len(right) + len(favourite_wrong)
                                                  and r.random() < 0.4):
                answer = favourite_wrong[rollout % len(favourite_wrong)]
            else:
                answer = right[rollout % len(right)]
            target = r.randint(1000, 2000)
            body = []
            while sum(len(s) + 1 for s in body) < target - 60:
                body.append(r.choice(FILLER))
            completion = " ".join(body) + r.choice(ENDINGS).format(answer=answer)
            pairs.append((gold, completion))
    return pairs


def run_baseline(pairs, timeout_s: int):
    from math_verify import parse, verify

    verdicts, timed_out = [], []
    start = time.perf_counter()
    for gold, completion in pairs:
        item_start = time.perf_counter()
        gold_parsed = parse("$" + gold + "$", parsing_timeout=timeout_s)
        pred = parse(completion, parsing_timeout=timeout_s)
        verdicts.append(bool(verify(gold_parsed, pred, timeout_seconds=timeout_s)))
        timed_out.append(time.perf_counter() - item_start >= timeout_s)
    return verdicts, timed_out, time.perf_counter() - start


def run_svs(pairs, timeout_s: float, fast_path: bool = True):
    from svs.verifiers.grader import VerifierPool

    cold = time.perf_counter()
    with VerifierPool(timeout_s=timeout_s, fast_path=fast_path) as pool:
        # start the workers outside the timed region (a pair only a worker settles)
        pool.grade([("x+1", "1+x")], extract=False)
        cold_s = time.perf_counter() - cold
        start = time.perf_counter()
        grades = pool.grade(pairs)
        elapsed = time.perf_counter() - start
        workers = pool.n_workers
    return grades, elapsed, workers, cold_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--problems", type=int, default=200)
    parser.add_argument("--rollouts", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=int, default=5)
    args = parser.parse_args()
    logging.disable(logging.WARNING)

    pairs = make_batch(args.problems, args.rollouts, args.seed)
    lengths = [len(c) for _, c in pairs]
    print(f"batch: {args.problems} problems x {args.rollouts} rollouts = {len(pairs)} pairs; "
          f"completion length median {statistics.median(lengths):.0f} chars")

    grades, svs_s, workers, cold_s = run_svs(pairs, args.timeout)
    distinct = {}
    for index, grade in enumerate(grades):
        distinct.setdefault(index // args.rollouts, set()).add(grade.extracted)
    wrong_share = 1 - sum(g.correct for g in grades) / len(grades)
    methods = {}
    for grade in grades:
        methods[grade.method] = methods.get(grade.method, 0) + 1
    print(f"realism: {statistics.mean(len(v) for v in distinct.values()):.2f} distinct answers "
          f"per problem, {wrong_share:.1%} of rollouts wrong; methods {methods}")
    print(f"cold start (pool created, {workers} workers ready): {cold_s:.2f} s")

    slow_grades, slow_s, _, _ = run_svs(pairs, args.timeout, fast_path=False)
    baseline, timed_out, base_s = run_baseline(pairs, args.timeout)

    base_rate, svs_rate = len(pairs) / base_s, len(pairs) / svs_s
    agree = sum(b == g.correct for b, g, t in zip(baseline, grades, timed_out, strict=True) if not t)
    comparable = sum(1 for t in timed_out if not t)
    slow_agree = sum(s.correct == g.correct for s, g in zip(slow_grades, grades, strict=True))
    print(f"ablation, without the exact fast paths (every distinct pair through math-verify): "
          f"{len(pairs) / slow_s:8.1f} pairs/s, ratio {len(pairs) / slow_s / base_rate:.1f}x; "
          f"{slow_agree}/{len(pairs)} verdicts equal to the fast-path run")
    disagreements = [(p, b, g) for p, b, g, t in zip(pairs, baseline, grades, timed_out, strict=True)
                     if not t and b != g.correct]
    for (gold, _), base, grade in disagreements[:5]:
        print(f"  disagree: gold={gold!r} answer={grade.extracted!r} baseline={base} svs={grade.correct}")
    print(f"(a) math-verify sequential loop: {base_rate:.1f} pairs/s ({base_s:.1f} s); "
          f"baseline timed out on {len(pairs) - comparable} items (excluded)")
    print(f"(b) svs VerifierPool, {workers} workers, warm: {svs_rate:.1f} pairs/s ({svs_s:.2f} s)")
    print(f"realistic batch {len(pairs)} pairs: {agree}/{comparable} verdicts identical to "
          f"math-verify, svs {svs_rate:.0f} vs loop {base_rate:.0f} pairs/s, "
          f"ratio {svs_rate / base_rate:.1f}")


if __name__ == "__main__":
    main()
