"""The study's report, drawn from `study.json` alone: a markdown block, terminal verdict
lines, a figure and a self-contained HTML page (CSS inline, PNGs base64). Gains, intervals,
p-values, ratios and verdicts are the `analysis` dict's own; only curve means and spreads are
computed here from `per_seed`. Figures use an Agg canvas (no pyplot, no display)."""

from __future__ import annotations

import html
import json
import re
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from svs.pipeline.report import figure_png

MINUS, DASH = "\u2212", "–"
VERDICT_COLOURS = {"shown": "#2ca02c", "shown, over budget": "#ff7f0e", "refuted": "#d62728",
                   "inconclusive": "#7f7f7f", "not read": "#c7c7c7"}
ARM_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2",
               "#bcbd22", "#17becf")  # tab10 without its grey (the baseline's)
METHOD_COLOURS = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1",
                  "#ff9da7", "#9c755f", "#bab0ac")
BASELINE_COLOUR = "#555555"
SIDE_STYLES = {"data": "-", "loss": "--", "control": ":"}
REQUIRED = ("name", "arms", "seeds", "eval_steps", "methods", "per_seed", "analysis")
ANALYSIS_REQUIRED = ("valid", "controls", "baseline", "arms", "rules")
RULES_REQUIRED = ("metric", "late_step", "start_step")
Rows = tuple[list[str], list[list[str]]]


def check_study(study: Any) -> None:
    """Raise a ValueError naming the first required part `study` lacks."""
    if not isinstance(study, dict):
        raise ValueError("the study must be a dict (the contents of study.json)")
    analysis = study.get("analysis")
    rules = analysis.get("rules") if isinstance(analysis, dict) else None
    for where, part, keys in (("study", study, REQUIRED),
                              ("study['analysis']", analysis, ANALYSIS_REQUIRED),
                              ("study['analysis']['rules']", rules, RULES_REQUIRED)):
        if not isinstance(part, dict):
            raise ValueError(f"{where} must be a dict, not {type(part).__name__}")
        for key in keys:
            if key not in part:
                raise ValueError(f"{where} lacks required key {key!r}")
    if not study["arms"]:
        raise ValueError("study['arms'] is empty")
    for index, arm in enumerate(study["arms"]):
        if not isinstance(arm, dict) or "name" not in arm:
            raise ValueError(f"study['arms'][{index}] lacks required key 'name'")
        for where, container in (("['analysis']['arms']", analysis["arms"]),
                                 ("['per_seed']", study["per_seed"])):
            if arm["name"] not in container:
                raise ValueError(f"study{where} lacks arm {arm['name']!r}")
    if analysis["baseline"] not in _titles(study):
        raise ValueError(f"the baseline {analysis['baseline']!r} (study['analysis']['baseline'])"
                         " is not one of study['arms']")


def _titles(study: dict[str, Any]) -> dict[str, str]:
    return {arm["name"]: str(arm.get("title") or arm["name"]) for arm in study["arms"]}


def _float(value: Any) -> float | None:
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    return float(value) if number and np.isfinite(value) else None


def _num(value: Any, signed: bool = False, p: bool = False) -> str:
    """Three decimals, a true minus sign, `+` on differences (signed), `<0.001` for p-values."""
    value = _float(value)
    if value is None or (p and value < 0.001):
        return DASH if value is None else "<0.001"
    return (f"{value:+.3f}" if signed else f"{value:.3f}").replace("-", MINUS)


def _ci(part: dict[str, Any], mean: str = "mean", signed: bool = True) -> str:
    """`+0.031 [−0.010, +0.072]` from a dict's mean (or `mean` key), low and high."""
    low, high = _num(part.get("low"), signed), _num(part.get("high"), signed)
    return _num(part.get(mean), signed) + ("" if low == high == DASH else f" [{low}, {high}]")


def _value(value: Any) -> str:
    value = _float(value)
    return DASH if value is None else f"{value:,.0f}" if abs(value) >= 100 else _num(value)


def _keys(study: dict[str, Any]) -> dict[str, Any]:
    """Keys and labels from the rules; "first" stands in for a null start_step in panels."""
    rules = study["analysis"]["rules"]
    late, start, label = rules["late_step"], rules["start_step"], str(rules["metric"])
    label = label.replace("heldout/", "held-out ")
    entropy = rules.get("entropy_metric") or "heldout/method_entropy"
    pass1 = rules.get("pass1_metric") or "heldout/pass@1"
    return {"metric": rules["metric"], "late": late, "start": start, "label": label,
            "first": start if start is not None else min(study["eval_steps"], default=late),
            "gain": f"{rules['metric']}/step{late}", "pass1": f"{pass1}/step{late}",
            "entropy_metric": entropy, "entropy": f"{entropy}/step{late}",
            "gain_label": f"{label} gain" + (f", change {start}→{late}," if start is not None
                                             else f" at step {late}")}


