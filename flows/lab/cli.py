"""`svs lab ...`: the miniature lab's commands (docs/lab.md)."""

from __future__ import annotations

from pathlib import Path

import typer

from svs.flows.cli_common import fail

lab_app = typer.Typer(help="The miniature lab: a pre-registered study of entropy remedies "
                           "(docs/lab.md).", no_args_is_help=True)
LAB_ERRORS = (ValueError, FileExistsError, FileNotFoundError, RuntimeError)


@lab_app.command("bootstrap")
def lab_bootstrap(
    config: Path | None = typer.Option(None, "--config", "-c", help="A study or run YAML; its `bootstrap:` section is used (default: the embedded one)."),
    out: Path = typer.Option(Path("runs/lab"), "--out", "-o", help="Folder of cached policies (one policy-<key> per config)."),
) -> None:
    """Train (or reuse) the lab's tiny policy, print its numbers and check its gates."""
    from svs.flows.lab.bootstrap import GateError, bootstrap
    from svs.flows.lab.main_job import load_run_config

    try:
        study = load_run_config(config)
        result = bootstrap(study.lab, out, progress=True)
    except (*LAB_ERRORS, GateError) as exc:
        fail(exc)
    state = "cached" if result.cached else f"built in {result.build_seconds:.0f} s"
    print(f"policy {result.model_dir} ({state}); gates passed")
    for name, value in result.metrics.items():
        print(f"  {name}: {value:.3f}")


@lab_app.command("study")
def lab_study(
    config: Path = typer.Argument(..., help="A study YAML (examples/lab/study-*.yaml): bootstrap, budget, seeds, arms, rules, controls."),
    out: Path = typer.Option(Path("runs/lab"), "--out", "-o", help="Lab folder: cached policies, the shared run cache (cache/) and one folder per study."),
    workers: int | None = typer.Option(None, "--workers", "-w", help="Worker processes (default: the study's, 2)."),
) -> None:
    """Run (or resume) a pre-registered study: every (seed, arm) not cached, then the declared rules; writes study.json, report.html and figure.png."""
    from svs.flows.lab.bootstrap import GateError
    from svs.flows.lab.study import load_study, run_study
    from svs.flows.lab.study_report import study_table_markdown

    try:
        study = load_study(config)
        print(f"study {study.name}: {len(study.arms)} arms x {len(study.seeds)} seeds, "
              f"{study.budget.steps} steps per run")
        record = run_study(study, out, workers=workers, progress=True)
    except (*LAB_ERRORS, GateError) as exc:
        fail(exc)
    folder = out / study.name
    if record["analysis"] is not None:
        print(study_table_markdown(record))
        print(f"report -> {folder / 'report.html'}")
    print(f"study -> {folder / 'study.json'}")


@lab_app.command("run")
def lab_run(
    out: Path = typer.Option(Path("runs/lab"), "--out", "-o", help="Lab folder: cached policies, the run cache and the run's report (run-seed<N>/)."),
    config: Path | None = typer.Option(None, "--config", "-c", help="A run YAML like flows/lab/main.yaml (default: that file)."),
    seed: int | None = typer.Option(None, "--seed", help="Seed of the run (default: the config's)."),
    workers: int = typer.Option(3, "--workers", "-w", help="Worker processes (3: the three arms at once; on 2 cores the arms end sooner than with 2 workers, where the third waits for a free one)."),
) -> None:
    """The main job: bootstrap the tiny policy (cached), train three named arms for one seed, write the report, show the committed study's verdicts."""
    from svs.flows.lab.bootstrap import GateError
    from svs.flows.lab.main_job import load_run_config, run_main

    try:
        study = load_run_config(config, seed)
        run_main(study, out, workers=workers)
    except (*LAB_ERRORS, GateError) as exc:
        fail(exc)


@lab_app.command("report")
def lab_report(
    study: Path = typer.Argument(..., help="A study.json written by `svs lab study`."),
    out: Path | None = typer.Option(None, "--out", "-o", help="HTML file (default: report.html beside the study)."),
) -> None:
    """Redraw a study's report and figure from its study.json (every number comes from the file)."""
    import json

    from svs.flows.lab.study_figures import write_study_figure
    from svs.flows.lab.study_report import study_table_markdown, write_study_report

    try:
        record = json.loads(study.read_text(encoding="utf-8"))
        path = write_study_report(record, out or study.with_name("report.html"))
        write_study_figure(record, path.with_name("figure.png"))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        fail(ValueError(f"{study} is not a lab study.json ({type(exc).__name__}: {exc})"))
    print(study_table_markdown(record))
    print(f"report -> {path}")
