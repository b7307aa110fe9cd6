"""The bundled GRPO learner, read top to bottom.

One step: sample problems from the current prompt-set version -> roll out through the
policy protocol -> rewards from the verifier -> group advantages -> `mini_batches`
AdamW updates (gradient accumulation over micro-batches, gradient clipping) -> push the
new weights to vLLM when it serves the rollouts -> metrics, held-out eval, checkpoint.

In `svs` mode the rollouts are online SvS's three streams (see `streams.py`), trained
on together in one update, each stream's metrics logged under its own name.

Simplified on purpose, compared with verl: one process and one device; the rollout
policy and the learner share the model (transformers) or vLLM gets the weights after
each update (no separate rollout workers); no sequence packing, right-padded batches;
no dynamic batch sizes; entropy is measured on the tokens that are trained on (after
zero-variance groups are dropped), identically in every mode. Everything random is
seeded from (seed, step), so a run stopped and resumed from a checkpoint equals the
uninterrupted run.

Shapes: N sequences in a micro-batch, L = longest prompt + completion, T = L - start - 1
scored positions, V vocabulary.
"""

from __future__ import annotations

import copy
import json
import random
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from svs.core.records import Problem
from svs.pipeline.policy.base import Policy, SamplingParams
from svs.trainer_bridge import losses
from svs.trainer_bridge.backends import load_model, make_policy, push_weights
from svs.trainer_bridge.checkpoint import (
    TrainingState,
    latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from svs.trainer_bridge.grpo_config import GRPOConfig
from svs.trainer_bridge.prompt_source import (
    PromptSource,
    PromptVersion,
    heldout_from_config,
    source_from_config,
)
from svs.trainer_bridge.streams import (
    ORIGINAL,
    RewardFn,
    Sample,
    SvSSettings,
    select_seeds,
    solve_stream,
    synthesis_streams,
    verifier_reward,
)
from svs.trainer_bridge.train_log import (
    MetricsLog,
    Progress,
    StreamTotals,
    mean_nll,
    sample_metrics,
)


@dataclass
class TrainResult:
    steps_done: int
    prompt_version: str
    history: list[dict[str, Any]] = field(default_factory=list)


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


def completion_logits(model: Any, batch: MicroBatch, bf16: bool = False) -> torch.Tensor:
    """Logits that predict each token after position `start`: (N, T, V).

    `bf16` runs the forward under bfloat16 autocast (weights stay float32)."""
    keep = batch.input_ids.shape[1] - batch.start
    with torch.autocast(batch.input_ids.device.type, dtype=torch.bfloat16, enabled=bf16):
        out = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                    logits_to_keep=keep)
    return out.logits[:, :-1]  # (N, T, V): position start + t predicts token start + t + 1


def targets(batch: MicroBatch) -> torch.Tensor:
    return batch.input_ids[:, batch.start + 1:]  # (N, T)


# -- the loss on one micro-batch (also what the TRL parity test checks) --------------------

def micro_batch_loss(model: Any, batch: MicroBatch, config: GRPOConfig, *, units: Any,
                     old_logprobs: torch.Tensor | None = None,
                     ref_logprobs: torch.Tensor | None = None) -> tuple[torch.Tensor, dict]:
    """Scalar loss (already divided by the whole batch's `units`) and per-token stats."""
    logits = completion_logits(model, batch, config.bf16_autocast)  # (N, T, V)
    logprobs = losses.token_logprobs(logits, targets(batch))  # (N, T)
    entropy = losses.entropy_from_logits(logits if config.entropy_coef else logits.detach())
    old = logprobs.detach() if old_logprobs is None else old_logprobs
    surrogate = losses.clipped_surrogate(logprobs, old, batch.advantages, config.clip_low,
                                         config.clip_high, config.dual_clip)
    per_token = surrogate.loss  # (N, T)
    kl = None
    if ref_logprobs is not None:
        kl = losses.kl_k3(logprobs, ref_logprobs)  # (N, T)
        per_token = per_token + config.kl_coef * kl
    loss = losses.aggregate(config.loss_aggregation, per_token, batch.mask, units)
    if config.entropy_coef:
        loss = loss - config.entropy_coef * losses.aggregate(config.loss_aggregation, entropy,
                                                             batch.mask, units)
    stats = {"entropy": entropy.detach(), "clip_low": surrogate.clipped_low.float(),
             "clip_high": surrogate.clipped_high.float(),
             "dual_clip": surrogate.dual_clipped.float()}
    if kl is not None:
        stats["kl"] = kl.detach()
    return loss, stats


