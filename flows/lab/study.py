"""A pre-registered lab study: arms x seeds on one budget, judged by declared rules.

A study is one YAML file, committed before it runs (examples/lab/study-*.yaml):

```
name: data-side
description: ...
bootstrap: {...}        # flows.lab.bootstrap.LabConfig fields (gates included)
budget: {...}           # flows.lab.arms.Budget
seeds: [0, 1, 2, 3]
arms: [{name: fixed, kind: fixed, side: control}, ...]      # flows.lab.arms.Arm
rules: {...}            # flows.lab.rules.DecisionRules
controls: [...]         # flows.lab.rules.Control: the positive controls
```

`run_study` bootstraps (cached, gates checked), runs every (seed, arm) not yet cached
on `workers` processes (`flows.lab.runner.run_one`; the cache is shared by studies with
the same bootstrap and budget, so the pilot's runs count in the later studies), then
applies the rules (`flows.lab.rules.analyse`) and writes `study.json`, `report.html` and
`figure.png` into `out/<name>/`.
"""

from __future__ import annotations

import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from svs.flows.lab.arms import Arm, Budget
from svs.flows.lab.bootstrap import LabConfig

SECTIONS = ("name", "description", "bootstrap", "budget", "seeds", "arms", "rules",
            "controls", "workers")


@dataclass(frozen=True)
class StudyConfig:
    name: str
    description: str
    lab: LabConfig
    budget: Budget
    seeds: tuple[int, ...]
    arms: tuple[Arm, ...]
    rules: Any
    controls: tuple[Any, ...]
    workers: int = 2
    source: dict[str, Any] = field(default_factory=dict)

    def arm(self, name: str) -> Arm:
        return next(a for a in self.arms if a.name == name)


def study_from_dict(data: dict[str, Any], where: str = "study config") -> StudyConfig:
    from svs.core.config import from_mapping
    from svs.flows.lab.rules import parse_rules

    if not isinstance(data, dict):
        raise ValueError(f"{where} must be a mapping with sections {', '.join(SECTIONS)}")
    unknown = sorted(set(data) - set(SECTIONS))
    if unknown:
        raise ValueError(f"{where}: unknown section(s) {unknown}; valid: {', '.join(SECTIONS)}")
    for required in ("name", "seeds", "arms"):
        if required not in data:
            raise ValueError(f"{where}: `{required}` is missing")
    try:
        lab = from_mapping(LabConfig, data.get("bootstrap") or {}, "bootstrap setting")
        budget = from_mapping(Budget, data.get("budget") or {}, "budget setting")
        arms = tuple(Arm.from_dict(a) for a in data["arms"])
        rules, controls = parse_rules({"rules": data.get("rules") or {},
                                       "controls": data.get("controls") or []})
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{where}: {exc}") from exc
    names = [a.name for a in arms]
    if len(set(names)) != len(names) or not names:
        raise ValueError(f"{where}: arm names must be distinct and at least one, got {names}")
    raw = data["seeds"]
    if not isinstance(raw, list) or not all(isinstance(s, int) and not isinstance(s, bool)
                                            for s in raw):
        raise ValueError(f"{where}: seeds must be a list of integers, got {raw!r}")
    seeds = tuple(raw)
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"{where}: seeds must be distinct integers, got {list(seeds)}")
    workers = int(data.get("workers", 2))
    if workers < 1:
        raise ValueError(f"{where}: workers must be >= 1")
    return StudyConfig(str(data["name"]), str(data.get("description", "")), lab, budget, seeds,
                       arms, rules, tuple(controls), workers, dict(data))


def load_study(path: str | Path) -> StudyConfig:
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f"cannot read study config {path}: {exc}") from exc
    return study_from_dict(data, f"study config {path}")


def _job(args: tuple) -> dict[str, Any]:
    from svs.flows.lab.bootstrap import load_bootstrap
    from svs.flows.lab.runner import run_one

    folder, lab, budget, arm, seed, cache = args
    boot = load_bootstrap(folder, lab.gates)
    return run_one(boot, lab, budget, arm, seed, cache)


