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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from svs.core.config import Band, field_help, from_mapping, option
from svs.core.constants import DEFAULT_SOLVE_TEMPLATE, PROBLEM_SLOT
from svs.trainer_bridge.losses import ADVANTAGES, AGGREGATIONS
from svs.trainer_bridge.policy_losses import POLICY_LOSSES, PolicyLossSettings

MODES = ("refresh", "svs")
BACKENDS = ("transformers", "vllm")
PRECISIONS = ("fp32", "bf16", "fp16")


@dataclass(frozen=True)
class GRPOConfig:
    """Everything `svs train` reads from its YAML file (unknown keys are an error)."""

    # -- what to train, on what --------------------------------------------------------
    model: str = option("", "Local model folder (config.json, weights, tokenizer) to start from.")
    output_dir: str = option("runs/grpo", "Where checkpoints, metrics.jsonl and TensorBoard "
                                      "events go.")
    prompt_store: str | None = option(None, "Prompt store root (pipeline.store); used with "
                                        "prompt_set.")
    prompt_set: str | None = option(None, "Name of the prompt set in prompt_store to train on.")
    prompts_file: str | None = option(None, "Instead of a store: a .jsonl/.parquet file of "
                                        "problems (fields text, answer).")
    heldout_set: str | None = option(None, "Prompt set in prompt_store for held-out pass@k.")
    heldout_file: str | None = option(None, "Or a .jsonl/.parquet file of held-out problems.")
    mode: str = option("refresh", "refresh: train on the current prompt-set version and pick up "
                              "newly published versions every refresh_every steps; svs: "
                              "online SvS with three streams per step.")
    backend: str = option("transformers", "Rollout backend: transformers (generate on the "
                                      "training model) or vllm (weights reloaded after each "
                                      "update).")
    vllm_memory_utilization: float = option(0.4, "vllm: share of GPU memory vLLM may take (the "
                                              "learner needs the rest).")
    vllm_max_model_len: int | None = option(None, "vllm: context length to reserve; None: the "
                                              "model's own.")
    bf16_autocast: bool = option(False, "Run the learner's forward passes under bfloat16 autocast "
                                    "(float32 weights and optimizer); recommended on GPUs.")
    device: str | None = option(None, "Training device; None: cuda when available, else cpu.")
    solve_template: str = option(DEFAULT_SOLVE_TEMPLATE,
                             "Solve prompt; {problem} is replaced by the problem text.")

    # -- schedule ---------------------------------------------------------------------
    steps: int = option(100, "Training steps (one rollout batch and its updates each).")
    prompts_per_step: int = option(8, "Problems sampled per step.")
    group_size: int = option(8, "Rollouts per problem (the GRPO group).")
    max_new_tokens: int = option(512, "Completion length limit.")
    temperature: float = option(1.0, "Sampling temperature of rollouts.")
    top_p: float = option(1.0, "Nucleus mass of rollouts.")
    generation_batch_size: int = option(64, "Sequences per generate call (transformers).")
    seed: int = option(0, "Seed of prompt sampling and rollouts; same seed, same run.")

    # -- optimisation -----------------------------------------------------------------
    lr: float = option(1e-6, "AdamW learning rate.")
    weight_decay: float = option(0.0, "AdamW weight decay.")
    adam_betas: tuple[float, float] = option((0.9, 0.999), "AdamW betas.")
    warmup_steps: int = option(0, "Linear learning-rate warm-up (optimizer steps).")
    max_grad_norm: float = option(1.0, "Gradient clipping by global norm; 0 disables.")
    mini_batches: int = option(1, "Optimizer steps per rollout batch (PPO mini-batches); with "
                              "1 the old log-probs equal the current ones and clipping is idle.")
    micro_batch_size: int = option(16, "Sequences per forward/backward (gradient accumulation).")
    advantage: str = option("grpo", f"Advantage estimator: {', '.join(sorted(ADVANTAGES))}.")
    advantage_eps: float = option(1e-6, "Epsilon added to the group std (grpo).")
    loss_aggregation: str = option("token-mean", f"One of {', '.join(sorted(AGGREGATIONS))}.")
    clip_low: float = option(0.2, "Lower clip range: ratio >= 1 - clip_low.")
    clip_high: float = option(0.28, "Upper clip range (clip-higher): ratio <= 1 + clip_high.")
    dual_clip: float | None = option(3.0, "Dual-clip constant c > 1 for negative advantages; "
                                      "null disables.")
    kl_coef: float = option(0.0, "Weight of the k3 KL to the frozen start model; 0 loads no "
                             "reference model.")
    entropy_coef: float = option(0.0, "Entropy bonus weight (subtracted from the loss).")
    drop_zero_variance: bool = option(True, "Drop groups whose rewards are all equal (no signal), "
                                        "as the SvS code does.")
    passk_k: int = option(4, "passk: k of the pass@k advantage (k <= group_size; with svs "
                             "also <= synthesis_samples); other estimators ignore it.")
    ppo_epochs: int = option(1, "Passes over each rollout batch (each pass takes mini_batches "
                                "optimizer steps); > 1 makes the ratio differ from 1.")
    policy_loss: str = option("ppo", f"Policy loss: {', '.join(sorted(POLICY_LOSSES))}. ppo: "
                                     "clipped surrogate (clip_low/clip_high/dual_clip); "
                                     "clip_cov: detach high-covariance tokens (no dual-clip); "
                                     "kl_cov: KL-penalise the top-covariance tokens (no clip); "
                                     "dg: delight-gated policy gradient (no ratio, no clip).")
    clip_cov_ratio: float = option(2e-4, "clip_cov: share of the optimizer step's tokens to "
                                         "detach (at least 1), drawn among the candidates.")
    clip_cov_lb: float = option(1.0, "clip_cov: candidates have covariance > this ...")
    clip_cov_ub: float = option(5.0, "clip_cov: ... and < this (Cui et al.: 1 and 5).")
    kl_cov_ratio: float = option(2e-4, "kl_cov: share of the optimizer step's tokens (top "
                                       "covariance, at least 1) that get the KL penalty.")
    kl_cov_coef: float = option(1.0, "kl_cov: beta of beta * |lp - lp_old| (original code: 1.0; "
                                     "verl's config: 0.1).")
    dg_eta: float = option(1.0, "dg: temperature eta of the gate sigmoid(A * surprisal / eta).")
    policy_precision: str = option("fp32", "Precision of the policy forward with gradient: fp32, "
                                           "or bf16 / fp16 autocast against fp32 old log-probs "
                                           "(reproduces the ratio bias of reduced precision).")

    # -- prompt refresh and online SvS ------------------------------------------------------
    refresh_every: int = option(0, "Check the prompt store for a newer version every this many "
                               "steps; 0: never.")
    seed_band: tuple[float, float] = option((0.125, 0.5), "svs: original problems whose solve "
                                                      "rate lies in this band become seeds.")
    synthesis_band: tuple[float, float] = option((0.125, 0.625), "svs: a synthesized problem earns "
                                             "reward 1 when its solve rate lies in this band.")
    synthesis_samples: int = option(8, "svs: synthesis outputs per seed (one GRPO group).")
    synthesis_max_new_tokens: int = option(1024, "svs: token budget of one synthesis output.")
    synthesis_template: str | None = option(None, "svs: template file with a {solution} slot; "
                                              "None: synthesizers/prompts/svs_synthesis.txt.")
    synthesis_checks: bool = option(True, "svs: reject synthesized problems that are garbage, too "
                                      "short/long or state their answer (verifiers.problems) "
                                      "before solving them; they earn reward 0.")
    synthesis_sympy_check: bool = option(True, "svs: reject a synthesized problem that sympy "
                                           "computes to another answer when sympy computes "
                                           "its original to the reference answer "
                                           "(verifiers.consistency.sympy_verdict); reward 0.")
    max_seeds_per_step: int | None = option(16, "svs: seeds used per step (null: all).")

    # -- logging, evaluation, checkpoints ----------------------------------------------------
    entropy_ledger: bool = option(True, "Log the entropy ledger every optimizer step (entropy/... "
                                        "metrics, output_dir/ledger.jsonl): covariance term, "
                                        "quadrants, what clipping removed.")
    probe_every: int = option(5, "Exact entropy along teacher-forced reference answers of a fixed "
                                 "probe set every this many steps (entropy/probe, "
                                 "entropy/probe_delta); 0: never.")
    probe_problems: int = option(16, "Problems in the probe set: the first of probe_file, else "
                                     "of the held-out set, else of the first prompt-set version.")
    probe_file: str | None = option(None, "A .jsonl/.parquet of problems for the probe set.")
    log_every: int = option(1, "Write metrics every this many steps.")
    log_rollouts: bool = option(False, "Also write each step's original-stream rollouts in the "
                                   "native rollout format (with token log-probs) to "
                                   "output_dir/rollouts/step_NNNNNN.jsonl: input for "
                                   "`svs diagnose` and the refresh flow.")
    eval_every: int = option(0, "Held-out pass@1 / pass@k every this many steps; 0: never.")
    eval_samples: int = option(8, "Samples per held-out problem (pass@k for k up to this).")
    eval_temperature: float = option(1.0, "Sampling temperature of held-out evaluation.")
    checkpoint_every: int = option(50, "Save a checkpoint every this many steps (and at the end).")
    keep_checkpoints: int = option(2, "Checkpoints kept on disk (oldest removed first).")
    resume: bool = option(True, "Continue from the newest checkpoint in output_dir if any.")
    progress: bool = option(True, "Show a progress bar with the key metrics.")
    tensorboard: bool = option(True, "Also write TensorBoard event files (output_dir/tb).")

    def __post_init__(self) -> None:
        def positive(*names: str) -> None:
            for name in names:
                if getattr(self, name) < 1:
                    raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")

        def non_negative(*names: str) -> None:
            for name in names:
                if getattr(self, name) < 0:
                    raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")

        object.__setattr__(self, "adam_betas", tuple(float(x) for x in self.adam_betas))
        for name in ("seed_band", "synthesis_band"):
            object.__setattr__(self, name, Band.of(getattr(self, name), name))
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
                 "synthesis_max_new_tokens", "ppo_epochs", "probe_problems")
        non_negative("weight_decay", "warmup_steps", "max_grad_norm", "kl_coef",
                     "entropy_coef", "refresh_every", "eval_every", "temperature",
                     "eval_temperature", "probe_every", "kl_cov_coef")
        if self.mode == "svs" and self.group_size < 2:
            raise ValueError("svs mode needs group_size >= 2 to measure solve rates")
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if not 0 < self.vllm_memory_utilization <= 1:
            raise ValueError(f"vllm_memory_utilization must be in (0, 1], got "
                             f"{self.vllm_memory_utilization}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if not (0 <= self.clip_low <= 1 and self.clip_high >= 0):
            raise ValueError(f"need 0 <= clip_low <= 1 and clip_high >= 0, got "
                             f"{self.clip_low}, {self.clip_high}")
        if self.dual_clip is not None and self.dual_clip <= 1 + self.clip_high:
            raise ValueError(f"dual_clip must exceed 1 + clip_high ({1 + self.clip_high}), got "
                             f"{self.dual_clip}; or set it to null")
        self._check_objective()
        if self.max_seeds_per_step is not None and self.max_seeds_per_step < 1:
            raise ValueError("max_seeds_per_step must be >= 1 or null")
        if self.synthesis_template is not None and not Path(self.synthesis_template).is_file():
            raise ValueError(f"synthesis_template {self.synthesis_template} is not a file")

    def _check_objective(self) -> None:
        """Cross-field rules of the advantage estimator, policy loss and precision."""
        POLICY_LOSSES.get_or_raise(self.policy_loss)
        if self.policy_precision not in PRECISIONS:
            raise ValueError(f"policy_precision must be one of {', '.join(PRECISIONS)}, got "
                             f"{self.policy_precision!r}")
        if self.policy_precision != "fp32" and self.bf16_autocast:
            raise ValueError("bf16_autocast casts old and new log-probs alike; policy_precision "
                             "casts only the new ones: set one of them")
        if self.advantage == "passk":
            sizes = {"group_size": self.group_size}
            if self.mode == "svs":
                sizes["synthesis_samples"] = self.synthesis_samples
            for name, size in sizes.items():
                if not 1 <= self.passk_k <= size:
                    raise ValueError(f"passk_k must be in [1, {name}={size}], got "
                                     f"{self.passk_k}: lower passk_k or raise {name}")
        for name in ("clip_cov_ratio", "kl_cov_ratio"):
            if not 0 < getattr(self, name) <= 1:
                raise ValueError(f"{name} is a share of tokens in (0, 1], got {getattr(self, name)}"
                                 f" (2e-4 is 0.02%, the papers' value)")
        if self.clip_cov_lb >= self.clip_cov_ub:
            raise ValueError(f"clip_cov_lb ({self.clip_cov_lb}) must be below clip_cov_ub "
                             f"({self.clip_cov_ub})")
        if self.dg_eta <= 0:
            raise ValueError(f"dg_eta must be > 0, got {self.dg_eta}")
        if (self.policy_loss == "kl_cov" and self.optimizer_steps_per_batch == 1
                and self.policy_precision == "fp32"):
            raise ValueError("kl_cov's penalty |lp - lp_old| has zero gradient while the ratio "
                             "is 1, i.e. with one optimizer step per rollout batch: set "
                             "mini_batches or ppo_epochs > 1 (or policy_precision bf16/fp16)")

    @property
    def optimizer_steps_per_batch(self) -> int:
        return self.mini_batches * self.ppo_epochs

    def policy_loss_settings(self) -> PolicyLossSettings:
        return PolicyLossSettings(
            clip_low=self.clip_low, clip_high=self.clip_high, dual_clip=self.dual_clip,
            clip_cov_ratio=self.clip_cov_ratio, clip_cov_lb=self.clip_cov_lb,
            clip_cov_ub=self.clip_cov_ub, kl_cov_ratio=self.kl_cov_ratio,
            kl_cov_coef=self.kl_cov_coef, dg_eta=self.dg_eta)

    @classmethod
    def help(cls) -> dict[str, str]:
        return field_help(cls)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GRPOConfig:
        return from_mapping(cls, data, "training setting")

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
