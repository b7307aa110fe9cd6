"""The `svs` command line: one Typer app; each verb group lives in its own module and
every command is a thin shell over a stage function."""

from __future__ import annotations

import os

import typer

# Prefect's embedded server would try to send telemetry on every start; svs runs on
# closed networks too (SVS_NOTES: it logs an error each time otherwise).
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

from svs.flows import cli_files, cli_run, cli_store  # noqa: E402
from svs.flows.cli_doctor import doctor  # noqa: E402
from svs.flows.cli_rejects import rejects  # noqa: E402
from svs.flows.cli_reward import reward_server  # noqa: E402
from svs.flows.lab.cli import lab_app  # noqa: E402

app = typer.Typer(
    name="svs",
    help="Keep RLVR math training from collapsing onto memorized prompts.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)


@app.callback()
def main() -> None:
    """svs: detect memorized prompts, synthesize variational problems, publish prompt sets."""


# files in, files out
app.command()(cli_files.grade)
app.command()(cli_files.diagnose)
app.command("export")(cli_files.export_cmd)
# the prompt store
app.command("import")(cli_store.import_cmd)
app.command()(cli_store.versions)
app.command()(cli_store.diff)
app.command()(cli_store.rollback)
app.command()(cli_store.refresh)
app.command()(rejects)
# long-running work
app.command()(cli_run.serve)
app.command()(cli_run.watch)
app.command("train")(cli_run.train_cmd)
app.command()(cli_run.selfplay)
app.command("reward-server")(reward_server)
# why entropy falls
app.command("doctor")(doctor)
app.add_typer(lab_app, name="lab")
