"""The lab's report: one self-contained HTML page drawn from `summary.json` alone.

Every number and curve on the page is read from the experiment's summary record (what
`flows.lab_experiment.run_experiment` returns and writes), so the page can be redrawn
from the JSON file (`svs lab report`) and never disagrees with it. Figures are drawn on
`matplotlib.figure.Figure` objects (no pyplot state, no display) and embedded as PNG.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from svs.flows.lab.summary import pass_ks
from svs.pipeline.report import figure_png

COLOURS = {"fixed": "#555555", "refresh": "#d62728", "svs": "#1f77b4"}
SMOOTH = 5  # steps in the running mean drawn over the raw per-step curve

PANELS = (("entropy", "solving entropy, train batch (nats / token)"),
          ("solve_rate", "train solve rate"),
          ("memorized", "memorized prompts in the step's batch"))

TABLE_ROWS = (
    ("entropy/final", "solving entropy, last eval_every steps"),
    ("entropy/auc", "solving entropy, area per step"),
    ("heldout_entropy/final", "held-out solving entropy, final"),
    ("heldout_entropy/auc", "held-out solving entropy, area per step"),
    ("trained_entropy/final", "entropy of trained tokens, final"),
    ("solve_rate/final", "train solve rate, final"),
    ("memorized/final", "memorized prompts per step, final"),
    ("memorized/auc", "memorized prompts per step, area per step"),
)


def _running_mean(values: list[float], window: int) -> list[float]:
    out = []
    for i in range(len(values)):
        chunk = values[max(0, i - window + 1):i + 1]
        out.append(sum(chunk) / len(chunk))
    return out


def _series(curve: list[dict[str, Any]], key: str) -> tuple[list[int], list[float]]:
    points = [(p["step"], p[key]) for p in curve if isinstance(p.get(key), (int, float))]
    return [s for s, _ in points], [float(v) for _, v in points]


def _ks(record: dict[str, Any]) -> list[int]:
    return pass_ks(record["start"])


def _refresh_steps(record: dict[str, Any]) -> list[int]:
    rounds = record["arms"].get("refresh", {}).get("rounds", [])
    return [r["step"] for r in rounds][:-1]  # the last refresh is never trained on


def curves_figure(record: dict[str, Any]) -> Figure:
    """Per-step curves of every arm side by side (raw faint, running mean solid)."""
    kmax = _ks(record)[-1]
    figure = Figure(figsize=(20, 8.4))
    axes = figure.subplots(2, 4)
    refreshes = _refresh_steps(record)
    for ax, (key, title) in zip(axes[0][:3], PANELS, strict=True):
        for arm, data in record["arms"].items():
            steps, values = _series(data["curve"], key)
            if not steps:
                continue
            ax.plot(steps, values, color=COLOURS[arm], alpha=0.2, linewidth=0.8)
            ax.plot(steps, _running_mean(values, SMOOTH), color=COLOURS[arm],
                    label=data["title"], linewidth=1.8)
        ax.set_title(title)
        ax.set_xlabel("step")
    held_out = ((axes[0][3], "heldout_entropy", "eval/nll",
                 "held-out solving entropy (same prompts)"),
                (axes[1][0], "eval/pass@1", "eval/pass@1", "held-out pass@1"),
                (axes[1][1], f"eval/pass@{kmax}", f"eval/pass@{kmax}", f"held-out pass@{kmax}"))
    for ax, key, start_key, title in held_out:
        for arm, data in record["arms"].items():
            steps, values = _series(data["curve"], key)
            ax.plot([0, *steps], [record["start"][start_key], *values], marker="o",
                    markersize=3, color=COLOURS[arm], label=data["title"])
        ax.set_title(title)
        ax.set_xlabel("step")
    ax = axes[1][2]
    for arm, data in record["arms"].items():
        steps, values = _series(data["curve"], "tokens_total")
        ax.plot(steps, values, color=COLOURS[arm], label=data["title"])
    ax.set_title("generated tokens, cumulative (cost)")
    ax.set_xlabel("step")
    pass_at_k_axes(axes[1][3], record)
    for ax in [*axes[0], *axes[1][:3]]:
        for step in refreshes:
            ax.axvline(step, color=COLOURS["refresh"], linestyle=":", linewidth=0.8, alpha=0.6)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    figure.tight_layout()
    return figure


def pass_at_k_axes(ax: Any, record: dict[str, Any]) -> None:
    """Held-out pass@k against k at the end of each arm, and at the shared start."""
    ks = _ks(record)
    ax.plot(ks, [record["start"][f"eval/pass@{k}"] for k in ks], color="black", linestyle="--",
            marker="o", markersize=3, label="start (bootstrapped policy)")
    for arm, data in record["arms"].items():
        ax.plot(ks, [data["summary"][f"heldout/pass@{k}/final"] for k in ks], marker="o",
                markersize=3, color=COLOURS[arm], label=data["title"])
    ax.set_xscale("log", base=2)
    ax.set_xticks(ks)
    ax.set_xticklabels([str(k) for k in ks])
    ax.set_xlabel("k")
    ax.set_title("held-out pass@k after training")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)


def fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 100 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return html.escape(str(value))


def summary_rows(record: dict[str, Any]) -> list[tuple[str, list[Any]]]:
    kmax = _ks(record)[-1]
    rows = [(label, key) for key, label in TABLE_ROWS]
    for k in sorted({1, kmax}):
        rows += [(f"held-out pass@{k}, final", f"heldout/pass@{k}/final"),
                 (f"held-out pass@{k}, area per step", f"heldout/pass@{k}/auc")]
    rows += [("generated tokens", "tokens/total"), ("cost ratio (tokens / fixed)", "tokens/cost_ratio")]
    arms = record["arms"]
    return [(label, [arms[a]["summary"].get(key) for a in arms]) for label, key in rows]


def compare_seeds(records: list[dict[str, Any]]) -> tuple[list[str], list[tuple[str, list[str]]]]:
    """(arm titles, rows of "mean ± sd (min..max)" per arm) over runs that differ only in
    their seed; a clear error when their other settings differ."""
    import statistics

    if not records:
        raise ValueError("no summaries given")
    settings = [{k: v for k, v in r["config"].items() if k != "seed"} for r in records]
    if any(s != settings[0] for s in settings[1:]):
        raise ValueError("the summaries differ in more than their seed; compare runs of one "
                         "configuration")
    seeds = [r["config"]["seed"] for r in records]
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"two summaries have the same seed ({seeds})")
    arms = list(records[0]["arms"])
    labels = [label for label, _ in summary_rows(records[0])]
    rows = []
    for index, label in enumerate(labels):
        cells = []
        for arm in arms:
            values = [summary_rows(r)[index][1][list(r["arms"]).index(arm)] for r in records]
            values = [v for v in values if isinstance(v, (int, float))]
            if not values:
                cells.append("–")
                continue
            spread = statistics.stdev(values) if len(values) > 1 else 0.0
            cells.append(f"{fmt(statistics.mean(values))} ± {fmt(spread)} "
                         f"({fmt(min(values))}..{fmt(max(values))})")
        rows.append((label, cells))
    return [records[0]["arms"][a]["title"] for a in arms], rows


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{fmt(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def render_html(record: dict[str, Any]) -> str:
    config = record["config"]
    arms = record["arms"]
    summary = _table(["", *[arms[a]["title"] for a in arms]],
                     [[label, *values] for label, values in summary_rows(record)])
    start = _table(["", "held-out solving entropy", *[f"pass@{k}" for k in _ks(record)]],
                   [["start policy", record["start"].get("eval/nll"),
                     *[record["start"][f"eval/pass@{k}"] for k in _ks(record)]]])
    rounds_html = ""
    rounds = arms.get("refresh", {}).get("rounds", [])
    if rounds:
        columns = ["round", "step", "trained_on", "published", "labels", "seeds", "candidates",
                   "accepted", "added", "downweighted", "retired", "generated_tokens"]
        rows = [[r.get(c) if c != "labels" else ", ".join(f"{k} {v}" for k, v in
                                                          sorted(r.get(c, {}).items()))
                 for c in columns] for r in rounds]
        rounds_html = ("<h2>Refresh rounds (refresh arm)</h2><p>Each round's rollouts, "
                       "diagnosed; variants the policy wrote and verified; the version "
                       "published for the next round (the last one is never trained on, "
                       "its tokens are still counted).</p>" + _table(columns, rows))
    policy = _table(["bootstrap metric", "value"],
                    [[k, v] for k, v in record["policy"]["metrics"].items()])
    settings = _table(["setting", "value"], [[k, json.dumps(v)] for k, v in config.items()])
    timing = _table(["part", "seconds"], [[k, v] for k, v in record["timing"].items()])
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>svs lab</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; max-width: 1200px; color: #222; }}
table {{ border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }}
td, th {{ border: 1px solid #ccc; padding: 3px 8px; text-align: right; }}
td:first-child, th:first-child {{ text-align: left; }}
img {{ max-width: 100%; }}
</style></head><body>
<h1>svs lab: does refreshing memorized prompts sustain exploration?</h1>
<p>{len(arms)} arms from the same bootstrapped policy, {config['steps']} GRPO steps each,
{config['prompts_per_step']} prompts x {config['group_size']} rollouts per step, seed
{config['seed']}; held-out pass@k on {config['n_eval']} unseen curriculum problems with
{config['eval_samples']} samples each. Every number below is read from this run's
summary.json. Dotted red lines: refresh rounds whose published version was trained on.</p>
<img src="data:image/png;base64,{figure_png(curves_figure(record))}">
<h2>Summary</h2>
{summary}
<h2>The shared start (step 0)</h2>
{start}
{rounds_html}
<h2>The policy</h2>
<p>{html.escape(record['policy']['folder'])}</p>
{policy}
<h2>Settings</h2>
{settings}
<h2>Wall-clock time (not part of the compared numbers)</h2>
{timing}
</body></html>
"""


def write_report(record: dict[str, Any], path: str | Path) -> Path:
    path = Path(path)
    path.write_text(render_html(record), encoding="utf-8")
    return path
