"""GRPO loss maths as pure torch functions: no model, no optimizer, no I/O.

Shapes: N completions (rows), T completion tokens (padded), V vocabulary.
`mask` is 1.0 on real completion tokens and 0.0 on padding, shape (N, T).

- Group advantages (registry `ADVANTAGES`): `grpo` is (r - mean) / (std + eps) within
  each group (Shao et al., 2024; std with Bessel's correction, as verl and TRL compute
  it); `dr_grpo` is r - mean (Liu et al., 2025, "Understanding R1-Zero-Like Training":
  dividing by the std up-weights near-solved and near-unsolved prompts). Groups are
  given by an id per row, so groups of different sizes (SvS's three streams) mix in
  one batch. A group of one row has no baseline and gets advantage 0. `rloo` is
  N/(N-1) * (r - mean), the leave-one-out baseline (Ahmadian et al., 2024; verl's
  `compute_rloo_outcome_advantage`). `passk` is the pass@k advantage (Chen et al., 2025,
  "Pass@k Training", RUCAIBox/Passk_Training): it rewards the group for containing a
  correct answer among k draws, not each sample, so it does not push the policy onto
  one mode. Every estimator takes (rewards, group_ids, eps, k).
- Clipped surrogate with separate low / high clip ranges (clip-higher, DAPO: Yu et al.,
  2025) and dual-clip (Ye et al., 2020: for negative advantages the loss is capped at
  c * |A|, so a huge ratio on a bad token cannot blow up the update).
- Aggregations (registry `AGGREGATIONS`): `token-mean` (every token weighs the same;
  DAPO, SvS), `seq-mean-token-mean` (each sequence weighs the same; original GRPO, TRL's
  "grpo"), `seq-mean-token-sum` (sum over a sequence's tokens, mean over sequences;
  Dr. GRPO without the constant length normalizer). Each one is split into a sum and a
  unit count so gradient accumulation over micro-batches equals one big batch exactly.
- k3 KL estimator to a frozen reference (Schulman, "Approximating KL divergence").
- Exact entropy of the next-token distribution from logits.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

# (rewards (N,), group ids (N,), eps, k) -> advantages (N,)
AdvantageFn = Callable[[torch.Tensor, torch.Tensor, float, int], torch.Tensor]


# -- registries ------------------------------------------------------------------------

class Registry(dict):
    """Name -> function; registering a name twice raises, an unknown name lists the valid ones."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind

    def register(self, name: str):
        def decorator(fn):
            if name in self:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self[name] = fn
            return fn
        return decorator

    def get_or_raise(self, name: str):
        if name not in self:
            raise ValueError(f"unknown {self.kind} {name!r}; choose one of {', '.join(sorted(self))}")
        return self[name]


ADVANTAGES = Registry("advantage estimator")
AGGREGATIONS = Registry("loss aggregation")


# -- group advantages --------------------------------------------------------------------

def _group_stats(rewards: torch.Tensor, group_ids: torch.Tensor):
    """Per-row group mean, unbiased group std and group size. rewards, group_ids: (N,)."""
    _, index = torch.unique(group_ids, return_inverse=True)  # (N,) in 0..G-1
    groups = int(index.max()) + 1 if index.numel() else 0
    values = rewards.to(torch.float64)
    count = torch.zeros(groups, dtype=torch.float64).index_add_(0, index, torch.ones_like(values))
    total = torch.zeros(groups, dtype=torch.float64).index_add_(0, index, values)
    mean = total / count  # (G,)
    squares = torch.zeros(groups, dtype=torch.float64).index_add_(0, index, (values - mean[index]) ** 2)
    std = torch.sqrt(squares / (count - 1).clamp(min=1))  # (G,) Bessel's correction
    return mean[index], std[index], count[index]


@ADVANTAGES.register("grpo")
def grpo_advantages(rewards: torch.Tensor, group_ids: torch.Tensor, eps: float = 1e-6,
                    k: int = 1) -> torch.Tensor:
    """(r - group mean) / (group std + eps); rows alone in their group get 0. Returns (N,)."""
    mean, std, count = _group_stats(rewards, group_ids)
    advantages = (rewards.to(torch.float64) - mean) / (std + eps)
    return torch.where(count > 1, advantages, torch.zeros_like(advantages)).to(rewards.dtype)


@ADVANTAGES.register("dr_grpo")
def dr_grpo_advantages(rewards: torch.Tensor, group_ids: torch.Tensor, eps: float = 1e-6,
                       k: int = 1) -> torch.Tensor:
    """r - group mean (no std scaling; `eps` and `k` are unused). Returns (N,)."""
    mean, _, count = _group_stats(rewards, group_ids)
    advantages = rewards.to(torch.float64) - mean
    return torch.where(count > 1, advantages, torch.zeros_like(advantages)).to(rewards.dtype)


