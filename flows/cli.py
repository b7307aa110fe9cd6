"""The `svs` command line. Each command is a thin shell over a stage function."""

from __future__ import annotations

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
