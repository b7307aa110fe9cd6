"""Seconds per GRPO step: svs's bundled learner against TRL's GRPOTrainer, in one run.

Both train the same tiny Llama-format model (built here from a config and a locally
trained tokenizer, hidden 128, 4 layers, ~1M parameters) on the same one-digit addition
prompts, with the same batch (8 prompts x 8 completions), completion limit, learning
rate, clip range, no KL, one optimizer step per batch, the same verifier-backed 0/1
reward (svs's sandboxed math-verify pool), generation with transformers `generate` on
the CPU, and the same number of torch threads. A step is everything: sampling,
rewards, advantages, forward/backward, optimizer step.

The first `--warmup` steps of each are not timed. Runs go ours, TRL, ours (twice ours
so a change in machine load shows up as a spread), medians are compared, and the ratio
TRL / ours is printed (target >= 1: ours not slower) as the last line. Ours is the
default objective as `svs train` runs it: GRPO advantages, ppo loss, the entropy ledger
every optimizer step and the probe entropy every 5 steps.

Before that line, each other objective's median s/step and its overhead over the
default (same batch, one run each): the default without ledger and probe (the ledger's
own cost), rloo, passk, clip_cov, kl_cov (needs 2 mini-batches: 2 optimizer steps and
an old-log-prob pass), dg, ppo_epochs 2, and bf16 / fp16 policy precision (an extra
fp32 old-log-prob pass; CPU autocast).

    python benchmarks/train_bench.py [--steps 20] [--warmup 3] [--threads 1] [--tokens 8]
                                     [--sft-steps 100] [--no-objectives]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

PROMPTS_PER_STEP, GROUP = 8, 8
OBJECTIVES = {
    "no ledger, no probe": {"entropy_ledger": False, "probe_every": 0},
    "advantage rloo": {"advantage": "rloo"},
    "advantage passk (k=4)": {"advantage": "passk", "passk_k": 4},
    "policy_loss clip_cov": {"policy_loss": "clip_cov"},
    "policy_loss kl_cov (mini_batches 2)": {"policy_loss": "kl_cov", "mini_batches": 2},
    "policy_loss dg": {"policy_loss": "dg"},
    "ppo_epochs 2": {"ppo_epochs": 2},
    "policy_precision bf16": {"policy_precision": "bf16"},
    "policy_precision fp16": {"policy_precision": "fp16"},
}


def build_model(folder: Path, seed: int, sft_steps: int) -> Path:
    from svs.pipeline.policy.tiny import build_tiny_model, train_tiny_model

    pairs = [(f"{a}+{b}=", str(a + b)) for a in range(10) for b in range(10)]
    build_tiny_model(folder, [p + c for p, c in pairs] * 3, vocab_size=300, hidden_size=128,
                     num_layers=4, num_heads=4, max_position_embeddings=128, seed=seed)
    if not sft_steps:
        return folder  # random weights: completions run to the token limit
    return train_tiny_model(folder, pairs, steps=sft_steps, batch_size=16, lr=3e-3, seed=seed)


def run_ours(model: Path, problems: Path, out: Path, args,
             objective: dict | None = None) -> list[float]:
    from svs.trainer_bridge.grpo import train
    from svs.trainer_bridge.grpo_config import GRPOConfig

    config = GRPOConfig(
        model=str(model), output_dir=str(out), prompts_file=str(problems),
        solve_template="{problem}", steps=args.warmup + args.steps,
        prompts_per_step=PROMPTS_PER_STEP, group_size=GROUP, max_new_tokens=args.tokens,
        lr=1e-4, clip_low=0.2, clip_high=0.2, dual_clip=None, loss_aggregation="token-mean",
        micro_batch_size=PROMPTS_PER_STEP * GROUP, drop_zero_variance=False, device="cpu",
        checkpoint_every=10_000, resume=False, progress=False, tensorboard=False,
        **(objective or {}))
    result = train(config)
    return [row["train/step_seconds"] for row in result.history[args.warmup:]]


def run_trl(model: Path, problems: Path, out: Path, args) -> list[float]:
    from datasets import Dataset
    from transformers import AutoTokenizer, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from svs.trainer_bridge.rewards import math_reward

    rows = [json.loads(line) for line in problems.read_text().splitlines()]
    dataset = Dataset.from_dict({"prompt": [r["text"] for r in rows],
                                 "solution": [r["answer"] for r in rows]})
    stamps: list[float] = []

    class Stamp(TrainerCallback):
        def on_step_end(self, *_, **__):
            stamps.append(time.perf_counter())

    trl_args = GRPOConfig(
        output_dir=str(out), per_device_train_batch_size=PROMPTS_PER_STEP * GROUP,
        num_generations=GROUP, max_completion_length=args.tokens, learning_rate=1e-4,
        epsilon=0.2, beta=0.0, loss_type="bnpo", max_steps=args.warmup + args.steps,
        temperature=1.0, bf16=False, use_cpu=True, gradient_checkpointing=False,
        report_to="none", save_strategy="no", logging_steps=10_000, seed=0,
        dataloader_num_workers=0, disable_tqdm=True)
    trainer = GRPOTrainer(model=str(model), reward_funcs=math_reward, args=trl_args,
                          train_dataset=dataset, processing_class=AutoTokenizer.from_pretrained(model),
                          callbacks=[Stamp()])
    started = time.perf_counter()
    trainer.train()
    times = [b - a for a, b in zip([started, *stamps], stamps, strict=False)]
    return times[args.warmup:]


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20, help="Timed steps per run.")
    parser.add_argument("--warmup", type=int, default=3, help="Untimed steps first.")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (both runs).")
    parser.add_argument("--tokens", type=int, default=8, help="Completion length limit.")
    parser.add_argument("--sft-steps", type=int, default=100, help="Supervised warm-up steps "
                        "(the model then answers in ~2 tokens); 0 keeps random weights, so "
                        "every completion runs to --tokens.")
    parser.add_argument("--no-objectives", action="store_true", help="Skip the per-objective "
                        "overhead runs.")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        model = build_model(root / "model", seed=0, sft_steps=args.sft_steps)
        problems = root / "problems.jsonl"
        problems.write_text("".join(json.dumps({"text": f"{a}+{b}=", "answer": str(a + b)}) + "\n"
                                    for a in range(10) for b in range(10)))
        ours_a = run_ours(model, problems, root / "ours-a", args)
        theirs = run_trl(model, problems, root / "trl", args)
        ours_b = run_ours(model, problems, root / "ours-b", args)
        objectives = {} if args.no_objectives else {
            name: statistics.median(run_ours(model, problems, root / f"obj-{i}", args, settings))
            for i, (name, settings) in enumerate(OBJECTIVES.items())}
    ours = statistics.median(ours_a + ours_b)
    trl = statistics.median(theirs)
    print(f"batch {PROMPTS_PER_STEP} prompts x {GROUP} completions, <= {args.tokens} tokens, "
          f"{args.sft_steps} warm-up SFT steps, {args.threads} torch thread(s), "
          f"{args.steps} timed steps each")
    print(f"svs learner : median {ours:.4f} s/step (run 1 {statistics.median(ours_a):.4f}, "
          f"run 2 {statistics.median(ours_b):.4f})")
    print(f"TRL GRPO    : median {trl:.4f} s/step")
    for name, seconds in objectives.items():
        print(f"  {name:<38}: median {seconds:.4f} s/step ({100 * (seconds / ours - 1):+.0f}% "
              f"vs the default)")
    print(f"ratio TRL / svs = {trl / ours:.2f}  (target >= 1: svs not slower)")


if __name__ == "__main__":
    main()
