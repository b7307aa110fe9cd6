"""Is the entropy ledger right? Two checks on a tiny model, numbers reported, nothing tuned.

1. `exact_vs_ledger`: around each of many single updates, the exact first-order entropy
   change of every trained state, -Cov_{a~pi}(log pi(a), dz(a)) over the whole
   vocabulary from the logits before (pi) and after (dz = z_after - z_before) the
   update, averaged over the states; the measured change H_after - H_before; and the
   ledger's sampled covariance term C of the same update. Reported: Pearson correlations
   of -C with the exact term and with the measured change, and the share of updates
   where the sign of -C (the ledger's predicted dH) matches the measured dH.
2. `toggled_runs`: tiny runs that each switch on one cause (several mini-batches per
   rollout batch; on top of that a tight clip-high; a fixed tiny prompt set that gets
   memorized; and a control with none), and what `svs doctor` names for each.

    python -m svs.trainer_bridge.ledger_validation [--updates 60] [--steps 40] [--out DIR]

The toy task is one-digit addition ("3+4=" -> "7") with a tiny Llama (vocabulary 300)
taught the format by a short supervised warm-up; the reward is exact match of the
answer (what the verifier gives on this task, without its process pool).
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from svs.core.records import Problem
from svs.trainer_bridge.grpo_config import GRPOConfig

PAIRS = [(a, b) for a in range(10) for b in range(10)]
BASE = {"solve_template": "{problem}", "prompts_per_step": 8, "group_size": 8,
        "max_new_tokens": 3, "lr": 1e-3, "micro_batch_size": 64, "progress": False,
        "tensorboard": False, "checkpoint_every": 10_000, "probe_every": 2, "resume": False,
        # no clipping in the base: a ratio-free run, so each toggle adds exactly one cause
        "clip_low": 1.0, "clip_high": 1000.0, "dual_clip": None}
TOGGLES = {
    "control": {},
    "mini_batches": {"mini_batches": 4},
    "clip_high": {"mini_batches": 4, "clip_high": 0.02, "dual_clip": 3.0},
    # two problems, both in every step, trained longer: the policy memorizes them
    "memorizing_set": {"prompts_file_count": 2, "prompts_per_step": 2, "steps": 150},
}
EXPECTED = {"control": "covariance", "mini_batches": "multi_update", "clip_high": "clip_high",
            "memorizing_set": "memorization"}


def exact_match_reward(golds: Sequence[str], completions: Sequence[str]) -> list[float]:
    return [1.0 if c.strip() == g else 0.0 for g, c in zip(golds, completions, strict=True)]


def build_toy(folder: Path, warmup_steps: int = 300, seed: int = 0) -> Path:
    from svs.pipeline.policy.tiny import build_tiny_model, train_tiny_model

    pairs = [(f"{a}+{b}=", str(a + b)) for a, b in PAIRS]
    build_tiny_model(folder, [p + c for p, c in pairs] * 3, vocab_size=300, hidden_size=64,
                     num_layers=2, max_position_embeddings=128, seed=seed)
    return train_tiny_model(folder, pairs, steps=warmup_steps, batch_size=16, lr=3e-3, seed=seed)


def write_problems(path: Path, count: int | None = None) -> Path:
    rows = [{"text": f"{a}+{b}=", "answer": str(a + b)} for a, b in PAIRS][:count]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def pearson(xs: Sequence[float], ys: Sequence[float]) -> float:
    n = len(xs)
    if n < 2:
        return math.nan
    mx, my = sum(xs) / n, sum(ys) / n
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True))
    sxx = sum((x - mx) ** 2 for x in xs)
    syy = sum((y - my) ** 2 for y in ys)
    return sxy / math.sqrt(sxx * syy) if sxx and syy else math.nan


def _state_logits(model: Any, batch: Any) -> torch.Tensor:
    from svs.trainer_bridge.update import completion_logits

    with torch.no_grad():
        return completion_logits(model, batch)[batch.mask.bool()].double()  # (S, V)


def exact_entropy_change(before: torch.Tensor, after: torch.Tensor) -> tuple[float, float]:
    """(mean over states of -Cov_{a~pi}(log pi, dz), mean measured H_after - H_before)."""
    logp = torch.log_softmax(before, -1)  # (S, V)
    p = logp.exp()
    dz = after - before
    centred_logp = logp - (p * logp).sum(-1, keepdim=True)
    centred_dz = dz - (p * dz).sum(-1, keepdim=True)
    predicted = -(p * centred_logp * centred_dz).sum(-1)  # (S,)
    logq = torch.log_softmax(after, -1)
    measured = -(logq.exp() * logq).sum(-1) + (p * logp).sum(-1)
    return float(predicted.mean()), float(measured.mean())


def exact_vs_ledger(model_dir: Path, problems: Path, updates: int = 60, seed: int = 0,
                    lr: float = 1e-3, optimizer_name: str = "adamw") -> dict[str, float]:
    """The check around `updates` single updates (AdamW as the learner, or plain SGD,
    whose step is the gradient itself: closer to the theory's policy-gradient step)."""
    from svs.trainer_bridge import losses
    from svs.trainer_bridge.backends import load_model, make_policy
    from svs.trainer_bridge.grpo import collect, sample_problems, step_seed
    from svs.trainer_bridge.prompt_source import load_problems_file
    from svs.trainer_bridge.update import pack, update

    config = GRPOConfig(model=str(model_dir), prompts_file=str(problems), seed=seed, lr=lr,
                        device="cpu", **{k: v for k, v in BASE.items() if k != "lr"})
    torch.manual_seed(seed)
    model, tokenizer = load_model(config)
    policy = make_policy(config, model, tokenizer)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    optimizer = (torch.optim.SGD(model.parameters(), lr=lr) if optimizer_name == "sgd"
                 else torch.optim.AdamW(model.parameters(), lr=lr))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0)
    pool: list[Problem] = load_problems_file(problems)
    ledger, exact, measured = [], [], []
    for step in range(1, updates + 1):
        batch_problems = sample_problems(pool, [1.0] * len(pool), config.prompts_per_step,
                                         step_seed(config, step))
        samples, _ = collect(policy, batch_problems, config, step, exact_match_reward, None)
        rewards = torch.tensor([s.reward for s in samples])
        groups = torch.arange(len(samples)) // config.group_size
        advantages = losses.group_advantages("grpo", rewards, groups, config.advantage_eps)
        keep = [i for i, flat in enumerate(losses.zero_variance_groups(rewards, groups).tolist())
                if not flat]
        if not keep:
            continue
        kept = [samples[i] for i in keep]
        batch = pack(kept, advantages[keep], pad_id, torch.device("cpu"))
        model.train()
        before = _state_logits(model, batch)
        rows: list[dict[str, float]] = []
        update(model, optimizer, scheduler, kept, advantages[keep], config, pad_id,
               ledger_rows=rows)
        after = _state_logits(model, batch)
        predicted, change = exact_entropy_change(before, after)
        ledger.append(-rows[0]["entropy/cov"])
        exact.append(predicted)
        measured.append(change)
    return {
        "updates": float(len(ledger)),
        "corr_ledger_exact": pearson(ledger, exact),
        "corr_ledger_measured": pearson(ledger, measured),
        "corr_exact_measured": pearson(exact, measured),
        "sign_share_ledger_measured": sum((a > 0) == (b > 0) for a, b in zip(ledger, measured, strict=True)) / max(len(ledger), 1),
        "sign_share_exact_measured": sum((a > 0) == (b > 0) for a, b in zip(exact, measured, strict=True)) / max(len(exact), 1),
        "sign_share_ledger_exact": sum((a > 0) == (b > 0) for a, b in zip(ledger, exact, strict=True)) / max(len(ledger), 1),
    }


