"""trainer_bridge.losses against plain Python loop implementations, over random shapes/seeds."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from svs.trainer_bridge import losses

SETTINGS = settings(max_examples=60, deadline=None)


def _batch(seed: int, rows: int, width: int):
    generator = torch.Generator().manual_seed(seed)
    logprobs = -torch.rand(rows, width, generator=generator, dtype=torch.float64) * 3
    old = logprobs + (torch.rand(rows, width, generator=generator, dtype=torch.float64) - 0.5) * 2
    advantages = torch.randn(rows, generator=generator, dtype=torch.float64) * 2
    lengths = torch.randint(0, width + 1, (rows,), generator=generator)
    mask = (torch.arange(width)[None, :] < lengths[:, None]).to(torch.float64)
    return logprobs, old, advantages, mask


# -- advantages ----------------------------------------------------------------------------

def _loop_advantages(rewards: list[float], groups: list[int], eps: float, scale: bool) -> list[float]:
    out = []
    for reward, group in zip(rewards, groups, strict=True):
        members = [r for r, g in zip(rewards, groups, strict=True) if g == group]
        if len(members) == 1:
            out.append(0.0)
            continue
        mean = sum(members) / len(members)
        std = math.sqrt(sum((m - mean) ** 2 for m in members) / (len(members) - 1))
        out.append((reward - mean) / (std + eps) if scale else reward - mean)
    return out


@SETTINGS
@given(seed=st.integers(0, 10_000), rows=st.integers(1, 40), n_groups=st.integers(1, 8),
       binary=st.booleans())
def test_advantages_match_loop(seed, rows, n_groups, binary):
    generator = torch.Generator().manual_seed(seed)
    groups = torch.randint(0, n_groups, (rows,), generator=generator) * 7 + 3  # arbitrary ids
    rewards = (torch.randint(0, 2, (rows,), generator=generator).double() if binary
               else torch.randn(rows, generator=generator, dtype=torch.float64))
    for name, scale in (("grpo", True), ("dr_grpo", False)):
        got = losses.group_advantages(name, rewards, groups, eps=1e-6)
        want = _loop_advantages(rewards.tolist(), groups.tolist(), 1e-6, scale)
        torch.testing.assert_close(got, torch.tensor(want, dtype=torch.float64), rtol=1e-9,
                                   atol=1e-9)


def test_advantage_registry_rejects_unknown_and_duplicates():
    with pytest.raises(ValueError, match="choose one of dr_grpo, grpo"):
        losses.group_advantages("ppo", torch.zeros(2), torch.zeros(2))
    with pytest.raises(ValueError, match="already registered"):
        losses.ADVANTAGES.register("grpo")(lambda r, g, e: r)


def test_zero_variance_groups():
    rewards = torch.tensor([1.0, 1.0, 0.0, 1.0, 0.0, 0.0])
    groups = torch.tensor([0, 0, 1, 1, 2, 2])
    assert losses.zero_variance_groups(rewards, groups).tolist() == [True, True, False, False,
                                                                     True, True]


# -- surrogate -----------------------------------------------------------------------------

def _loop_surrogate(lp, old, adv, clip_low, clip_high, dual):
    rows, width = lp.shape
    out = torch.zeros(rows, width, dtype=torch.float64)
    for i in range(rows):
        a = float(adv[i])
        for t in range(width):
            ratio = math.exp(float(lp[i, t]) - float(old[i, t]))
            clipped = min(max(ratio, 1 - clip_low), 1 + clip_high)
            value = -min(ratio * a, clipped * a)
            if dual is not None and a < 0:
                value = min(value, -a * dual)
            out[i, t] = value
    return out


@SETTINGS
@given(seed=st.integers(0, 10_000), rows=st.integers(1, 6), width=st.integers(1, 7),
       clip_low=st.floats(0.05, 0.5), clip_high=st.floats(0.05, 0.5),
       dual=st.sampled_from([None, 1.5, 3.0]))
def test_surrogate_matches_loop(seed, rows, width, clip_low, clip_high, dual):
    lp, old, adv, _ = _batch(seed, rows, width)
    got = losses.clipped_surrogate(lp, old, adv, clip_low, clip_high, dual)
    want = _loop_surrogate(lp, old, adv, clip_low, clip_high, dual)
    torch.testing.assert_close(got.loss, want, rtol=1e-10, atol=1e-10)
    ratio = torch.exp(lp - old)
    assert torch.equal(got.clipped_low, (ratio < 1 - clip_low) & (adv[:, None] < 0))
    assert torch.equal(got.clipped_high, (ratio > 1 + clip_high) & (adv[:, None] > 0))


def test_surrogate_gradient_is_zero_where_clipped():
    old = torch.zeros(1, 4, dtype=torch.float64)
    # ratios 2.0 (A>0: clipped high), 0.5 (A<0: clipped low), 5.0 (A<0: dual-clipped), 1.0
    lp = torch.log(torch.tensor([[2.0, 0.5, 5.0, 1.0]], dtype=torch.float64)).requires_grad_()
    adv = torch.tensor([[1.0, -1.0, -1.0, 1.0]], dtype=torch.float64)
    out = losses.clipped_surrogate(lp, old, adv, 0.2, 0.28, 3.0)
    out.loss.sum().backward()
    assert lp.grad[0, :3].abs().max() == 0
    assert lp.grad[0, 3] == pytest.approx(-1.0)
    assert out.dual_clipped.tolist() == [[False, False, True, False]]
    assert out.loss[0, 2].item() == pytest.approx(3.0)


def test_dual_clip_must_exceed_one():
    with pytest.raises(ValueError, match="dual_clip must be > 1"):
        losses.clipped_surrogate(torch.zeros(1, 1), torch.zeros(1, 1), torch.ones(1), dual_clip=1.0)


# -- aggregation -----------------------------------------------------------------------------

def _loop_aggregate(name, values, mask):
    rows, width = values.shape
    if name == "token-mean":
        total = sum(float(values[i, t]) for i in range(rows) for t in range(width) if mask[i, t])
        count = sum(1 for i in range(rows) for t in range(width) if mask[i, t])
        return total / max(count, 1)
    per_sequence = []
    for i in range(rows):
        tokens = [float(values[i, t]) for t in range(width) if mask[i, t]]
        if name == "seq-mean-token-mean":
            per_sequence.append(sum(tokens) / max(len(tokens), 1))
        else:
            per_sequence.append(sum(tokens))
    return sum(per_sequence) / rows


@SETTINGS
@given(seed=st.integers(0, 10_000), rows=st.integers(1, 8), width=st.integers(1, 9),
       name=st.sampled_from(sorted(losses.AGGREGATIONS)), splits=st.integers(1, 4))
def test_aggregation_matches_loop_and_accumulates_exactly(seed, rows, width, name, splits):
    values, _, _, mask = _batch(seed, rows, width)
    got = losses.aggregate(name, values, mask)
    assert float(got) == pytest.approx(_loop_aggregate(name, values, mask), rel=1e-10, abs=1e-12)
    # micro-batches with the whole batch's unit count add up to the full-batch value
    units = losses.AGGREGATIONS[name].units(mask)
    chunks = torch.arange(rows).chunk(splits)
    accumulated = sum(losses.aggregate(name, values[c], mask[c], units=units) for c in chunks)
    assert float(accumulated) == pytest.approx(float(got), rel=1e-10, abs=1e-12)


def test_aggregation_registry_lists_valid_names():
    with pytest.raises(ValueError, match="seq-mean-token-mean"):
        losses.aggregate("mean", torch.zeros(1, 1), torch.ones(1, 1))


# -- KL, log-probabilities, entropy -----------------------------------------------------------

@SETTINGS
@given(seed=st.integers(0, 10_000), rows=st.integers(1, 4), width=st.integers(1, 5),
       vocab=st.integers(2, 12))
def test_logprobs_entropy_kl_match_loop(seed, rows, width, vocab):
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(rows, width, vocab, generator=generator, dtype=torch.float64) * 3
    targets = torch.randint(0, vocab, (rows, width), generator=generator)
    ref = torch.randn(rows, width, vocab, generator=generator, dtype=torch.float64)
    lp = losses.token_logprobs(logits, targets)
    ent = losses.entropy_from_logits(logits)
    kl = losses.kl_k3(lp, losses.token_logprobs(ref, targets))
    for i in range(rows):
        for t in range(width):
            row = [float(x) for x in logits[i, t]]
            top = max(row)
            norm = top + math.log(sum(math.exp(x - top) for x in row))
            probs = [math.exp(x - norm) for x in row]
            assert float(lp[i, t]) == pytest.approx(row[int(targets[i, t])] - norm, abs=1e-6)
            assert float(ent[i, t]) == pytest.approx(-sum(p * math.log(p) for p in probs),
                                                     abs=1e-6)
            ref_row = [float(x) for x in ref[i, t]]
            ref_top = max(ref_row)
            ref_lp = ref_row[int(targets[i, t])] - ref_top - math.log(
                sum(math.exp(x - ref_top) for x in ref_row))
            delta = ref_lp - float(lp[i, t])
            assert float(kl[i, t]) == pytest.approx(math.exp(delta) - delta - 1, abs=1e-6)
            assert float(kl[i, t]) >= 0


def test_masked_mean_is_nan_on_empty_mask():
    assert math.isnan(losses.masked_mean(torch.ones(2, 2), torch.zeros(2, 2)))
    assert losses.masked_mean(torch.tensor([[1.0, 3.0]]), torch.tensor([[1.0, 1.0]])) == 2.0
