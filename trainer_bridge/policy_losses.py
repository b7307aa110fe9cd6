"""Policy losses by name (registry `POLICY_LOSSES`): pure torch, no model, no I/O.

Every entry has the same two functions, so the learner never probes for keys:

- `select(step, settings, generator) -> Selection`: which of the optimizer step's M
  trained tokens were candidates and which get special treatment (Clip-Cov detaches them, KL-Cov penalises them;
  `ppo` and `dg` select none). It sees ALL tokens of one optimizer step at once (flattened
  over its micro-batches), not one micro-batch as in verl: at small scale a per-micro-batch
  quota of max(floor(r * N), 1) would select far more tokens than the paper's ratio.
- `loss(logprobs, old_logprobs, advantages, selected, settings) -> PolicyTerms`: the
  per-token loss (to minimise, aggregated by the caller) and where tokens lost their
  gradient, all (N, T).

Notation (SVS_NOTES.md, "Entropy mechanisms"): lp = log pi(token) now (with grad), lp_old
under the sampling policy, ratio = exp(lp - lp_old), A the advantage broadcast to tokens,
cov_i = (A_i - mean A)(lp_i - mean lp) over the step's trained tokens.

- `ppo`: the clipped surrogate with clip-higher and dual-clip (`losses.clipped_surrogate`).
- `clip_cov` (Cui et al., 2025, PRIME-RL/Entropy-Mechanism-of-RL
  `compute_policy_loss_clip_cov`): max(-A ratio, -A clip(ratio)); tokens already clipped
  are not candidates; candidates have lb < cov < ub; max(floor(r * M), 1) of them, drawn
  uniformly, get loss x 0 (they stay in the token-mean denominator). No dual-clip.
- `kl_cov` (same file, `compute_policy_loss_kl_cov`): -A ratio, no clipping; the top
  max(floor(r * M), 1) tokens by cov get + beta * |lp - lp_old|. Its gradient is zero at
  lp = lp_old, so it acts only from the second optimizer step on one rollout batch.
- `dg`, Delightful Policy Gradient (Osband, 2026; from the abstract and secondary
  implementations): gate w = sigmoid(A * (-lp) / eta), gradient stopped; loss =
  -sg(w A) lp: no ratio, no clipping. Rare successes get w -> 1, rare failures w -> 0.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from svs.trainer_bridge.losses import Registry, clipped_surrogate


@dataclass(frozen=True)
class PolicyLossSettings:
    """The hyperparameters every policy loss may read (GRPOConfig fills them)."""

    clip_low: float = 0.2
    clip_high: float = 0.28
    dual_clip: float | None = 3.0
    clip_cov_ratio: float = 2e-4
    clip_cov_lb: float = 1.0
    clip_cov_ub: float = 5.0
    kl_cov_ratio: float = 2e-4
    kl_cov_coef: float = 1.0
    dg_eta: float = 1.0


@dataclass(frozen=True)
class StepTokens:
    """The trained tokens of one optimizer step, flattened over its micro-batches: (M,)."""

    logprobs: torch.Tensor  # current policy, detached
    old_logprobs: torch.Tensor
    advantages: torch.Tensor


@dataclass(frozen=True)
class Selection:
    """Over the optimizer step's M tokens, both (M,) bool."""

    candidates: torch.Tensor
    selected: torch.Tensor


@dataclass(frozen=True)
class PolicyTerms:
    """Per-token loss and which tokens lost (part of) their gradient, all (N, T)."""

    loss: torch.Tensor
    clipped_low: torch.Tensor  # bool: ratio < 1 - clip_low with A < 0
    clipped_high: torch.Tensor  # bool: ratio > 1 + clip_high with A > 0
    dual_clipped: torch.Tensor  # bool: ratio > dual_clip with A < 0
    selected: torch.Tensor  # bool: detached (clip_cov) or penalised (kl_cov)
    ratio: torch.Tensor


@dataclass(frozen=True)
class PolicyLoss:
    select: Callable[[StepTokens, PolicyLossSettings, torch.Generator | None], Selection]
    loss: Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None,
                    PolicyLossSettings], PolicyTerms]
    selects: bool  # whether `select` can pick tokens (the learner skips the work if not)


POLICY_LOSSES = Registry("policy loss")


def token_covariance(tokens: StepTokens) -> torch.Tensor:
    """cov_i = (A_i - mean A)(lp_i - mean lp) over the step's tokens: (M,)."""
    lp = tokens.logprobs.to(torch.float64)
    adv = tokens.advantages.to(torch.float64)
    return (adv - adv.mean()) * (lp - lp.mean())


def quota(ratio: float, count: int) -> int:
    """max(floor(ratio * count), 1) tokens, never more than there are."""
    return min(max(int(ratio * count), 1), count)


def _none(tokens: StepTokens, settings: PolicyLossSettings,
          generator: torch.Generator | None) -> Selection:
    none = torch.zeros_like(tokens.logprobs, dtype=torch.bool)
    return Selection(none, none)


def _column(advantages: torch.Tensor) -> torch.Tensor:
    return advantages.unsqueeze(1) if advantages.dim() == 1 else advantages  # (N, 1) or (N, T)


