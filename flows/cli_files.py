"""`svs grade`, `svs diagnose`, `svs export`: commands over rollout and prompt files."""

from __future__ import annotations

from pathlib import Path

import typer

from svs.flows.cli_common import fail


def grade(
    inputs: list[Path] = typer.Argument(..., help="Native rollout files (.jsonl or .parquet)."),
    out: Path = typer.Option(..., "--out", "-o", help="Where to write the graded rows (.jsonl or .parquet)."),
    skip_bad: bool = typer.Option(False, "--skip-bad", help="Skip malformed rows (counted) instead of stopping at the first."),
    timeout: float = typer.Option(5.0, "--timeout", help="Seconds allowed per answer check."),
) -> None:
    """Grade every rollout: add `extracted`, `correct` and `reason` columns."""
    from rich.console import Console
    from rich.table import Table

    from svs.pipeline.grading import grade_file
    from svs.pipeline.rollouts import RolloutFileError

    try:
        summary = grade_file(inputs, out, skip_bad=skip_bad, timeout_s=timeout, progress=True)
    except RolloutFileError as exc:
        fail(exc)
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

def diagnose(
    inputs: list[Path] = typer.Argument(..., help="Rollout files or folders: native .jsonl/.parquet, verl dump folders ({step}.jsonl), TRL completions folders (auto-detected)."),
    out: Path = typer.Option(Path("svs-diagnosis"), "--out", "-o", help="Folder for report.json and report.html."),
    skip_bad: bool = typer.Option(False, "--skip-bad", help="Skip malformed rows (counted) instead of stopping at the first."),
    correct_column: str | None = typer.Option(None, "--correct-column", help="Column whose value > 0 marks a correct rollout (when auto-detection cannot tell)."),
    timeout: float = typer.Option(5.0, "--timeout", help="Seconds allowed per answer check when rows need grading."),
    solved_min: float = typer.Option(0.85, "--solved-min", help="Solve rate from which a problem counts as solved."),
    max_effective: float = typer.Option(2.0, "--max-effective-solutions", help="Solved problems with at most this many effective distinct solutions are memorized."),
    cluster_threshold: float = typer.Option(0.4, "--cluster-threshold", help="Similarity at which two correct solutions are the same trajectory."),
    seed_memorized: bool = typer.Option(False, "--seed-memorized", help="Also mark memorized problems as synthesis seeds."),
) -> None:
    """Label every problem memorized / solved_diverse / learning / unsolved; write a report."""
    from rich.console import Console

    from svs.pipeline.memorization import DiagnosisConfig
    from svs.pipeline.report import diagnose_paths, summary_table, trend_summary
    from svs.pipeline.rollouts import RolloutFileError

    console = Console(stderr=True)
    try:
        config = DiagnosisConfig(solved_min_solve_rate=solved_min, max_effective_solutions=max_effective,
                                 cluster_threshold=cluster_threshold, seed_memorized=seed_memorized)
        diagnosis, loaded, json_path, html_path = diagnose_paths(
            inputs, out, config=config, skip_bad=skip_bad, correct_column=correct_column,
            timeout_s=timeout, progress=True)
    except (RolloutFileError, ValueError) as exc:
        fail(exc)
    for note in loaded.notes[:5]:
        console.print(f"[dim]{note}[/dim]")
    if len(loaded.notes) > 5:
        console.print(f"[dim]... and {len(loaded.notes) - 5} more files[/dim]")
    Console().print(summary_table(diagnosis))
    if trend := trend_summary(diagnosis):
        print(trend)
    if loaded.skipped:
        print(f"skipped {len(loaded.skipped)} malformed rows, e.g. "
              + "; ".join(f"{f}:{line}: {why}" for f, line, why in loaded.skipped[:3]))
    print(f"wrote {json_path} and {html_path}")

def export_cmd(
    fmt: str = typer.Option(..., "--format", "-f", help="Trainer format: verl (parquet), trl (parquet, jsonl or a datasets folder), openrlhf (jsonl or parquet)."),
    out: Path = typer.Option(..., "--out", "-o", help="File to write (.parquet / .jsonl), or a folder (TRL, no suffix)."),
    store: Path | None = typer.Option(None, "--store", help="Prompt store folder."),
    set_name: str | None = typer.Option(None, "--set", help="Prompt set name in the store."),
    version: str | None = typer.Option(None, "--version", help="Version to export (v3 or 3); default: the current one."),
    problems: Path | None = typer.Option(None, "--problems", help="Export native problem rows (Problem.to_row jsonl/parquet) instead of a store set."),
    instruction: str | None = typer.Option(None, "--instruction", help="Solve instruction appended to each problem ('' for none); default: the SvS paper's."),
    system_prompt: str | None = typer.Option(None, "--system-prompt", help="System message put before each problem."),
    plain: bool = typer.Option(False, "--plain", help="TRL/OpenRLHF prompts as plain strings instead of chat messages."),
    data_source: str = typer.Option("svs", "--data-source", help="verl data_source column."),
    input_key: str = typer.Option("input", "--input-key", help="OpenRLHF input key (--data.input_key)."),
    label_key: str = typer.Option("label", "--label-key", help="OpenRLHF label key (--data.label_key)."),
) -> None:
    """Write a prompt set in the format verl, TRL or OpenRLHF loads."""

    from svs.pipeline.store import StoreError
    from svs.trainer_bridge.exporters import (
        DEFAULT_INSTRUCTION,
        ExportConfig,
        export_problems,
        summarize,
    )
    from svs.trainer_bridge.formats import TrainerFileError, load_source

    try:
        config = ExportConfig(instruction=DEFAULT_INSTRUCTION if instruction is None else instruction,
                              system_prompt=system_prompt, conversational=not plain,
                              data_source=data_source, input_key=input_key, label_key=label_key)
        chosen, label = load_source(store=store, set_name=set_name, version=version,
                                    problems_file=problems)
        written = export_problems(chosen, fmt, out, config)
    except (ValueError, TypeError, StoreError, TrainerFileError) as exc:
        fail(exc)
    counts = summarize(chosen)
    print(f"exported {counts['problems']} problems ({counts['originals']} originals, "
          f"{counts['variants']} variants) from {label} as {fmt} -> {written}")
