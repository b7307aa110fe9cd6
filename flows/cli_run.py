"""`svs serve`, `watch`, `train`, `selfplay`: commands that run for a while."""

from __future__ import annotations

from pathlib import Path

import typer

from svs.flows.cli_common import (
    ADDRESS_OPTION,
    RUNNER_OPTION,
    STORE_ERRORS,
    STORE_OPTION,
    WORKERS_OPTION,
    fail,
    runner_option,
)


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
        fail(exc)
    for spec in specs:
        when = f"every {spec.interval}" if spec.interval is not None else f"cron '{spec.cron}'"
        print(f"{spec.name}: {spec.flow} flow, {when}{' (paused)' if spec.paused else ''}")
    print(f"serving {len(specs)} deployment(s) against the {api_mode()}")
    try:
        run_serve(specs, limit=limit, port=port)
    except RuntimeError as exc:
        fail(exc)

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
        runner_spec = runner_option(runner, workers, address)
        if set_name is not None:
            refresh = {"store": str(store), "name": set_name, "config": str(config) if config else None,
                       "model": model, "prompts": str(prompts) if prompts else None,
                       "exports": list(export), "runner": runner_spec}
            result = watch_flow(str(folder), state_file=str(state) if state else None,
                                settle_s=settle, refresh=refresh)
        else:
            result = watch_flow(str(folder), state_file=str(state) if state else None, settle_s=settle,
                                diagnose={"out": str(out), "runner": runner_spec})
    except (WatchStateError, *STORE_ERRORS) as exc:
        fail(exc)
    done = result["processed"]
    print(f"{result['status']}: {len(done)} new file(s) processed" + (f" ({', '.join(done[:5])})" if done else ""))

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
        fail(exc)
    print(f"trained {result.steps_done} steps on {result.prompt_version}; checkpoints, "
          f"metrics.jsonl and TensorBoard events in {settings.output_dir}")

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
                   "runner": runner_option(runner, workers, address)}
        done = selfplay_flow(str(train_config), rounds=rounds, steps_per_round=steps_per_round,
                             refresh=refresh)
    except STORE_ERRORS as exc:
        fail(exc)
    for item in done:
        print(f"round {item['round']}: step {item['step']}, trained on {item['trained_on']}, "
              f"{item['published']} {item['outcome']} ({item['accepted']} variants accepted)")