def _clip_sides(ratio: torch.Tensor, advantages: torch.Tensor,
                settings: PolicyLossSettings) -> tuple[torch.Tensor, torch.Tensor]:
    advantages = _column(advantages).expand_as(ratio)
    return ((ratio < 1.0 - settings.clip_low) & (advantages < 0),
            (ratio > 1.0 + settings.clip_high) & (advantages > 0))


def _no_selection(selected: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor:
    return torch.zeros_like(like, dtype=torch.bool) if selected is None else selected


# -- ppo ---------------------------------------------------------------------------------

def _ppo_loss(logprobs, old_logprobs, advantages, selected, settings) -> PolicyTerms:
    surrogate = clipped_surrogate(logprobs, old_logprobs, advantages, settings.clip_low,
                                  settings.clip_high, settings.dual_clip)
    return PolicyTerms(surrogate.loss, surrogate.clipped_low, surrogate.clipped_high,
                       surrogate.dual_clipped, _no_selection(selected, logprobs),
                       surrogate.ratio)


POLICY_LOSSES.register("ppo")(PolicyLoss(select=_none, loss=_ppo_loss, selects=False))


# -- clip_cov ------------------------------------------------------------------------------

def _clip_cov_select(tokens: StepTokens, settings: PolicyLossSettings,
                     generator: torch.Generator | None) -> Selection:
    cov = token_covariance(tokens)  # (M,)
    ratio = torch.exp(tokens.logprobs - tokens.old_logprobs)
    low, high = _clip_sides(ratio.unsqueeze(0), tokens.advantages.unsqueeze(0), settings)
    already_clipped = (low | high).squeeze(0)  # pg2 > pg1: the clip has taken the gradient
    window = (cov > settings.clip_cov_lb) & (cov < settings.clip_cov_ub) & ~already_clipped
    candidates = torch.nonzero(window).squeeze(1)
    selected = torch.zeros_like(cov, dtype=torch.bool)
    if candidates.numel():
        count = min(quota(settings.clip_cov_ratio, cov.numel()), candidates.numel())
        order = torch.randperm(candidates.numel(), generator=generator)[:count]
        selected[candidates[order]] = True
    return Selection(window, selected)


def _clip_cov_loss(logprobs, old_logprobs, advantages, selected, settings) -> PolicyTerms:
    advantages = _column(advantages)
    ratio = torch.exp(logprobs - old_logprobs)  # (N, T)
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1.0 - settings.clip_low, 1.0 + settings.clip_high)
    selected = _no_selection(selected, logprobs)
    loss = torch.maximum(unclipped, clipped) * (~selected).to(unclipped.dtype)
    low, high = _clip_sides(ratio, advantages, settings)
    return PolicyTerms(loss, low, high, torch.zeros_like(low), selected, ratio)


POLICY_LOSSES.register("clip_cov")(PolicyLoss(select=_clip_cov_select, loss=_clip_cov_loss,
                                              selects=True))


# -- kl_cov --------------------------------------------------------------------------------

def _kl_cov_select(tokens: StepTokens, settings: PolicyLossSettings,
                   generator: torch.Generator | None) -> Selection:
    cov = token_covariance(tokens)  # (M,)
    selected = torch.zeros_like(cov, dtype=torch.bool)
    if cov.numel():
        selected[torch.topk(cov, quota(settings.kl_cov_ratio, cov.numel())).indices] = True
    return Selection(torch.ones_like(selected), selected)  # every token is a candidate


def _kl_cov_loss(logprobs, old_logprobs, advantages, selected, settings) -> PolicyTerms:
    advantages = _column(advantages)
    ratio = torch.exp(logprobs - old_logprobs)  # (N, T)
    selected = _no_selection(selected, logprobs)
    penalty = settings.kl_cov_coef * (logprobs - old_logprobs).abs()
    loss = -advantages * ratio + torch.where(selected, penalty, torch.zeros_like(penalty))
    none = torch.zeros_like(selected)
    return PolicyTerms(loss, none, none, none, selected, ratio)


POLICY_LOSSES.register("kl_cov")(PolicyLoss(select=_kl_cov_select, loss=_kl_cov_loss,
                                            selects=True))


# -- dg ------------------------------------------------------------------------------------

def delight_gate(logprobs: torch.Tensor, advantages: torch.Tensor, eta: float) -> torch.Tensor:
    """w = sigmoid(A * surprisal / eta), surprisal = -lp, no gradient: (N, T)."""
    return torch.sigmoid(_column(advantages) * (-logprobs.detach()) / eta)


def _dg_loss(logprobs, old_logprobs, advantages, selected, settings) -> PolicyTerms:
    weight = delight_gate(logprobs, advantages, settings.dg_eta) * _column(advantages)
    ratio = torch.exp(logprobs.detach() - old_logprobs)
    none = torch.zeros_like(logprobs, dtype=torch.bool)
    return PolicyTerms(-weight.detach() * logprobs, none, none, none, none, ratio)


POLICY_LOSSES.register("dg")(PolicyLoss(select=_none, loss=_dg_loss, selects=False))
