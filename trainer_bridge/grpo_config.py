"""The bundled GRPO learner's settings: one frozen dataclass, loadable from YAML.

Defaults follow the SvS paper's official scripts where they apply (n=8, clip 0.2 / 0.28,
dual-clip 3, token-mean loss, no KL, no entropy bonus, temperature 1.0, seed band
[0.125, 0.5], synthesis reward for 1..5 of 8 solved); the learning rate is the one
knob that must match the model size (1e-6 for 7B-32B models, ~1e-3 for the tiny test
models).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from svs.core.constants import DEFAULT_SOLVE_TEMPLATE, PROBLEM_SLOT
from svs.trainer_bridge.losses import ADVANTAGES, AGGREGATIONS

MODES = ("refresh", "svs")
BACKENDS = ("transformers", "vllm")


def _f(default: Any, text: str) -> Any:
    if isinstance(default, (list, dict, tuple)):
        return field(default_factory=lambda: default, metadata={"help": text})
    return field(default=default, metadata={"help": text})


@dataclass(frozen=True)
class GRPOConfig:
    """Everything `svs train` reads from its YAML file (unknown keys are an error)."""

    # -- what to train, on what --------------------------------------------------------
    model: str = _f("", "Local model folder (config.json, weights, tokenizer) to start from.")
    output_dir: str = _f("runs/grpo", "Where checkpoints, metrics.jsonl and TensorBoard "
                                      "events go.")
    prompt_store: str | None = _f(None, "Prompt store root (pipeline.store); used with "
                                        "prompt_set.")
    prompt_set: str | None = _f(None, "Name of the prompt set in prompt_store to train on.")
    prompts_file: str | None = _f(None, "Instead of a store: a .jsonl/.parquet file of "
                                        "problems (fields text, answer).")
    heldout_set: str | None = _f(None, "Prompt set in prompt_store for held-out pass@k.")
    heldout_file: str | None = _f(None, "Or a .jsonl/.parquet file of held-out problems.")
    mode: str = _f("refresh", "refresh: train on the current prompt-set version and pick up "
                              "newly published versions every refresh_every steps; svs: "
                              "online SvS with three streams per step.")
    backend: str = _f("transformers", "Rollout backend: transformers (generate on the "
                                      "training model) or vllm (weights reloaded after each "
                                      "update).")
    vllm_memory_utilization: float = _f(0.4, "vllm: share of GPU memory vLLM may take (the "
                                              "learner needs the rest).")
    vllm_max_model_len: int | None = _f(None, "vllm: context length to reserve; None: the "
                                              "model's own.")
    bf16_autocast: bool = _f(False, "Run the learner's forward passes under bfloat16 autocast "
                                    "(float32 weights and optimizer); recommended on GPUs.")
    device: str | None = _f(None, "Training device; None: cuda when available, else cpu.")
    solve_template: str = _f(DEFAULT_SOLVE_TEMPLATE,
                             "Solve prompt; {problem} is replaced by the problem text.")

    # -- schedule ---------------------------------------------------------------------
    steps: int = _f(100, "Training steps (one rollout batch and its updates each).")
    prompts_per_step: int = _f(8, "Problems sampled per step.")
    group_size: int = _f(8, "Rollouts per problem (the GRPO group).")
    max_new_tokens: int = _f(512, "Completion length limit.")
    temperature: float = _f(1.0, "Sampling temperature of rollouts.")
    top_p: float = _f(1.0, "Nucleus mass of rollouts.")
    generation_batch_size: int = _f(64, "Sequences per generate call (transformers).")
    seed: int = _f(0, "Seed of prompt sampling and rollouts; same seed, same run.")

    # -- optimisation -----------------------------------------------------------------
    lr: float = _f(1e-6, "AdamW learning rate.")
    weight_decay: float = _f(0.0, "AdamW weight decay.")
    adam_betas: tuple[float, float] = _f((0.9, 0.999), "AdamW betas.")
    warmup_steps: int = _f(0, "Linear learning-rate warm-up (optimizer steps).")
    max_grad_norm: float = _f(1.0, "Gradient clipping by global norm; 0 disables.")
    mini_batches: int = _f(1, "Optimizer steps per rollout batch (PPO mini-batches); with "
                              "1 the old log-probs equal the current ones and clipping is idle.")
    micro_batch_size: int = _f(16, "Sequences per forward/backward (gradient accumulation).")
    advantage: str = _f("grpo", f"Advantage estimator: {', '.join(sorted(ADVANTAGES))}.")
    advantage_eps: float = _f(1e-6, "Epsilon added to the group std (grpo).")
    loss_aggregation: str = _f("token-mean", f"One of {', '.join(sorted(AGGREGATIONS))}.")
    clip_low: float = _f(0.2, "Lower clip range: ratio >= 1 - clip_low.")
    clip_high: float = _f(0.28, "Upper clip range (clip-higher): ratio <= 1 + clip_high.")
    dual_clip: float | None = _f(3.0, "Dual-clip constant c > 1 for negative advantages; "
                                      "null disables.")
    kl_coef: float = _f(0.0, "Weight of the k3 KL to the frozen start model; 0 loads no "
                             "reference model.")
    entropy_coef: float = _f(0.0, "Entropy bonus weight (subtracted from the loss).")
    drop_zero_variance: bool = _f(True, "Drop groups whose rewards are all equal (no signal), "
                                        "as the SvS code does.")

    # -- prompt refresh and online SvS ------------------------------------------------------
    refresh_every: int = _f(0, "Check the prompt store for a newer version every this many "
                               "steps; 0: never.")
    seed_band: tuple[float, float] = _f((0.125, 0.5), "svs: original problems whose solve "
                                                      "rate lies in this band become seeds.")
    synthesis_band: tuple[float, float] = _f((0.125, 0.625), "svs: a synthesized problem earns "
                                             "reward 1 when its solve rate lies in this band.")
    synthesis_samples: int = _f(8, "svs: synthesis outputs per seed (one GRPO group).")
    synthesis_max_new_tokens: int = _f(1024, "svs: token budget of one synthesis output.")
    synthesis_template: str | None = _f(None, "svs: template file with a {solution} slot; "
                                              "None: synthesizers/prompts/svs_synthesis.txt.")
    synthesis_checks: bool = _f(True, "svs: reject synthesized problems that are garbage, too "
                                      "short/long or state their answer (verifiers.problems) "
                                      "before solving them; they earn reward 0.")
    synthesis_sympy_check: bool = _f(True, "svs: reject a synthesized problem that sympy "
                                           "computes to another answer when sympy computes "
                                           "its original to the reference answer "
                                           "(verifiers.consistency.sympy_verdict); reward 0.")
    max_seeds_per_step: int | None = _f(16, "svs: seeds used per step (null: all).")

    # -- logging, evaluation, checkpoints ----------------------------------------------------
    log_every: int = _f(1, "Write metrics every this many steps.")
    log_rollouts: bool = _f(False, "Also write each step's original-stream rollouts in the "
                                   "native rollout format (with token log-probs) to "
                                   "output_dir/rollouts/step_NNNNNN.jsonl: input for "
                                   "`svs diagnose` and the refresh flow.")
    eval_every: int = _f(0, "Held-out pass@1 / pass@k every this many steps; 0: never.")
    eval_samples: int = _f(8, "Samples per held-out problem (pass@k for k up to this).")
    eval_temperature: float = _f(1.0, "Sampling temperature of held-out evaluation.")
    checkpoint_every: int = _f(50, "Save a checkpoint every this many steps (and at the end).")
    keep_checkpoints: int = _f(2, "Checkpoints kept on disk (oldest removed first).")
    resume: bool = _f(True, "Continue from the newest checkpoint in output_dir if any.")
    progress: bool = _f(True, "Show a progress bar with the key metrics.")
    tensorboard: bool = _f(True, "Also write TensorBoard event files (output_dir/tb).")

    def __post_init__(self) -> None:
        def positive(*names: str) -> None:
            for name in names:
                if getattr(self, name) < 1:
                    raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")

        def non_negative(*names: str) -> None:
            for name in names:
                if getattr(self, name) < 0:
                    raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")

        for name in ("adam_betas", "seed_band", "synthesis_band"):
            object.__setattr__(self, name, tuple(float(x) for x in getattr(self, name)))
        if not self.model:
            raise ValueError("model is empty: set it to a local model folder")
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if self.backend not in BACKENDS:
            raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {self.backend!r}")
        ADVANTAGES.get_or_raise(self.advantage)
        AGGREGATIONS.get_or_raise(self.loss_aggregation)
        if (self.prompts_file is None) == (self.prompt_set is None):
            raise ValueError("set exactly one of prompts_file and prompt_set (with prompt_store)")
        if (self.prompt_set or self.heldout_set) and not self.prompt_store:
            raise ValueError("prompt_set / heldout_set need prompt_store (the store's root folder)")
        if self.heldout_set and self.heldout_file:
            raise ValueError("set at most one of heldout_set and heldout_file")
        if self.refresh_every and self.prompt_set is None:
            raise ValueError("refresh_every needs a prompt store (prompt_store + prompt_set); "
                             "a prompts_file has no versions")
        if PROBLEM_SLOT not in self.solve_template:
            raise ValueError(f"solve_template has no {PROBLEM_SLOT} slot")
        positive("steps", "prompts_per_step", "group_size", "max_new_tokens",
                 "generation_batch_size", "mini_batches", "micro_batch_size", "log_every",
                 "checkpoint_every", "keep_checkpoints", "eval_samples", "synthesis_samples",
                 "synthesis_max_new_tokens")
        non_negative("weight_decay", "warmup_steps", "max_grad_norm", "kl_coef",
                     "entropy_coef", "refresh_every", "eval_every", "temperature",
                     "eval_temperature")
        if self.mode == "svs" and self.group_size < 2:
            raise ValueError("svs mode needs group_size >= 2 to measure solve rates")
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if not 0 < self.vllm_memory_utilization <= 1:
            raise ValueError(f"vllm_memory_utilization must be in (0, 1], got "
                             f"{self.vllm_memory_utilization}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if not (0 <= self.clip_low < 1 and self.clip_high >= 0):
            raise ValueError(f"need 0 <= clip_low < 1 and clip_high >= 0, got "
                             f"{self.clip_low}, {self.clip_high}")
        if self.dual_clip is not None and self.dual_clip <= 1 + self.clip_high:
            raise ValueError(f"dual_clip must exceed 1 + clip_high ({1 + self.clip_high}), got "
                             f"{self.dual_clip}; or set it to null")
        for name in ("seed_band", "synthesis_band"):
            low, high = getattr(self, name)
            if not 0 <= low <= high <= 1:
                raise ValueError(f"{name} must be [low, high] with 0 <= low <= high <= 1, "
                                 f"got {[low, high]}")
        if self.max_seeds_per_step is not None and self.max_seeds_per_step < 1:
            raise ValueError("max_seeds_per_step must be >= 1 or null")
        if self.synthesis_template is not None and not Path(self.synthesis_template).is_file():
            raise ValueError(f"synthesis_template {self.synthesis_template} is not a file")

    @classmethod
    def help(cls) -> dict[str, str]:
        return {f.name: f.metadata.get("help", "") for f in dataclasses.fields(cls)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GRPOConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown training setting(s) {unknown}; valid: {', '.join(sorted(known))}")
        return cls(**dict(data))

    @classmethod
    def from_yaml(cls, path: str | Path) -> GRPOConfig:
        import yaml

        text = Path(path).read_text(encoding="utf-8")
        data = yaml.safe_load(text) or {}
        if not isinstance(data, dict):
            raise ValueError(f"{path}: the config must be a mapping of setting: value")
        return cls.from_dict(data)

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}
