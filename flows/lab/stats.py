"""Paired statistics of a lab study: seeds are common random numbers across arms, so an
arm is compared with another through the per-seed differences d_1..d_n of one metric.
Pure functions, no I/O.

- `paired_t`: Student t interval and two-sided p for the mean of d.
- `sign_flip`: the exact sign-flip (randomization) test of the same null, and its
  interval by test inversion.
- `holm`: Holm step-down adjusted p-values over a family of tests.
- `paired_diffs`, `check_per_seed`: read differences out of
  per_seed[arm][seed][metric_key], refusing missing or non-finite values.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import stats as scipy_stats

MAX_SIGN_FLIP_N = 16  # 2^16 = 65,536 sign assignments: exact enumeration stays cheap
TESTS = ("t", "signflip")
# Relative slack when comparing |mean| of a sign assignment with the observed |mean|:
# assignments that tie in exact arithmetic must count as ">=" despite float rounding.
_TIE = 1e-9

PerSeed = Mapping[str, Mapping[int, Mapping[str, float]]]


@dataclass(frozen=True)
class Interval:
    """An estimate of a mean difference with its confidence interval [low, high], the
    two-sided p-value of H0: mean = 0, the number of paired differences n and their
    sample standard deviation sd (ddof=1); `test` is "t" or "signflip"."""

    mean: float
    low: float
    high: float
    p: float
    n: int
    sd: float
    test: str = "t"


def _as_diffs(diffs: Sequence[float], what: str) -> np.ndarray:
    values = np.asarray(list(diffs), dtype=float)
    if values.ndim != 1:
        raise ValueError(f"{what} needs a flat list of paired differences, got shape "
                         f"{values.shape}")
    if len(values) < 2:
        raise ValueError(f"{what} needs at least 2 paired differences (seeds run in both "
                         f"arms), got {len(values)}: run more seeds")
    if not np.all(np.isfinite(values)):
        raise ValueError(f"{what} got a non-finite paired difference: {values.tolist()}")
    return values


def _check_confidence(confidence: float) -> float:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), e.g. 0.95, got {confidence!r}")
    return float(confidence)


def paired_t(diffs: Sequence[float], confidence: float = 0.95) -> Interval:
    """One-sample t on paired differences d (n >= 2).

    mean = sum(d)/n, sd = sqrt(sum((d - mean)^2)/(n - 1)), se = sd/sqrt(n),
    interval = mean -/+ t_{(1+confidence)/2, n-1} * se, p = 2 * P(T_{n-1} >= |mean/se|).
    With sd = 0 (all differences equal) the interval collapses to [mean, mean] and
    p = 0.0 if mean != 0 else 1.0 (the limit of the t statistic's p as se -> 0).
    """
    d = _as_diffs(diffs, "paired_t")
    confidence = _check_confidence(confidence)
    n = len(d)
    mean = float(d.mean())
    sd = float(d.std(ddof=1))
    if sd == 0.0:
        return Interval(mean, mean, mean, 0.0 if mean != 0 else 1.0, n, 0.0, "t")
    se = sd / math.sqrt(n)
    half = float(scipy_stats.t.ppf((1 + confidence) / 2, n - 1)) * se
    p = float(2 * scipy_stats.t.sf(abs(mean / se), n - 1))
    return Interval(mean, mean - half, mean + half, min(p, 1.0), n, sd, "t")


@lru_cache(maxsize=MAX_SIGN_FLIP_N)
def _signs(n: int) -> np.ndarray:
    """All 2^n sign vectors as rows of +1/-1 (row k: bit i of k set -> -1 at i)."""
    bits = (np.arange(2 ** n)[:, None] >> np.arange(n)[None, :]) & 1
    signs = 1.0 - 2.0 * bits
    signs.setflags(write=False)
    return signs


def _flip_p(x: np.ndarray) -> float:
    """Share of the 2^n sign assignments s with |mean(s*x)| >= |mean(x)| (ties kept)."""
    scale = float(np.abs(x).max())
    if scale == 0.0:
        return 1.0
    means = np.abs(_signs(len(x)) @ x) / len(x)
    observed = abs(float(x.mean()))
    return float(np.count_nonzero(means >= observed - _TIE * scale)) / len(means)


def _subset_means(d: np.ndarray) -> np.ndarray:
    """Sorted distinct means of the 2^n - 1 non-empty subsets of d (candidate endpoints)."""
    chosen = (_signs(len(d))[1:] < 0).astype(float)  # row k>0: the subset of set bits
    return np.unique(chosen @ d / chosen.sum(axis=1))


def sign_flip(diffs: Sequence[float], confidence: float = 0.95) -> Interval:
    """Exact sign-flip test of H0: the differences are symmetric about 0, with its interval.

    p = #{s in {-1,+1}^n : |mean(s*d)| >= |mean(d)|} / 2^n, every assignment enumerated
    (2 <= n <= 16; above that use the t test), with a relative tolerance of 1e-9 * max|d|
    so float ties count. The smallest attainable p is 2/2^n (only s = +1 and s = -1 reach
    the extreme when all d share a sign).

    Interval (test inversion): {delta : p(d - delta) >= 1 - confidence}, the shifts the
    test does not reject. p(d - delta) is a step function of delta that changes only where
    |mean(s*(d - delta))| = |mean(d - delta)| for some s, i.e. at means of non-empty
    subsets of d; at such a point the tie is counted, so each end of the set is a subset
    mean. p = 1 at delta = mean(d); each end is found by bisection over the sorted subset
    means on its side (min(d)..mean(d), mean(d)..max(d)), taking p to fall monotonically
    away from mean(d). The interval therefore always lies within [min(d), max(d)]: outside
    that range all d - delta share a sign and p sits at its floor 2/2^n. When that floor is
    >= 1 - confidence nothing is rejected and the interval is the whole range
    [min(d), max(d)] (at 95%: n <= 5, since 2/32 = 0.0625 > 0.05) - the data carry no
    information beyond their own range at that n. At delta = min(d) or max(d) one shifted
    difference is 0 and ties with its flip, so p there is (at least) 4/2^n: at 95% the
    interval is also [min(d), max(d)] at n = 6 (4/64 = 0.0625), and lies strictly inside
    the range from n = 7 on (unless the data themselves tie).
    """
    d = _as_diffs(diffs, "sign_flip")
    confidence = _check_confidence(confidence)
    n = len(d)
    if n > MAX_SIGN_FLIP_N:
        raise ValueError(f"sign_flip enumerates 2^n sign assignments and stops at n = "
                         f"{MAX_SIGN_FLIP_N}; got n = {n}: use the t test (test: t)")
    alpha = round(1 - confidence, 12)  # 0.05, not 0.050000000000000044
    mean = float(d.mean())
    candidates = _subset_means(d)
    # each side ends at mean(d) itself (p = 1), whatever rounding did to the full-set mean
    below = np.append(candidates[candidates < mean], mean)
    above = np.append(candidates[candidates > mean][::-1], mean)  # from max(d) inward
    low, high = _first_accepted(d, below, alpha), _first_accepted(d, above, alpha)
    sd = float(d.std(ddof=1))
    return Interval(mean, low, high, _flip_p(d), n, sd, "signflip")


def _first_accepted(d: np.ndarray, ordered: np.ndarray, alpha: float) -> float:
    """The first value of `ordered` (outermost first, mean(d) last) whose shift the test
    accepts (p >= alpha), by bisection; the last value is accepted (p = 1 at the mean)."""
    lo, hi = 0, len(ordered) - 1
    if _flip_p(d - ordered[0]) >= alpha:
        return float(ordered[0])
    while hi - lo > 1:  # invariant: ordered[lo] rejected, ordered[hi] accepted
        mid = (lo + hi) // 2
        if _flip_p(d - ordered[mid]) >= alpha:
            hi = mid
        else:
            lo = mid
    return float(ordered[hi])


def interval(diffs: Sequence[float], confidence: float = 0.95, test: str = "t") -> Interval:
    """`paired_t` (test "t") or `sign_flip` (test "signflip") of the differences."""
    if test == "t":
        return paired_t(diffs, confidence)
    if test == "signflip":
        return sign_flip(diffs, confidence)
    raise ValueError(f"unknown test {test!r}; valid: {', '.join(TESTS)}")


def holm(pvalues: Mapping[str, float]) -> dict[str, float]:
    """Holm step-down adjusted p-values, same keys.

    With the m p-values sorted ascending p_(1) <= ... <= p_(m):
    adjusted_(i) = max_{j <= i} min(1, (m - j + 1) * p_(j)) (monotone, capped at 1).
    Rejecting where adjusted < alpha controls the family-wise error rate at alpha.
    """
    for name, p in pvalues.items():
        if p is None or not math.isfinite(p) or not 0 <= p <= 1:
            raise ValueError(f"holm: p-value of {name!r} must be a number in [0, 1], "
                             f"got {p!r}")
    order = sorted(pvalues, key=lambda name: pvalues[name])
    m = len(order)
    adjusted: dict[str, float] = {}
    running = 0.0
    for j, name in enumerate(order):
        running = max(running, min(1.0, (m - j) * float(pvalues[name])))
        adjusted[name] = running
    return {name: adjusted[name] for name in pvalues}


def step_key(metric: str, step: int) -> str:
    """The per-run key of `metric` evaluated at `step`: "<metric>/step<step>"."""
    return f"{metric}/step{step}"


def arm_summary(per_seed: PerSeed, arm: str) -> dict:
    """{"seeds": sorted seeds, "means": {key: mean}, "sds": {key: sd}} of one arm, each key
    over the seeds that recorded it; sd = sqrt(sum((x - mean)^2)/(n - 1)), None if n < 2."""
    seeds = sorted(per_seed[arm])
    means, sds = {}, {}
    for key in sorted({key for s in seeds for key in per_seed[arm][s]}):
        values = np.array([metric_value(per_seed, arm, s, key) for s in seeds
                           if key in per_seed[arm][s]])
        means[key] = float(values.mean())
        sds[key] = float(values.std(ddof=1)) if len(values) > 1 else None
    return {"seeds": seeds, "means": means, "sds": sds}


def metric_value(per_seed: PerSeed, arm: str, seed: int, key: str) -> float:
    """per_seed[arm][seed][key] as a float; a missing or non-finite value is an error
    naming the arm, the seed and the key."""
    row = per_seed[arm][seed]
    if key not in row:
        raise ValueError(f"metric {key!r} is missing for arm {arm!r} seed {seed}; that run "
                         f"has: {', '.join(sorted(row)) or 'no metrics'}")
    return _finite(row[key], arm, seed, key)


def _finite(value: object, arm: str, seed: object, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not math.isfinite(value):
        raise ValueError(f"metric {key!r} of arm {arm!r} seed {seed} is {value!r}; every "
                         f"metric must be a finite number (fix or drop that run)")
    return float(value)


def check_per_seed(per_seed: PerSeed) -> None:
    """per_seed must be {arm: {int seed: {metric key: finite number}}}, each arm with at
    least one seed; any other shape or value is an error saying where."""
    if not isinstance(per_seed, Mapping) or not per_seed:
        raise ValueError("per_seed must be a non-empty mapping {arm: {seed: {key: value}}}")
    for arm, seeds in per_seed.items():
        if not isinstance(seeds, Mapping) or not seeds:
            raise ValueError(f"arm {arm!r} must map seeds to metrics, got {seeds!r}")
        for seed, row in seeds.items():
            if isinstance(seed, bool) or not isinstance(seed, int):
                raise ValueError(f"seed {seed!r} of arm {arm!r} must be an int (convert "
                                 f"JSON keys with int())")
            if not isinstance(row, Mapping):
                raise ValueError(f"arm {arm!r} seed {seed} must map metric keys to values, "
                                 f"got {type(row).__name__}")
            for key, value in row.items():
                _finite(value, arm, seed, key)


def paired_diffs(per_seed: PerSeed, arm: str, key: str, other_arm: str,
                 other_key: str | None = None) -> tuple[list[float], list[int]]:
    """d_s = per_seed[arm][s][key] - per_seed[other_arm][s][other_key] for every seed s run
    in both arms, sorted by seed; returns (differences, seeds). `other_key` defaults to
    `key`; `other_arm` may equal `arm` (two keys of one run, e.g. late minus start).
    Fewer than 2 common seeds is an error."""
    other_key = key if other_key is None else other_key
    for name in (arm, other_arm):
        if name not in per_seed:
            raise ValueError(f"arm {name!r} is not in this study's runs; arms: "
                             f"{', '.join(sorted(per_seed))}")
    seeds = sorted(set(per_seed[arm]) & set(per_seed[other_arm]))
    if len(seeds) < 2:
        raise ValueError(f"{arm!r} and {other_arm!r} share {len(seeds)} seed(s) "
                         f"({seeds}); a paired comparison needs at least 2: run the same "
                         f"seeds in both arms")
    diffs = [metric_value(per_seed, arm, s, key) - metric_value(per_seed, other_arm, s,
                                                                 other_key) for s in seeds]
    return diffs, seeds
