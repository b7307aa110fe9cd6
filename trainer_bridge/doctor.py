"""`svs doctor RUN`: which cause of entropy collapse is draining entropy in a run?

Reads a run folder, the bundled learner's (`metrics.jsonl`, `ledger.jsonl`) or TRL's
(`trainer_state.json` log history, `completions/*.parquet`), and per window of steps
reports: the probe entropy change dH and how much of it the covariance term explains (a
least-squares fit of dH between probes against the lr-weighted sum of C over the
optimizer steps in between, R^2), the quadrant carrying C, what clipping removed, the
memorized (all-correct) and zero-variance group shares, and the leading cause with the
mitigations for it. What a trainer's logs cannot support is said, with the setting that
would make it possible.

Causes and their evidence (each a share of the window's groups or trained tokens):

- `memorization`: share of original groups solved by every rollout (the prompt set has
  turned into memorized answers: what svs's refresh and online SvS exist for);
- `clip_high`: share of tokens clipped high minus share clipped low (clip-high events
  lower entropy, clip-low events raise it; Park et al., 2025);
- `multi_update`: share of tokens whose ratio left [0.8, 1.2] without any clip catching
  them, in a run that takes several optimizer steps per rollout batch;
- `precision`: the same, with one optimizer step per batch (the ratio can only move
  through reduced-precision forwards);
- `covariance`: the policy gradient itself (dH ~ -Cov(log pi, A)); named when no other
  cause reaches `FLOOR`, with its leading quadrant.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from svs.trainer_bridge.ledger import QUADRANTS, REMOVALS

FLOOR = 0.05  # a cause needs at least 5% of the window's groups / tokens to lead

MITIGATIONS = {
    "memorization": "refresh the prompt set (svs refresh / mode: refresh with refresh_every) "
                    "or train with online SvS (mode: svs); advantage: passk rewards groups, "
                    "not single answers",
    "clip_high": "raise clip_high above clip_low (clip-higher: clip_low 0.2, clip_high 0.28) "
                 "or take one optimizer step per batch (mini_batches: 1, ppo_epochs: 1)",
    "multi_update": "mini_batches: 1 and ppo_epochs: 1 (strictly on-policy; advantage: rloo "
                    "loses least), or keep the steps and use policy_loss: kl_cov",
    "precision": "policy_precision: fp32, or fp16 for rollout and learner alike (Qi et al., "
                 "2025); bf16 biases the ratio most",
    "covariance": "policy_loss: clip_cov or kl_cov (detach / penalise the top-covariance "
                  "tokens), policy_loss: dg (gate by delight), advantage: rloo or passk",
}
QUADRANT_READING = {
    "pos_likely": "raising already-likely tokens of good answers",
    "neg_unlikely": "lowering already-unlikely tokens of bad answers",
    "pos_unlikely": "raising rare tokens of good answers (raises entropy)",
    "neg_likely": "lowering likely tokens of bad answers (raises entropy)",
}


@dataclass
class Run:
    """A run's per-step metrics (and per-optimizer-step ledger rows, when logged)."""

    kind: str  # "svs" or "trl"
    steps: list[dict[str, Any]]
    ledger: list[dict[str, Any]] = field(default_factory=list)
    cannot: list[str] = field(default_factory=list)  # what is missing, and how to get it


@dataclass
class Window:
    first: int
    last: int
    values: dict[str, float]
    fit: dict[str, float]
    causes: dict[str, float]
    leading: str
    quadrant: str | None


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def read_run(path: str | Path) -> Run:
    """The bundled learner's run folder, or a TRL output folder."""
    root = Path(path)
    if (root / "metrics.jsonl").is_file():
        run = Run("svs", _read_jsonl(root / "metrics.jsonl"), _read_jsonl(root / "ledger.jsonl"))
        if not any("entropy/cov" in row for row in run.steps):
            run.cannot.append("covariance term, quadrants, clip removal: no entropy ledger in "
                              "this run (set entropy_ledger: true)")
        if not any("entropy/probe_delta" in row for row in run.steps):
            run.cannot.append("dH on fixed tokens and its fit against C: no probe entropy "
                              "(set probe_every: 1 to 5)")
        return run
    states = sorted(root.glob("checkpoint-*/trainer_state.json"),
                    key=lambda p: int(p.parent.name.split("-")[-1]))
    state = root / "trainer_state.json"
    state = state if state.is_file() else (states[-1] if states else None)
    if state is None:
        raise ValueError(f"{root}: neither metrics.jsonl (svs train) nor trainer_state.json "
                         f"(TRL) found")
    return read_trl(root, json.loads(state.read_text(encoding="utf-8")))


