"""The entropy ledger: the covariance term and its splits against a loop, the per-sequence
dump fields that recompute it, and the ledger of a real tiny run."""

from __future__ import annotations

import json

import pytest
import torch
from grpo_toy import build_addition_model, one_torch_thread, write_problems  # noqa: F401
from hypothesis import given, settings
from hypothesis import strategies as st

from svs.trainer_bridge.ledger import (
    QUADRANTS,
    covariance_ledger,
    group_shares,
    mean_rows,
    sequence_covariance,
)

STREAMS = ("original", "synthesis", "synthetic")


def _tokens(seed, count):
    generator = torch.Generator().manual_seed(seed)
    lp = -torch.rand(count, generator=generator, dtype=torch.float64) * 4
    adv = torch.randn(count, generator=generator, dtype=torch.float64)
    stream = torch.randint(0, 3, (count,), generator=generator)
    removed = {"clip_high": torch.rand(count, generator=generator) < 0.2,
               "clip_low": torch.rand(count, generator=generator) < 0.1}
    ratio = 1 + (torch.rand(count, generator=generator, dtype=torch.float64) - 0.5)
    return lp, adv, stream, removed, ratio


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), count=st.integers(1, 60))
def test_ledger_matches_loop_and_splits_sum_to_c(seed, count):
    lp, adv, stream, removed, ratio = _tokens(seed, count)
    got = covariance_ledger(lp, adv, stream, STREAMS, removed, ratio)
    values, advs = lp.tolist(), adv.tolist()
    mean_lp, mean_adv = sum(values) / count, sum(advs) / count
    terms = [(v - mean_lp) * (a - mean_adv) for v, a in zip(values, advs, strict=True)]
    assert got["entropy/cov"] == pytest.approx(sum(terms) / count, abs=1e-12)
    quadrant = {"pos_likely": 0.0, "pos_unlikely": 0.0, "neg_likely": 0.0, "neg_unlikely": 0.0}
    for v, a, term in zip(values, advs, terms, strict=True):
        sign = "pos" if a - mean_adv > 0 else "neg"
        side = "likely" if v - mean_lp > 0 else "unlikely"
        quadrant[f"{sign}_{side}"] += term / count
    for name in QUADRANTS:
        assert got[f"entropy/cov/{name}"] == pytest.approx(quadrant[name], abs=1e-12)
    assert sum(got[f"entropy/cov/{q}"] for q in QUADRANTS) == pytest.approx(got["entropy/cov"], abs=1e-12)
    present = [s for i, s in enumerate(STREAMS) if bool((stream == i).any())]
    assert sum(got[f"entropy/cov/{s}"] for s in present) == pytest.approx(got["entropy/cov"], abs=1e-12)
    for s in present:
        assert sum(got[f"entropy/cov/{s}/{q}"] for q in QUADRANTS) == pytest.approx(
            got[f"entropy/cov/{s}"], abs=1e-12)
    for name, mask in removed.items():
        want = sum(t for t, m in zip(terms, mask.tolist(), strict=True) if m) / count
        assert got[f"entropy/removed/{name}/cov"] == pytest.approx(want, abs=1e-12)
        assert got[f"entropy/removed/{name}/token_share"] == pytest.approx(float(mask.float().mean()))
    assert got["entropy/ratio_dev"] == pytest.approx(float((ratio - 1).abs().mean()))


def test_ledger_sign_reads_like_the_theory():
    """Raising likely tokens (A > 0 where lp is high) gives C > 0: entropy falls."""
    lp = torch.tensor([-0.1, -0.2, -3.0, -4.0], dtype=torch.float64)
    adv = torch.tensor([1.0, 1.0, -1.0, -1.0], dtype=torch.float64)
    got = covariance_ledger(lp, adv, torch.zeros(4, dtype=torch.long), ("original",), {})
    assert got["entropy/cov"] > 0 and got["entropy/cov/pos_likely"] > 0
    assert got["entropy/cov/neg_unlikely"] > 0 and got["entropy/cov/pos_unlikely"] == 0
    flipped = covariance_ledger(lp, -adv, torch.zeros(4, dtype=torch.long), ("original",), {})
    assert flipped["entropy/cov"] < 0


