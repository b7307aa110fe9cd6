"""`svs lab run`, the README's main job: one seed of three named arms, next to the
committed study's verdicts.

The run config is a study config without rules (flows/lab/main.yaml by default): the
bootstrap, the budget, the arms (the fixed set, svs refresh, the loss-side arm the
committed loss-side study found best) and one seed. `run_main` bootstraps (cached,
gates checked), runs the arms on three worker processes (the same `runner.run_one` as a
study; the main job's budget is shorter than the study's, so its runs are cached apart), prints a table of each arm's start and late numbers, writes
`run-seed<N>/run.json` and `figure.png`, and prints the verdicts of the committed
studies (flows/lab/results/*.json), which one seed cannot give.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from svs.flows.lab.study import StudyConfig, load_study, study_from_dict

HERE = Path(__file__).parent
MAIN_CONFIG = HERE / "main.yaml"
RESULTS = HERE / "results"
SHOWN = (("heldout/pass@1", "held-out pass@1"), ("heldout/pass@16", "held-out pass@16"),
         ("heldout/method_entropy", "held-out method entropy"),
         ("heldout/distinct_correct_methods", "distinct methods among correct"),
         ("train/pass@1", "train-prompt pass@1"), ("gap", "generalisation gap"),
         ("canonical_entropy", "entropy on canonical solutions"))


def load_run_config(path: str | Path | None = None, seed: int | None = None) -> StudyConfig:
    """The main job's config (default flows/lab/main.yaml), with `seed` as its one seed."""
    source = Path(path) if path is not None else MAIN_CONFIG
    study = load_study(source)
    if seed is None:
        return study
    data = dict(study.source) | {"seeds": [seed]}
    return study_from_dict(data, f"run config {source}")


def rows(study: StudyConfig, results: dict[str, dict[int, dict[str, Any]]],
         seed: int) -> list[tuple[str, list[str]]]:
    late = study.budget.steps
    out = []
    for key, label in SHOWN:
        cells = []
        for arm in study.arms:
            m = results[arm.name][seed]["metrics"]
            start, end = m.get(f"{key}/step0"), m.get(f"{key}/step{late}")
            cells.append("–" if start is None or end is None else f"{start:.3f} -> {end:.3f}")
        out.append((f"{label} (0 -> {late})", cells))
    out.append(("generated tokens", [f"{results[a.name][seed]['metrics']['tokens']:,.0f}"
                                     for a in study.arms]))
    def seconds(m: dict[str, Any]) -> str:
        parts = [m.get(f"seconds/{p}") for p in ("train", "evaluate", "refresh")]
        split = "" if None in parts else " ({:.0f} / {:.0f} / {:.0f})".format(*parts)
        return f"{m['seconds']:.0f}{split}"

    out.append(("seconds (train / evaluate / refresh)",
                [seconds(results[a.name][seed]["metrics"]) for a in study.arms]))
    return out


def _testbed(record: dict[str, Any]) -> str:
    """The bootstrapped policy a study ran on (its policy-<key> folder name)."""
    return Path(str((record.get("bootstrap") or {}).get("folder", ""))).name


def committed_verdicts(results: Path = RESULTS) -> list[str]:
    """Verdict lines of every committed study (flows/lab/results/*.json). A study whose
    own controls passed is still not read when another study on the same bootstrap
    failed one (the loss-side study has no fresh-oracle arm; the pilot's failed)."""
    from svs.flows.lab.study_report import verdict_lines

    records = [json.loads(path.read_text(encoding="utf-8"))
               for path in sorted(results.glob("*.json"))]
    records = [r for r in records if r.get("analysis") is not None]
    failed: dict[str, list[str]] = {}
    for r in records:
        if not r["analysis"]["valid"]:
            names = ", ".join(r["analysis"].get("invalid_because") or []) or "a control"
            failed.setdefault(_testbed(r), []).append(f"the {r['name']} study's {names} failed")
    lines = []
    for r in records:
        why = "; ".join(failed.get(_testbed(r), [])) if _testbed(r) else ""
        lines.extend(verdict_lines(r, invalid_by=why or None))
    return lines or ["(no committed study results in this installation)"]


def write_run_figure(study: StudyConfig, results: dict[str, Any], seed: int, path: Path) -> Path:
    """Held-out pass@16 and method entropy over the evaluation steps, one line per arm."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = list(study.budget.eval_steps)
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for ax, (key, label) in zip(axes, (("heldout/pass@16", "held-out pass@16"),
                                       ("heldout/method_entropy", "held-out method entropy (nats)"),
                                       ("heldout/pass@1", "held-out pass@1")), strict=True):
        for arm in study.arms:
            m = results[arm.name][seed]["metrics"]
            if f"{key}/step0" in m:  # pass@16 needs eval_samples >= 16
                ax.plot(steps, [m[f"{key}/step{s}"] for s in steps], marker="o", label=arm.label)
        ax.set_xlabel("GRPO step")
        ax.set_title(label)
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=8)
    fig.suptitle(f"svs lab run, seed {seed} (one seed: no verdict; see the committed study)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def run_main(study: StudyConfig, out: str | Path = "runs/lab", *, workers: int = 3) -> dict:
    from rich.console import Console
    from rich.table import Table

    from svs.flows.lab.bootstrap import bootstrap
    from svs.flows.lab.study import run_jobs

    out = Path(out)
    seed = study.seeds[0]
    print("[1/3] bootstrap the tiny policy (cached after the first run; gates checked)")
    boot = bootstrap(study.lab, out, progress=True)
    state = "cached" if boot.cached else f"built in {boot.build_seconds:.0f} s"
    print(f"      policy {boot.model_dir} ({state}); held-out pass@1 "
          f"{boot.metrics['lab/pass1_heldout']:.3f}, method entropy "
          f"{boot.metrics['lab/method_entropy_heldout']:.3f} nats")
    print(f"[2/3] {len(study.arms)} arms x {study.budget.steps} steps, seed {seed}, "
          f"{workers} workers")
    results = run_jobs(study, boot, out, workers)
    table = Table(title=f"svs lab run, seed {seed}: start -> step {study.budget.steps}")
    table.add_column("")
    for arm in study.arms:
        table.add_column(arm.label, justify="right")
    for label, cells in rows(study, results, seed):
        table.add_row(label, *cells)
    console = Console()
    console.print(table)
    folder = out / f"run-seed{seed}"
    folder.mkdir(parents=True, exist_ok=True)
    record = {"name": study.name, "seed": seed, "bootstrap": boot.metrics,
              "arms": [a.name for a in study.arms],
              "metrics": {a.name: results[a.name][seed]["metrics"] for a in study.arms},
              "rounds": {a.name: results[a.name][seed]["rounds"] for a in study.arms}}
    (folder / "run.json").write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    figure = write_run_figure(study, results, seed, folder / "figure.png")
    print("[3/3] the committed study's verdicts (docs/lab.md; one seed cannot give one):")
    for line in committed_verdicts():
        print(f"      {line}")
    print(f"run -> {folder / 'run.json'}")
    print(f"figure -> {figure}")
    return record