@torch.no_grad()
def sequence_logprobs(model: Any, batches: Sequence[MicroBatch], bf16: bool) -> list[torch.Tensor]:
    return [losses.token_logprobs(completion_logits(model, b, bf16), targets(b)) for b in batches]


# -- one update ------------------------------------------------------------------------------

def update(model: Any, optimizer: Any, scheduler: Any, samples: Sequence[Sample],
           advantages: torch.Tensor, config: GRPOConfig, pad_id: int,
           ref_model: Any = None) -> tuple[dict[str, float], StreamTotals]:
    """`mini_batches` optimizer steps over `samples`; returns batch metrics and stream sums."""
    device = next(model.parameters()).device
    totals = StreamTotals()
    metrics: dict[str, float] = defaultdict(float)
    order = list(range(len(samples)))
    minis = [order[i::config.mini_batches] for i in range(config.mini_batches)]
    plans = []
    for mini in (m for m in minis if m):
        chunks = [mini[i:i + config.micro_batch_size]
                  for i in range(0, len(mini), config.micro_batch_size)]
        batches = [pack([samples[i] for i in chunk], advantages[chunk], pad_id, device)
                   for chunk in chunks]
        # Old log-probs come from the sampling policy, i.e. before the first update. With
        # one mini-batch that IS the current policy: ratio 1, no extra forward pass.
        none = [None] * len(batches)
        olds = sequence_logprobs(model, batches, config.bf16_autocast) \
            if config.mini_batches > 1 else none
        refs = sequence_logprobs(ref_model, batches, config.bf16_autocast) \
            if ref_model is not None else none
        plans.append((batches, olds, refs))
    for batches, olds, refs in plans:
        units = sum(losses.AGGREGATIONS[config.loss_aggregation].units(b.mask) for b in batches)
        optimizer.zero_grad(set_to_none=True)
        for batch, old, ref in zip(batches, olds, refs, strict=True):
            loss, stats = micro_batch_loss(model, batch, config, units=units,
                                           old_logprobs=old, ref_logprobs=ref)
            loss.backward()
            metrics["train/loss"] += float(loss.detach()) / len(plans)
            for row, stream in enumerate(batch.streams):
                row_mask = batch.mask[row]
                totals.add(stream, tokens=float(row_mask.sum()),
                           **{k: float((v[row] * row_mask).sum()) for k, v in stats.items()})
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(),
                                              config.max_grad_norm or float("inf"))
        metrics["train/grad_norm"] += float(norm) / len(plans)
        optimizer.step()
        scheduler.step()
        metrics["train/optimizer_steps"] += 1
    metrics["train/lr"] = scheduler.get_last_lr()[0]
    return dict(metrics), totals


def stream_token_metrics(totals: StreamTotals) -> dict[str, float]:
    metrics = {}
    for stream in totals.sums:
        for key in ("entropy", "clip_low", "clip_high", "dual_clip", "kl"):
            if key in totals.sums[stream]:
                metrics[f"train/{key}/{stream}"] = totals.ratio(stream, key, "tokens")
    return metrics


# -- rollouts --------------------------------------------------------------------------------

def step_seed(config: GRPOConfig, step: int, salt: int = 0) -> int:
    return (config.seed * 1_000_003 + step * 101 + salt) % (2**31)


def sample_problems(problems: Sequence[Problem], weights: Sequence[float], count: int,
                    seed: int) -> list[Problem]:
    """`count` problems drawn in proportion to their weights, without replacement while
    enough have a positive weight (Efraimidis-Spirakis keys u ** (1 / w))."""
    rng = random.Random(seed)
    keyed = [(rng.random() ** (1.0 / w), i) for i, w in enumerate(weights) if w > 0]
    if not keyed:
        raise ValueError("every problem of the prompt set has weight 0")
    if count <= len(keyed):
        return [problems[i] for _, i in sorted(keyed, reverse=True)[:count]]
    return rng.choices(list(problems), weights=list(weights), k=count)


def collect(policy: Policy, problems: Sequence[Problem], config: GRPOConfig, step: int,
            reward_fn: RewardFn, svs: SvSSettings | None) -> tuple[list[Sample], dict[str, float]]:
    params = SamplingParams(n=config.group_size, temperature=config.temperature,
                            top_p=config.top_p, max_new_tokens=config.max_new_tokens,
                            seed=step_seed(config, step, 1))
    original, rewards = solve_stream(policy, problems, stream=ORIGINAL,
                                     template=config.solve_template, params=params,
                                     reward_fn=reward_fn)
    if svs is None:
        return original, {}
    texts = [[s.text for s in original[i * config.group_size:(i + 1) * config.group_size]]
             for i in range(len(problems))]
    seeds = select_seeds(problems, rewards, texts, svs.seed_band, svs.max_seeds)
    settings = replace(svs, synthesis_params=replace(svs.synthesis_params,
                                                     seed=step_seed(config, step, 2)),
                       solve_params=replace(params, seed=step_seed(config, step, 3)))
    streams, rejected = synthesis_streams(policy, seeds, settings, reward_fn)
    outputs = max(1, len(seeds) * svs.synthesis_params.n)
    metrics = {"train/seeds": float(len(seeds))}
    metrics.update({f"train/synthesis_rejected/{reason}": count / outputs
                    for reason, count in rejected.items()})
    return original + streams["synthesis"] + streams["synthetic"], metrics


