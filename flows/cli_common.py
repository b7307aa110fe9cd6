"""Options and the one error style shared by the `svs` commands."""

from __future__ import annotations

from pathlib import Path

import typer

STORE_OPTION = typer.Option(Path("svs-store"), "--store", envvar="SVS_STORE", help="Prompt store folder (env SVS_STORE).")
SET_OPTION = typer.Option(..., "--set", help="Prompt set name in the store.")
_STORE_ERRORS: tuple[type[Exception], ...] = (ValueError, KeyError, OSError, RuntimeError)
RUNNER_OPTION = typer.Option("thread", "--runner", help="Task runner for the diagnosis: thread, dask or ray (pip install 'svs\\[dask]' / 'svs\\[ray]').")
WORKERS_OPTION = typer.Option(2, "--workers", help="Workers of a local Dask cluster / CPUs of a local Ray instance.")
ADDRESS_OPTION = typer.Option(None, "--address", help="A running Dask scheduler or Ray cluster to use instead of a local one.")
# Errors a command reports as one line ("error: ...", exit 2) instead of a traceback.
STORE_ERRORS: tuple[type[Exception], ...] = (ValueError, KeyError, OSError, RuntimeError)


def fail(exc: Exception) -> typer.Exit:
    """Print `error: <message>` on stderr and exit with status 2."""
    from rich.console import Console
    from rich.markup import escape

    Console(stderr=True).print(f"[red]error:[/red] {escape(str(exc))}", highlight=False)
    raise typer.Exit(2) from exc


def runner_option(runner: str, workers: int, address: str | None) -> dict:
    from svs.flows.runners import RunnerConfig

    RunnerConfig(kind=runner, workers=workers, address=address)  # checked before any work
    return {"kind": runner, "workers": workers, "address": address}
