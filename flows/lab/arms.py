"""The lab's arms (one study-config entry each) and the budget they share.

An arm is data, not code: a `kind` saying where its prompts come from, the learner
settings it changes (`learner:`, any `trainer_bridge.grpo_config.GRPOConfig` field) and,
for the svs refresh, the refresh flow's sections (`refresh:`). Users add their own arm
by writing an entry. Kinds:

- `fixed`: the seed's fixed prompt set, never changed;
- `oracle` (fresh-oracle): every `refresh_every` steps each prompt the round found
  memorized or zero-variance is replaced by a new i.i.d. problem from the RL pool (the
  upper bound of any refresh: new problems from the true distribution);
- `variants`: the same prompts replaced by a model-free same-answer variant of each
  (`curriculum.variant`, proven by sympy), kept when none exists;
- `svs_refresh`: the svs refresh flow the SvS way (seeds only from the under-performing
  band, the policy writes variants, sympy + solve-rate check, memorized problems
  down-weighted, never retired);
- `online_svs`: the learner's `mode: svs` (synthesis and synthetic streams each step).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from svs.core.config import from_mapping, option

KINDS = ("fixed", "oracle", "variants", "svs_refresh", "online_svs")
SIDES = ("data", "loss", "control")
REFRESHING = ("oracle", "variants", "svs_refresh")
# the learner settings an arm may not change: the study's budget and bookkeeping
RESERVED = {"model", "output_dir", "prompt_store", "prompt_set", "prompts_file", "steps",
            "prompts_per_step", "group_size", "seed", "mode", "refresh_every", "resume",
            "progress", "tensorboard", "log_rollouts", "heldout_file", "heldout_set",
            "checkpoint_every", "keep_checkpoints", "device"}


@dataclass(frozen=True)
class Budget:
    """One budget for every arm of a study."""

    steps: int = option(120, "GRPO steps per run.")
    eval_steps: tuple[int, ...] = option((0, 40, 80, 120), "Steps evaluated (0: the start).")
    n_prompts: int = option(64, "Fixed prompt set per seed (drawn from the RL pool).")
    prompts_per_step: int = option(8, "Problems per step.")
    group_size: int = option(8, "Rollouts per problem.")
    lr: float = option(5e-4, "Learner AdamW learning rate.")
    max_new_tokens: int = option(96, "Solution token budget.")
    n_eval: int = option(128, "Held-out problems evaluated, each `eval_samples` times.")
    eval_samples: int = option(16, "Samples per held-out problem (pass@1..this).")
    train_eval_samples: int = option(4, "Samples per original training prompt at an "
                                        "evaluation (train pass@1, the generalisation gap).")
    n_canonical: int = option(64, "Held-out canonical solutions teacher-forced for their "
                                  "exact entropy.")
    device: str = option("cpu", "Learner device: cpu (one torch thread per worker) or cuda.")

    def __post_init__(self) -> None:
        object.__setattr__(self, "eval_steps", tuple(sorted(set(int(s) for s in self.eval_steps))))
        for name in ("steps", "n_prompts", "prompts_per_step", "group_size", "max_new_tokens",
                     "n_eval", "eval_samples", "train_eval_samples", "n_canonical"):
            if getattr(self, name) < 1:
                raise ValueError(f"budget.{name} must be >= 1, got {getattr(self, name)}")
        if not self.eval_steps or self.eval_steps[0] != 0 or self.eval_steps[-1] != self.steps:
            raise ValueError(f"budget.eval_steps must start at 0 and end at steps "
                             f"({self.steps}), got {list(self.eval_steps)}")
        if self.prompts_per_step > self.n_prompts:
            raise ValueError("budget.prompts_per_step must not exceed n_prompts")


@dataclass(frozen=True)
class Arm:
    """One arm: where its prompts come from and what it changes in the learner."""

    name: str = option("", "Short name (the cache and the tables use it).")
    kind: str = option("fixed", f"One of {', '.join(KINDS)}.")
    side: str = option("data", f"One of {', '.join(SIDES)} (tables group by it).")
    title: str = option("", "Readable title (default: the name).")
    learner: dict = option({}, "GRPOConfig fields this arm changes (not the budget's).")
    refresh_every: int = option(20, "Refreshing kinds: steps per round.")
    refresh: dict = option({}, "svs_refresh: refresh-flow sections merged over the SvS-way "
                               "defaults (flows.lab.runner.svs_refresh_settings).")

    def __post_init__(self) -> None:
        if not self.name or not self.name.replace("_", "").replace("-", "").isalnum():
            raise ValueError(f"arm name {self.name!r} must be a non-empty word "
                             f"(letters, digits, _ or -)")
        if self.kind not in KINDS:
            raise ValueError(f"arm {self.name}: kind must be one of {', '.join(KINDS)}, got "
                             f"{self.kind!r}")
        if self.side not in SIDES:
            raise ValueError(f"arm {self.name}: side must be one of {', '.join(SIDES)}")
        reserved = sorted(RESERVED & set(self.learner))
        if reserved:
            raise ValueError(f"arm {self.name}: learner settings {reserved} belong to the "
                             f"study's budget, not to an arm")
        if self.refresh and self.kind != "svs_refresh":
            raise ValueError(f"arm {self.name}: `refresh:` is for kind svs_refresh only")
        if self.refresh_every < 1:
            raise ValueError(f"arm {self.name}: refresh_every must be >= 1")

    @property
    def label(self) -> str:
        return self.title or self.name

    def settings(self) -> dict[str, Any]:
        """What decides this arm's run (the name and title do not)."""
        data = dataclasses.asdict(self)
        for key in ("name", "title", "side"):
            data.pop(key)
        if self.kind not in REFRESHING:
            data.pop("refresh_every")
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Arm:
        return from_mapping(cls, data, "arm setting",
                            f" in arm {data.get('name', '?')!r}" if isinstance(data, dict) else "")


def run_key(bootstrap_key: str, budget: Budget, arm: Arm, seed: int) -> str:
    """Cache key of one (seed, arm) run: same inputs, same result file."""
    from svs.flows.lab.bootstrap import LAB_VERSION

    payload = {"bootstrap": bootstrap_key, "budget": dataclasses.asdict(budget),
               "arm": arm.settings(), "seed": seed, "lab_version": LAB_VERSION,
               "runner_version": RUNNER_VERSION}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


RUNNER_VERSION = 1  # bump when a run's procedure or metrics change: cached results key on it
