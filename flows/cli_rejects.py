"""`svs rejects`: what a refresh rejected, by stage and reason, with examples."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from svs.flows.cli_common import SET_OPTION, STORE_ERRORS, STORE_OPTION, fail


def rejects_tables(rows: Sequence[Mapping[str, Any]], label: str, reason: str | None,
                   show: int) -> list[Table]:
    """Counts by stage/reason, then up to `show` examples per reason (text, detail)."""
    if reason is not None:
        rows = [r for r in rows if r.get("reason") == reason]
    counts = Table(title=f"rejects of {label}" + (f" with reason {reason}" if reason else ""))
    for column in ("stage", "reason", "count"):
        counts.add_column(column, justify="right" if column == "count" else "left")
    by_reason = Counter((r.get("stage", "?"), r["reason"]) for r in rows)
    for (stage, why), n in by_reason.most_common():
        counts.add_row(stage, why, str(n))
    if not rows:
        counts.add_row("-", "none", "0")
    examples = Table(title=f"examples (up to {show} per reason)")
    for column in ("reason", "detail", "text or output"):
        examples.add_column(column, overflow="fold")
    shown: Counter = Counter()
    for row in rows:
        if shown[row["reason"]] >= show:
            continue
        shown[row["reason"]] += 1
        text = row.get("text") or row.get("raw_output") or ""
        examples.add_row(row["reason"], str(row.get("detail", ""))[:160],
                         " ".join(str(text).split())[:200])
    return [counts, examples]


def rejects(
    set_name: str = SET_OPTION,
    store: Path = STORE_OPTION,
    version: str | None = typer.Option(None, "--version", "-v", help="Version (v2 or 2); default: the current one."),
    reason: str | None = typer.Option(None, "--reason", help="Only rejects with this reason slug (e.g. tag_soup, unsolvable)."),
    show: int = typer.Option(3, "--show", help="Examples shown per reason."),
    as_json: bool = typer.Option(False, "--json", help="Print the reject rows as JSON lines instead."),
) -> None:
    """List the candidates a version's refresh rejected, by stage and reason, with examples."""
    import json

    from rich.console import Console

    from svs.pipeline.store import PromptStore, parse_version

    try:
        loaded = PromptStore(store).load(set_name,
                                         None if version is None else parse_version(version))
    except STORE_ERRORS as exc:
        fail(exc)
    if as_json:
        for row in loaded.rejects:
            if reason is None or row.get("reason") == reason:
                print(json.dumps(row, ensure_ascii=False, default=str))
        return
    for table in rejects_tables(loaded.rejects, loaded.label, reason, show):
        Console().print(table)