def test_sequence_fields_recompute_c():
    generator = torch.Generator().manual_seed(0)
    lengths = [3, 1, 5, 2]
    advantages = torch.randn(4, generator=generator, dtype=torch.float64)
    per_token = [torch.randn(n, generator=generator, dtype=torch.float64) for n in lengths]
    flat_lp = torch.cat(per_token)
    flat_adv = torch.cat([advantages[i].repeat(n) for i, n in enumerate(lengths)])
    want = covariance_ledger(flat_lp, flat_adv, torch.zeros(len(flat_lp), dtype=torch.long),
                             ("original",), {})["entropy/cov"]
    got = sequence_covariance(advantages.tolist(), [float(t.sum()) for t in per_token], lengths)
    assert got == pytest.approx(want, abs=1e-12)


def test_group_shares_and_step_means():
    rewards = [1, 1, 0, 0, 1, 0, 1, 1]  # a solved, b unsolved, c mixed | d solved
    groups = ["a", "a", "b", "b", "c", "c", "d", "d"]
    shares = group_shares(rewards, groups, ["original"] * 6 + ["synthetic"] * 2)
    assert shares["entropy/solved_share/original"] == pytest.approx(1 / 3)
    assert shares["entropy/unsolved_share/original"] == pytest.approx(1 / 3)
    assert shares["entropy/zero_variance_share/original"] == pytest.approx(2 / 3)
    assert shares["entropy/zero_variance_share/synthetic"] == 1.0
    assert shares["entropy/zero_variance_share"] == pytest.approx(3 / 4)
    means = mean_rows([{"entropy/cov": 1.0, "x": 2.0}, {"entropy/cov": 3.0}])
    assert means == {"entropy/cov": 2.0, "x": 2.0, "entropy/cov_sum": 4.0}


def test_a_run_logs_the_ledger_and_its_dump_recomputes_c(tmp_path):
    from svs.trainer_bridge.grpo import rollouts_path, train
    from svs.trainer_bridge.grpo_config import GRPOConfig

    model = build_addition_model(tmp_path / "model", warmup_steps=20)
    problems = write_problems(tmp_path / "problems.jsonl", 12)
    config = GRPOConfig(model=str(model), output_dir=str(tmp_path / "run"),
                        prompts_file=str(problems), steps=3, prompts_per_step=4, group_size=4,
                        max_new_tokens=3, lr=1e-3, solve_template="{problem}", progress=False,
                        tensorboard=True, log_rollouts=True, drop_zero_variance=False,
                        probe_every=1)
    result = train(config)
    for row in result.history:
        lines = [json.loads(line) for line in rollouts_path(config.output_dir, row["step"])
                 .read_text().splitlines()]
        assert all({"advantage", "logprob_sum", "tokens", "trained"} <= set(line) for line in lines)
        trained = [line for line in lines if line["trained"]]
        recomputed = sequence_covariance([line["advantage"] for line in trained],
                                         [line["logprob_sum"] for line in trained],
                                         [line["tokens"] for line in trained])
        # the sampler's log-probs vs the learner's forward: same weights, same maths
        assert recomputed == pytest.approx(row["entropy/cov"], abs=1e-4)
        quadrants = sum(row[f"entropy/cov/{q}"] for q in QUADRANTS)
        assert quadrants == pytest.approx(row["entropy/cov"], abs=1e-9)
        assert row["entropy/probe"] > 0
    deltas = [r["entropy/probe_delta"] for r in result.history]
    probes = [r["entropy/probe"] for r in result.history]
    assert deltas[1:] == pytest.approx([b - a for a, b in zip(probes, probes[1:], strict=False)])
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tmp_path / "run" / "tb"))
    events.Reload()
    assert {"entropy/cov", "entropy/cov/pos_likely", "entropy/probe"} <= set(events.Tags()["scalars"])
