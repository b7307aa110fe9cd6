"""`svs doctor RUN`: which cause of entropy collapse drains entropy in a training run."""

from __future__ import annotations

from pathlib import Path

import typer

from svs.flows.cli_common import fail


def doctor(
    run: Path = typer.Argument(..., help="Run folder: svs train's output_dir (metrics.jsonl, ledger.jsonl) or a TRL output_dir (trainer_state.json, completions/)."),
    window: int = typer.Option(20, "--window", "-w", min=1, help="Logged steps per window."),
    html: Path | None = typer.Option(None, "--html", help="Also write a self-contained HTML page with the curves (default: RUN/doctor.html)."),
    no_html: bool = typer.Option(False, "--no-html", help="Print the text report only."),
) -> None:
    """Per window of steps: dH vs the covariance term (R^2), its leading quadrant, what
    clipping removed, memorized / zero-variance shares, the leading cause and its fixes."""
    from svs.trainer_bridge.doctor import diagnose, read_run, report_text, write_html

    try:
        loaded = read_run(run)
    except ValueError as exc:
        fail(exc)
    if not loaded.steps:
        fail(ValueError(f"{run}: no logged steps to diagnose"))
    windows = diagnose(loaded, window)
    print(report_text(loaded, windows))
    if not no_html:
        page = write_html(loaded, windows, html or Path(run) / "doctor.html")
        print(f"\ncurves: {page}")
