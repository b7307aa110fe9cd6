"""The miniature self-play lab, part 2 (a first driver): GRPO arms on the bootstrapped policy.

Every arm starts from the same bootstrapped policy (`flows.lab.bootstrap`), trains the
same number of steps on the same fixed prompt set (the first `n_prompts` curriculum
training items) with the bundled learner (`trainer_bridge.grpo.train`), and is
evaluated on the same held-out curriculum items. Arms so far:

- `fixed`: plain GRPO on the fixed prompt set;
- `svs`: online SvS (the learner's `mode: svs`): the policy also writes variational
  problems from its correct solutions and solves them.

Not yet here: the `refresh` arm (svs refresh of the prompt set every R steps through
`flows.refresh_flow`), the HTML report and the cost-matched budget; see docs/lab.md.
Each arm's per-step metrics come from the learner's own history; the summary keeps the
ones the lab compares (namespaced as the learner logs them).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from flows.lab import BootstrapResult

ARMS = ("fixed", "svs")
SUMMARY_KEYS = ("train/entropy/original", "train/solve_rate/original", "eval/pass@1")


@dataclass(frozen=True)
class ExperimentConfig:
    """One budget shared by every arm."""

    arms: tuple[str, ...] = field(default=ARMS, metadata={
        "help": f"Arms to run, in order: {', '.join(ARMS)}."})
    steps: int = field(default=40, metadata={"help": "GRPO steps per arm."})
    n_prompts: int = field(default=64, metadata={
        "help": "Size of the fixed prompt set (the first curriculum training items)."})
    prompts_per_step: int = field(default=8, metadata={"help": "Problems per step."})
    group_size: int = field(default=8, metadata={"help": "Rollouts per problem."})
    lr: float = field(default=5e-4, metadata={"help": "Learner AdamW learning rate."})
    max_new_tokens: int = field(default=64, metadata={"help": "Solution token budget."})
    synthesis_max_new_tokens: int = field(default=48, metadata={
        "help": "svs arm: token budget of a synthesis output."})
    max_seeds_per_step: int = field(default=4, metadata={
        "help": "svs arm: seeds (correct solutions) turned into synthesis groups per step."})
    eval_every: int = field(default=10, metadata={"help": "Held-out pass@k every N steps."})
    eval_samples: int = field(default=8, metadata={"help": "Samples per held-out problem."})
    n_eval: int = field(default=32, metadata={"help": "Held-out problems evaluated."})
    seed: int = field(default=0, metadata={"help": "Seed of every arm (same draws)."})

    def __post_init__(self) -> None:
        object.__setattr__(self, "arms", tuple(self.arms))
        unknown = sorted(set(self.arms) - set(ARMS))
        if unknown or not self.arms:
            raise ValueError(f"arms must be a non-empty subset of {ARMS}, got {self.arms}")
        for name in ("steps", "n_prompts", "prompts_per_step", "group_size", "max_new_tokens",
                     "synthesis_max_new_tokens", "max_seeds_per_step", "eval_samples",
                     "n_eval"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.prompts_per_step > self.n_prompts:
            raise ValueError(f"prompts_per_step ({self.prompts_per_step}) must not exceed "
                             f"n_prompts ({self.n_prompts})")


def write_head(source: Path, target: Path, count: int) -> Path:
    """The first `count` problem rows of `source` (a bootstrap's train/heldout file)."""
    lines = source.read_text(encoding="utf-8").splitlines()[:count]
    target.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return target


def learner_config(arm: str, policy: BootstrapResult, config: ExperimentConfig,
                   out_dir: Path, progress: bool = False):
    """The learner's settings for one arm; prompts and held-out files under `out_dir`."""
    from trainer_bridge.grpo_config import GRPOConfig

    return GRPOConfig(
        model=str(policy.model_dir), output_dir=str(out_dir / arm),
        prompts_file=str(write_head(policy.train_file, out_dir / "prompts.jsonl",
                                    config.n_prompts)),
        heldout_file=str(write_head(policy.heldout_file, out_dir / "heldout.jsonl",
                                    config.n_eval)),
        mode="svs" if arm == "svs" else "refresh", device="cpu", steps=config.steps,
        prompts_per_step=config.prompts_per_step, group_size=config.group_size,
        max_new_tokens=config.max_new_tokens, lr=config.lr, seed=config.seed,
        synthesis_samples=config.group_size,
        synthesis_max_new_tokens=config.synthesis_max_new_tokens,
        max_seeds_per_step=config.max_seeds_per_step, eval_every=config.eval_every,
        eval_samples=config.eval_samples, checkpoint_every=config.steps, keep_checkpoints=1,
        resume=False, progress=progress, tensorboard=False)


def run_arm(arm: str, policy: BootstrapResult, config: ExperimentConfig,
            out_dir: Path, progress: bool = False) -> list[dict[str, Any]]:
    """Train one arm from the bootstrapped policy; its per-step metric history."""
    import torch

    from trainer_bridge.grpo import train

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        result = train(learner_config(arm, policy, config, out_dir, progress))
    finally:
        torch.set_num_threads(threads)
    return result.history


def summarize(history: list[dict[str, Any]]) -> dict[str, float | None]:
    """Final and mean value of each compared metric (None when never logged)."""
    summary: dict[str, float | None] = {}
    for key in SUMMARY_KEYS:
        values = [row[key] for row in history if isinstance(row.get(key), (int, float))]
        summary[f"{key}/final"] = values[-1] if values else None
        summary[f"{key}/mean"] = sum(values) / len(values) if values else None
    return summary


def run_experiment(policy: BootstrapResult, config: ExperimentConfig | None = None,
                   out_dir: str | Path = "runs/lab/experiment", *,
                   progress: bool = False) -> dict[str, Any]:
    """Run every arm; write and return {config, policy, arms: {arm: {summary, history}}}."""
    config = config or ExperimentConfig()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    arms = {}
    for arm in config.arms:
        history = run_arm(arm, policy, config, out, progress)
        arms[arm] = {"summary": summarize(history), "history": history}
    record = {"config": asdict(config), "policy": str(policy.folder), "arms": arms}
    (out / "summary.json").write_text(json.dumps(record, indent=2, default=str) + "\n",
                                      encoding="utf-8")
    return record
