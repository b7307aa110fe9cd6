"""Online SvS streams: seed band, synthesis reward rule, problem checks, group ids."""

from __future__ import annotations

import math
from collections import defaultdict

import pytest
from grpo_toy import SYNTHESIS_TEMPLATE, build_addition_model, one_torch_thread  # noqa: F401

from svs.core.records import Problem
from svs.pipeline.policy import SamplingParams
from svs.trainer_bridge.streams import (
    SYNTHESIS,
    SYNTHETIC,
    SvSSettings,
    select_seeds,
    synthesis_streams,
    verifier_reward,
)


def test_seed_band_takes_correct_rollouts_of_in_band_problems():
    problems = [Problem(f"{i}+0=", str(i)) for i in range(4)]
    rewards = [[1, 0, 0, 0, 0, 0, 0, 0],  # 1/8: in [0.125, 0.5]
               [1, 1, 1, 1, 0, 0, 0, 0],  # 4/8: in
               [1, 1, 1, 1, 1, 0, 0, 0],  # 5/8: out (too easy to need variants)
               [0] * 8]  # 0/8: out (no correct solution to start from)
    texts = [[f"p{p}s{s}" for s in range(8)] for p in range(4)]
    seeds = select_seeds(problems, rewards, texts, (0.125, 0.5), None)
    assert [(p.answer, t) for p, t in seeds] == [("0", "p0s0"), ("1", "p1s0"), ("1", "p1s1"),
                                                  ("1", "p1s2"), ("1", "p1s3")]
    assert len(select_seeds(problems, rewards, texts, (0.125, 0.5), 2)) == 2


@pytest.fixture(scope="module")
def toy_policy(tmp_path_factory):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from svs.pipeline.policy.hf import HFPolicy

    folder = build_addition_model(tmp_path_factory.mktemp("streams") / "model",
                                  warmup_steps=300, synthesis=True)
    return HFPolicy(AutoModelForCausalLM.from_pretrained(folder),
                    AutoTokenizer.from_pretrained(folder))


def _settings(check=None, answer_check=None):
    return SvSSettings(
        template=SYNTHESIS_TEMPLATE, seed_band=(0.125, 0.5), synthesis_band=(0.125, 0.625),
        max_seeds=None, solve_template="{problem}", check=check, answer_check=answer_check,
        synthesis_params=SamplingParams(n=4, max_new_tokens=10, seed=1),
        solve_params=SamplingParams(n=8, max_new_tokens=4, seed=2))


def test_synthesis_reward_follows_the_band_rule(toy_policy):
    seeds = [(Problem("Add three and four.", "7"), "7"), (Problem("Add nine and nine.", "18"), "18")]
    streams, rejected = synthesis_streams(toy_policy, seeds, _settings(), verifier_reward)
    synthesis, synthetic = streams[SYNTHESIS], streams[SYNTHETIC]
    assert len(synthesis) == 8 and {s.group for s in synthesis} == {"synthesis:0", "synthesis:1"}
    by_group = defaultdict(list)
    for sample in synthetic:
        by_group[sample.group].append(sample.reward)
    assert all(len(r) == 8 for r in by_group.values())
    assert len(by_group) + sum(rejected.values()) == 8  # every output solved or rejected
    in_band = sum(1 for r in by_group.values() if 1 <= sum(r) <= 5)
    assert sum(s.reward for s in synthesis) == in_band
    assert 0 < len(by_group)


def test_problem_checks_reject_before_solving(toy_policy):
    from svs.verifiers.problems import check_problem

    seeds = [(Problem("Add three and four.", "7"), "7")]
    streams, rejected = synthesis_streams(
        toy_policy, seeds, _settings(check=lambda text, answer: check_problem(text, answer)),
        verifier_reward)
    assert streams[SYNTHETIC] == []  # "3+4=" is symbol soup to the checks (few letters)
    assert sum(rejected.values()) == 4 and set(rejected) <= {"garbage", "no_problem_extracted"}
    assert [s.reward for s in streams[SYNTHESIS]] == [0.0] * 4


def test_answer_check_sees_the_original_and_rejects_before_solving(toy_policy):
    from svs.core.records import Verdict

    seen = []

    def answer_check(text, answer, original):
        seen.append((answer, original))
        return Verdict(False, "sympy_mismatch", "computed to another answer")

    seeds = [(Problem("Add three and four.", "7"), "7")]
    streams, rejected = synthesis_streams(toy_policy, seeds, _settings(answer_check=answer_check),
                                          verifier_reward)
    assert streams[SYNTHETIC] == [] and [s.reward for s in streams[SYNTHESIS]] == [0.0] * 4
    assert rejected["sympy_mismatch"] == len(seen) and len(seen) + rejected["no_problem_extracted"] == 4
    assert set(seen) <= {("7", "Add three and four.")}


@pytest.mark.parametrize("bf16", [False, True])
def test_later_mini_batches_are_clipped_against_the_sampling_policy(toy_policy, bf16):
    """Old log-probs are taken before the first update, so once the first mini-batch has
    moved the policy, the second one sees ratios != 1 and clipping engages."""
    import copy

    import torch

    from svs.trainer_bridge.grpo import update
    from svs.trainer_bridge.grpo_config import GRPOConfig
    from svs.trainer_bridge.losses import group_advantages
    from svs.trainer_bridge.streams import Sample

    model = copy.deepcopy(toy_policy.model).train()
    generator = torch.Generator().manual_seed(0)
    vocab = model.config.vocab_size

    def ids(length):
        return tuple(torch.randint(3, vocab, (length,), generator=generator).tolist())

    samples = [Sample("original", f"g{i // 4}", ids(5), ids(6), float(i % 2), False)
               for i in range(16)]
    rewards = torch.tensor([s.reward for s in samples])
    advantages = group_advantages("grpo", rewards, torch.arange(16) // 4)
    config = GRPOConfig(model="unused", prompts_file="unused.jsonl", mini_batches=2, lr=0.05,
                        clip_low=0.01, clip_high=0.01, dual_clip=None, max_grad_norm=0,
                        bf16_autocast=bf16)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0)
    metrics, totals = update(model, optimizer, scheduler, samples, advantages, config,
                             pad_id=0)
    assert metrics["train/optimizer_steps"] == 2
    assert math.isfinite(metrics["train/loss"]) and metrics["train/grad_norm"] > 0
    clipped = totals.sums["original"]["clip_low"] + totals.sums["original"]["clip_high"]
    assert clipped > 0
