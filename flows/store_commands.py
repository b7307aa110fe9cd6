"""What `svs import`, `svs versions`, `svs diff`, `svs rollback` and `svs refresh` do,
minus argument parsing: each function does the work and returns rich renderables or
lines, so the typer commands in `flows/cli.py` stay a few lines long."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from rich.table import Table

from svs.pipeline import lineage
from svs.pipeline.importers import ColumnMap, import_problems
from svs.pipeline.store import (
    CorruptVersionError,
    NewVersion,
    PromptStore,
    PublishResult,
    StoreError,
    parse_version,
    version_label,
)
from svs.pipeline.store_diff import diff_versions

TRAINER_FORMATS = ("verl", "trl", "openrlhf")
IMPORT_FORMATS = ("table", *TRAINER_FORMATS)


def read_problems(path: Path, fmt: str, columns: ColumnMap) -> tuple[list[Any], dict, int]:
    """(problems, weights, duplicates dropped) from a table or a trainer file."""
    if fmt == "table":
        result = import_problems(path, columns)
        return result.problems, result.weights, result.duplicates
    if fmt not in TRAINER_FORMATS:
        raise ValueError(f"unknown import format {fmt!r}; choose one of {', '.join(IMPORT_FORMATS)}")
    from svs.trainer_bridge.formats import import_problems as import_trainer_file

    unique: dict[str, Any] = {}
    problems = import_trainer_file(path, fmt)
    for problem in problems:
        unique.setdefault(problem.id, problem)
    return list(unique.values()), {}, len(problems) - len(unique)


def import_into_store(store: PromptStore, name: str, path: Path, fmt: str, columns: ColumnMap,
                      add: bool) -> tuple[PublishResult, int, int]:
    """Publish a file's problems as a new set (v1), or with `add` as the next version of
    an existing set (problems already in it are skipped). Returns the publish result,
    the problems added and the duplicates skipped."""
    problems, weights, duplicates = read_problems(path, fmt, columns)
    key = hashlib.sha256(("import\x1f" + name + "\x1f" + "\x1f".join(p.id for p in problems))
                         .encode()).hexdigest()
    with store.lock(name, purpose="import"):
        if store.current_or_none(name) is None:  # new, or its first publish died
            graph = lineage.graph_for(problems, 1)
            new = NewVersion(problems, graph, weights=weights, note=f"import {Path(path).name}")
            return store.publish(name, new, parent=None, run_key=key), len(problems), duplicates
        if not add:
            raise StoreError(f"prompt set {name!r} already exists (current "
                             f"{version_label(store.current(name))}); pass --add to publish the "
                             f"file's problems as its next version, or choose another --set")
        done = store.resume(name, key)
        if done is not None:
            return done, 0, duplicates
        base = store.load(name)
        known = {p.id for p in base.problems}
        fresh = [p for p in problems if p.id not in known]
        graph = base.lineage.copy()
        version = store.next_version(name)
        lineage.add_problems(graph, fresh, version, allow_missing_parents=True)
        lineage.mark_active(graph, (p.id for p in fresh))
        new = NewVersion([*base.problems, *fresh], graph,
                         weights={**base.weights, **{p.id: weights.get(p.id, 1.0) for p in fresh}},
                         summary={"added": len(fresh)}, note=f"add {Path(path).name}")
        result = store.publish(name, new, parent=base.version, run_key=key)
        return result, len(fresh), duplicates + len(problems) - len(fresh)


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