def run_jobs(study: StudyConfig, boot: Any, out: Path, workers: int,
             progress: bool = True) -> dict[str, dict[int, dict[str, Any]]]:
    """Every (seed, arm) result, running the uncached ones on `workers` processes."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from svs.flows.lab.arms import run_key

    cache = out / "cache"
    jobs, results = [], {a.name: {} for a in study.arms}
    for seed in study.seeds:  # seed-major: an interrupted study stays balanced
        for arm in study.arms:
            path = cache / "results" / f"{run_key(study.lab.key(), study.budget, arm, seed)}.json"
            if path.is_file():
                import json

                results[arm.name][seed] = json.loads(path.read_text(encoding="utf-8"))
            else:
                jobs.append((str(boot.folder), study.lab, study.budget, arm, seed, str(cache)))
    if not jobs:
        return results
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), TextColumn(
        "{task.completed}/{task.total} runs"), TimeElapsedColumn())
    with Progress(*columns, disable=not progress) as bar:
        task = bar.add_task(f"{study.name}: {len(jobs)} runs to do "
                            f"({sum(map(len, results.values()))} cached)", total=len(jobs))
        failed: list[str] = []

        def take(job: tuple, outcome: Any) -> None:
            if isinstance(outcome, Exception):  # the other runs go on and are cached
                failed.append(f"{job[3].name} seed {job[4]}: {type(outcome).__name__}: {outcome}")
            else:
                results[outcome["arm"]][outcome["seed"]] = outcome
            bar.advance(task)

        if workers == 1:
            for job in jobs:
                try:
                    take(job, _job(job))
                except Exception as exc:  # noqa: BLE001 - reported below, with its run
                    take(job, exc)
        else:
            with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
                futures = {pool.submit(_job, job): job for job in jobs}
                for future in as_completed(futures):
                    error = future.exception()
                    take(futures[future], error if error is not None else future.result())
    if failed:
        raise RuntimeError(f"{len(failed)} run(s) of study {study.name} failed (the others "
                           f"are cached; fix and run again to resume): " + "; ".join(failed))
    return results


def per_seed_metrics(results: dict[str, dict[int, dict[str, Any]]]) -> dict[str, dict[int, dict[str, float]]]:
    return {arm: {seed: r["metrics"] for seed, r in by_seed.items()}
            for arm, by_seed in results.items()}


def ledgers(results: dict[str, dict[int, dict[str, Any]]], cache: Path) -> dict[str, dict[str, Any]]:
    """{arm: {seed: the doctor's reading}} of every run: from the result, or (a result
    cached before the reading was recorded) from the run's folder, kept beside it; a run
    whose folder is gone is left out."""
    from svs.flows.lab.runner import ledger_reading

    out: dict[str, dict[str, Any]] = {}
    for arm, by_seed in results.items():
        for seed, r in by_seed.items():
            reading = r.get("ledger")
            learner = cache / "runs" / f"{arm}-seed{seed}-{r['key']}" / "learner"
            if reading is None and (learner / "metrics.jsonl").is_file():
                reading = ledger_reading(learner)
            if reading is not None:
                out.setdefault(arm, {})[str(seed)] = reading
    return out


def slim(record: dict[str, Any]) -> dict[str, Any]:
    """The study record without its per-step curves: what the repository commits
    (flows/lab/results/<name>.json) and `svs lab run` reads back."""
    return {k: v for k, v in record.items() if k != "curves"}


def run_study(study: StudyConfig, out: str | Path = "runs/lab", *, workers: int | None = None,
              progress: bool = True) -> dict[str, Any]:
    """Run (or resume) the study and write out/<name>/study.json, report.html and
    figure.png; returns the study record."""
    import json

    from svs.flows.lab.bootstrap import bootstrap
    from svs.flows.lab.curriculum import METHODS
    from svs.flows.lab.rules import analyse

    out = Path(out)
    began = time.perf_counter()
    boot = bootstrap(study.lab, out, progress=progress)
    results = run_jobs(study, boot, out, workers or study.workers, progress)
    per_seed = per_seed_metrics(results)
    titles = {a.name: a.label for a in study.arms}
    analysis = analyse(per_seed, study.rules, list(study.controls), titles) if len(
        study.seeds) >= 2 else None
    record = {
        "name": study.name, "description": study.description, "config": study.source,
        "arms": [asdict(a) | {"title": a.label} for a in study.arms],
        "seeds": list(study.seeds), "eval_steps": list(study.budget.eval_steps),
        "methods": sorted({m for ms in METHODS.values() for m in ms}),
        "bootstrap": {"folder": str(boot.folder), "metrics": boot.metrics},
        "per_seed": {arm: {str(s): m for s, m in by.items()} for arm, by in per_seed.items()},
        "curves": {arm: {str(s): r["curve"] for s, r in by.items()}
                   for arm, by in results.items()},
        "rounds": {arm: {str(s): r["rounds"] for s, r in by.items()}
                   for arm, by in results.items()},
        "analysis": analysis,
        "ledger": ledgers(results, out / "cache"),
        "timing": {"seconds": round(time.perf_counter() - began, 1),
                   "run_seconds": round(sum(r["metrics"]["seconds"] for by in results.values()
                                            for r in by.values()), 1),
                   "runs": sum(map(len, results.values()))},
    }
    folder = out / study.name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "study.json").write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    (folder / "summary.json").write_text(json.dumps(slim(record), indent=1) + "\n",
                                         encoding="utf-8")
    if analysis is not None:
        from svs.flows.lab.study_figures import write_study_figure
        from svs.flows.lab.study_report import write_study_report

        write_study_figure(record, folder / "figure.png")
        write_study_report(record, folder / "report.html")
    return record
