"""One (seed, arm) run of the lab: train in segments, refresh between rounds, evaluate.

`run_one` trains the bundled learner (`trainer_bridge.grpo.train`) from the bootstrapped
policy on the seed's fixed prompt set (the first `n_prompts` of the RL pool in the
seed's own order; the rest of that order is the fresh-oracle's reserve), in segments
that end at every evaluation step and, for refreshing arms, at every round. Each
segment resumes from the previous one's checkpoint; a refreshing arm publishes the next
prompt-set version into the run's own store between rounds and the learner picks it up.
The result (every metric at every evaluation step, the per-step curve, the rounds,
tokens, seconds) is written to `cache/results/<key>.json`; the key hashes everything
that decides the run (`arms.run_key`), so a study resumes where it stopped and a
changed arm or budget never reads a stale result. The start evaluation (step 0) is the
bootstrapped policy's and is shared by every arm of a seed (`cache/start/`).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from svs.flows.lab import curriculum
from svs.flows.lab.arms import REFRESHING, Arm, Budget, run_key
from svs.flows.lab.bootstrap import BootstrapResult, LabConfig, read_items

SET_NAME = "lab"


def write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def seed_prompts(pool: list[Any], budget: Budget, seed: int) -> tuple[list[Any], list[Any]]:
    """(the seed's fixed prompt set, its fresh-oracle reserve in order)."""
    order = list(range(len(pool)))
    random.Random(f"prompts:{seed}").shuffle(order)
    chosen = [pool[i] for i in order]
    if len(chosen) <= budget.n_prompts:
        raise ValueError(f"the RL pool holds {len(pool)} problems, not more than "
                         f"n_prompts={budget.n_prompts}; bootstrap with a larger n_pool")
    return chosen[:budget.n_prompts], chosen[budget.n_prompts:]


def template_path(lab: LabConfig) -> str:
    return str(lab.curriculum.synthesis_template_path or curriculum.LAB_TEMPLATE)


def svs_refresh_settings(budget: Budget, arm: Arm, seed: int,
                         template: str | None = None) -> dict[str, Any]:
    """The refresh flow's config for an svs_refresh arm, the SvS way: seeds only from the
    under-performing band (diagnosis seed_band, memorized problems not seeds), variants
    verified by sympy and the policy's solve rate, memorized problems down-weighted and
    never retired; then the arm's own `refresh:` sections merged over these."""
    settings: dict[str, Any] = {
        "synthesizers": ["svs"],
        "svs": {"n_samples": 8, "max_new_tokens": 40, "max_seeds_per_problem": 1,
                "seed_labels": [], "seed": seed, "template_path": template},
        "diagnosis": {"keep_solutions": "seeds", "seed_band": [0.125, 0.5],
                      "seed_memorized": False},
        "consistency": {"n_solves": budget.group_size, "max_new_tokens": budget.max_new_tokens,
                        "seed": seed},
        "refresh": {"memorized_action": "downweight", "retire_below_weight": 0.0},
        "policy": {"require_variants": False},
    }
    for section, values in arm.refresh.items():
        if isinstance(values, dict) and isinstance(settings.get(section), dict):
            settings[section] = {**settings[section], **values}
        else:
            settings[section] = values
    return settings


def learner_config(boot: BootstrapResult, budget: Budget, arm: Arm, seed: int, run_dir: Path,
                   template: str | None = None):
    from svs.trainer_bridge.grpo_config import GRPOConfig

    settings: dict[str, Any] = dict(
        model=str(boot.model_dir), output_dir=str(run_dir / "learner"),
        prompt_store=str(run_dir / "store"), prompt_set=SET_NAME,
        mode="svs" if arm.kind == "online_svs" else "refresh", device=budget.device,
        steps=budget.steps, prompts_per_step=budget.prompts_per_step,
        group_size=budget.group_size, max_new_tokens=budget.max_new_tokens, lr=budget.lr,
        seed=seed, refresh_every=arm.refresh_every if arm.kind in REFRESHING else 0,
        synthesis_max_new_tokens=40, max_seeds_per_step=4, synthesis_template=template,
        eval_every=0, probe_every=0,
        checkpoint_every=budget.steps, keep_checkpoints=1, log_rollouts=True, resume=True,
        progress=False, tensorboard=False)
    settings.update(arm.learner)
    return GRPOConfig.from_dict(settings)


def boundaries(budget: Budget, arm: Arm) -> list[int]:
    ends = set(budget.eval_steps[1:])
    if arm.kind in REFRESHING:
        ends |= set(range(arm.refresh_every, budget.steps, arm.refresh_every))
    return sorted(ends)


def _policy(model: Path):
    from svs.pipeline.policy.hf import HFPolicy

    return HFPolicy.from_pretrained(model, device="cpu", dtype="float32", batch_size=256)


def start_metrics(boot: BootstrapResult, lab: LabConfig, budget: Budget, seed: int,
                  heldout: list[Any], train: list[Any], cache: Path) -> dict[str, float]:
    """The start evaluation of a seed (the bootstrapped policy), computed once: a worker
    holds a lock on it while computing, so the seed's other arms, running at the same
    time in other workers, wait and read it instead of computing it again."""
    import hashlib

    from svs.flows.lab.evaluate import evaluate

    blob = json.dumps({"b": lab.key(), "budget": asdict(budget), "seed": seed}, sort_keys=True)
    path = cache / "start" / f"{hashlib.sha256(blob.encode()).hexdigest()[:16]}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.with_suffix(".lock").open("w") as lock:
        try:
            import fcntl  # POSIX; elsewhere two workers may compute the same numbers twice
            fcntl.flock(lock, fcntl.LOCK_EX)
        except ImportError:
            pass
        if path.is_file():
            return json.loads(path.read_text(encoding="utf-8"))
        metrics = evaluate(_policy(boot.model_dir), lab.curriculum, heldout, train, budget,
                           seed, 0)
        write_json(path, metrics)
        return metrics


def _round_groups(config: Any, end: int, every: int) -> tuple[list[str], list[Any]]:
    from svs.pipeline.rollouts import load_rollout_groups
    from svs.trainer_bridge.grpo import rollouts_path

    files = [str(rollouts_path(config.output_dir, s)) for s in range(end - every + 1, end + 1)]
    return files, load_rollout_groups(files)


def stale_problems(groups: list[Any]) -> set[str]:
    """Problems the round found memorized (the default diagnosis) or zero-variance (every
    one of their groups in the round all right or all wrong)."""
    from svs.pipeline.memorization import DiagnosisConfig, diagnose

    labels = {p.problem_id: p.label for p in
              diagnose(groups, DiagnosisConfig(keep_solutions="none")).problems}
    flat: dict[str, list[bool]] = {}
    for group in groups:
        outcomes = {bool(r.correct) for r in group.rollouts}
        flat.setdefault(group.problem_id, []).append(len(outcomes) == 1)
    return ({pid for pid, label in labels.items() if label == "memorized"}
            | {pid for pid, flags in flat.items() if all(flags)})


def _fresh_variant(problem: Any, lab: LabConfig, rng: random.Random, taken: set[str],
                   tries: int = 20) -> Any:
    """A same-answer variant of `problem` (lineage filled in) whose id is not in `taken`;
    None when the curriculum has none or `tries` draws all collide."""
    item = curriculum.CurriculumItem(problem, "", curriculum.METHODS[problem.metadata["kind"]][0])
    for _ in range(tries):
        other = curriculum.variant(item, rng, lab.curriculum)
        if other is None:
            return None
        child = problem.variant(other.problem.text, synthesizer="lab-variants",
                                **dict(other.problem.metadata))
        if child.id not in taken:
            return child
    return None


def replace_round(store: Any, arm: Arm, lab: LabConfig, stale: set[str], reserve: list[Any],
                  used: int, seed: int, round_no: int) -> tuple[int, dict[str, Any]]:
    """oracle / variants: publish the next version with the stale problems replaced.
    Returns (reserve items used so far, the round's record)."""
    from svs.pipeline import lineage
    from svs.pipeline.store_types import NewVersion

    base = store.load(SET_NAME)
    kept, new, replaced, missing = [], [], [], 0
    # a variant must be new to the set and to its lineage (the store refuses a problem
    # twice; a retired problem coming back would not be new)
    taken = {p.id for p in base.problems} | set(base.lineage.nodes)
    for problem in base.problems:
        if problem.id not in stale:
            kept.append(problem)
            continue
        if arm.kind == "oracle":
            if used >= len(reserve):
                raise ValueError("the fresh-oracle reserve is exhausted: bootstrap with a "
                                 "larger n_pool")
            new.append(reserve[used].problem)
            used += 1
            replaced.append(problem.id)
            continue
        child = _fresh_variant(problem, lab, random.Random(f"{seed}:{round_no}:{problem.id}"),
                               taken)
        if child is None:
            kept.append(problem)
            missing += 1
            continue
        taken.add(child.id)
        new.append(child)
        replaced.append(problem.id)
    graph = base.lineage.copy()
    version = store.next_version(SET_NAME)
    lineage.add_problems(graph, new, version)
    lineage.mark_retired(graph, replaced, version)
    problems = kept + new
    store.publish(SET_NAME, NewVersion(problems, graph, weights={p.id: 1.0 for p in problems},
                                       note=f"{arm.kind} round {round_no}"),
                  parent=base.version)
    return used, {"round": round_no, "stale": len(stale), "replaced": len(replaced),
                  "no_variant": missing, "generated_tokens": 0}


def svs_round(config: Any, budget: Budget, arm: Arm, seed: int, files: list[str],
              checkpoint: Path, round_no: int, template: str) -> dict[str, Any]:
    from svs.flows.refresh_flow import Steps, refresh_steps

    outcome = refresh_steps(Steps(False), config.prompt_store, SET_NAME, rollouts=files,
                            model=str(checkpoint), backend="transformers",
                            config=svs_refresh_settings(budget, arm, seed, template))
    s = outcome.summary
    return {"round": round_no, "labels": dict(s.labels), "seeds": s.seeds,
            "candidates": s.candidates, "accepted": s.accepted, "added": s.added,
            "downweighted": s.downweighted, "retired": s.retired,
            "generated_tokens": int(s.generated_tokens)}


def _curve(output_dir: str) -> list[dict[str, Any]]:
    path = Path(output_dir) / "metrics.jsonl"
    keep = ("step", "train/solve_rate/original", "train/nll/original", "train/entropy/original",
            "train/generated_tokens", "train/zero_variance_share/original",
            "train/reward/synthesis", "train/prompt_version")
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            rows.append({k: row[k] for k in keep if k in row}
                        | {k: v for k, v in row.items() if k.startswith("entropy/")
                           and isinstance(v, (int, float))})
    return rows


LEDGER_WINDOW = 40  # steps per window of the doctor's reading (the study's evaluation spacing)


def ledger_reading(learner_dir: str | Path, window: int = LEDGER_WINDOW) -> list[dict[str, Any]]:
    """`svs doctor`'s reading of a lab run (trainer_bridge.doctor on its metrics.jsonl and
    ledger.jsonl): per window of steps, the leading cause of entropy loss, the evidence
    for each cause, the quadrant carrying the covariance term and the term itself. NaN
    evidence (a cause the run cannot show) is left out."""
    import math

    from svs.trainer_bridge.doctor import diagnose, read_run

    out = []
    for w in diagnose(read_run(learner_dir), window):
        cov = w.values.get("entropy/cov", math.nan)
        out.append({"first": w.first, "last": w.last, "leading": w.leading,
                    "quadrant": w.quadrant,
                    "evidence": {k: v for k, v in w.causes.items() if math.isfinite(v)},
                    "cov": cov if math.isfinite(cov) else None})
    return out


def run_one(boot: BootstrapResult, lab: LabConfig, budget: Budget, arm: Arm, seed: int,
            cache: str | Path) -> dict[str, Any]:
    """The result of (seed, arm): read from the cache, else trained and written there."""
    import torch

    from svs.flows.lab.evaluate import evaluate
    from svs.flows.selfplay_flow import segment_checkpoint
    from svs.pipeline.importers import ColumnMap
    from svs.pipeline.store import PromptStore
    from svs.pipeline.store_import import import_table
    from svs.trainer_bridge.grpo import train

    cache = Path(cache)
    key = run_key(lab.key(), budget, arm, seed)
    result_path = cache / "results" / f"{key}.json"
    if result_path.is_file():
        return json.loads(result_path.read_text(encoding="utf-8"))
    torch.set_num_threads(1)
    began = time.perf_counter()
    heldout = read_items(boot.heldout_file)
    fixed, reserve = seed_prompts(read_items(boot.pool_file), budget, seed)
    run_dir = cache / "runs" / f"{arm.name}-seed{seed}-{key}"
    shutil.rmtree(run_dir, ignore_errors=True)
    prompts = run_dir / "prompts.jsonl"
    prompts.parent.mkdir(parents=True)
    prompts.write_text("".join(json.dumps(i.problem.to_row()) + "\n" for i in fixed),
                       encoding="utf-8")
    store = PromptStore(run_dir / "store")
    import_table(store, SET_NAME, prompts, ColumnMap(), add=False)
    config = learner_config(boot, budget, arm, seed, run_dir, template_path(lab))
    metrics: dict[str, float] = {}
    rounds, used = [], 0
    spent = {"train": 0.0, "evaluate": 0.0, "refresh": 0.0}  # where the seconds went
    for end in boundaries(budget, arm):
        mark = time.perf_counter()
        train(replace(config, steps=end))
        checkpoint = segment_checkpoint(config.output_dir, end)
        spent["train"] += time.perf_counter() - mark
        if end in budget.eval_steps:
            mark = time.perf_counter()
            measured = evaluate(_policy(checkpoint), lab.curriculum, heldout, fixed, budget,
                                seed, end)
            metrics.update({f"{k}/step{end}": v for k, v in measured.items()})
            spent["evaluate"] += time.perf_counter() - mark
        if arm.kind in REFRESHING and end % arm.refresh_every == 0 and end < budget.steps:
            mark = time.perf_counter()
            number = end // arm.refresh_every
            files, groups = _round_groups(config, end, arm.refresh_every)
            if arm.kind == "svs_refresh":
                rounds.append(svs_round(config, budget, arm, seed, files, checkpoint, number,
                                        template_path(lab)))
            else:
                used, record = replace_round(store, arm, lab, stale_problems(groups), reserve,
                                             used, seed, number)
                rounds.append(record)
            spent["refresh"] += time.perf_counter() - mark
    # The start evaluation last: by then one of the seed's arms running beside this one
    # has usually computed it (sampling forks the RNG, so the order changes no number).
    mark = time.perf_counter()
    metrics = {f"{k}/step0": v for k, v in
               start_metrics(boot, lab, budget, seed, heldout, fixed, cache).items()} | metrics
    spent["evaluate"] += time.perf_counter() - mark
    curve = _curve(config.output_dir)
    tokens = sum(int(r.get("train/generated_tokens", 0)) for r in curve) + sum(
        r["generated_tokens"] for r in rounds)
    metrics["tokens"] = float(tokens)
    metrics["seconds"] = time.perf_counter() - began
    metrics.update({f"seconds/{part}": value for part, value in spent.items()})
    result = {"arm": arm.name, "seed": seed, "key": key, "settings": arm.settings(),
              "metrics": metrics, "curve": curve, "rounds": rounds,
              "ledger": ledger_reading(config.output_dir)}
    write_json(result_path, result)
    shutil.rmtree(run_dir / "learner" / "checkpoints", ignore_errors=True)  # ~MBs per run
    return result