def read_trl(root: Path, state: Mapping[str, Any]) -> Run:
    """TRL's logged metrics mapped onto the ledger's names, as far as they carry fields."""
    steps = []
    for entry in state.get("log_history", []):
        if "entropy" not in entry:
            continue
        row: dict[str, Any] = {"step": entry.get("step"), "trl/entropy": entry["entropy"]}
        if "clip_ratio/low_mean" in entry:
            row["entropy/removed/clip_low/token_share"] = entry["clip_ratio/low_mean"]
        if "clip_ratio/high_mean" in entry:
            row["entropy/removed/clip_high/token_share"] = entry["clip_ratio/high_mean"]
        if "frac_reward_zero_std" in entry:
            row["entropy/zero_variance_share"] = entry["frac_reward_zero_std"]
        steps.append(row)
    solved = _trl_solved_shares(root)
    for row in steps:
        if row["step"] in solved:
            row["entropy/solved_share/original"] = solved[row["step"]]
    run = Run("trl", steps)
    run.cannot += [
        "covariance term C and its quadrants: TRL logs no per-token log-probabilities or "
        "advantages per token (no TRL setting does; train with svs train, entropy_ledger: true)",
        "dH on fixed tokens: TRL's `entropy` is over each step's own samples, so its change "
        "mixes the policy's change with the change of the sampled tokens (svs train's "
        "probe_every measures it on a fixed probe set); the fit of dH against C is not possible",
        "covariance mass removed by clipping: only token shares are logged",
    ]
    if not solved:
        run.cannot.append("memorized (all-correct) share: no completions logged "
                          "(set log_completions=True, logging_steps=1 in TRL's GRPOConfig); "
                          "frac_reward_zero_std gives the zero-variance share only")
    return run


def _trl_solved_shares(root: Path) -> dict[int, float]:
    files = sorted((root / "completions").glob("completions_*.parquet"))
    if not files:
        return {}
    import pandas as pd

    shares = {}
    for file in files:
        frame = pd.read_parquet(file)
        reward_columns = [c for c in frame.columns
                          if c not in ("step", "prompt", "completion", "advantage")]
        if "step" not in frame or "prompt" not in frame or not reward_columns:
            continue
        frame["_reward"] = frame[reward_columns].sum(axis=1)
        for step, rows in frame.groupby("step"):
            groups = rows.groupby("prompt")["_reward"]
            shares[int(step)] = float((groups.min() >= 1.0).mean())
    return shares


def _mean(rows: Sequence[Mapping[str, Any]], key: str) -> float:
    values = [r[key] for r in rows if isinstance(r.get(key), (int, float)) and math.isfinite(r[key])]
    return sum(values) / len(values) if values else math.nan


def fit_r2(xs: Sequence[float], ys: Sequence[float]) -> dict[str, float]:
    """Least squares ys ~ a + b xs: slope, R^2, points; NaN with fewer than 3 points."""
    n = len(xs)
    out = {"points": float(n), "slope": math.nan, "r2": math.nan}
    if n < 3:
        return out
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    syy = sum((y - my) ** 2 for y in ys)
    if sxx == 0 or syy == 0:
        return out
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True))
    out.update(slope=sxy / sxx, r2=sxy * sxy / (sxx * syy))
    return out


def probe_intervals(run: Run) -> list[tuple[int, float, float]]:
    """(probe step, lr-weighted sum of C since the previous probe, measured dH)."""
    weighted: dict[int, float] = {}
    for row in run.ledger:
        if row.get("entropy/cov") is not None:
            weighted[row["step"]] = weighted.get(row["step"], 0.0) + row["lr"] * row["entropy/cov"]
    out, since = [], 0.0
    for row in run.steps:
        since += weighted.get(row["step"], 0.0)
        if row.get("entropy/probe_delta") is not None:
            out.append((row["step"], since, row["entropy/probe_delta"]))
            since = 0.0
    return out


def causes(values: Mapping[str, float]) -> dict[str, float]:
    """Evidence for each cause (shares; NaN where the run does not log it)."""
    def get(key: str) -> float:
        value = values.get(key, math.nan)
        return value if value is not None else math.nan

    drift = get("entropy/ratio_outside_unclipped")
    several = get("train/optimizer_steps") > 1
    return {
        "memorization": get("entropy/solved_share/original"),
        "clip_high": get("entropy/removed/clip_high/token_share")
        - (get("entropy/removed/clip_low/token_share") if math.isfinite(
            get("entropy/removed/clip_low/token_share")) else 0.0),
        "multi_update": drift if several else math.nan,
        "precision": drift if not several else math.nan,
    }


