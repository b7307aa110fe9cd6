"""`svs lab ...`: the miniature self-play lab's commands (docs/lab.md)."""

from __future__ import annotations

from pathlib import Path

import typer

from svs.flows.cli_common import fail

lab_app = typer.Typer(help="The miniature self-play lab (docs/lab.md).", no_args_is_help=True)


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
        fail(exc)
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
        fail(exc)
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
        fail(exc)
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
        fail(ValueError(f"{summary} is not a lab summary.json ({type(exc).__name__}: {exc})"))
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
        fail(ValueError(f"cannot compare these summaries ({type(exc).__name__}: {exc})"))
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
        fail(exc)
    table = Table(title=f"svs lab, {settings.steps} steps per arm, seed {settings.seed}")
    table.add_column("")
    for arm in record["arms"].values():
        table.add_column(arm["title"], justify="right")
    for label, values in summary_rows(record):
        table.add_row(label, *[fmt(v) for v in values])
    Console().print(table)
    print(f"summary -> {out / 'summary.json'}")
    print(f"report -> {out / 'report.html'}")