def _seed_matrix(study: dict[str, Any], arm: str, keys: list[str]) -> np.ndarray:
    runs = study["per_seed"].get(arm) or {}
    rows = [[_float((runs.get(str(seed), runs.get(seed)) or {}).get(key)) for key in keys]
            for seed in study["seeds"]]  # seeds x keys; seeds keyed "0" or 0; None -> NaN
    return np.array(rows, dtype=float).reshape(len(study["seeds"]), len(keys))


def _mean_sd(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Column means and sample sds over the finite entries (rows are seeds; sd 0 if n < 2)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns and n < 2
        return np.nanmean(values, axis=0), np.nan_to_num(np.nanstd(values, axis=0, ddof=1))


def _mean(study: dict[str, Any], arm: str, key: str) -> float | None:
    """The analysis' mean of `key` for `arm`, else the mean over its finite per-seed values."""
    listed = _float((study["analysis"]["arms"][arm].get("means") or {}).get(key))
    if listed is not None:
        return listed
    return _float(_mean_sd(_seed_matrix(study, arm, [key]))[0][0])


def _comparison(study: dict[str, Any], arm: str) -> tuple[dict, dict, str]:
    comparison = study["analysis"]["arms"][arm].get("comparison") or {}
    return comparison, comparison.get("gain") or {}, str(comparison.get("verdict") or "not read")


def _validity(study: dict[str, Any]) -> str:
    analysis = study["analysis"]
    if analysis["valid"]:
        return "testbed valid"
    names = analysis.get("invalid_because") or [
        c.get("name") for c in analysis["controls"] if c.get("passed") is False]
    if not names and all(c.get("passed") is None for c in analysis["controls"]):
        return "testbed INVALID: no control was run — no arm is read"
    return (f"testbed INVALID: {', '.join(map(str, names)) or 'unnamed controls'} failed"
            " — no arm is read")


def _control_rows(study: dict[str, Any]) -> Rows:
    rows = []
    for control in study["analysis"]["controls"]:
        passed, n = control.get("passed"), control.get("n")
        rows.append([str(control.get("name", "?")), str(control.get("description", "")),
                     _ci(control, "estimate", control.get("kind") != "share_below"),
                     str(n) if isinstance(n, int) else DASH,  # a share is not a difference
                     "passed" if passed is True else "failed" if passed is False else "not run",
                     str(control.get("status", "")), str(control.get("detail", ""))])
    return ["control", "description", "estimate [low, high]", "n", "result", "status",
            "detail"], rows  # status and detail: the HTML page only


def _arm_rows(study: dict[str, Any]) -> Rows:
    keys, baseline, rows = _keys(study), study["analysis"]["baseline"], []
    for name, title in _titles(study).items():
        arm = title if title == name else f"{title} ({name})"
        entropy = _num(_mean(study, name, keys["entropy"]))
        if name == baseline:
            rows.append([arm, f"{_num(_mean(study, name, keys['gain']))} (own value)", DASH,
                         entropy, DASH, f"{_num(_mean(study, name, keys['pass1']))} (own pass@1)",
                         DASH, "baseline", ""])
            continue
        comparison, gain, verdict = _comparison(study, name)
        rows.append([arm, _ci(gain), _num(gain.get("p_adjusted"), p=True), entropy,
                     _num(comparison.get("entropy_ratio")), _ci(comparison.get("pass1_diff") or {}),
                     _num(comparison.get("token_ratio")), verdict,
                     "; ".join(map(str, comparison.get("reasons") or []))])
    correction = study["analysis"]["rules"].get("correction") or "adjusted"
    return ["arm", f"{keys['gain_label']} vs {baseline}", f"p ({correction})",
            f"{keys['entropy']} (mean)", "entropy ratio", f"{keys['pass1']} diff",
            "token ratio", "verdict", "reasons"], rows


def _recovery(study: dict[str, Any]) -> str | None:
    recovery = study["analysis"].get("recovery") or {}
    reason = f" — {recovery['reason']}" if recovery.get("reason") else ""
    return f"recovery fraction: {_num(recovery.get('fraction'))}{reason}" if recovery else None


def _footer(study: dict[str, Any]) -> str:
    rules, keys, seeds = study["analysis"]["rules"], _keys(study), study["seeds"]
    ns = sorted({gain["n"] for name in _titles(study) if name != study["analysis"]["baseline"]
                 if isinstance((gain := _comparison(study, name)[1]).get("n"), int)})
    return "; ".join([f"{len(seeds)} seeds ({', '.join(map(str, seeds))})",
                      f"n = {', '.join(map(str, ns)) or DASH} paired seeds per comparison",
                      f"test: {rules.get('test', DASH)}",
                      f"correction: {rules.get('correction', DASH)}; "
                      f"confidence {rules.get('confidence', DASH)}",
                      f"min gain {_num(rules.get('min_gain'), True)}",
                      f"gain metric {keys['metric']} at late step {keys['late']} "
                      f"(start step {DASH if keys['start'] is None else keys['start']})"])


def _md_table(headers: list[str], rows: list[list[str]], columns: int) -> str:
    def line(cells: list[str]) -> str:  # backslash-escape what GitHub reads as table or HTML
        return "| " + " | ".join(re.sub(r"([\\|<>])", r"\\\1", c).replace("\n", " ")
                                 for c in cells[:columns]) + " |"
    return "\n".join([line(headers), "|" + "---|" * columns, *[line(row) for row in rows]])


def study_table_markdown(study: dict[str, Any]) -> str:
    """A GitHub markdown block: controls table, validity line, arms table, recovery, footer."""
    check_study(study)
    recovery = _recovery(study)
    parts = [f"**{study['name']}: controls**", "", _md_table(*_control_rows(study), 5), "",
             f"**{_validity(study)}**", "", f"**{study['name']}: arms**", "",
             _md_table(*_arm_rows(study), 8), "", *([recovery, ""] if recovery else [])]
    return "\n".join([*parts, _footer(study)]) + "\n"


def _ledger_rows(study: dict[str, Any]) -> Rows:
    """Per arm and window of steps: the doctor's leading cause over the seeds (how many
    seeds name it), the mean memorized (all-correct) group share, the leading quadrant."""
    ledger = study.get("ledger") or {}
    windows = sorted({(w["first"], w["last"]) for by in ledger.values() for rs in by.values()
                      for w in rs})
    rows = []
    for name, title in _titles(study).items():
        by_seed = ledger.get(name) or {}
        if not by_seed:
            continue
        cells = [title if title == name else f"{title} ({name})"]
        for first, last in windows:
            found = [w for rs in by_seed.values() for w in rs
                     if (w["first"], w["last"]) == (first, last)]
            if not found:
                cells.append(DASH)
                continue
            causes = Counter(w["leading"] for w in found)
            quadrants = Counter(w["quadrant"] for w in found if w["quadrant"])
            memorized = [w["evidence"]["memorization"] for w in found
                         if "memorization" in w["evidence"]]
            text = ", ".join(f"{c} {n}/{len(found)}" for c, n in causes.most_common())
            if memorized:
                text += f"; memorized {sum(memorized) / len(memorized):.3f}"
            if quadrants:
                text += f"; C in {quadrants.most_common(1)[0][0]}"
            cells.append(text)
        rows.append(cells)
    return ["arm", *[f"steps {a}-{b}" for a, b in windows]], rows


def ledger_table_markdown(study: dict[str, Any]) -> str:
    """The `svs doctor` reading of every run as a GitHub table (empty when not recorded)."""
    headers, rows = _ledger_rows(study)
    return _md_table(headers, rows, len(headers)) + "\n" if rows else ""


def verdict_lines(study: dict[str, Any], invalid_by: str | None = None) -> list[str]:
    """Plain-text lines for a terminal: the validity, then one per arm.

    `invalid_by` says why the testbed is invalid when another study on the same
    bootstrap failed a positive control this one did not run (the rule is "if any
    control fails, no arm is read"): every arm is then "not read", its computed verdict
    kept in brackets."""
    check_study(study)
    keys, baseline = _keys(study), study["analysis"]["baseline"]
    head = f"{study['name']} study ({len(study['seeds'])} seeds)"
    inherited = bool(invalid_by) and study["analysis"]["valid"]
    validity = f"testbed INVALID: {invalid_by} — no arm is read" if inherited else _validity(study)
    lines = [f"{head}: {validity}"]
    for name, row in zip(_titles(study), _arm_rows(study)[1], strict=True):
        shown = f"not read (computed: {row[7]})" if inherited else row[7]
        lines.append(f"{head}: {name} — baseline ({keys['label']} at step {keys['late']} = "
                     f"{_num(_mean(study, name, keys['gain']))})" if name == baseline else
                     f"{head}: {name} — {shown} (gain {row[1]}, p {row[2]})")
    return lines


def _html_table(headers: list[Any], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>"
                   for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _per_seed_html(study: dict[str, Any]) -> str:
    k = _keys(study)
    late, parts = k["late"], []
    keys = [f"{k['metric']}/step{k['first']}", k["gain"], k["pass1"], k["entropy"],
            f"heldout/distinct_correct_methods/step{late}", f"train/pass@1/step{late}",
            f"gap/step{late}", f"canonical_entropy/step{late}", "tokens", "seconds"]
    for name, title in _titles(study).items():
        values = _seed_matrix(study, name, keys)
        rows = [[str(seed), *map(_value, row)] for seed, row in zip(study["seeds"], values,
                                                                     strict=True)]
        rows.append(["mean ± sd", *[f"{_value(m)} ± {_value(s)}"
                                    for m, s in zip(*_mean_sd(values), strict=True)]])
        parts.append(f"<details><summary>{html.escape(title)} ({html.escape(name)})</summary>"
                     f"{_html_table(['seed', *keys], rows)}</details>")
    return "\n".join(parts)


def write_study_report(study: dict[str, Any], path: str | Path) -> Path:
    """Write the study's self-contained HTML page (CSS inline, figures as base64 PNGs)."""
    from svs.flows.lab.study_figures import shares_figure, study_figure

    check_study(study)
    esc, name, recovery, keys = html.escape, str(study["name"]), _recovery(study), _keys(study)
    settings = json.dumps({"arms": study["arms"], "rules": study["analysis"]["rules"]},
                          indent=1, default=str)
    timing = [[k, _value(v) if _float(v) is not None else v]
              for k, v in (study.get("timing") or {}).items()]
    banner = "valid" if study["analysis"]["valid"] else "invalid"
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>svs lab study: {esc(name)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; max-width: 1200px; color: #222; }}
table {{ border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }}
td, th {{ border: 1px solid #ccc; padding: 3px 8px; text-align: right; }}
td:first-child, th:first-child {{ text-align: left; }} img {{ max-width: 100%; }}
.banner {{ padding: 0.6em 1em; border-radius: 4px; font-weight: 600; margin: 1em 0; }}
.valid {{ background: #e6f4e6; border: 1px solid #2ca02c; }} summary {{ cursor: pointer; }}
.invalid {{ background: #fbe6e6; border: 1px solid #d62728; }}
</style></head><body>
<h1>svs lab study: {esc(name)}</h1>
<p>{esc(str(study.get("description") or ""))}</p>
<p>Config: {esc(str(study.get("config_file") or DASH))}. Every number below is read from this
study's study.json; gains, intervals, p-values and verdicts are the pre-registered analysis'.</p>
<div class="banner {banner}">{esc(_validity(study))}</div>
<h2>Controls</h2>
{_html_table(*_control_rows(study))}
<h2>Arms</h2>
{_html_table(*_arm_rows(study))}
{f"<p>{esc(recovery)}</p>" if recovery else ""}
<p>{esc(_footer(study))}</p>
<img src="data:image/png;base64,{figure_png(study_figure(study))}" alt="study figure">
<h2>Held-out method shares (means over seeds, at step {esc(str(keys['first']))} and
step {esc(str(keys['late']))})</h2>
<img src="data:image/png;base64,{figure_png(shares_figure(study))}" alt="method shares">
<h2>The entropy ledger: what <code>svs doctor</code> reads in each run</h2>
<p>Leading cause of entropy loss per window of steps (how many seeds name it), the mean
share of memorized (all-correct) groups and the quadrant carrying the covariance term.</p>
{_html_table(*_ledger_rows(study)) if _ledger_rows(study)[1] else "<p>not recorded</p>"}
<h2>Per-seed values</h2>
{_per_seed_html(study)}
<h2>The arms' settings and the pre-registered rules</h2>
<pre>{esc(settings)}</pre>
<h2>Wall-clock time (not part of the compared numbers)</h2>
{_html_table(["part", "value"], timing) if timing else "<p>none recorded</p>"}
</body></html>
"""
    path = Path(path)
    path.write_text(page, encoding="utf-8")
    return path