def diagnose(run: Run, window: int) -> list[Window]:
    keys = sorted({k for row in run.steps for k in row if k.startswith(("entropy/", "trl/"))}
                  | {"train/optimizer_steps"})
    intervals = probe_intervals(run)
    windows = []
    for first in range(0, len(run.steps), window):
        rows = run.steps[first:first + window]
        lo, hi = rows[0]["step"], rows[-1]["step"]
        values = {key: _mean(rows, key) for key in keys}
        deltas = [r["entropy/probe_delta"] for r in rows if r.get("entropy/probe_delta") is not None]
        values["entropy/probe_delta_sum"] = sum(deltas) if deltas else math.nan
        inside = [(x, y) for step, x, y in intervals if lo <= step <= hi]
        fit = fit_r2([x for x, _ in inside], [y for _, y in inside])
        fit["sign_agreement"] = (sum(1 for x, y in inside if (x > 0) == (y < 0)) / len(inside)
                                 if inside else math.nan)
        evidence = causes(values)
        ranked = sorted(((v, k) for k, v in evidence.items() if math.isfinite(v)), reverse=True)
        leading = ranked[0][1] if ranked and ranked[0][0] >= FLOOR else "covariance"
        quadrant_values = {q: values.get(f"entropy/cov/{q}", math.nan) for q in QUADRANTS}
        finite = {q: v for q, v in quadrant_values.items() if math.isfinite(v)}
        quadrant = max(finite, key=finite.get) if finite else None
        windows.append(Window(lo, hi, values, fit, evidence, leading, quadrant))
    return windows


def _fmt(value: float, digits: int = 3) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def report_text(run: Run, windows: Sequence[Window]) -> str:
    lines = [f"run kind: {run.kind} ({len(run.steps)} logged steps, {len(run.ledger)} "
             f"ledger rows)"]
    for w in windows:
        v = w.values
        lines.append(f"\nsteps {w.first}-{w.last}: leading cause {w.leading}")
        lines.append(f"  probe dH {_fmt(v.get('entropy/probe_delta_sum', math.nan), 4)}; "
                     f"fit of dH on lr*C: R^2 {_fmt(w.fit['r2'])} over {int(w.fit['points'])} "
                     f"probe intervals, sign agreement {_fmt(w.fit['sign_agreement'], 2)}")
        if math.isfinite(v.get("entropy/cov", math.nan)):
            quadrants = ", ".join(f"{q} {_fmt(v.get(f'entropy/cov/{q}', math.nan), 4)}"
                                  for q in QUADRANTS)
            lines.append(f"  C {_fmt(v['entropy/cov'], 4)} ({quadrants}); carried by "
                         f"{w.quadrant}: {QUADRANT_READING.get(w.quadrant, '')}")
        removed = [f"{name} {_fmt(v.get(f'entropy/removed/{name}/token_share', math.nan))} of "
                   f"tokens (C {_fmt(v.get(f'entropy/removed/{name}/cov', math.nan), 4)})"
                   for name in REMOVALS if math.isfinite(
                       v.get(f"entropy/removed/{name}/token_share", math.nan))]
        if removed:
            lines.append("  removed: " + "; ".join(removed))
        lines.append(f"  memorized (all-correct) groups {_fmt(v.get('entropy/solved_share/original', math.nan))}"
                     f", zero-variance groups {_fmt(v.get('entropy/zero_variance_share', math.nan))}"
                     f", ratio outside [0.8, 1.2] unclipped "
                     f"{_fmt(v.get('entropy/ratio_outside_unclipped', math.nan))}")
        lines.append("  evidence: " + ", ".join(f"{k} {_fmt(x)}" for k, x in w.causes.items()))
        lines.append(f"  mitigations for {w.leading}: {MITIGATIONS[w.leading]}")
    if run.cannot:
        lines.append("\ncannot compute from this run's logs:")
        lines += [f"  - {item}" for item in run.cannot]
    return "\n".join(lines)


def _figure(run: Run) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [("entropy", ["entropy/probe", "trl/entropy"]),
              ("covariance term C and quadrants", ["entropy/cov", *[f"entropy/cov/{q}" for q in QUADRANTS]]),
              ("token shares removed", [f"entropy/removed/{n}/token_share" for n in REMOVALS]
               + ["entropy/ratio_outside_unclipped"]),
              ("group shares", ["entropy/solved_share/original", "entropy/zero_variance_share"])]
    figure, axes = plt.subplots(len(panels), 1, figsize=(8, 2.6 * len(panels)), sharex=True)
    for axis, (title, keys) in zip(axes, panels, strict=True):
        for key in keys:
            points = [(r["step"], r[key]) for r in run.steps if r.get(key) is not None]
            if points:
                axis.plot(*zip(*points, strict=True), label=key.removeprefix("entropy/"))
        axis.set_title(title, fontsize=9)
        if axis.lines:
            axis.legend(fontsize=7)
    axes[-1].set_xlabel("step")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90)
    plt.close(figure)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def write_html(run: Run, windows: Sequence[Window], path: str | Path) -> Path:
    """A self-contained page: the text report and the curves (PNG inlined)."""
    path = Path(path)
    path.write_text(
        "<!doctype html><html><head><meta charset='utf-8'><title>svs doctor</title></head>"
        "<body><h1>svs doctor</h1><pre>" + html.escape(report_text(run, windows)) + "</pre>"
        f"<img alt='curves' src='data:image/png;base64,{_figure(run)}'></body></html>",
        encoding="utf-8")
    return path
