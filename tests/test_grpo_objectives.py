"""Every objective trains the tiny toy model end to end from `svs train`; the step-wide
token selection, precision option and the objectives' config checks."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from grpo_toy import build_addition_model, one_torch_thread, write_problems  # noqa: F401
from safetensors.torch import load_file

from svs.trainer_bridge.checkpoint import latest_checkpoint
from svs.trainer_bridge.grpo_config import GRPOConfig

OBJECTIVES = {
    "rloo": {"advantage": "rloo"},
    "passk": {"advantage": "passk", "passk_k": 2},
    "clip_cov": {"policy_loss": "clip_cov", "clip_cov_ratio": 0.05, "clip_cov_lb": -50.0,
                 "clip_cov_ub": 50.0},
    "kl_cov": {"policy_loss": "kl_cov", "mini_batches": 2, "kl_cov_ratio": 0.05},
    "dg": {"policy_loss": "dg"},
    "ppo_epochs": {"ppo_epochs": 2},
    "bf16": {"policy_precision": "bf16"},
    "fp16": {"policy_precision": "fp16"},
}


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    root = tmp_path_factory.mktemp("objectives")
    model = build_addition_model(root / "model", warmup_steps=20)
    return root, model, write_problems(root / "problems.jsonl", 20)


def _weights(folder):
    return {k: v for f in folder.glob("*.safetensors") for k, v in load_file(f).items()}


@pytest.mark.parametrize("name", sorted(OBJECTIVES))
def test_objective_trains_from_svs_train(toy, name):
    from typer.testing import CliRunner

    from svs.flows.cli import app

    root, model, problems = toy
    settings = {"model": str(model), "prompts_file": str(problems), "solve_template": "{problem}",
                "steps": 2, "prompts_per_step": 4, "group_size": 4, "max_new_tokens": 3,
                "lr": 1e-2, "progress": False, "tensorboard": False, "drop_zero_variance": False,
                "micro_batch_size": 8, "probe_every": 1, **OBJECTIVES[name]}
    config = root / f"{name}.yaml"
    config.write_text("".join(f"{k}: {json.dumps(v)}\n" for k, v in settings.items()))
    out = root / f"run-{name}"
    result = CliRunner().invoke(app, ["train", "--config", str(config), "-o", str(out)])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    steps = GRPOConfig.from_yaml(config).optimizer_steps_per_batch
    assert [r["train/optimizer_steps"] for r in rows] == [float(steps)] * 2
    assert all(r["entropy/cov"] is not None and r["entropy/probe"] > 0 for r in rows)
    ledger = [json.loads(line) for line in (out / "ledger.jsonl").read_text().splitlines()]
    assert len(ledger) == 2 * steps
    start, end = _weights(model), _weights(latest_checkpoint(out))
    assert sum(float((end[k] - start[k]).abs().sum()) for k in start) > 0
    assert all(torch.isfinite(v).all() for v in end.values())
    if name in ("clip_cov", "kl_cov"):
        assert all(row["entropy/selection/selected"] >= 1 for row in ledger)
        assert all(row["entropy/selection/candidates"] >= row["entropy/selection/selected"]
                   for row in ledger)
        assert all(row[f"entropy/removed/{name}/token_share"] > 0 for row in ledger)
    if name in ("bf16", "fp16"):  # new log-probs in reduced precision vs fp32 old ones
        assert all(row["entropy/ratio_dev"] > 0 for row in ledger)


def _samples(vocab, count=12, seed=0):
    from svs.trainer_bridge.streams import Sample

    generator = torch.Generator().manual_seed(seed)

    def ids(length):
        return tuple(torch.randint(3, vocab, (length,), generator=generator).tolist())

    return [Sample("original", f"g{i // 4}", ids(4), ids(3 + i % 4), float(i % 3 == 0), False)
            for i in range(count)]


def test_selection_runs_over_the_whole_optimizer_step(toy):
    """With micro-batches of 1 sequence the quota is still max(floor(r * M), 1) over all M
    tokens of the step, and the same tokens are chosen as with one micro-batch."""
    from transformers import AutoModelForCausalLM

    from svs.trainer_bridge import losses
    from svs.trainer_bridge.update import pack, select_tokens

    _, model_dir, _ = toy
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    samples = _samples(model.config.vocab_size)
    advantages = losses.group_advantages("grpo", torch.tensor([s.reward for s in samples]),
                                         torch.arange(len(samples)) // 4)
    config = GRPOConfig(model="unused", prompts_file="unused.jsonl", policy_loss="kl_cov",
                        kl_cov_ratio=0.1, mini_batches=2)
    whole = [pack(samples, advantages, 0, torch.device("cpu"))]
    split = [pack([s], advantages[i:i + 1], 0, torch.device("cpu")) for i, s in enumerate(samples)]
    chosen_whole, counts = select_tokens(model, whole, [None], config, None)
    chosen_split, counts_split = select_tokens(model, split, [None] * len(split), config, None)
    tokens = sum(len(s.completion_ids) for s in samples)
    assert counts["entropy/selection/selected"] == counts_split["entropy/selection/selected"] == int(0.1 * tokens)
    row_whole = [chosen_whole[0][i][whole[0].mask[i].bool()].tolist() for i in range(len(samples))]
    row_split = [c[0][b.mask[0].bool()].tolist() for c, b in zip(chosen_split, split, strict=True)]
    assert row_whole == row_split


def test_ppo_epochs_revisit_the_batch_against_the_first_old_logprobs(toy):
    from transformers import AutoModelForCausalLM

    from svs.trainer_bridge import losses
    from svs.trainer_bridge.update import update

    _, model_dir, _ = toy
    base = AutoModelForCausalLM.from_pretrained(model_dir)
    samples = _samples(base.config.vocab_size)
    advantages = losses.group_advantages("grpo", torch.tensor([s.reward for s in samples]),
                                         torch.arange(len(samples)) // 4)
    results = {}
    for epochs in (1, 3):
        model = copy.deepcopy(base).train()
        config = GRPOConfig(model="unused", prompts_file="unused.jsonl", ppo_epochs=epochs,
                            lr=0.05, clip_low=0.05, clip_high=0.05, dual_clip=None,
                            max_grad_norm=0)
        optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0)
        rows: list = []
        metrics, _ = update(model, optimizer, scheduler, samples, advantages, config, 0,
                            ledger_rows=rows)
        results[epochs] = (metrics, rows)
    metrics, rows = results[3]
    assert metrics["train/optimizer_steps"] == 3 and len(rows) == 3
    assert rows[0]["entropy/ratio_dev"] == 0 and rows[2]["entropy/ratio_dev"] > 0
    assert results[1][1][0]["entropy/cov"] == pytest.approx(rows[0]["entropy/cov"], abs=1e-12)


def test_objective_config_errors_say_what_to_fix():
    base = {"model": "m", "prompts_file": "p.jsonl"}
    with pytest.raises(ValueError, match=r"passk_k must be in \[1, group_size=4\]"):
        GRPOConfig(**base, advantage="passk", passk_k=5, group_size=4)
    with pytest.raises(ValueError, match="synthesis_samples=2"):
        GRPOConfig(**base, advantage="passk", passk_k=3, group_size=8, mode="svs",
                   synthesis_samples=2)
    with pytest.raises(ValueError, match="set mini_batches or ppo_epochs > 1"):
        GRPOConfig(**base, policy_loss="kl_cov")
    GRPOConfig(**base, policy_loss="kl_cov", ppo_epochs=2)
    with pytest.raises(ValueError, match="choose one of clip_cov, dg, kl_cov, ppo"):
        GRPOConfig(**base, policy_loss="cispo")
    with pytest.raises(ValueError, match="set one of them"):
        GRPOConfig(**base, policy_precision="bf16", bf16_autocast=True)
    with pytest.raises(ValueError, match="policy_precision must be one of fp32, bf16, fp16"):
        GRPOConfig(**base, policy_precision="fp8")
    with pytest.raises(ValueError, match="clip_cov_ratio is a share of tokens"):
        GRPOConfig(**base, clip_cov_ratio=0.0)
    with pytest.raises(ValueError, match="clip_cov_lb"):
        GRPOConfig(**base, clip_cov_lb=5.0, clip_cov_ub=1.0)
    with pytest.raises(ValueError, match="seed_band must be"):
        GRPOConfig(**base, seed_band=(0.6, 0.2))
    assert "pass@k" in GRPOConfig.help()["passk_k"] or "k of" in GRPOConfig.help()["passk_k"]
    assert GRPOConfig(**base).seed_band.contains(0.5)