def svs_settings(config: GRPOConfig) -> SvSSettings:
    from svs.synthesizers.svs import SvSConfig

    template = SvSConfig(template_path=config.synthesis_template).template()
    check = None
    if config.synthesis_checks:
        from svs.verifiers.problems import ProblemCheckConfig, check_problem

        checks = ProblemCheckConfig()
        check = lambda text, answer: check_problem(text, answer, checks)  # noqa: E731
    answer_check = None
    if config.synthesis_sympy_check:
        from svs.verifiers.sympy_answers import sympy_verdict as answer_check
    return SvSSettings(
        check=check, answer_check=answer_check,
        template=template, seed_band=config.seed_band, synthesis_band=config.synthesis_band,
        max_seeds=config.max_seeds_per_step, solve_template=config.solve_template,
        synthesis_params=SamplingParams(n=config.synthesis_samples, temperature=1.0, top_p=1.0,
                                        max_new_tokens=config.synthesis_max_new_tokens),
        solve_params=SamplingParams(n=config.group_size, temperature=config.temperature,
                                    top_p=config.top_p, max_new_tokens=config.max_new_tokens))


def evaluate(policy: Policy, heldout: Sequence[Problem], config: GRPOConfig, step: int,
             reward_fn: RewardFn) -> dict[str, float]:
    """Held-out pass@1 (mean accuracy), unbiased pass@k for k = 2, 4, ... eval_samples, and
    `eval/nll`: the mean negative log-likelihood of the sampled held-out tokens."""
    from svs.pipeline.diversity import pass_at_k, pass_at_k_ks

    n = config.eval_samples
    params = SamplingParams(n=n, temperature=config.eval_temperature, top_p=config.top_p,
                            max_new_tokens=config.max_new_tokens, seed=step_seed(config, step, 4))
    samples, rewards = solve_stream(policy, heldout, stream="eval",
                                    template=config.solve_template, params=params,
                                    reward_fn=reward_fn)
    correct = [sum(1 for r in problem if r >= 1.0) for problem in rewards]
    metrics = {f"eval/pass@{k}": sum(pass_at_k(n, c, k) for c in correct) / len(correct)
               for k in pass_at_k_ks(n)}
    nll = mean_nll(samples)
    if nll is not None:  # the policy's entropy estimate on the SAME prompts for every run
        metrics["eval/nll"] = nll
    return metrics


ROLLOUTS_FOLDER = "rollouts"


def rollouts_path(output_dir: str, step: int) -> Path:
    return Path(output_dir) / ROLLOUTS_FOLDER / f"step_{step:06d}.jsonl"


def write_rollouts(output_dir: str, step: int, problems: Sequence[Problem],
                   samples: Sequence[Sample]) -> Path:
    """The step's original-stream rollouts as native rollout rows (pipeline.rollouts):
    problem id, problem text, reference answer, completion, step, 0/1 reward as
    `correct`, token log-probs. Written whole then renamed, so a reader (or a resumed
    run rewriting the step) never sees half a file."""
    by_group = {f"{ORIGINAL}:{p.id}": p for p in problems}
    path = rollouts_path(output_dir, step)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = []
    for sample in samples:
        problem = by_group.get(sample.group) if sample.stream == ORIGINAL else None
        if problem is None:
            continue
        lines.append(json.dumps({
            "problem_id": problem.id, "prompt": problem.text, "answer": problem.answer,
            "completion": sample.text, "step": step, "reward": sample.reward,
            "correct": sample.reward >= 1.0, "token_logprobs": list(sample.logprobs)}))
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    tmp.replace(path)
    return path


# -- the loop ----------------------------------------------------------------------------------

