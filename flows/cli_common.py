"""Options and the one error style shared by the `svs` commands."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import typer

STORE_OPTION = typer.Option(Path("svs-store"), "--store", envvar="SVS_STORE", help="Prompt store folder (env SVS_STORE).")
SET_OPTION = typer.Option(..., "--set", help="Prompt set name in the store.")
PREFECT_RUN_LOGGERS = ("prefect", "prefect.flow_runs", "prefect.task_runs")
RUNNER_OPTION = typer.Option("thread", "--runner", help="Task runner for the diagnosis: thread, dask or ray (pip install 'svs\\[dask]' / 'svs\\[ray]').")
WORKERS_OPTION = typer.Option(2, "--workers", help="Workers of a local Dask cluster / CPUs of a local Ray instance.")
ADDRESS_OPTION = typer.Option(None, "--address", help="A running Dask scheduler or Ray cluster to use instead of a local one.")
# Errors a command reports as one line ("error: ...", exit 2) instead of a traceback.
STORE_ERRORS: tuple[type[Exception], ...] = (ValueError, KeyError, OSError, RuntimeError)


def fail(exc: Exception) -> typer.Exit:
    """Print `error: <message>` on stderr and exit with status 2."""
    from rich.console import Console
    from rich.markup import escape

    # soft_wrap: the promise is one line, so rich must not fold it at the terminal's width
    # (CI has no terminal and folds at 80 columns).
    Console(stderr=True, soft_wrap=True).print(f"[red]error:[/red] {escape(str(exc))}", highlight=False)
    raise typer.Exit(2) from exc


def runner_option(runner: str, workers: int, address: str | None) -> dict:
    from svs.flows.runners import RunnerConfig

    RunnerConfig(kind=runner, workers=workers, address=address)  # checked before any work
    return {"kind": runner, "workers": workers, "address": address}


class _NoUserErrorTracebacks(logging.Filter):
    """Keeps Prefect's log line for a failed task or flow run but drops the traceback
    when the error is one the command reports itself as `error: ...` (STORE_ERRORS): a
    bad set name or a missing file reads as one line with the fix, not two tracebacks."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], STORE_ERRORS):
            record.exc_info, record.exc_text = None, None
        return True


@contextmanager
def user_errors_without_tracebacks() -> Iterator[None]:
    loggers = [logging.getLogger(name) for name in PREFECT_RUN_LOGGERS]
    quiet = _NoUserErrorTracebacks()
    handlers = {h for lg in loggers for h in lg.handlers} | set(logging.getLogger("prefect").handlers)
    for handler in handlers:
        handler.addFilter(quiet)
    try:
        yield
    finally:
        for handler in handlers:
            handler.removeFilter(quiet)
