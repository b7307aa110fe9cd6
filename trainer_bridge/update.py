"""One update of the bundled learner, read top to bottom: rollout samples -> right-padded
micro-batches -> `ppo_epochs` x `mini_batches` AdamW steps (gradient accumulation over
micro-batches, gradient clipping) -> per-stream token stats and the entropy ledger.

Simplified on purpose: no sequence packing (right padding), no dynamic batch sizes, the
mini-batch split is fixed (row i goes to mini-batch i mod mini_batches; every epoch
revisits the same split in the same order). The old log-probabilities are recomputed by
the learner before the first optimizer step (not taken from the sampler); with one
optimizer step per batch and full precision they ARE the current ones (ratio 1, no extra
forward pass).

Shapes: N sequences in a micro-batch, L = longest prompt + completion, T = L - start - 1
scored positions, V vocabulary, M trained tokens of one optimizer step.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from svs.trainer_bridge import losses
from svs.trainer_bridge.grpo_config import GRPOConfig
from svs.trainer_bridge.ledger import covariance_ledger
from svs.trainer_bridge.policy_losses import POLICY_LOSSES, StepTokens
from svs.trainer_bridge.streams import Sample
from svs.trainer_bridge.train_log import StreamTotals

AUTOCAST = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
TOKEN_STATS = ("entropy", "clip_low", "clip_high", "dual_clip", "kl")  # summed per stream


# -- tensors from samples ---------------------------------------------------------------

@dataclass(frozen=True)
class MicroBatch:
    input_ids: torch.Tensor  # (N, L) prompt + completion, right-padded
    attention_mask: torch.Tensor  # (N, L)
    mask: torch.Tensor  # (N, T) 1.0 where the target token is a completion token
    start: int  # first position whose logits are needed (shortest prompt - 1)
    advantages: torch.Tensor  # (N,)
    streams: tuple[str, ...]


def pack(samples: Sequence[Sample], advantages: torch.Tensor, pad_id: int,
         device: torch.device) -> MicroBatch:
    width = max(len(s.prompt_ids) + len(s.completion_ids) for s in samples)
    start = min(len(s.prompt_ids) for s in samples) - 1
    input_ids = torch.full((len(samples), width), pad_id, dtype=torch.long)  # (N, L)
    attention = torch.zeros((len(samples), width), dtype=torch.long)  # (N, L)
    completion = torch.zeros((len(samples), width))  # (N, L)
    for row, sample in enumerate(samples):
        prompt, answer = len(sample.prompt_ids), len(sample.completion_ids)
        input_ids[row, :prompt + answer] = torch.tensor(sample.prompt_ids + sample.completion_ids)
        attention[row, :prompt + answer] = 1
        completion[row, prompt:prompt + answer] = 1.0
    return MicroBatch(input_ids.to(device), attention.to(device),
                      completion[:, start + 1:].to(device), start,
                      advantages.to(device), tuple(s.stream for s in samples))


def completion_logits(model: Any, batch: MicroBatch, bf16: bool = False,
                      dtype: torch.dtype | None = None) -> torch.Tensor:
    """Logits that predict each token after position `start`: (N, T, V).

    `bf16` runs the forward under bfloat16 autocast, `dtype` under that autocast dtype
    (weights stay float32)."""
    dtype = torch.bfloat16 if bf16 else dtype
    keep = batch.input_ids.shape[1] - batch.start
    with torch.autocast(batch.input_ids.device.type, dtype=dtype or torch.bfloat16,
                        enabled=dtype is not None):
        out = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                    logits_to_keep=keep)
    return out.logits[:, :-1]  # (N, T, V): position start + t predicts token start + t + 1


def targets(batch: MicroBatch) -> torch.Tensor:
    return batch.input_ids[:, batch.start + 1:]  # (N, T)


def policy_dtype(config: GRPOConfig) -> torch.dtype | None:
    """Autocast dtype of the forward with gradient (None: float32)."""
    return torch.bfloat16 if config.bf16_autocast else AUTOCAST[config.policy_precision]


# -- the loss on one micro-batch (also what the TRL parity test checks) --------------------

def micro_batch_loss(model: Any, batch: MicroBatch, config: GRPOConfig, *, units: Any,
                     old_logprobs: torch.Tensor | None = None,
                     ref_logprobs: torch.Tensor | None = None,
                     selected: torch.Tensor | None = None) -> tuple[torch.Tensor, dict]:
    """Scalar loss (already divided by the whole batch's `units`) and per-token stats.
    `selected` (N, T) marks the tokens the policy loss's step-wide selection picked."""
    logits = completion_logits(model, batch, dtype=policy_dtype(config))  # (N, T, V)
    logprobs = losses.token_logprobs(logits, targets(batch))  # (N, T)
    entropy = losses.entropy_from_logits(logits if config.entropy_coef else logits.detach())
    old = logprobs.detach() if old_logprobs is None else old_logprobs
    policy_loss = POLICY_LOSSES.get_or_raise(config.policy_loss)
    terms = policy_loss.loss(logprobs, old, batch.advantages, selected,
                             config.policy_loss_settings())
    per_token = terms.loss  # (N, T)
    kl = None
    if ref_logprobs is not None:
        kl = losses.kl_k3(logprobs, ref_logprobs)  # (N, T)
        per_token = per_token + config.kl_coef * kl
    loss = losses.aggregate(config.loss_aggregation, per_token, batch.mask, units)
    if config.entropy_coef:
        loss = loss - config.entropy_coef * losses.aggregate(config.loss_aggregation, entropy,
                                                             batch.mask, units)
    stats = {"entropy": entropy.detach(), "clip_low": terms.clipped_low.float(),
             "clip_high": terms.clipped_high.float(),
             "dual_clip": terms.dual_clipped.float(), "selected": terms.selected.float(),
             "logprobs": logprobs.detach(), "ratio": terms.ratio.detach()}
    if kl is not None:
        stats["kl"] = kl.detach()
    return loss, stats


@torch.no_grad()
def sequence_logprobs(model: Any, batches: Sequence[MicroBatch], bf16: bool,
                      dtype: torch.dtype | None = None) -> list[torch.Tensor]:
    return [losses.token_logprobs(completion_logits(model, b, bf16, dtype), targets(b))
            for b in batches]


def _flat(values: Sequence[torch.Tensor], batches: Sequence[MicroBatch]) -> torch.Tensor:
    """Concatenate per-micro-batch (N, T) values at their valid tokens: (M,)."""
    return torch.cat([v[b.mask.bool()] for v, b in zip(values, batches, strict=True)])


def _unflat(flat: torch.Tensor, batches: Sequence[MicroBatch]) -> list[torch.Tensor]:
    """Inverse of `_flat` for a (M,) bool: one (N, T) mask per micro-batch."""
    out, start = [], 0
    for batch in batches:
        where = batch.mask.bool()
        piece = torch.zeros_like(where)
        count = int(where.sum())
        piece[where] = flat[start:start + count].to(where.device)
        start += count
        out.append(piece)
    return out


def select_tokens(model: Any, batches: Sequence[MicroBatch], olds: Sequence[Any],
                  config: GRPOConfig, generator: torch.Generator | None,
                  ) -> tuple[list[Any], dict[str, float]]:
    """The policy loss's token selection over ALL trained tokens of one optimizer step:
    a no-grad forward gives the current log-probs (gradient accumulation does not change
    the weights within a step, so they equal the ones the micro-batch losses will see).
    Returns one (N, T) mask per micro-batch (None: nothing to select) and the counts."""
    policy_loss = POLICY_LOSSES.get_or_raise(config.policy_loss)
    if not policy_loss.selects:
        return [None] * len(batches), {}
    current = sequence_logprobs(model, batches, False, policy_dtype(config))
    old = [c if o is None else o for c, o in zip(current, olds, strict=True)]
    advantages = [b.advantages.unsqueeze(1).expand_as(b.mask) for b in batches]
    tokens = StepTokens(_flat(current, batches), _flat(old, batches), _flat(advantages, batches))
    selection = policy_loss.select(tokens, config.policy_loss_settings(), generator)
    counts = {"entropy/selection/candidates": float(selection.candidates.sum()),
              "entropy/selection/selected": float(selection.selected.sum())}
    return _unflat(selection.selected, batches), counts


# -- one update ------------------------------------------------------------------------------

def update(model: Any, optimizer: Any, scheduler: Any, samples: Sequence[Sample],
           advantages: torch.Tensor, config: GRPOConfig, pad_id: int,
           ref_model: Any = None, *, generator: torch.Generator | None = None,
           ledger_rows: list[dict[str, float]] | None = None,
           ) -> tuple[dict[str, float], StreamTotals]:
    """`ppo_epochs` x `mini_batches` optimizer steps over `samples`; returns batch metrics
    and stream sums. With `ledger_rows` (a list) one entropy-ledger row per optimizer step
    is appended to it; `generator` draws Clip-Cov's random selection."""
    device = next(model.parameters()).device
    totals = StreamTotals()
    metrics: dict[str, float] = defaultdict(float)
    order = list(range(len(samples)))
    minis = [order[i::config.mini_batches] for i in range(config.mini_batches)]
    # Old log-probs come from the sampling policy, i.e. before the first update, in fp32
    # unless bf16_autocast. With one optimizer step at full precision that IS the current
    # policy: ratio 1, no extra forward pass.
    needs_old = config.optimizer_steps_per_batch > 1 or config.policy_precision != "fp32"
    plans = []
    for mini in (m for m in minis if m):
        chunks = [mini[i:i + config.micro_batch_size]
                  for i in range(0, len(mini), config.micro_batch_size)]
        batches = [pack([samples[i] for i in chunk], advantages[chunk], pad_id, device)
                   for chunk in chunks]
        none = [None] * len(batches)
        olds = sequence_logprobs(model, batches, config.bf16_autocast) if needs_old else none
        refs = sequence_logprobs(ref_model, batches, config.bf16_autocast) \
            if ref_model is not None else none
        plans.append((batches, olds, refs))
    steps = len(plans) * config.ppo_epochs
    streams = sorted({s.stream for s in samples})
    for _ in range(config.ppo_epochs):
        for batches, olds, refs in plans:
            units = sum(losses.AGGREGATIONS[config.loss_aggregation].units(b.mask) for b in batches)
            selections, counts = select_tokens(model, batches, olds, config, generator)
            optimizer.zero_grad(set_to_none=True)
            seen = []
            for batch, old, ref, selected in zip(batches, olds, refs, selections, strict=True):
                loss, stats = micro_batch_loss(model, batch, config, units=units,
                                               old_logprobs=old, ref_logprobs=ref,
                                               selected=selected)
                loss.backward()
                metrics["train/loss"] += float(loss.detach()) / steps
                for row, stream in enumerate(batch.streams):
                    row_mask = batch.mask[row]
                    totals.add(stream, tokens=float(row_mask.sum()),
                               **{k: float((stats[k][row] * row_mask).sum())
                                  for k in TOKEN_STATS if k in stats})
                seen.append(stats)
            norm = torch.nn.utils.clip_grad_norm_(model.parameters(),
                                                  config.max_grad_norm or float("inf"))
            metrics["train/grad_norm"] += float(norm) / steps
            lr = scheduler.get_last_lr()[0]
            optimizer.step()
            scheduler.step()
            metrics["train/optimizer_steps"] += 1
            if ledger_rows is not None:
                ledger_rows.append({"lr": lr, **counts,
                                    **step_ledger(batches, seen, streams, config)})
    metrics["train/lr"] = scheduler.get_last_lr()[0]
    return dict(metrics), totals


def step_ledger(batches: Sequence[MicroBatch], stats: Sequence[dict], streams: Sequence[str],
                config: GRPOConfig) -> dict[str, float]:
    """The entropy ledger of one optimizer step from its micro-batches' detached stats."""
    code = {name: i for i, name in enumerate(streams)}
    stream_rows = [torch.tensor([code[s] for s in b.streams], device=b.mask.device)
                   .unsqueeze(1).expand_as(b.mask) for b in batches]
    advantages = [b.advantages.unsqueeze(1).expand_as(b.mask) for b in batches]
    removed = {name: _flat([s[name] for s in stats], batches).bool().cpu()
               for name in ("clip_low", "clip_high", "dual_clip")}
    if config.policy_loss in ("clip_cov", "kl_cov"):
        removed[config.policy_loss] = _flat([s["selected"] for s in stats], batches).bool().cpu()
    return covariance_ledger(_flat([s["logprobs"] for s in stats], batches).cpu(),
                             _flat(advantages, batches).cpu(),
                             _flat(stream_rows, batches).cpu(), streams, removed,
                             _flat([s["ratio"] for s in stats], batches).cpu())


def stream_token_metrics(totals: StreamTotals) -> dict[str, float]:
    metrics = {}
    for stream in totals.sums:
        for key in ("entropy", "clip_low", "clip_high", "dual_clip", "kl"):
            if key in totals.sums[stream]:
                metrics[f"train/{key}/{stream}"] = totals.ratio(stream, key, "tokens")
    return metrics