def train(config: GRPOConfig, *, source: PromptSource | None = None,
          heldout: Sequence[Problem] | None = None, model: Any = None, tokenizer: Any = None,
          policy: Policy | None = None, reward_fn: RewardFn = verifier_reward,
          stop_after: int | None = None) -> TrainResult:
    """Train per `config`; `stop_after` ends the run early after that step (as if killed
    right after its checkpoint), for tests of resume."""
    torch.manual_seed(config.seed)
    random.seed(config.seed)
    if model is None:
        model, tokenizer = load_model(config)
    elif tokenizer is None:
        raise TypeError("train(model=...) needs the model's tokenizer too (tokenizer=...)")
    source = source or source_from_config(config)
    heldout = list(heldout) if heldout is not None else heldout_from_config(config)
    policy = policy or make_policy(config, model, tokenizer)
    if not callable(getattr(policy, "encode", None)):
        raise TypeError(f"the learner needs the policy's prompt token ids: give "
                        f"{type(policy).__name__} an encode(prompt) -> list[int] method, as "
                        f"HFPolicy and VLLMPolicy have")
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    ref_model = None
    if config.kl_coef > 0:
        ref_model = copy.deepcopy(model).eval().requires_grad_(False)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, betas=config.adam_betas,
                                  weight_decay=config.weight_decay)
    warmup = config.warmup_steps
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / warmup) if warmup else 1.0)

    start, version = 0, ""
    checkpoint = latest_checkpoint(config.output_dir) if config.resume else None
    if checkpoint is not None:
        state = load_checkpoint(checkpoint, model=model, optimizer=optimizer, scheduler=scheduler)
        start, version = state.step, state.prompt_version
        push_weights(policy, model)
    log = MetricsLog(config.output_dir, tensorboard=config.tensorboard, start_step=start)
    progress = Progress(config.progress, config.steps, start)
    svs = svs_settings(config) if config.mode == "svs" else None
    result = TrainResult(steps_done=start, prompt_version=version)
    prompts: PromptVersion | None = None
    model.train()
    try:
        for step in range(start + 1, config.steps + 1):
            began = time.perf_counter()
            metrics: dict[str, Any] = {"train/prompt_refreshed": 0.0}
            # Periodic refresh: look for a newer prompt-set version at the boundary.
            if prompts is None or (config.refresh_every and (step - 1) % config.refresh_every == 0):
                prompts = source.current()
                metrics["train/prompt_refreshed"] = float(bool(version) and prompts.label != version)
                version = prompts.label
            batch_problems = sample_problems(prompts.problems, prompts.weight_list(),
                                             config.prompts_per_step, step_seed(config, step))
            samples, collect_metrics = collect(policy, batch_problems, config, step, reward_fn, svs)
            metrics.update(collect_metrics)
            if config.log_rollouts:
                write_rollouts(config.output_dir, step, batch_problems, samples)

            rewards = torch.tensor([s.reward for s in samples])  # (N_all,)
            group_ids = torch.tensor(_group_index([s.group for s in samples]))  # (N_all,)
            advantages = losses.group_advantages(config.advantage, rewards, group_ids,
                                                 config.advantage_eps)
            flat = losses.zero_variance_groups(rewards, group_ids)
            zero_groups: dict[str, set[str]] = defaultdict(set)
            for sample, is_flat in zip(samples, flat.tolist(), strict=True):
                if is_flat:
                    zero_groups[sample.stream].add(sample.group)
            keep = [i for i, f in enumerate(flat.tolist()) if not (config.drop_zero_variance and f)]
            metrics.update(sample_metrics(samples, zero_groups))
            if keep:
                update_metrics, totals = update(
                    model, optimizer, scheduler, [samples[i] for i in keep], advantages[keep],
                    config, pad_id, ref_model)
                metrics.update(update_metrics)
                metrics.update(stream_token_metrics(totals))
                push_weights(policy, model)
            metrics["train/trained_samples"] = float(len(keep))
            if heldout and config.eval_every and step % config.eval_every == 0:
                metrics.update(evaluate(policy, heldout, config, step, reward_fn))
            metrics["train/step_seconds"] = time.perf_counter() - began
            metrics["train/prompt_version"] = version
            if step % config.log_every == 0 or step == config.steps:
                log.write(step, metrics)
            result.history.append({"step": step, **metrics})
            result.steps_done, result.prompt_version = step, version
            progress.update(metrics)
            last = step == config.steps or step == stop_after
            if step % config.checkpoint_every == 0 or last:
                save_checkpoint(config.output_dir, model=model, tokenizer=tokenizer,
                                optimizer=optimizer, scheduler=scheduler,
                                state=TrainingState(step, version, {"config": config.to_dict()}),
                                keep=config.keep_checkpoints)
            if step == stop_after:
                break
    finally:
        progress.close()
        log.close()
    return result


def _group_index(groups: Sequence[str]) -> list[int]:
    index: dict[str, int] = {}
    return [index.setdefault(g, len(index)) for g in groups]