@ADVANTAGES.register("rloo")
def rloo_advantages(rewards: torch.Tensor, group_ids: torch.Tensor, eps: float = 1e-6,
                    k: int = 1) -> torch.Tensor:
    """N / (N - 1) * (r - group mean) = r - mean of the OTHER rows (leave-one-out).
    Unlike grpo there is no 1/std, so the lone failure of a 7/8 group gets -1.00, not
    -2.47. Returns (N,)."""
    mean, _, count = _group_stats(rewards, group_ids)
    scale = count / (count - 1).clamp(min=1)
    advantages = scale * (rewards.to(torch.float64) - mean)
    return torch.where(count > 1, advantages, torch.zeros_like(advantages)).to(rewards.dtype)


def _choose(n: torch.Tensor, k: int) -> torch.Tensor:
    """C(n, k) elementwise for float64 n >= 0 (0 where n < k), via log-gamma."""
    valid = n >= k
    safe = torch.where(valid, n, torch.full_like(n, float(k)))
    value = torch.exp(torch.lgamma(safe + 1) - torch.lgamma(torch.tensor(k + 1.0, dtype=n.dtype))
                      - torch.lgamma(safe - k + 1))
    return torch.where(valid, value, torch.zeros_like(n))


@ADVANTAGES.register("passk")
def passk_advantages(rewards: torch.Tensor, group_ids: torch.Tensor, eps: float = 1e-6,
                     k: int = 1) -> torch.Tensor:
    """The pass@k advantage of a group of N with N_neg wrong (reward < 0.5 is wrong):
    R = 1 - C(N_neg, k) / C(N, k) (the group's pass@k), sigma = sqrt(R (1 - R)),
    correct rows get (1 - R) / sigma, wrong rows (1 - R - C(N_neg - 1, k - 1) /
    C(N - 1, k - 1)) / sigma; all 0 when N_neg < k (every k-subset passes) or sigma = 0.
    k = 1 gives the grpo advantage with the population std. Returns (N,)."""
    if k < 1:
        raise ValueError(f"passk needs k >= 1, got {k}")
    _, index = torch.unique(group_ids, return_inverse=True)  # (N,) in 0..G-1
    groups = int(index.max()) + 1 if index.numel() else 0
    wrong = (rewards < 0.5).to(torch.float64)
    size = torch.zeros(groups, dtype=torch.float64).index_add_(0, index, torch.ones_like(wrong))
    if groups and float(size.min()) < k:
        raise ValueError(f"passk with k={k} needs every group to have >= k rows; the smallest "
                         f"has {int(size.min())} (lower passk_k or raise group_size)")
    negatives = torch.zeros(groups, dtype=torch.float64).index_add_(0, index, wrong)
    n, n_neg = size[index], negatives[index]  # (N,)
    pass_k = 1.0 - _choose(n_neg, k) / _choose(n, k)
    sigma = torch.sqrt(pass_k * (1.0 - pass_k))
    positive = (1.0 - pass_k) / sigma.clamp(min=eps)
    negative = (1.0 - pass_k - _choose(n_neg - 1, k - 1) / _choose(n - 1, k - 1)) / sigma.clamp(min=eps)
    advantages = torch.where(wrong > 0, negative, positive)
    live = (n_neg >= k) & (sigma > 0)
    return torch.where(live, advantages, torch.zeros_like(advantages)).to(rewards.dtype)


def group_advantages(name: str, rewards: torch.Tensor, group_ids: torch.Tensor,
                     eps: float = 1e-6, k: int = 1) -> torch.Tensor:
    """Advantages by estimator name (`ADVANTAGES`: grpo, dr_grpo, rloo, passk)."""
    return ADVANTAGES.get_or_raise(name)(rewards, group_ids, eps, k)


def zero_variance_groups(rewards: torch.Tensor, group_ids: torch.Tensor) -> torch.Tensor:
    """(N,) bool: the row's group has all-equal rewards (no learning signal)."""
    _, std, _ = _group_stats(rewards, group_ids)
    return std == 0


# -- the clipped surrogate ---------------------------------------------------------------

@dataclass(frozen=True)
class Surrogate:
    """Per-token policy loss and where clipping took the gradient away, all (N, T)."""

    loss: torch.Tensor
    clipped_low: torch.Tensor  # ratio < 1 - clip_low with A < 0
    clipped_high: torch.Tensor  # ratio > 1 + clip_high with A > 0
    dual_clipped: torch.Tensor  # ratio > dual_clip with A < 0
    ratio: torch.Tensor


