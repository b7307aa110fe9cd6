"""What `svs import`, `svs versions`, `svs diff`, `svs rollback` and `svs refresh` do,
minus argument parsing: each function does the work and returns rich renderables or
lines, so the typer commands in `flows/cli.py` stay a few lines long."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.table import Table

from svs.pipeline.importers import ColumnMap
from svs.pipeline.store import (
    CorruptVersionError,
    PromptStore,
    PublishResult,
    StoreError,
    parse_version,
    version_label,
)
from svs.pipeline.store_diff import diff_versions
from svs.pipeline.store_import import import_table, publish_import

TRAINER_FORMATS = ("verl", "trl", "openrlhf")
IMPORT_FORMATS = ("table", *TRAINER_FORMATS)


def import_into_store(store: PromptStore, name: str, path: Path, fmt: str, columns: ColumnMap,
                      add: bool) -> tuple[PublishResult, int, int]:
    """Read a table or a trainer file and publish it (`svs.pipeline.store_import`)."""
    if fmt == "table":
        return import_table(store, name, path, columns, add)
    if fmt not in TRAINER_FORMATS:
        raise ValueError(f"unknown import format {fmt!r}; choose one of {', '.join(IMPORT_FORMATS)}")
    from svs.trainer_bridge.formats import import_problems as import_trainer_file

    problems = import_trainer_file(path, fmt)
    unique: dict[str, Any] = {}
    for problem in problems:
        unique.setdefault(problem.id, problem)  # the first of equal problems is kept
    return publish_import(store, name, path, list(unique.values()), {},
                          len(problems) - len(unique), add)


def versions_table(store: PromptStore, name: str) -> Table:
    current = store.current(name)
    table = Table(title=f"{name} in {store.root}")
    for column in ("version", "parent", "created UTC", "size", "added", "retired", "rejects",
                   "note"):
        table.add_column(column, justify="right" if column in ("size", "added", "retired",
                                                              "rejects") else "left",
                         overflow="fold", min_width=12 if column == "note" else None)
    for version in store.versions(name):
        marker = " *" if version == current else ""
        try:
            manifest = store.verify(name, version)
        except CorruptVersionError as exc:
            table.add_row(version_label(version) + marker, "?", "?", "?", "?", "?", "?",
                          f"[red]corrupt: {exc.file}[/red]")
            continue
        summary = manifest.get("summary") or {}
        added = summary.get("added", manifest["n_problems"] if manifest["parent"] is None else "")
        table.add_row(version_label(version) + marker, version_label(manifest["parent"]),
                      manifest["created_at"][5:16].replace("T", " "), str(manifest["n_problems"]),
                      str(added), str(len(summary.get("retired", {}))),
                      str(manifest["n_rejects"]), manifest.get("note", ""))
    return table


def split_ref(ref: str, name: str | None) -> tuple[str, int]:
    """"math@v2" or "v2" (with --set) -> (name, 2)."""
    if "@" in ref:
        ref_name, _, version = ref.partition("@")
        return ref_name, parse_version(version)
    if name is None:
        raise StoreError(f"say which set {ref!r} belongs to: --set NAME, or write NAME@{ref}")
    return name, parse_version(ref)


def diff_report(store: PromptStore, a: str, b: str | None, name: str | None,
                show: int) -> tuple[list[Table], dict[str, Any]]:
    a_name, a_version = split_ref(a, name)
    b_name, b_version = split_ref(b, name) if b else (a_name, store.current(a_name))
    diff = diff_versions(store.load(a_name, a_version), store.load(b_name, b_version))
    counts = Table(title=f"{diff.a} -> {diff.b}")
    counts.add_column("change")
    counts.add_column("by")
    counts.add_column("problems", justify="right")
    for synthesizer, n in sorted(diff.added_by_synthesizer.items()):
        counts.add_row("added", synthesizer, str(n))
    for reason, n in sorted(diff.retired_by_reason.items()):
        counts.add_row("retired", reason, str(n))
    for field_label, n in sorted(diff.changed_by_label.items()):
        counts.add_row("changed", field_label, str(n))
    if not (diff.added or diff.retired or diff.changed):
        counts.add_row("none", "", "0")
    examples = Table(title=f"examples (up to {show} of each)")
    for column in ("change", "id", "detail", "text"):
        examples.add_column(column, overflow="fold")
    for problem in diff.added[:show]:
        examples.add_row("added", problem.id, f"{problem.synthesizer or 'original'} of "
                         f"{problem.parent_id or '-'} (gen {problem.generation})",
                         problem.text[:120])
    for problem in diff.retired[:show]:
        examples.add_row("retired", problem.id, diff.retired_because[problem.id], problem.text[:120])
    for change in diff.changed[:show]:
        examples.add_row("changed", change.problem_id, f"{change.field}: {change.old} -> "
                         f"{change.new} ({change.label})", "")
    return [counts, examples], diff.to_dict()


def refresh_report(summary: Any) -> tuple[Table, str]:
    table = Table(title=f"refresh of {summary.name}@v{summary.base_version}")
    table.add_column("stage")
    table.add_column("what")
    table.add_column("count", justify="right")
    for label, n in sorted(summary.labels.items()):
        table.add_row("diagnose", f"label {label}", str(n))
    table.add_row("synthesize", "seeds", str(summary.seeds))
    table.add_row("synthesize", "candidates", str(summary.candidates))
    table.add_row("verify", "accepted", str(summary.accepted))
    for reason, n in summary.rejects.items():
        table.add_row("reject", reason, str(n))
    for what in ("added", "retired", "downweighted"):
        table.add_row("next version", what, str(getattr(summary, what)))
    if summary.unmatched_groups:
        table.add_row("rollouts", "groups matching no problem (ignored)",
                      str(summary.unmatched_groups))
    outcome = {"published": "published", "adopted": "made current (finished before a crash)",
               "already": "already published by an earlier run with the same inputs; nothing "
                          "to do"}[summary.outcome]
    cost = getattr(summary, "generated_tokens", 0)
    if cost:
        table.add_row("policy", "tokens generated (rollouts, synthesis, verification)",
                      f"{cost:,}")
    line = f"{summary.name}@v{summary.version}: {outcome}"
    return table, line + (f" ({cost:,} tokens generated by the policy)" if cost else "")


# ------------------------------------------------------------------ refresh visibility
def rollouts_lines(groups: Any, unmatched: int) -> list[str]:
    """What `[2/8] rollouts` read and matched."""
    rollouts = sum(g.n for g in groups)
    problems = len({g.problem_id for g in groups})
    lines = [f"      read {len(groups) + unmatched} rollout groups; {len(groups)} matched "
             f"{problems} problems of the set ({rollouts} rollouts), {unmatched} matched none "
             f"(ignored)"]
    truncated = sum(1 for g in groups for r in g.rollouts
                    if r.metadata.get("finish_reason") == "length")
    if truncated:
        lines.append(f"      {truncated} of {rollouts} rollouts were cut at the token limit")
    return lines


def diagnosis_lines(diagnosis: Any) -> list[str]:
    totals = diagnosis.totals
    labels = ", ".join(f"{n} {label}" for label, n in totals["labels"].items() if n)
    lines = [f"      {totals['problems']} problems: {labels or 'none'}; {totals['seeds']} seeds"]
    guessed, truncated = totals.get("answers/guessed", 0), totals.get("answers/truncated", 0)
    if guessed or truncated:
        lines.append(f"      {guessed} correct rollouts are guessed answers, {truncated} "
                     f"rollouts were cut at the token limit: neither makes a seed")
    lines += [f"      warning: {warning}" for warning in totals.get("warnings", ())]
    return lines


def synthesis_lines(seeds: Any, candidates: Any) -> list[str]:
    from collections import Counter

    found = Counter(c.problem.metadata.get("extraction", "?") for c in candidates
                    if c.problem is not None)
    failed = Counter(c.reason for c in candidates if c.problem is None)
    how = ", ".join(f"{n} by {method}" for method, n in sorted(found.items()))
    lost = ", ".join(f"{n} {reason}" for reason, n in sorted(failed.items()))
    return [f"      {len(seeds)} seeds -> {len(candidates)} outputs: "
            f"{sum(found.values())} problems extracted ({how or 'none'})"
            + (f"; {lost}" if lost else "")]


def verify_lines(accepted: Any, rejects: Any) -> list[str]:
    from collections import Counter

    reasons = Counter(r["reason"] for r in rejects)
    text = ", ".join(f"{n} {reason}" for reason, n in reasons.most_common())
    return [f"      {len(accepted)} accepted, {len(rejects)} rejected ({text or 'none'}); "
            f"a published version's rejects: `svs rejects --set NAME`"]


def weak_policy_refusal(config: Any, seeds: Any, accepted: Any, diagnosis: Any) -> str | None:
    """Why a refresh must not publish: a policy-driven synthesizer ran and the policy gave
    no seed or no acceptable variant (None: publish). `policy.require_variants=False`
    turns this off."""
    from svs.synthesizers import registry

    if not config.policy.require_variants:
        return None
    if not any(registry.get(name).needs_policy for name in config.synthesizers):
        return None
    advice = ("nothing was published. Use a stronger policy, raise the token limits, or set "
              "policy.require_variants: false to publish the diagnosis' retirements and "
              "weights alone")
    if not seeds:
        totals = diagnosis.totals
        return (f"the policy is too weak to produce seeds: of {totals['problems']} problems "
                f"none has a real solve rate in the seed band ({totals.get('answers/guessed', 0)}"
                f" correct rollouts were guessed answers, {totals.get('answers/truncated', 0)}"
                f" rollouts were cut at the token limit); " + advice)
    if not accepted:
        return (f"the policy produced no acceptable variant from {len(seeds)} seeds (see the "
                f"reject reasons above); " + advice)
    return None
