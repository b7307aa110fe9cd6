"""What a flow run shows in the Prefect UI (Artifacts tab of the run): a markdown summary
and tables. Builders are pure (summary in, markdown / rows out) and tested without
Prefect; `publish_*` hand them to Prefect.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

LABEL_ORDER = ("memorized", "solved_diverse", "learning", "unsolved")


def artifact_key(*parts: str) -> str:
    """A Prefect artifact key (lowercase letters, digits, dashes) from free-form parts."""
    text = "-".join(parts).lower()
    return re.sub(r"-{2,}", "-", re.sub(r"[^a-z0-9-]", "-", text)).strip("-")[:100] or "svs"


def _mean(values: Sequence[float]) -> float:
    finite = [v for v in values if v is not None and not math.isnan(v)]
    return sum(finite) / len(finite) if finite else math.nan


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "n/a" if math.isnan(value) else f"{value:.3f}"
    return str(value)


def label_rows(diagnosis: Any) -> list[dict[str, Any]]:
    """One row per label: problems, share, mean solve rate, mean effective solutions, seeds."""
    total = len(diagnosis.problems) or 1
    rows = []
    for label in LABEL_ORDER:
        members = [p for p in diagnosis.problems if p.label == label]
        rows.append({
            "label": label, "problems": len(members), "share": f"{len(members) / total:.1%}",
            "mean solve rate": _fmt(_mean([p.metrics.get("diversity/solve_rate", math.nan)
                                           for p in members])),
            "mean effective solutions": _fmt(_mean(
                [p.metrics.get("diversity/effective_solutions", math.nan) for p in members])),
            "seeds": sum(p.is_seed for p in members)})
    return rows


def reject_rows(rejects: Mapping[str, int]) -> list[dict[str, Any]]:
    """`{"verify/unsolvable": 3, ...}` -> rows with stage, reason and count, largest first."""
    rows = []
    for key, count in sorted(rejects.items(), key=lambda item: (-item[1], item[0])):
        stage, _, reason = key.partition("/")
        rows.append({"stage": stage, "reason": reason or stage, "count": count})
    return rows


def version_rows(summary: Any, exported: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
    rows = [{"prompt set": summary.name, "version": f"v{summary.version}",
             "parent": f"v{summary.base_version}", "outcome": summary.outcome,
             "added": summary.added, "retired": summary.retired,
             "downweighted": summary.downweighted}]
    for fmt, path in (exported or {}).items():
        rows.append({"prompt set": summary.name, "version": f"v{summary.version}",
                     "parent": f"export {fmt}", "outcome": path, "added": "", "retired": "",
                     "downweighted": ""})
    return rows


def refresh_markdown(summary: Any, exported: Mapping[str, str] | None = None,
                     runner: str = "thread") -> str:
    """The run's headline: what was published on what, and the funnel from problems to
    accepted variants."""
    outcome = {"published": "published", "adopted": "made current (it was finished before a "
               "crash)", "already": "already published by an earlier run with the same "
               "inputs; nothing new"}.get(summary.outcome, summary.outcome)
    labels = Counter(summary.labels)
    lines = [f"# {summary.name}: v{summary.base_version} -> v{summary.version}", "",
             f"**{summary.name}@v{summary.version}** {outcome}.", "",
             "| stage | count |", "|---|---:|"]
    for label in LABEL_ORDER:
        lines.append(f"| diagnose: {label} | {labels.get(label, 0)} |")
    lines += [f"| synthesize: seeds | {summary.seeds} |",
              f"| synthesize: candidates | {summary.candidates} |",
              f"| verify: accepted | {summary.accepted} |",
              f"| rejected (all reasons) | {sum(summary.rejects.values())} |",
              f"| next version: added | {summary.added} |",
              f"| next version: retired | {summary.retired} |",
              f"| next version: down-weighted | {summary.downweighted} |"]
    if summary.unmatched_groups:
        lines.append(f"| rollout groups matching no problem (ignored) | {summary.unmatched_groups} |")
    if exported:
        lines += ["", "Exported: " + ", ".join(f"{fmt} -> `{path}`" for fmt, path in exported.items())]
    lines += ["", f"Diagnosis ran on the `{runner}` task runner."]
    return "\n".join(lines)


def diagnosis_markdown(diagnosis: Any, report_dir: str | None = None) -> str:
    totals = diagnosis.totals
    lines = [f"# Diagnosis: {totals['problems']} problems, {totals['rollouts']} rollouts", "",
             f"{totals['seeds']} synthesis seeds; steps {list(diagnosis.steps) or ['-']}.", "",
             "| label | problems |", "|---|---:|"]
    lines += [f"| {label} | {totals['labels'].get(label, 0)} |" for label in LABEL_ORDER]
    if report_dir:
        lines += ["", f"Full report: `{report_dir}/report.html`"]
    return "\n".join(lines)


def publish_refresh_artifacts(summary: Any, diagnosis: Any | None,
                              exported: Mapping[str, str] | None, runner: str) -> None:
    from prefect.artifacts import create_markdown_artifact, create_table_artifact

    key = artifact_key("svs-refresh", summary.name)
    create_markdown_artifact(markdown=refresh_markdown(summary, exported, runner), key=key,
                             description=f"refresh of {summary.name}@v{summary.base_version}")
    create_table_artifact(table=version_rows(summary, exported), key=f"{key}-version",
                          description="the new version, its parent and what changed")
    if diagnosis is not None:
        create_table_artifact(table=label_rows(diagnosis), key=f"{key}-labels",
                              description="diagnosis labels of the base version's problems")
    create_table_artifact(table=reject_rows(summary.rejects) or [{"stage": "-", "reason": "none",
                                                                  "count": 0}],
                          key=f"{key}-rejects", description="rejected candidates by reason")


def publish_diagnosis_artifacts(diagnosis: Any, report_dir: str | None) -> None:
    from prefect.artifacts import create_markdown_artifact, create_table_artifact

    create_markdown_artifact(markdown=diagnosis_markdown(diagnosis, report_dir),
                             key="svs-diagnosis", description="memorization diagnosis")
    create_table_artifact(table=label_rows(diagnosis), key="svs-diagnosis-labels",
                          description="problems per label")
