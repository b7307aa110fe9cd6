"""The lab's summary numbers: per-arm final values and areas per step of its curves, and
the cost ratio against the fixed arm. Pure functions over the curves in summary.json."""

from __future__ import annotations

import math
from typing import Any


def _values(curve: list[dict[str, Any]], key: str) -> list[tuple[int, float]]:
    return [(p["step"], float(p[key])) for p in curve
            if isinstance(p.get(key), (int, float)) and math.isfinite(p[key])]


def area_per_step(points: list[tuple[int, float]]) -> float | None:
    """Trapezoid area under the curve divided by the steps it spans: the curve's mean
    height, comparable across runs of different lengths (one point: its value)."""
    if not points:
        return None
    if len(points) == 1:
        return points[0][1]
    area = sum((s1 - s0) * (v0 + v1) / 2 for (s0, v0), (s1, v1) in zip(points, points[1:], strict=False))
    return area / (points[-1][0] - points[0][0])


def tail_mean(points: list[tuple[int, float]], window: int) -> float | None:
    """Mean over the last `window` steps (one step of 8 prompts is noisy)."""
    if not points:
        return None
    last = points[-1][0]
    tail = [v for s, v in points if s > last - window]
    return sum(tail) / len(tail)


def pass_ks(start: dict[str, float]) -> list[int]:
    """The k of every `eval/pass@k` in an evaluation record, ascending."""
    return sorted(int(k.split("@")[1]) for k in start if k.startswith("eval/pass@"))


def summarize_arm(curve: list[dict[str, Any]], start: dict[str, float],
                  window: int) -> dict[str, Any]:
    """Final (mean of the last `window` steps) and area-per-step of every curve, and
    held-out pass@k from the start evaluation on."""
    summary: dict[str, Any] = {}
    for key in ("entropy", "trained_entropy", "solve_rate", "memorized"):
        points = _values(curve, key)
        summary[f"{key}/final"] = tail_mean(points, window)
        summary[f"{key}/auc"] = area_per_step(points)
    points = [(0, start["eval/nll"]), *_values(curve, "heldout_entropy")]
    summary["heldout_entropy/final"] = points[-1][1]
    summary["heldout_entropy/auc"] = area_per_step(points)
    for k in pass_ks(start):
        key = f"eval/pass@{k}"
        points = [(0, start[key]), *_values(curve, key)]
        summary[f"heldout/pass@{k}/final"] = points[-1][1]
        summary[f"heldout/pass@{k}/auc"] = area_per_step(points)
    summary["tokens/total"] = curve[-1]["tokens_total"] if curve else 0
    return summary


def add_cost_ratios(arms: dict[str, dict[str, Any]]) -> None:
    """tokens / the fixed arm's tokens (None without a fixed arm)."""
    base = arms.get("fixed", {}).get("summary", {}).get("tokens/total")
    for record in arms.values():
        total = record["summary"]["tokens/total"]
        record["summary"]["tokens/cost_ratio"] = total / base if base else None