def toggled_runs(root: Path, model_dir: Path, steps: int = 40, seed: int = 0,
                 toggles: Sequence[str] | None = None) -> dict[str, dict[str, Any]]:
    """Train one tiny run per toggle; the doctor's leading cause over its second half."""
    from svs.trainer_bridge.doctor import diagnose, read_run, report_text
    from svs.trainer_bridge.grpo import train

    out = {}
    for name in toggles or list(TOGGLES):
        settings = {**BASE, **TOGGLES[name]}
        count = settings.pop("prompts_file_count", None)
        run_steps = settings.pop("steps", steps)
        problems = write_problems(root / f"problems-{name}.jsonl", count)
        config = GRPOConfig(model=str(model_dir), output_dir=str(root / name),
                            prompts_file=str(problems), steps=run_steps, seed=seed,
                            device="cpu", **settings)
        train(config, reward_fn=exact_match_reward)
        run = read_run(root / name)
        windows = diagnose(run, window=max(run_steps // 2, 1))  # verdict: the second half
        out[name] = {"leading": windows[-1].leading, "causes": windows[-1].causes,
                     "report": report_text(run, windows)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--updates", type=int, default=60, help="Updates of the exact check.")
    parser.add_argument("--steps", type=int, default=60, help="Steps of each toggled run.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch threads.")
    parser.add_argument("--out", type=Path, default=None, help="Keep the runs here.")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        root = args.out or Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        model = build_toy(root / "model", seed=args.seed)
        problems = write_problems(root / "problems.jsonl")
        for name, lr in (("adamw", 1e-3), ("sgd", 0.05)):
            numbers = exact_vs_ledger(model, problems, args.updates, args.seed, lr, name)
            print(f"exact vs ledger ({name}, lr {lr}):",
                  json.dumps({k: round(v, 3) for k, v in numbers.items()}))
        for name, result in toggled_runs(root, model, args.steps, args.seed).items():
            causes = {k: round(v, 3) for k, v in result["causes"].items() if math.isfinite(v)}
            print(f"toggle {name}: doctor names {result['leading']} (expected "
                  f"{EXPECTED[name]}); evidence {causes}")


if __name__ == "__main__":
    main()
