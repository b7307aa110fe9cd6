"""The study's figures, drawn from `study.json` alone (an Agg canvas: no pyplot, no
display): the gains with their intervals and verdict colours, the metric curves per arm,
and the held-out method shares at the first and the late step."""

from __future__ import annotations

from pathlib import Path
from textwrap import shorten
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from svs.flows.lab.study_report import (
    ARM_COLOURS,
    BASELINE_COLOUR,
    METHOD_COLOURS,
    SIDE_STYLES,
    VERDICT_COLOURS,
    _comparison,
    _float,
    _keys,
    _mean,
    _mean_sd,
    _num,
    _seed_matrix,
    _titles,
    check_study,
)


def _gain_axes(ax: Any, study: dict[str, Any]) -> None:
    keys, baseline, titles = _keys(study), study["analysis"]["baseline"], _titles(study)
    others = [name for name in titles if name != baseline]
    for y, name in enumerate(others):
        _, gain, verdict = _comparison(study, name)
        mean, low, high = (_float(gain.get(k)) for k in ("mean", "low", "high"))
        if mean is not None:
            xerr = None if low is None or high is None else [[mean - low], [high - mean]]
            ax.barh(y, mean, xerr=xerr, color=VERDICT_COLOURS.get(verdict, "#c7c7c7"),
                    edgecolor="black", linewidth=0.5, capsize=4)
    ax.set_yticks(range(len(others)), [shorten(titles[n], 38, placeholder="…") for n in others],
                  fontsize=8)
    ax.axvline(0, color="black", linestyle="--", linewidth=0.8)
    min_gain = _float(study["analysis"]["rules"].get("min_gain"))
    if min_gain is not None:
        ax.axvline(min_gain, color="#2ca02c", linestyle="--", linewidth=0.8,
                   label=f"min gain {_num(min_gain, True)}")
    ax.legend(handles=[*(Patch(color=c, label=v) for v, c in VERDICT_COLOURS.items()),
                       *ax.get_legend_handles_labels()[0]], fontsize=7, loc="best")
    ax.set(ylim=(len(others) - 0.5, -0.5),
           title=f"(a) {keys['gain_label']} vs {baseline} (CI bars)")
    ax.grid(alpha=0.3, axis="x")


def _curve_axes(ax: Any, study: dict[str, Any], metric: str, title: str) -> None:
    steps = np.array(study["eval_steps"], dtype=float)
    others = [a["name"] for a in study["arms"] if a["name"] != study["analysis"]["baseline"]]
    colours = {name: ARM_COLOURS[i % len(ARM_COLOURS)] for i, name in enumerate(others)}
    for arm in study["arms"]:
        colour = colours.get(arm["name"], BASELINE_COLOUR)
        values = _seed_matrix(study, arm["name"],
                              [f"{metric}/step{step}" for step in study["eval_steps"]])
        mean, sd = _mean_sd(values)
        ok = np.isfinite(mean)
        ax.plot(steps[ok], mean[ok], color=colour, marker="o", markersize=3, linewidth=1.6,
                linestyle=SIDE_STYLES.get(str(arm.get("side")), "-"),
                label=shorten(str(arm.get("title") or arm["name"]), 48, placeholder="…"))
        ax.fill_between(steps[ok], (mean - sd)[ok], (mean + sd)[ok], color=colour, alpha=0.12,
                        linewidth=0)
    ax.set(xticks=steps, xlabel="step", title=title)
    ax.grid(alpha=0.3)


def _bottom_legend(figure: Figure, ax: Any, ncol: int) -> Figure:
    handles, labels = ax.get_legend_handles_labels()
    figure.tight_layout()
    figure.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.0),
                  ncol=max(1, min(ncol, len(labels))), fontsize=9, frameon=False)
    return figure


def study_figure(study: dict[str, Any]) -> Figure:
    """(a) late gains with CIs, coloured by verdict; (b) held-out method entropy and
    (c) the gain metric over the eval steps, mean over seeds with a ±1 sd band."""
    check_study(study)
    figure = Figure(figsize=(19, 5.8))
    FigureCanvasAgg(figure)  # drawn with Agg, no pyplot
    gain_ax, entropy_ax, metric_ax = figure.subplots(1, 3, width_ratios=[1.15, 1, 1])
    _gain_axes(gain_ax, study)
    keys = _keys(study)
    _curve_axes(entropy_ax, study, keys["entropy_metric"],
                f"(b) {keys['entropy_metric'].replace('heldout/', 'held-out ')} (nats), ± 1 sd")
    _curve_axes(metric_ax, study, keys["metric"], f"(c) {keys['label']}, mean ± 1 sd")
    return _bottom_legend(figure, metric_ax, 3)


def write_study_figure(study: dict[str, Any], path: str | Path) -> Path:
    """Write the three-panel study figure as one PNG file and return its path."""
    path = Path(path)
    study_figure(study).savefig(path, format="png", dpi=100, bbox_inches="tight")
    return path


def shares_figure(study: dict[str, Any]) -> Figure:
    """Stacked bars of the mean held-out method shares per arm, at the start and late steps."""
    check_study(study)
    keys, titles, names = _keys(study), _titles(study), [arm["name"] for arm in study["arms"]]
    figure = Figure(figsize=(15, 1.4 + 0.42 * len(names)))
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, 2, sharey=True)
    for ax, step in zip(axes, (keys["first"], keys["late"]), strict=True):
        left = np.zeros(len(names))
        for index, method in enumerate(map(str, study["methods"])):
            widths = np.array([_mean(study, n, f"heldout/method_share/{method}/step{step}") or 0.0
                               for n in names])
            ax.barh(range(len(names)), widths, left=left, label=method, edgecolor="white",
                    linewidth=0.5, color=METHOD_COLOURS[index % len(METHOD_COLOURS)])
            left += widths
        ax.set(xlim=(0, 1), title=f"held-out method shares at step {step}")
        ax.grid(alpha=0.3, axis="x")
    axes[0].set_yticks(range(len(names)), [shorten(titles[n], 38, placeholder="…")
                                           for n in names], fontsize=8)
    axes[0].set_ylim(len(names) - 0.5, -0.5)
    return _bottom_legend(figure, axes[1], 6)