def clipped_surrogate(logprobs: torch.Tensor, old_logprobs: torch.Tensor,
                      advantages: torch.Tensor, clip_low: float = 0.2, clip_high: float = 0.28,
                      dual_clip: float | None = 3.0) -> Surrogate:
    """PPO's clipped objective as a loss (to minimise), token by token.

    logprobs: (N, T) under the current policy (with grad); old_logprobs: (N, T) under the
    policy that sampled (no grad); advantages: (N,) or (N, T).
    loss = -min(ratio * A, clip(ratio, 1 - clip_low, 1 + clip_high) * A), and with
    dual-clip, for A < 0, min(that, -dual_clip * A).
    """
    if dual_clip is not None and dual_clip <= 1.0:
        raise ValueError(f"dual_clip must be > 1 (it caps ratio * |A| for A < 0), got {dual_clip}")
    if advantages.dim() == 1:
        advantages = advantages.unsqueeze(1)  # (N, 1)
    ratio = torch.exp(logprobs - old_logprobs)  # (N, T)
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1.0 - clip_low, 1.0 + clip_high)
    loss = torch.maximum(unclipped, clipped)
    negative = (advantages < 0).expand_as(ratio)
    dual_clipped = torch.zeros_like(negative)
    if dual_clip is not None:
        capped = torch.minimum(loss, -advantages * dual_clip)
        loss = torch.where(negative, capped, loss)
        dual_clipped = negative & (ratio > dual_clip)
    return Surrogate(
        loss=loss,
        clipped_low=(ratio < 1.0 - clip_low) & negative,
        clipped_high=(ratio > 1.0 + clip_high) & (advantages > 0).expand_as(ratio),
        dual_clipped=dual_clipped,
        ratio=ratio,
    )


# -- aggregation ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Aggregation:
    """`summed(values, mask)` adds up one micro-batch; `units(mask)` counts what it is
    divided by (tokens or sequences). Dividing the sum of sums by the sum of units over
    all micro-batches gives the full-batch value exactly."""

    summed: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    units: Callable[[torch.Tensor], torch.Tensor]


def _sequence_lengths(mask: torch.Tensor) -> torch.Tensor:
    return mask.sum(dim=1).clamp(min=1.0)  # (N,)


AGGREGATIONS.register("token-mean")(Aggregation(
    summed=lambda values, mask: (values * mask).sum(),
    units=lambda mask: mask.sum()))
AGGREGATIONS.register("seq-mean-token-mean")(Aggregation(
    summed=lambda values, mask: ((values * mask).sum(dim=1) / _sequence_lengths(mask)).sum(),
    units=lambda mask: torch.tensor(float(mask.shape[0]), dtype=mask.dtype)))
AGGREGATIONS.register("seq-mean-token-sum")(Aggregation(
    summed=lambda values, mask: (values * mask).sum(),
    units=lambda mask: torch.tensor(float(mask.shape[0]), dtype=mask.dtype)))


def aggregate(name: str, values: torch.Tensor, mask: torch.Tensor,
              units: torch.Tensor | float | None = None) -> torch.Tensor:
    """Reduce per-token `values` (N, T) to a scalar by aggregation `name`.

    `units` overrides the divisor: pass the unit count of the whole batch when `values`
    is one micro-batch of it, so accumulated gradients equal the full batch's.
    """
    aggregation = AGGREGATIONS.get_or_raise(name)
    divisor = aggregation.units(mask) if units is None else units
    return aggregation.summed(values, mask) / torch.clamp(torch.as_tensor(divisor), min=1.0)


# -- KL, log-probabilities, entropy ---------------------------------------------------------

def _at_least_float32(logits: torch.Tensor) -> torch.Tensor:
    return logits if logits.dtype == torch.float64 else logits.float()


def kl_k3(logprobs: torch.Tensor, ref_logprobs: torch.Tensor) -> torch.Tensor:
    """k3 estimate of KL(pi || ref) per token: exp(ref - lp) - (ref - lp) - 1, >= 0. (N, T)."""
    delta = ref_logprobs - logprobs
    return torch.exp(delta) - delta - 1.0


def token_logprobs(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """log softmax(logits)[target]: logits (N, T, V), targets (N, T) -> (N, T)."""
    logits = _at_least_float32(logits)
    picked = logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    return picked - torch.logsumexp(logits, dim=-1)


def entropy_from_logits(logits: torch.Tensor) -> torch.Tensor:
    """Exact entropy of softmax(logits) per position: (N, T, V) -> (N, T)."""
    logits = _at_least_float32(logits)
    logprobs = torch.log_softmax(logits, dim=-1)
    return -(logprobs.exp() * logprobs).sum(dim=-1)


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> float:
    """Mean of `values` over mask; NaN when the mask is empty (aggregate NaN-safely)."""
    total = float(mask.sum())
    return float((values.float() * mask).sum()) / total if total else float("nan")
