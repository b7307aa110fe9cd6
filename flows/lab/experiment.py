"""The miniature self-play lab, part 2: three GRPO arms on the bootstrapped policy.

Every arm starts from the same bootstrapped policy (`flows.lab.bootstrap`), trains the
same number of steps with the same prompts per step, group size, learning rate and seed
on the same fixed prompt set (the first `n_prompts` curriculum training items) with the
bundled learner (`trainer_bridge.grpo.train`), and is evaluated on the same held-out
curriculum items:

- `fixed`: plain GRPO on the fixed prompt set;
- `refresh`: GRPO on a stored copy of the set, refreshed by svs every `refresh_every`
  steps (`flows.selfplay_flow`, a Prefect flow: the round's logged rollouts are
  diagnosed, the policy writes variational problems of the memorized and learning
  problems, the policy's own solve rate verifies them, the next version is published
  and trained on);
- `svs`: online SvS (the learner's `mode: svs`): synthesis and synthetic streams in
  every step.

Per step, every arm logs (the learner's metrics plus its logged rollouts):
`entropy` (mean negative log-likelihood of the sampled solution tokens, over all of the
step's solving rollouts: a Monte Carlo estimate of the policy's per-token entropy at
temperature 1), `heldout_entropy` (the same estimate on the held-out samples, at each
evaluation: the same prompts for every arm), `trained_entropy` (the learner's exact entropy on the tokens it trained
on), `solve_rate`, `memorized` (how many of the step's prompts the diagnosis of that
step's rollouts labels memorized: solved (nearly) always along one trajectory),
`tokens` (every token the arm generated that step, refresh included) and held-out
pass@k (k = 1, 2, 4, ... eval_samples) every `eval_every` steps, plus once at step 0
for the shared start.

The same seed gives the same numbers: everything random is seeded, torch runs on one
thread, and the summary keeps wall-clock time apart (`timing`).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from svs.flows.lab.bootstrap import BootstrapResult
from svs.flows.lab.summary import add_cost_ratios, summarize_arm

ARMS = ("fixed", "refresh", "svs")
ARM_TITLES = {"fixed": "GRPO on the fixed set", "refresh": "GRPO + svs refresh",
              "svs": "online SvS"}
SET_NAME = "lab"
SUMMARY_FILE = "summary.json"


@dataclass(frozen=True)
class ExperimentConfig:
    """One budget shared by every arm (the embedded default runs in minutes on 2 cores)."""

    arms: tuple[str, ...] = field(default=ARMS, metadata={
        "help": f"Arms to run, in order: {', '.join(ARMS)}."})
    steps: int = field(default=120, metadata={"help": "GRPO steps per arm."})
    refresh_every: int = field(default=20, metadata={
        "help": "refresh arm: svs refreshes the prompt set after every this many steps "
                "(steps must be a multiple)."})
    n_prompts: int = field(default=64, metadata={
        "help": "Size of the fixed prompt set (the first curriculum training items)."})
    prompts_per_step: int = field(default=8, metadata={"help": "Problems per step."})
    group_size: int = field(default=8, metadata={"help": "Rollouts per problem."})
    lr: float = field(default=5e-4, metadata={"help": "Learner AdamW learning rate."})
    max_new_tokens: int = field(default=64, metadata={"help": "Solution token budget."})
    synthesis_max_new_tokens: int = field(default=48, metadata={
        "help": "refresh and svs arms: token budget of a synthesis output."})
    synthesis_samples: int = field(default=8, metadata={
        "help": "refresh and svs arms: problems written per seed solution."})
    max_seeds_per_step: int = field(default=4, metadata={
        "help": "svs arm: seeds (correct solutions) turned into synthesis groups per step."})
    refresh_seeds_per_problem: int = field(default=1, metadata={
        "help": "refresh arm: correct solutions of one problem used as synthesis seeds."})
    refresh_seed_labels: tuple[str, ...] = field(default=("learning", "memorized"), metadata={
        "help": "refresh arm: diagnosis labels whose problems seed the synthesis."})
    memorized_action: str = field(default="downweight", metadata={
        "help": "refresh arm: what a refresh does to a memorized problem (downweight, "
                "retire, keep; pipeline.refresh.RefreshConfig)."})
    retire_below_weight: float = field(default=0.1, metadata={
        "help": "refresh arm: a down-weighted problem whose weight falls below this is "
                "retired (pipeline.refresh.RefreshConfig); 0 never retires."})
    eval_every: int = field(default=10, metadata={"help": "Held-out pass@k every N steps."})
    eval_samples: int = field(default=16, metadata={
        "help": "Samples per held-out problem: pass@k for k = 1, 2, 4, ... up to this."})
    n_eval: int = field(default=64, metadata={"help": "Held-out problems evaluated."})
    seed: int = field(default=0, metadata={"help": "Seed of every arm (same draws)."})
    device: str = field(default="cpu", metadata={
        "help": "Learner device: cpu (the embedded default, one torch thread) or cuda."})

    def __post_init__(self) -> None:
        object.__setattr__(self, "arms", tuple(self.arms))
        object.__setattr__(self, "refresh_seed_labels", tuple(self.refresh_seed_labels))
        unknown = sorted(set(self.arms) - set(ARMS))
        if unknown or not self.arms or len(set(self.arms)) != len(self.arms):
            raise ValueError(f"arms must be distinct names out of {', '.join(ARMS)}, got "
                             f"{', '.join(self.arms) or 'none'}")
        for name in ("steps", "refresh_every", "n_prompts", "prompts_per_step", "group_size",
                     "max_new_tokens", "synthesis_max_new_tokens", "synthesis_samples",
                     "max_seeds_per_step", "refresh_seeds_per_problem", "eval_every",
                     "eval_samples", "n_eval"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.group_size < 2:
            raise ValueError(f"group_size must be >= 2 (GRPO compares rollouts of a prompt), "
                             f"got {self.group_size}")
        if self.prompts_per_step > self.n_prompts:
            raise ValueError(f"prompts_per_step ({self.prompts_per_step}) must not exceed "
                             f"n_prompts ({self.n_prompts})")
        if self.device not in ("cpu", "cuda"):
            raise ValueError(f"device must be cpu or cuda, got {self.device!r}")
        if "refresh" in self.arms and self.steps % self.refresh_every:
            raise ValueError(f"steps ({self.steps}) must be a multiple of refresh_every "
                             f"({self.refresh_every}) so that every arm trains the same steps")
        if "refresh" in self.arms:  # checked now, not at the first refresh minutes later
            from svs.pipeline.refresh_config import RefreshRunConfig

            RefreshRunConfig.from_dict(refresh_settings(self))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ExperimentConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown experiment setting(s) {unknown}; valid: {sorted(known)}")
        return cls(**data)


# ------------------------------------------------------------------------------ arms
def write_head(source: Path, target: Path, count: int) -> Path:
    """The first `count` problem rows of `source` (a bootstrap's train/heldout file)."""
    lines = [line for line in source.read_text(encoding="utf-8").splitlines() if line.strip()]
    if len(lines) < count:
        raise ValueError(f"{source} has {len(lines)} problems, fewer than the {count} asked "
                         f"for; bootstrap with a larger curriculum or ask for fewer")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text("".join(line + "\n" for line in lines[:count]), encoding="utf-8")
    return target


def learner_config(arm: str, policy: BootstrapResult, config: ExperimentConfig,
                   out_dir: Path, progress: bool = False):
    """The learner's settings for one arm; prompts and held-out files under `out_dir`."""
    from svs.trainer_bridge.grpo_config import GRPOConfig

    common = dict(
        model=str(policy.model_dir), output_dir=str(out_dir / arm),
        heldout_file=str(write_head(policy.heldout_file, out_dir / "heldout.jsonl",
                                    config.n_eval)),
        mode="svs" if arm == "svs" else "refresh", device=config.device, steps=config.steps,
        prompts_per_step=config.prompts_per_step, group_size=config.group_size,
        max_new_tokens=config.max_new_tokens, lr=config.lr, seed=config.seed,
        synthesis_samples=config.synthesis_samples,
        synthesis_max_new_tokens=config.synthesis_max_new_tokens,
        max_seeds_per_step=config.max_seeds_per_step, eval_every=config.eval_every,
        eval_samples=config.eval_samples, checkpoint_every=config.steps, keep_checkpoints=1,
        log_rollouts=True, resume=False, progress=progress, tensorboard=False)
    # Every arm reads the same v1 from a store of its own, so that the arms draw the same
    # prompts with the same seed until a refresh changes the set: the refresh arm equals
    # the fixed arm step for step up to its first refresh (a paired comparison).
    return GRPOConfig(**common, prompt_store=str(out_dir / "stores" / arm), prompt_set=SET_NAME,
                      refresh_every=config.refresh_every if arm == "refresh" else 0)


def refresh_settings(config: ExperimentConfig) -> dict[str, Any]:
    """The refresh flow's config (its YAML sections) for the refresh arm: svs synthesis by
    the policy, verified by sympy and the policy's solve rate, with the lab's token
    budgets."""
    return {
        "synthesizers": ["svs"],
        "svs": {"n_samples": config.synthesis_samples,
                "max_new_tokens": config.synthesis_max_new_tokens,
                "max_seeds_per_problem": config.refresh_seeds_per_problem,
                "seed_labels": list(config.refresh_seed_labels), "seed": config.seed},
        "consistency": {"n_solves": config.group_size, "max_new_tokens": config.max_new_tokens,
                        "seed": config.seed},
        "refresh": {"memorized_action": config.memorized_action,
                    "retire_below_weight": config.retire_below_weight},
        "diagnosis": {"keep_solutions": "all"},
        # a round where the tiny policy writes nothing acceptable still publishes (its
        # down-weighting), as the arm's budget is fixed in rounds
        "policy": {"require_variants": False},
    }


def import_prompt_set(store: Path, prompts: Path) -> None:
    """The fixed prompt set as v1 of an arm's own store (a fresh store per run)."""
    import shutil

    from svs.pipeline.importers import ColumnMap
    from svs.pipeline.store import PromptStore
    from svs.pipeline.store_import import import_table

    if store.exists():
        shutil.rmtree(store)
    import_table(PromptStore(store), SET_NAME, prompts, ColumnMap(), add=False)


def run_arm(arm: str, policy: BootstrapResult, config: ExperimentConfig,
            out_dir: Path, progress: bool = False) -> list[dict[str, Any]]:
    """Train one arm from the bootstrapped policy; the refresh rounds (refresh arm only).
    The per-step metrics are in `out_dir/arm/metrics.jsonl` and `rollouts/`."""
    import shutil

    import torch

    learner = learner_config(arm, policy, config, out_dir, progress)
    if Path(learner.output_dir).exists():
        shutil.rmtree(learner.output_dir)  # resume=False: a re-run starts over
    prompts = write_head(policy.train_file, out_dir / "prompts.jsonl", config.n_prompts)
    import_prompt_set(Path(learner.prompt_store), prompts)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        if arm != "refresh":
            from svs.trainer_bridge.grpo import train

            train(learner)
            return []
        from svs.flows.selfplay_flow import selfplay_flow

        rounds = selfplay_flow(train=learner.to_dict(),
                               rounds=config.steps // config.refresh_every,
                               steps_per_round=config.refresh_every,
                               refresh={"config": refresh_settings(config)})
        keep = ("round", "step", "trained_on", "published", "outcome", "labels", "seeds",
                "candidates", "accepted", "added", "downweighted", "retired",
                "generated_tokens")
        return [{k: r[k] for k in keep if k in r} for r in rounds]
    finally:
        torch.set_num_threads(threads)


# ------------------------------------------------------------------------------ curves
def memorized_count(rollouts: Path) -> int:
    """How many of the step's prompts the diagnosis labels memorized (default rule)."""
    from svs.pipeline.memorization import DiagnosisConfig, diagnose
    from svs.pipeline.rollouts import load_rollout_groups

    groups = load_rollout_groups([rollouts])
    return sum(1 for p in diagnose(groups, DiagnosisConfig(keep_solutions="none")).problems
               if p.label == "memorized")


def read_metrics(arm_dir: Path) -> list[dict[str, Any]]:
    path = arm_dir / "metrics.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: the arm's training did not log")
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip()]


