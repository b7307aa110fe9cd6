"""The `svs` command line. Each command is a thin shell over a stage function."""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(
    name="svs",
    help="Keep RLVR math training from collapsing onto memorized prompts.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)


@app.callback()
def main() -> None:
    """svs: detect memorized prompts, synthesize variational problems, publish prompt sets."""


@app.command()
def grade(
    inputs: list[Path] = typer.Argument(..., help="Native rollout files (.jsonl or .parquet)."),
    out: Path = typer.Option(..., "--out", "-o", help="Where to write the graded rows (.jsonl or .parquet)."),
    skip_bad: bool = typer.Option(False, "--skip-bad", help="Skip malformed rows (counted) instead of stopping at the first."),
    timeout: float = typer.Option(5.0, "--timeout", help="Seconds allowed per answer check."),
) -> None:
    """Grade every rollout: add `extracted`, `correct` and `reason` columns."""
    from rich.console import Console
    from rich.table import Table

    from pipeline.grading import grade_file
    from pipeline.rollouts import RolloutFileError

    console = Console(stderr=True)
    try:
        summary = grade_file(inputs, out, skip_bad=skip_bad, timeout_s=timeout, progress=True)
    except RolloutFileError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    table = Table(title=f"graded {summary.rows} rollouts -> {out}")
    table.add_column("reason")
    table.add_column("rollouts", justify="right")
    table.add_column("share", justify="right")
    for reason, count in summary.by_reason.most_common():
        table.add_row(reason, str(count), f"{count / summary.rows:.1%}")
    Console().print(table)
    print(f"accuracy {summary.accuracy:.3f}  ({summary.correct}/{summary.rows} correct; "
          f"{summary.flagged} answers guessed from the last number)")
    if summary.skipped:
        print(f"skipped {len(summary.skipped)} malformed rows, e.g. "
              + "; ".join(f"{f}:{line}: {why}" for f, line, why in summary.skipped[:3]))
