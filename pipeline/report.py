"""Diagnosis reports: `report.json`, a self-contained `report.html`, a terminal summary.

The HTML file embeds its figures as base64 PNGs and its CSS inline, so it can be mailed
or attached to a run as one file. Figures are drawn on `matplotlib.figure.Figure`
objects directly (no pyplot global state, no display needed).
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from svs.pipeline.memorization import LABELS, Diagnosis, ProblemDiagnosis

LABEL_COLOURS = {"memorized": "#d62728", "solved_diverse": "#2ca02c", "learning": "#1f77b4",
                 "unsolved": "#7f7f7f"}
MAX_LISTED = 50  # problems listed per label in the HTML


def figure_png(figure: Figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _metric(problems: Sequence[ProblemDiagnosis], key: str) -> np.ndarray:
    return np.array([p.metrics.get(key, math.nan) for p in problems], dtype=float)


def solve_rate_histogram(diagnosis: Diagnosis) -> Figure:
    figure = Figure(figsize=(6, 3.5))
    axes = figure.subplots()
    # one bin per possible k/n at the largest group size n seen
    n = max((int(p.metrics.get("diversity/n", 1)) for p in diagnosis.problems), default=1)
    bins = (np.arange(n + 2) - 0.5) / n
    stacked = [_metric(diagnosis.by_label(label), "diversity/solve_rate") for label in LABELS]
    axes.hist(stacked, bins=bins, stacked=True, label=list(LABELS),
              color=[LABEL_COLOURS[label] for label in LABELS])
    low, high = diagnosis.config.seed_band
    axes.axvspan(low, high, color="#ffbf00", alpha=0.2, label="seed band", zorder=0)
    axes.set_xlabel("solve rate (latest step)")
    axes.set_ylabel("problems")
    axes.legend(fontsize=8)
    return figure


def diversity_scatter(diagnosis: Diagnosis) -> Figure:
    figure = Figure(figsize=(6, 4))
    axes = figure.subplots()
    rng = np.random.default_rng(0)
    for label in LABELS:
        problems = diagnosis.by_label(label)
        x = _metric(problems, "diversity/solve_rate")
        y = _metric(problems, "diversity/solution_diversity")
        keep = ~np.isnan(y)
        # solve rates sit on a k/n grid; a little jitter shows how many share a point
        axes.scatter(x[keep] + rng.uniform(-0.01, 0.01, keep.sum()), y[keep], s=8, alpha=0.5,
                     color=LABEL_COLOURS[label], label=f"{label} ({len(problems)})")
    axes.set_xlabel("solve rate")
    axes.set_ylabel("diversity of correct solutions (1 - mean similarity)")
    axes.set_ylim(-0.02, 1.02)
    axes.legend(fontsize=8)
    return figure


def pass_at_k_figure(diagnosis: Diagnosis) -> Figure:
    figure = Figure(figsize=(6, 3.5))
    axes = figure.subplots()
    groups = {"all": list(diagnosis.problems)}
    groups.update({label: diagnosis.by_label(label) for label in LABELS})
    for name, problems in groups.items():
        curve = _mean_pass_at_k(problems)
        if curve:
            ks = sorted(curve)
            axes.plot(ks, [curve[k] for k in ks], marker="o", label=name,
                      color=LABEL_COLOURS.get(name, "black"), linewidth=2.5 if name == "all" else 1.2)
    axes.set_xscale("log", base=2)
    axes.set_xlabel("k")
    axes.set_ylabel("mean pass@k")
    axes.set_ylim(-0.02, 1.02)
    axes.legend(fontsize=8)
    return figure


def _mean_pass_at_k(problems: Sequence[ProblemDiagnosis]) -> dict[int, float]:
    values: dict[int, list[float]] = defaultdict(list)
    for problem in problems:
        for key, value in problem.metrics.items():
            if key.startswith("diversity/pass@") and not math.isnan(value):
                values[int(key.rsplit("@", 1)[1])].append(value)
    return {k: float(np.mean(v)) for k, v in values.items()}


def step_trends(diagnosis: Diagnosis) -> dict[int, dict[str, float]]:
    """Per step, over the problems seen then: mean solve rate, mean solution diversity and
    the share labelled memorized at that step."""
    per_step: dict[int, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for problem in diagnosis.problems:
        for point in problem.history:
            if point.get("step") is None:
                continue
            for key in ("diversity/solve_rate", "diversity/solution_diversity"):
                value = point.get(key)
                if value is not None and not math.isnan(value):
                    per_step[point["step"]][key].append(value)
            if "label" in point:
                per_step[point["step"]]["memorized_share"].append(float(point["label"] == "memorized"))
    return {step: {k: float(np.mean(v)) for k, v in values.items()}
            for step, values in sorted(per_step.items())}


def trend_figure(trends: dict[int, dict[str, float]]) -> Figure:
    figure = Figure(figsize=(6, 3.5))
    axes = figure.subplots()
    steps = sorted(trends)
    for key, colour, name in (("diversity/solve_rate", "#1f77b4", "mean solve rate"),
                              ("diversity/solution_diversity", "#2ca02c", "mean solution diversity"),
                              ("memorized_share", "#d62728", "share memorized")):
        axes.plot(steps, [trends[s].get(key, math.nan) for s in steps], marker="o",
                  label=name, color=colour)
    axes.set_xlabel("training step")
    axes.set_ylabel("over problems seen at the step")
    axes.set_ylim(-0.02, 1.02)
    axes.legend(fontsize=8)
    return figure


def _fmt(value) -> str:
    if isinstance(value, float):
        return "n/a" if math.isnan(value) else f"{value:.3f}"
    return str(value)


def render_html(diagnosis: Diagnosis, *, title: str = "svs diagnosis") -> str:
    totals = diagnosis.totals
    figures = [("Solve rates", solve_rate_histogram(diagnosis)),
               ("Diversity of correct solutions vs solve rate", diversity_scatter(diagnosis)),
               ("pass@k", pass_at_k_figure(diagnosis))]
    trends = step_trends(diagnosis)
    if len(trends) > 1:
        figures.append(("Per-step trends", trend_figure(trends)))
    esc = html.escape
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{esc(title)}</title>",
             "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}"
             "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;"
             "font-size:13px;vertical-align:top}th{background:#f3f3f3}img{max-width:100%}"
             ".fig{display:inline-block;width:49%;vertical-align:top}"
             "pre{white-space:pre-wrap;max-width:600px;margin:0}</style></head><body>",
             f"<h1>{esc(title)}</h1>",
             f"<p>{totals['problems']} problems, {totals['rollouts']} rollouts, "
             f"{len(diagnosis.steps) or 1} step(s); {totals['seeds']} synthesis seeds.</p>",
             f"<p>Guessed answers (no \\boxed{{}} or answer line): "
             f"{totals.get('answers/guessed', 0)} of the correct rollouts "
             f"({_fmt(totals.get('answers/guessed_share', math.nan))}); cut at the token "
             f"limit: {totals.get('answers/truncated', 0)} rollouts "
             f"({_fmt(totals.get('answers/truncated_share', math.nan))}). Neither makes a "
             f"seed.</p>",
             *[f"<p style='color:#b00'><b>warning:</b> {esc(w)}</p>"
               for w in totals.get("warnings", ())],
             "<table><tr><th>label</th><th>problems</th><th>share</th></tr>"]
    for label in LABELS:
        count = totals["labels"][label]
        share = count / totals["problems"] if totals["problems"] else 0.0
        parts.append(f"<tr><td style='color:{LABEL_COLOURS[label]}'>{label}</td>"
                     f"<td>{count}</td><td>{share:.1%}</td></tr>")
    parts.append("</table><table><tr><th>metric</th><th>mean over problems</th></tr>")
    for key, value in totals.items():
        if key.startswith(("diversity/", "answers/")) and not isinstance(value, list):
            parts.append(f"<tr><td>{esc(key)}</td><td>{_fmt(value)}</td></tr>")
    parts.append("</table>")
    for caption, figure in figures:
        parts.append(f"<div class='fig'><h3>{esc(caption)}</h3>"
                     f"<img alt='{esc(caption)}' src='data:image/png;base64,{figure_png(figure)}'></div>")
    for label in ("memorized", "learning"):
        problems = sorted(diagnosis.by_label(label), key=lambda p: -p.metrics["diversity/solve_rate"])
        if not problems:
            continue
        parts.append(f"<h2>{label} problems ({len(problems)}, first {min(len(problems), MAX_LISTED)})</h2>"
                     "<table><tr><th>problem</th><th>prompt</th><th>solve rate</th>"
                     "<th>effective solutions</th><th>seed</th><th>reasons</th></tr>")
        for problem in problems[:MAX_LISTED]:
            parts.append(
                f"<tr><td>{esc(problem.problem_id)}</td><td><pre>{esc(problem.prompt[:300])}</pre></td>"
                f"<td>{_fmt(problem.metrics['diversity/solve_rate'])}</td>"
                f"<td>{_fmt(problem.metrics['diversity/effective_solutions'])}</td>"
                f"<td>{'yes' if problem.is_seed else ''}</td>"
                f"<td>{'<br>'.join(esc(r) for r in problem.reasons)}</td></tr>")
        parts.append("</table>")
    parts.append("<h2>Configuration</h2><table><tr><th>setting</th><th>value</th><th>meaning</th></tr>")
    help_text = type(diagnosis.config).help()
    for key, value in asdict(diagnosis.config).items():
        parts.append(f"<tr><td>{esc(key)}</td><td>{esc(str(value))}</td><td>{esc(help_text[key])}</td></tr>")
    parts.append("</table></body></html>")
    return "".join(parts)


def write_report(diagnosis: Diagnosis, out_dir: Path | str) -> tuple[Path, Path]:
    """Write report.json and report.html into out_dir (created); return both paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    json_path, html_path = out / "report.json", out / "report.html"
    for path, text in ((json_path, diagnosis.to_json()), (html_path, render_html(diagnosis))):
        tmp = path.with_name(path.name + ".tmp")
        # lone surrogates (invalid UTF-8 in an input) become backslash escapes: valid JSON
        tmp.write_text(text, encoding="utf-8", errors="backslashreplace")
        tmp.replace(path)
    return json_path, html_path