def arm_curve(arm_dir: Path, rounds: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per step: the lab's metrics from the learner's log and rollouts; refresh
    tokens are charged to the step the refresh followed."""
    from svs.trainer_bridge.grpo import rollouts_path

    refresh_tokens = {r["step"]: int(r.get("generated_tokens", 0)) for r in rounds}
    curve, total = [], 0
    for row in read_metrics(arm_dir):
        step = int(row["step"])
        tokens = int(row.get("train/generated_tokens", 0)) + refresh_tokens.get(step, 0)
        total += tokens
        point = {"step": step,
                 "entropy": row.get("train/nll/original"),
                 "trained_entropy": row.get("train/entropy/original"),
                 "solve_rate": row.get("train/solve_rate/original"),
                 "memorized": memorized_count(rollouts_path(str(arm_dir), step)),
                 "prompts": int(row.get("train/groups/original", 0)),
                 "tokens": tokens, "tokens_total": total,
                 "prompt_version": row.get("train/prompt_version")}
        point.update({k: v for k, v in row.items() if k.startswith("eval/pass@")})
        if "eval/nll" in row:
            point["heldout_entropy"] = row["eval/nll"]
        if "train/reward/synthesis" in row:
            point["synthesis_reward"] = row["train/reward/synthesis"]
        curve.append(point)
    return curve


def start_eval(policy: BootstrapResult, config: ExperimentConfig, out_dir: Path) -> dict[str, float]:
    """Held-out pass@k of the shared start policy (step 0), sampled as the learner does."""
    import torch

    from svs.trainer_bridge.backends import load_model, make_policy
    from svs.trainer_bridge.grpo import evaluate
    from svs.trainer_bridge.prompt_source import heldout_from_config
    from svs.trainer_bridge.streams import verifier_reward

    learner = learner_config("fixed", policy, config, out_dir)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model, tokenizer = load_model(learner)
        model.eval()
        return evaluate(make_policy(learner, model, tokenizer), heldout_from_config(learner),
                        learner, 0, verifier_reward)
    finally:
        torch.set_num_threads(threads)


def run_experiment(policy: BootstrapResult, config: ExperimentConfig | None = None,
                   out_dir: str | Path = "runs/lab/experiment", *,
                   progress: bool = False, report: bool = True) -> dict[str, Any]:
    """Run every arm; write and return the summary (`out_dir/summary.json`) and, with
    `report`, the HTML report (`out_dir/report.html`)."""
    config = config or ExperimentConfig()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    began = time.perf_counter()
    start = start_eval(policy, config, out)
    timing = {"start_eval": time.perf_counter() - began}
    arms: dict[str, dict[str, Any]] = {}
    for arm in config.arms:
        began = time.perf_counter()
        rounds = run_arm(arm, policy, config, out, progress)
        curve = arm_curve(out / arm, rounds)
        timing[arm] = time.perf_counter() - began
        arms[arm] = {"title": ARM_TITLES[arm], "summary": summarize_arm(curve, start, config.eval_every),
                     "curve": curve, "rounds": rounds}
    add_cost_ratios(arms)
    record = {"config": asdict(config),
              "policy": {"folder": str(policy.folder), "metrics": policy.metrics},
              "start": start, "arms": arms,
              "timing": {k: round(v, 1) for k, v in timing.items()}}
    (out / SUMMARY_FILE).write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    if report:
        from svs.flows.lab.report import write_report

        write_report(record, out / "report.html")
    return record


def load_lab_config(path: str | Path | None) -> tuple[Any, ExperimentConfig]:
    """(LabConfig, ExperimentConfig) from a YAML file with sections `bootstrap:` (LabConfig
    fields, `curriculum:` nested) and `experiment:`; None: the embedded defaults."""
    from svs.flows.lab.bootstrap import LabConfig

    if path is None:
        return LabConfig(), ExperimentConfig()
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f"cannot read lab config {path}: {exc}") from exc
    if not isinstance(data, dict) or set(data) - {"bootstrap", "experiment"}:
        raise ValueError(f"lab config {path} must be a mapping with sections bootstrap and "
                         f"experiment, got {sorted(data) if isinstance(data, dict) else data!r}")
    bootstrap = data.get("bootstrap") or {}
    known = {f.name for f in fields(LabConfig)}
    unknown = sorted(set(bootstrap) - known)
    if unknown:
        raise ValueError(f"lab config {path}: unknown bootstrap setting(s) {unknown}; valid: "
                         f"{sorted(known)}")
    try:
        return LabConfig(**bootstrap), ExperimentConfig.from_dict(data.get("experiment") or {})
    except (TypeError, ValueError) as exc:
        raise ValueError(f"lab config {path}: {exc}") from exc
