"""Every advantage estimator and policy loss against a slow loop written from its formula
(SVS_NOTES.md, "Entropy mechanisms"), over random shapes and seeds, to 1e-6."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from svs.trainer_bridge import losses
from svs.trainer_bridge.policy_losses import (
    POLICY_LOSSES,
    PolicyLossSettings,
    StepTokens,
    token_covariance,
)

SETTINGS = settings(max_examples=40, deadline=None)


def _batch(seed: int, rows: int, width: int, spread: float = 2.0):
    generator = torch.Generator().manual_seed(seed)
    logprobs = -torch.rand(rows, width, generator=generator, dtype=torch.float64) * 3
    old = logprobs + (torch.rand(rows, width, generator=generator, dtype=torch.float64) - 0.5) * spread
    advantages = torch.randn(rows, generator=generator, dtype=torch.float64) * 2
    lengths = torch.randint(1, width + 1, (rows,), generator=generator)
    mask = (torch.arange(width)[None, :] < lengths[:, None]).to(torch.float64)
    return logprobs, old, advantages, mask


def _valid(mask):
    return [(i, t) for i in range(mask.shape[0]) for t in range(mask.shape[1]) if mask[i, t] > 0]


def _loop_cov(logprobs, advantages, mask):
    """{(i, t): (A_i - mean A)(lp_it - mean lp)} over valid tokens, token-weighted means."""
    cells = _valid(mask)
    mean_lp = sum(float(logprobs[i, t]) for i, t in cells) / len(cells)
    mean_adv = sum(float(advantages[i]) for i, _ in cells) / len(cells)
    return {(i, t): (float(advantages[i]) - mean_adv) * (float(logprobs[i, t]) - mean_lp)
            for i, t in cells}


def _tokens(logprobs, old, advantages, mask):
    where = mask.bool()
    return StepTokens(logprobs[where], old[where], advantages[:, None].expand_as(mask)[where])


def _unflat(flat, mask):
    out = torch.zeros_like(mask, dtype=torch.bool)
    out[mask.bool()] = flat
    return out


# -- advantages ----------------------------------------------------------------------------

def _loop_rloo(rewards, groups):
    out = []
    for reward, group in zip(rewards, groups, strict=True):
        others = [r for j, (r, g) in enumerate(zip(rewards, groups, strict=True)) if g == group]
        n = len(others)
        out.append(0.0 if n == 1 else reward - (sum(others) - reward) / (n - 1))
    return out


def _loop_passk(rewards, groups, k):
    out = []
    for reward, group in zip(rewards, groups, strict=True):
        members = [r for r, g in zip(rewards, groups, strict=True) if g == group]
        n, n_neg = len(members), sum(1 for r in members if r < 0.5)
        if n_neg < k:
            out.append(0.0)
            continue
        mean = 1 - math.comb(n_neg, k) / math.comb(n, k)
        sigma = math.sqrt(mean * (1 - mean))
        if sigma == 0:
            out.append(0.0)
        elif reward >= 0.5:
            out.append((1 - mean) / sigma)
        else:
            out.append((1 - mean - math.comb(n_neg - 1, k - 1) / math.comb(n - 1, k - 1)) / sigma)
    return out


@SETTINGS
@given(seed=st.integers(0, 10_000), rows=st.integers(1, 40), n_groups=st.integers(1, 6))
def test_rloo_matches_loop(seed, rows, n_groups):
    generator = torch.Generator().manual_seed(seed)
    groups = torch.randint(0, n_groups, (rows,), generator=generator)
    rewards = torch.randn(rows, generator=generator, dtype=torch.float64)
    got = losses.group_advantages("rloo", rewards, groups)
    want = torch.tensor(_loop_rloo(rewards.tolist(), groups.tolist()), dtype=torch.float64)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-9)


@SETTINGS
@given(seed=st.integers(0, 10_000), n_groups=st.integers(1, 5), size=st.integers(2, 16),
       k=st.integers(1, 16))
def test_passk_matches_loop(seed, n_groups, size, k):
    k = min(k, size)
    generator = torch.Generator().manual_seed(seed)
    groups = torch.arange(n_groups).repeat_interleave(size)
    rewards = torch.randint(0, 2, (n_groups * size,), generator=generator).double()
    got = losses.group_advantages("passk", rewards, groups, k=k)
    want = torch.tensor(_loop_passk(rewards.tolist(), groups.tolist(), k), dtype=torch.float64)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-6)


@pytest.mark.parametrize(("correct", "positive", "negative"),
                         [(1, 1.00, -0.14), (4, 0.12, -0.12), (7, 0.0, 0.0)])
def test_passk_hand_values(correct, positive, negative):
    rewards = torch.tensor([1.0] * correct + [0.0] * (8 - correct))
    advantages = losses.group_advantages("passk", rewards, torch.zeros(8), k=4)
    assert advantages[:correct].tolist() == pytest.approx([positive] * correct, abs=0.005)
    assert advantages[correct:].tolist() == pytest.approx([negative] * (8 - correct), abs=0.005)


def test_rloo_is_gentler_than_grpo_on_the_lone_failure():
    rewards = torch.tensor([1.0] * 7 + [0.0])
    assert float(losses.group_advantages("rloo", rewards, torch.zeros(8))[-1]) == pytest.approx(-1.0)
    assert float(losses.group_advantages("grpo", rewards, torch.zeros(8))[-1]) == pytest.approx(-2.47, abs=0.01)


def test_passk_refuses_groups_smaller_than_k():
    with pytest.raises(ValueError, match="lower passk_k"):
        losses.group_advantages("passk", torch.tensor([1.0, 0.0, 0.0]), torch.zeros(3), k=4)


# -- policy losses -------------------------------------------------------------------------

def _loop_ppo(lp, old, adv, clip_low, clip_high, dual):
    out = torch.zeros_like(lp)
    for i in range(lp.shape[0]):
        for t in range(lp.shape[1]):
            ratio, a = math.exp(float(lp[i, t] - old[i, t])), float(adv[i])
            loss = max(-a * ratio, -a * min(max(ratio, 1 - clip_low), 1 + clip_high))
            if dual is not None and a < 0:
                loss = min(loss, -a * dual)
            out[i, t] = loss
    return out


def _loop_clip_cov(lp, old, adv, mask, s: PolicyLossSettings, generator):
    cov = _loop_cov(lp, adv, mask)
    cells = _valid(mask)
    candidates = []
    for i, t in cells:
        ratio, a = math.exp(float(lp[i, t] - old[i, t])), float(adv[i])
        clipped = (a < 0 and ratio < 1 - s.clip_low) or (a > 0 and ratio > 1 + s.clip_high)
        if s.clip_cov_lb < cov[i, t] < s.clip_cov_ub and not clipped:
            candidates.append((i, t))
    chosen = set()
    if candidates:
        count = min(max(int(s.clip_cov_ratio * len(cells)), 1), len(candidates))
        order = torch.randperm(len(candidates), generator=generator)[:count].tolist()
        chosen = {candidates[j] for j in order}
    out = torch.zeros_like(lp)
    for i in range(lp.shape[0]):
        for t in range(lp.shape[1]):
            ratio, a = math.exp(float(lp[i, t] - old[i, t])), float(adv[i])
            loss = max(-a * ratio, -a * min(max(ratio, 1 - s.clip_low), 1 + s.clip_high))
            out[i, t] = 0.0 if (i, t) in chosen else loss
    return out, chosen


def _loop_kl_cov(lp, old, adv, mask, s: PolicyLossSettings):
    cov = _loop_cov(lp, adv, mask)
    count = min(max(int(s.kl_cov_ratio * len(cov)), 1), len(cov))
    chosen = set(sorted(cov, key=lambda cell: -cov[cell])[:count])
    out = torch.zeros_like(lp)
    for i in range(lp.shape[0]):
        for t in range(lp.shape[1]):
            ratio, a = math.exp(float(lp[i, t] - old[i, t])), float(adv[i])
            penalty = s.kl_cov_coef * abs(float(lp[i, t] - old[i, t])) if (i, t) in chosen else 0.0
            out[i, t] = -a * ratio + penalty
    return out, chosen


def _loop_dg_gradient(lp, adv, eta):
    """d loss / d lp = -sigmoid(A * (-lp) / eta) * A, per token."""
    out = torch.zeros_like(lp)
    for i in range(lp.shape[0]):
        for t in range(lp.shape[1]):
            a = float(adv[i])
            out[i, t] = -a / (1 + math.exp(-a * -float(lp[i, t]) / eta))
    return out


def _run(name, lp, old, adv, mask, s, generator=None):
    policy_loss = POLICY_LOSSES.get_or_raise(name)
    selection = policy_loss.select(_tokens(lp, old, adv, mask), s, generator)
    assert not bool((selection.selected & ~selection.candidates).any())
    selected = _unflat(selection.selected, mask)
    return policy_loss.loss(lp, old, adv, selected, s), selected


@SETTINGS
@given(seed=st.integers(0, 10_000), rows=st.integers(1, 6), width=st.integers(1, 9),
       dual=st.sampled_from([None, 3.0]))
def test_ppo_entry_is_the_clipped_surrogate(seed, rows, width, dual):
    lp, old, adv, mask = _batch(seed, rows, width)
    s = PolicyLossSettings(clip_low=0.2, clip_high=0.28, dual_clip=dual)
    terms, selected = _run("ppo", lp, old, adv, mask, s)
    torch.testing.assert_close(terms.loss, _loop_ppo(lp, old, adv, 0.2, 0.28, dual), rtol=0, atol=1e-6)
    assert not selected.any()


@SETTINGS
@given(seed=st.integers(0, 10_000), rows=st.integers(2, 8), width=st.integers(1, 12),
       ratio=st.sampled_from([2e-4, 0.05, 0.3]), lb=st.sampled_from([0.0, 0.2, 1.0]))
def test_clip_cov_matches_loop(seed, rows, width, ratio, lb):
    # Two or more rows: no covariance sits exactly on a window edge (one row: all 0).
    lp, old, adv, mask = _batch(seed, rows, width, spread=0.6)
    s = PolicyLossSettings(clip_low=0.2, clip_high=0.28, clip_cov_ratio=ratio, clip_cov_lb=lb,
                           clip_cov_ub=5.0)
    terms, selected = _run("clip_cov", lp, old, adv, mask, s, torch.Generator().manual_seed(seed))
    want, chosen = _loop_clip_cov(lp, old, adv, mask, s, torch.Generator().manual_seed(seed))
    assert {tuple(c) for c in selected.nonzero().tolist()} == chosen
    torch.testing.assert_close(terms.loss, want, rtol=0, atol=1e-6)
    assert not terms.dual_clipped.any()  # clip_cov applies no dual-clip


@SETTINGS
@given(seed=st.integers(0, 10_000), rows=st.integers(2, 8), width=st.integers(1, 12),
       ratio=st.sampled_from([2e-4, 0.1, 0.5]), beta=st.sampled_from([0.1, 1.0]))
def test_kl_cov_matches_loop(seed, rows, width, ratio, beta):
    # Two or more rows: distinct advantages, so no ties in the top-k by covariance.
    lp, old, adv, mask = _batch(seed, rows, width, spread=0.6)
    s = PolicyLossSettings(kl_cov_ratio=ratio, kl_cov_coef=beta)
    terms, selected = _run("kl_cov", lp, old, adv, mask, s)
    want, chosen = _loop_kl_cov(lp, old, adv, mask, s)
    assert {tuple(c) for c in selected.nonzero().tolist()} == chosen
    torch.testing.assert_close(terms.loss, want, rtol=0, atol=1e-6)


@SETTINGS
@given(seed=st.integers(0, 10_000), rows=st.integers(1, 6), width=st.integers(1, 9),
       eta=st.sampled_from([0.5, 1.0, 3.0]))
def test_dg_gradient_matches_loop(seed, rows, width, eta):
    lp, old, adv, mask = _batch(seed, rows, width)
    lp = lp.clone().requires_grad_(True)
    terms, _ = _run("dg", lp, old, adv, mask, PolicyLossSettings(dg_eta=eta))
    terms.loss.sum().backward()
    torch.testing.assert_close(lp.grad, _loop_dg_gradient(lp.detach(), adv, eta), rtol=0, atol=1e-6)


def test_dg_gate_favours_rare_successes_and_spares_rare_failures():
    lp = torch.tensor([[-0.01, -6.0], [-0.01, -6.0]])  # common, rare
    adv = torch.tensor([1.0, -1.0])
    from svs.trainer_bridge.policy_losses import delight_gate

    gate = delight_gate(lp, adv, 1.0)
    assert float(gate[0, 0]) == pytest.approx(0.5, abs=0.01) and float(gate[0, 1]) > 0.99
    assert float(gate[1, 1]) < 0.01


def test_kl_cov_penalty_has_no_gradient_at_ratio_one():
    lp, _, adv, mask = _batch(3, 4, 5)
    lp = lp.clone().requires_grad_(True)
    s = PolicyLossSettings(kl_cov_ratio=0.5, kl_cov_coef=1.0)
    terms, selected = _run("kl_cov", lp, lp.detach(), adv, mask, s)
    terms.loss.sum().backward()
    plain = -adv[:, None].expand_as(lp)  # d(-A ratio)/d lp at ratio 1
    assert selected.any()
    torch.testing.assert_close(lp.grad, plain)


def test_clip_cov_detached_tokens_get_no_gradient():
    lp, old, adv, mask = _batch(5, 6, 8, spread=0.1)
    lp = lp.clone().requires_grad_(True)
    s = PolicyLossSettings(clip_cov_ratio=0.2, clip_cov_lb=-10.0, clip_cov_ub=10.0)
    terms, selected = _run("clip_cov", lp, old, adv, mask, s, torch.Generator().manual_seed(0))
    (terms.loss * mask).sum().backward()
    assert selected.any() and bool((lp.grad[selected] == 0).all())
    assert int(selected.sum()) == int(0.2 * mask.sum())


def test_token_covariance_is_the_formula():
    lp, _, adv, mask = _batch(7, 5, 6)
    cov = token_covariance(_tokens(lp, lp, adv, mask))
    want = _loop_cov(lp, adv, mask)
    torch.testing.assert_close(cov, torch.tensor([want[c] for c in _valid(mask)], dtype=torch.float64))


def test_registry_lists_the_policy_losses():
    with pytest.raises(ValueError, match="choose one of clip_cov, dg, kl_cov, ppo"):
        POLICY_LOSSES.get_or_raise("grpo")
    with pytest.raises(ValueError, match="already registered"):
        POLICY_LOSSES.register("ppo")(None)