def summary_table(diagnosis: Diagnosis):
    """A rich Table: one row per label with counts, mean solve rate and diversity."""
    from rich.table import Table

    table = Table(title=f"{diagnosis.totals['problems']} problems, "
                        f"{diagnosis.totals['rollouts']} rollouts, {diagnosis.totals['seeds']} seeds")
    for column in ("label", "problems", "share", "mean solve rate", "mean eff. solutions"):
        table.add_column(column, justify="left" if column == "label" else "right")
    total = diagnosis.totals["problems"] or 1
    for label in LABELS:
        problems = diagnosis.by_label(label)
        rates = _metric(problems, "diversity/solve_rate")
        effective = _metric(problems, "diversity/effective_solutions")
        table.add_row(label, str(len(problems)), f"{len(problems) / total:.1%}",
                      _fmt(float(np.nanmean(rates))) if len(problems) else "-",
                      _fmt(float(np.nanmean(effective))) if len(problems) else "-")
    return table


def diagnose_paths(inputs: Sequence[Path | str], out_dir: Path | str, *,
                   config=None, skip_bad: bool = False, correct_column: str | None = None,
                   timeout_s: float | None = None, progress: bool = False):
    """Read rollouts (any supported format), diagnose, write the report.

    Returns (diagnosis, loaded rollouts summary, report.json path, report.html path).
    """
    from svs.pipeline.memorization import diagnose
    from svs.pipeline.rollouts import groups_from_rollouts, load_rollouts

    loaded = load_rollouts(list(inputs), skip_bad=skip_bad, progress=progress,
                           correct_column=correct_column, timeout_s=timeout_s)
    if not loaded.rollouts:
        raise ValueError(f"no rollouts found in {', '.join(map(str, inputs))}")
    groups = groups_from_rollouts(loaded.rollouts)
    loaded.rollouts = []  # the groups hold them now; let the list go
    diagnosis = diagnose(groups, config, progress=progress)
    json_path, html_path = write_report(diagnosis, out_dir)
    return diagnosis, loaded, json_path, html_path


def trend_summary(diagnosis: Diagnosis) -> str | None:
    """One line on how the run moved between its first and last step, or None."""
    trends = step_trends(diagnosis)
    if len(trends) < 2:
        return None
    first, last = min(trends), max(trends)

    def move(key: str, percent: bool = False) -> str:
        a, b = trends[first].get(key, math.nan), trends[last].get(key, math.nan)
        return f"{a:.0%} -> {b:.0%}" if percent else f"{a:.2f} -> {b:.2f}"

    return (f"steps {first} -> {last}: mean solve rate {move('diversity/solve_rate')}, "
            f"solution diversity {move('diversity/solution_diversity')}, "
            f"share memorized {move('memorized_share', percent=True)}")
