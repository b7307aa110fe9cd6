"""The `svs` command line. Each command is a thin shell over a stage function."""

from __future__ import annotations

import os
from pathlib import Path

import typer

# Prefect's embedded server would try to send telemetry on every start; svs runs on
# closed networks too (SVS_NOTES: it logs an error each time otherwise).
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

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

    from svs.pipeline.grading import grade_file
    from svs.pipeline.rollouts import RolloutFileError

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


@app.command()
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
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
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


@app.command("export")
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
    from rich.console import Console

    from svs.pipeline.store import StoreError
    from svs.trainer_bridge.exporters import (
        DEFAULT_INSTRUCTION,
        ExportConfig,
        export_problems,
        summarize,
    )
    from svs.trainer_bridge.formats import TrainerFileError, load_source

    console = Console(stderr=True)
    try:
        config = ExportConfig(instruction=DEFAULT_INSTRUCTION if instruction is None else instruction,
                              system_prompt=system_prompt, conversational=not plain,
                              data_source=data_source, input_key=input_key, label_key=label_key)
        chosen, label = load_source(store=store, set_name=set_name, version=version,
                                    problems_file=problems)
        written = export_problems(chosen, fmt, out, config)
    except (ValueError, TypeError, StoreError, TrainerFileError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    counts = summarize(chosen)
    print(f"exported {counts['problems']} problems ({counts['originals']} originals, "
          f"{counts['variants']} variants) from {label} as {fmt} -> {written}")


STORE_OPTION = typer.Option(Path("svs-store"), "--store", envvar="SVS_STORE", help="Prompt store folder (env SVS_STORE).")
SET_OPTION = typer.Option(..., "--set", help="Prompt set name in the store.")
_STORE_ERRORS: tuple[type[Exception], ...] = (ValueError, KeyError, OSError, RuntimeError)


def _fail(exc: Exception) -> None:
    from rich.console import Console
    from rich.markup import escape

    Console(stderr=True).print(f"[red]error:[/red] {escape(str(exc))}", highlight=False)
    raise typer.Exit(2) from exc


@app.command("import")
def import_cmd(
    path: Path = typer.Argument(..., help="A .jsonl, .csv or .parquet file, or a folder saved by `datasets`."),
    set_name: str = SET_OPTION,
    store: Path = STORE_OPTION,
    fmt: str = typer.Option("table", "--format", "-f", help="table (problem/answer columns), verl, trl or openrlhf."),
    text_col: str | None = typer.Option(None, "--text-col", help="Column with the problem text (default: problem, question, text, prompt, query or input)."),
    answer_col: str | None = typer.Option(None, "--answer-col", help="Column with the answer (default: answer, final_answer, ground_truth, gold, label or target)."),
    id_col: str | None = typer.Option(None, "--id-col", help="The file's own id column, kept as metadata.source_id (svs ids come from the content)."),
    keep_gold: bool = typer.Option(False, "--keep-gold", help="Keep $...$ and \\boxed{} around answers as written."),
    add: bool = typer.Option(False, "--add", help="Add the problems to an existing set as its next version."),
) -> None:
    """Import (problem, answer) rows as a prompt set (version 1), or --add them to one."""
    from svs.flows.store_commands import import_into_store
    from svs.pipeline.importers import ColumnMap
    from svs.pipeline.store import PromptStore

    try:
        columns = ColumnMap(text=text_col, answer=answer_col, id=id_col, strip_gold=not keep_gold)
        result, added, duplicates = import_into_store(PromptStore(store), set_name, path, fmt, columns, add)
    except _STORE_ERRORS as exc:
        _fail(exc)
    verb = {"published": "published", "adopted": "recovered", "already": "already imported as"}[result.outcome]
    print(f"{verb} {set_name}@v{result.version}: {added} problems added"
          + (f", {duplicates} duplicates skipped" if duplicates else ""))


@app.command()
def versions(
    set_name: str | None = typer.Option(None, "--set", help="Prompt set; default: list the sets."),
    store: Path = STORE_OPTION,
) -> None:
    """List the sets of a store, or the versions of one set (* marks the current one)."""
    from rich.console import Console

    from svs.flows.store_commands import versions_table
    from svs.pipeline.store import PromptStore

    prompt_store = PromptStore(store)
    try:
        if set_name is None:
            names = prompt_store.names()
            if not names:
                print(f"no prompt sets in {store}; create one with `svs import FILE --set NAME`")
            for name in names:
                current = prompt_store.current_or_none(name)
                print(f"{name}  {'v' + str(current) if current else 'no current version'}")
            return
        Console().print(versions_table(prompt_store, set_name))
    except _STORE_ERRORS as exc:
        _fail(exc)


@app.command()
def diff(
    a: str = typer.Argument(..., help="Older version: v1, or NAME@v1."),
    b: str | None = typer.Argument(None, help="Newer version; default: the current one."),
    set_name: str | None = typer.Option(None, "--set", help="Prompt set, when A and B are bare versions."),
    store: Path = STORE_OPTION,
    show: int = typer.Option(5, "--show", help="Example problems shown per kind of change."),
    as_json: bool = typer.Option(False, "--json", help="Print the full diff as JSON instead."),
) -> None:
    """What changed between two versions: added (by synthesizer), retired (by reason), changed."""
    import json

    from rich.console import Console

    from svs.flows.store_commands import diff_report
    from svs.pipeline.store import PromptStore

    try:
        tables, data = diff_report(PromptStore(store), a, b, set_name, show)
    except _STORE_ERRORS as exc:
        _fail(exc)
    if as_json:
        print(json.dumps(data, indent=1, default=str))
        return
    for table in tables:
        Console().print(table)


@app.command()
def rollback(
    set_name: str = SET_OPTION,
    store: Path = STORE_OPTION,
    to: str | None = typer.Option(None, "--to", help="Version to make current; default: the current one's parent."),
) -> None:
    """Make an earlier version current again (it is verified first; nothing is deleted)."""
    from svs.pipeline.store import PromptStore, parse_version

    try:
        before, after = PromptStore(store).rollback(set_name, None if to is None else parse_version(to))
    except _STORE_ERRORS as exc:
        _fail(exc)
    print(f"{set_name}: current version {'v' + str(before) if before else 'none'} -> v{after}")


@app.command()
def refresh(
    set_name: str = SET_OPTION,
    store: Path = STORE_OPTION,
    prompts: Path | None = typer.Option(None, "--prompts", help="Problems file imported as v1 when the set does not exist yet."),
    rollouts: list[Path] = typer.Option([], "--rollouts", "-r", help="Rollout files or dump folders (native, verl, TRL); none: generate with --model."),
    model: str | None = typer.Option(None, "--model", help="Local model folder: generates rollouts, synthesizes and verifies."),
    backend: str = typer.Option("transformers", "--backend", help="Policy backend: transformers or vllm."),
    config: Path | None = typer.Option(None, "--config", "-c", help="YAML/JSON with sections refresh, diagnosis, synthesizers, svs, symbolic, consistency, generate."),
    text_col: str | None = typer.Option(None, "--text-col", help="Problem column of --prompts."),
    answer_col: str | None = typer.Option(None, "--answer-col", help="Answer column of --prompts."),
    export: list[str] = typer.Option([], "--export", help="FORMAT=PATH to export the new version to (verl, trl, openrlhf); {name} and {version} are filled in."),
    report: Path | None = typer.Option(None, "--report", help="Folder for the diagnosis report (report.json, report.html)."),
    runner: str = typer.Option("thread", "--runner", help="Task runner for the diagnosis: thread, dask or ray (pip install 'svs\\[dask]' / 'svs\\[ray]')."),
    workers: int = typer.Option(2, "--workers", help="Workers of a local Dask cluster / CPUs of a local Ray instance."),
    address: str | None = typer.Option(None, "--address", help="A running Dask scheduler or Ray cluster instead of a local one."),
    no_prefect: bool = typer.Option(False, "--no-prefect", envvar="SVS_NO_PREFECT", help="Run the same steps as plain functions: no Prefect server, retries, caching or artifacts (env SVS_NO_PREFECT=1)."),
) -> None:
    """Diagnose -> synthesize -> verify -> publish -> export the next version of a prompt set
    (the `svs-refresh` Prefect flow; see docs/flows.md)."""
    from rich.console import Console

    from svs.flows.refresh_flow import Steps, refresh_flow, refresh_steps
    from svs.flows.store_commands import refresh_report

    err = Console(stderr=True)
    try:
        arguments = dict(store=str(store), name=set_name, rollouts=[str(r) for r in rollouts],
                         prompts=str(prompts) if prompts else None, model=model, backend=backend,
                         config=str(config) if config else None, text_col=text_col,
                         answer_col=answer_col, exports=list(export),
                         report=str(report) if report else None,
                         runner=_runner_option(runner, workers, address))
        if no_prefect:
            outcome = refresh_steps(Steps(False, say=lambda line: err.print(line, highlight=False)), **arguments)
        else:
            outcome = refresh_flow(**arguments)
        summary = outcome.summary
    except _STORE_ERRORS as exc:
        _fail(exc)
    table, line = refresh_report(summary)
    if summary.outcome == "published":
        Console().print(table)
    print(line)
    for fmt, path in outcome.exported.items():
        print(f"exported {fmt} -> {path}")
    if outcome.report:
        print(f"report -> {Path(outcome.report) / 'report.html'}")


def _runner_option(runner: str, workers: int, address: str | None) -> dict:
    from svs.flows.runners import RunnerConfig

    RunnerConfig(kind=runner, workers=workers, address=address)  # checked before any work
    return {"kind": runner, "workers": workers, "address": address}


RUNNER_OPTION = typer.Option("thread", "--runner", help="Task runner for the diagnosis: thread, dask or ray (pip install 'svs\\[dask]' / 'svs\\[ray]').")
WORKERS_OPTION = typer.Option(2, "--workers", help="Workers of a local Dask cluster / CPUs of a local Ray instance.")
ADDRESS_OPTION = typer.Option(None, "--address", help="A running Dask scheduler or Ray cluster to use instead of a local one.")


@app.command()
def serve(
    deployments: Path = typer.Argument(..., help="YAML file with a `deployments:` list (name, flow, interval or cron, parameters)."),
    limit: int | None = typer.Option(None, "--limit", help="Most flow runs at the same time."),
    port: int | None = typer.Option(None, "--port", help="Without PREFECT_API_URL: port of the embedded server svs starts on loopback (default: a free one)."),
) -> None:
    """Serve svs flows on cron / interval schedules until Ctrl-C (docs/flows.md)."""
    from svs.flows.deploy import api_mode, load_specs
    from svs.flows.deploy import serve as run_serve

    try:
        specs = load_specs(deployments)
    except ValueError as exc:
        _fail(exc)
    for spec in specs:
        when = f"every {spec.interval}" if spec.interval is not None else f"cron '{spec.cron}'"
        print(f"{spec.name}: {spec.flow} flow, {when}{' (paused)' if spec.paused else ''}")
    print(f"serving {len(specs)} deployment(s) against the {api_mode()}")
    try:
        run_serve(specs, limit=limit, port=port)
    except RuntimeError as exc:
        _fail(exc)


@app.command()
def watch(
    folder: Path = typer.Argument(..., help="Folder a trainer writes rollout dumps into (e.g. verl's rollout_data_dir)."),
    set_name: str | None = typer.Option(None, "--set", help="Prompt set to refresh with the new files; without it the files are only diagnosed."),
    store: Path = STORE_OPTION,
    config: Path | None = typer.Option(None, "--config", "-c", help="Refresh config file (sections refresh, diagnosis, synthesizers, ...)."),
    model: str | None = typer.Option(None, "--model", help="Local model folder for synthesis and verification."),
    prompts: Path | None = typer.Option(None, "--prompts", help="Problems file imported as v1 when the set does not exist yet."),
    export: list[str] = typer.Option([], "--export", help="FORMAT=PATH after each refresh; {name} and {version} are filled in."),
    out: Path = typer.Option(Path("svs-watch-reports"), "--out", "-o", help="Diagnosis reports (one folder per run) when no --set is given."),
    state: Path | None = typer.Option(None, "--state", help="State file remembering processed files (default: FOLDER/.svs-watch.json)."),
    settle: float = typer.Option(10.0, "--settle", help="Files modified within this many seconds wait for the next run."),
    runner: str = RUNNER_OPTION,
    workers: int = WORKERS_OPTION,
    address: str | None = ADDRESS_OPTION,
) -> None:
    """Process the dump files that are new since the last run, once each."""
    from svs.flows.watch import WatchStateError, watch_flow

    try:
        runner_spec = _runner_option(runner, workers, address)
        if set_name is not None:
            refresh = {"store": str(store), "name": set_name, "config": str(config) if config else None,
                       "model": model, "prompts": str(prompts) if prompts else None,
                       "exports": list(export), "runner": runner_spec}
            result = watch_flow(str(folder), state_file=str(state) if state else None,
                                settle_s=settle, refresh=refresh)
        else:
            result = watch_flow(str(folder), state_file=str(state) if state else None, settle_s=settle,
                                diagnose={"out": str(out), "runner": runner_spec})
    except (WatchStateError, *_STORE_ERRORS) as exc:
        _fail(exc)
    done = result["processed"]
    print(f"{result['status']}: {len(done)} new file(s) processed" + (f" ({', '.join(done[:5])})" if done else ""))


@app.command("train")
def train_cmd(
    config: Path = typer.Option(..., "--config", "-c", help="YAML file of learner settings (see docs/learner.md)."),
    steps: int | None = typer.Option(None, "--steps", help="Override the config's number of steps."),
    output_dir: Path | None = typer.Option(None, "--output-dir", "-o", help="Override the config's output_dir."),
) -> None:
    """Train with the bundled GRPO learner (periodic prompt refresh or online SvS)."""
    from dataclasses import replace

    from svs.trainer_bridge.grpo import train
    from svs.trainer_bridge.grpo_config import GRPOConfig

    try:
        settings = GRPOConfig.from_yaml(config)
        overrides = {"steps": steps, "output_dir": str(output_dir) if output_dir else None}
        settings = replace(settings, **{k: v for k, v in overrides.items() if v is not None})
        result = train(settings)
    except (ValueError, FileNotFoundError) as exc:
        _fail(exc)
    print(f"trained {result.steps_done} steps on {result.prompt_version}; checkpoints, "
          f"metrics.jsonl and TensorBoard events in {settings.output_dir}")


@app.command()
def selfplay(
    train_config: Path = typer.Option(..., "--train", help="The learner's YAML config (svs train); needs prompt_store and prompt_set."),
    rounds: int = typer.Option(..., "--rounds", help="Rounds of train -> diagnose -> refresh to run in total (finished rounds are skipped)."),
    steps_per_round: int = typer.Option(..., "--steps-per-round", help="Learner steps per round."),
    config: Path | None = typer.Option(None, "--config", "-c", help="Refresh config file (sections refresh, diagnosis, synthesizers, generate, ...)."),
    export: list[str] = typer.Option([], "--export", help="FORMAT=PATH after each refresh; {name} and {version} are filled in."),
    runner: str = RUNNER_OPTION,
    workers: int = WORKERS_OPTION,
    address: str | None = ADDRESS_OPTION,
) -> None:
    """Self-play: train a segment, refresh the prompt set with the new checkpoint, repeat.
    Re-running continues from the last finished round, checkpoint and version."""
    from svs.flows.selfplay_flow import selfplay_flow

    try:
        refresh = {"config": str(config) if config else None, "exports": list(export),
                   "runner": _runner_option(runner, workers, address)}
        done = selfplay_flow(str(train_config), rounds=rounds, steps_per_round=steps_per_round,
                             refresh=refresh)
    except _STORE_ERRORS as exc:
        _fail(exc)
    for item in done:
        print(f"round {item['round']}: step {item['step']}, trained on {item['trained_on']}, "
              f"{item['published']} {item['outcome']} ({item['accepted']} variants accepted)")


lab_app = typer.Typer(help="The miniature self-play lab (docs/lab.md).", no_args_is_help=True)
app.add_typer(lab_app, name="lab")


@lab_app.command("bootstrap")
def lab_bootstrap(
    out: Path = typer.Option(Path("runs/lab"), "--out", "-o", help="Folder of cached policies (one sub-folder per config hash)."),
    solve_steps: int = typer.Option(1500, "--solve-steps", help="First phase: supervised steps on solving pairs only."),
    steps: int = typer.Option(300, "--steps", help="Second phase: supervised steps on solving and synthesis pairs."),
    seed: int = typer.Option(0, "--seed", help="Seed of the curriculum, the model and the batch order."),
    n_train: int = typer.Option(2000, "--n-train", help="Curriculum items to train on."),
    n_heldout: int = typer.Option(100, "--n-heldout", help="Held-out curriculum items measured."),
    hidden_size: int = typer.Option(96, "--hidden-size", help="Model width."),
    layers: int = typer.Option(3, "--layers", help="Transformer layers."),
    heads: int = typer.Option(3, "--heads", help="Attention heads (hidden size divisible by it)."),
) -> None:
    """Train (or reuse) the lab's tiny policy on the sympy curriculum and print its numbers."""
    from svs.flows.lab.bootstrap import LabConfig, bootstrap
    from svs.flows.lab.curriculum import CurriculumConfig

    try:
        config = LabConfig(curriculum=CurriculumConfig(seed=seed, n_train=n_train, n_heldout=n_heldout),
                           solve_steps=solve_steps, train_steps=steps, seed=seed, hidden_size=hidden_size,
                           num_layers=layers, num_heads=heads)
        result = bootstrap(config, out, progress=True)
    except (ValueError, FileExistsError) as exc:
        _fail(exc)
    state = "cached" if result.cached else f"built in {result.build_seconds:.0f} s"
    print(f"policy {result.model_dir} ({state})")
    for name, value in result.metrics.items():
        print(f"  {name}: {value:.3f}")


@lab_app.command("experiment")
def lab_experiment(
    policy: Path = typer.Option(..., "--policy", help="A bootstrapped policy folder (policy-<key>, printed by `svs lab bootstrap`)."),
    out: Path = typer.Option(Path("runs/lab/experiment"), "--out", "-o", help="Where each arm's run, summary.json and report.html go."),
    config: Path | None = typer.Option(None, "--config", "-c", help="Lab YAML; its `experiment:` section is used (see examples/lab/long.yaml)."),
    arms: str | None = typer.Option(None, "--arms", help="Comma-separated arms out of fixed, refresh, svs (default: all)."),
    steps: int | None = typer.Option(None, "--steps", help="GRPO steps per arm."),
    refresh_every: int | None = typer.Option(None, "--refresh-every", help="refresh arm: steps between refreshes."),
    seed: int | None = typer.Option(None, "--seed", help="Seed shared by every arm."),
) -> None:
    """Train each arm from one bootstrapped policy with one budget; write summary.json and report.html."""
    from svs.flows.lab.bootstrap import load_bootstrap

    try:
        _, settings = _lab_settings(config, arms, steps, refresh_every, seed)
        bootstrapped = load_bootstrap(policy)
    except (ValueError, FileNotFoundError) as exc:
        _fail(exc)
    _run_lab_experiment(bootstrapped, settings, out)


@lab_app.command("run")
def lab_run(
    out: Path = typer.Option(Path("runs/lab"), "--out", "-o", help="Lab folder: cached policies (policy-<key>) and one experiment per seed (experiment-seed<N>/)."),
    config: Path | None = typer.Option(None, "--config", "-c", help="Lab YAML with sections bootstrap and experiment (see examples/lab/long.yaml); none: the embedded defaults."),
    arms: str | None = typer.Option(None, "--arms", help="Comma-separated arms out of fixed, refresh, svs (default: all)."),
    steps: int | None = typer.Option(None, "--steps", help="GRPO steps per arm."),
    refresh_every: int | None = typer.Option(None, "--refresh-every", help="refresh arm: steps between refreshes."),
    seed: int | None = typer.Option(None, "--seed", help="Seed of the experiment's arms (the bootstrap's seed is in the config)."),
) -> None:
    """The main job: bootstrap the tiny policy (cached), train the three arms with one budget, write summary.json and report.html, print where the report is."""
    from svs.flows.lab.bootstrap import bootstrap

    try:
        lab_config, settings = _lab_settings(config, arms, steps, refresh_every, seed)
        print("[1/2] bootstrap the tiny policy (cached after the first run)")
        result = bootstrap(lab_config, out, progress=True)
    except (ValueError, FileExistsError) as exc:
        _fail(exc)
    state = "cached" if result.cached else f"built in {result.build_seconds:.0f} s"
    print(f"policy {result.model_dir} ({state}); held-out solve rate "
          f"{result.metrics['lab/solve_rate_heldout']:.3f}")
    print(f"[2/2] {len(settings.arms)} arms x {settings.steps} steps")
    _run_lab_experiment(result, settings, out / f"experiment-seed{settings.seed}")


@lab_app.command("report")
def lab_report(
    summary: Path = typer.Argument(..., help="An experiment's summary.json."),
    out: Path | None = typer.Option(None, "--out", "-o", help="HTML file to write (default: report.html beside the summary)."),
) -> None:
    """Redraw the HTML report from a summary.json (every number on it comes from the file)."""
    import json

    from svs.flows.lab.report import write_report

    try:
        record = json.loads(summary.read_text(encoding="utf-8"))
        path = write_report(record, out or summary.with_name("report.html"))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        _fail(ValueError(f"{summary} is not a lab summary.json ({type(exc).__name__}: {exc})"))
    print(f"report -> {path}")


@lab_app.command("compare")
def lab_compare(
    summaries: list[Path] = typer.Argument(..., help="summary.json files of runs with the same settings and different seeds."),
) -> None:
    """Mean and spread over seeds of the key numbers of each arm (one column per arm)."""
    import json

    from rich.console import Console
    from rich.table import Table

    from svs.flows.lab.report import compare_seeds

    try:
        records = [json.loads(path.read_text(encoding="utf-8")) for path in summaries]
        arms, rows = compare_seeds(records)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        _fail(ValueError(f"cannot compare these summaries ({type(exc).__name__}: {exc})"))
    seeds = ", ".join(str(r["config"]["seed"]) for r in records)
    table = Table(title=f"svs lab, seeds {seeds}: mean ± sd (min..max)")
    table.add_column("")
    for arm in arms:
        table.add_column(arm, justify="right")
    for label, cells in rows:
        table.add_row(label, *cells)
    Console().print(table)


def _lab_settings(config: Path | None, arms: str | None, steps: int | None,
                  refresh_every: int | None, seed: int | None):
    from dataclasses import replace

    from svs.flows.lab.experiment import load_lab_config

    lab_config, settings = load_lab_config(config)
    changes = {k: v for k, v in (("steps", steps), ("refresh_every", refresh_every),
                                 ("seed", seed)) if v is not None}
    if arms is not None:
        changes["arms"] = tuple(a.strip() for a in arms.split(",") if a.strip())
    return lab_config, replace(settings, **changes)  # re-checked by __post_init__


def _run_lab_experiment(policy, settings, out: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    from svs.flows.lab.experiment import run_experiment
    from svs.flows.lab.report import fmt, summary_rows

    try:
        record = run_experiment(policy, settings, out, progress=True)
    except (ValueError, FileNotFoundError) as exc:
        _fail(exc)
    table = Table(title=f"svs lab, {settings.steps} steps per arm, seed {settings.seed}")
    table.add_column("")
    for arm in record["arms"].values():
        table.add_column(arm["title"], justify="right")
    for label, values in summary_rows(record):
        table.add_row(label, *[fmt(v) for v in values])
    Console().print(table)
    print(f"summary -> {out / 'summary.json'}")
    print(f"report -> {out / 'report.html'}")
