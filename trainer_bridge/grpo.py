"""The bundled GRPO learner, read top to bottom.

One step: sample problems from the current prompt-set version -> roll out through the
policy protocol -> rewards from the verifier -> group advantages (`advantage`: grpo,
dr_grpo, rloo, passk) -> `ppo_epochs` x `mini_batches` AdamW updates with the
`policy_loss` (ppo, clip_cov, kl_cov, dg; `update.py`) -> push the new weights to vLLM
when it serves the rollouts -> metrics and the entropy ledger (`ledger.py`: the
covariance term every optimizer step, the probe set's exact entropy every
`probe_every` steps), held-out eval, checkpoint.

In `svs` mode the rollouts are online SvS's three streams (see `streams.py`), trained
on together in one update, each stream's metrics logged under its own name.

Simplified on purpose, compared with verl: one process and one device; the rollout
policy and the learner share the model (transformers) or vLLM gets the weights after
each update (no separate rollout workers); no sequence packing, right-padded batches;
no dynamic batch sizes; entropy is measured on the tokens that are trained on (after
zero-variance groups are dropped), identically in every mode. Everything random is
seeded from (seed, step), so a run stopped and resumed from a checkpoint equals the
uninterrupted run.

Shapes: N_all samples of a step (all streams); `update.py` names the tensor shapes.
"""

from __future__ import annotations

import copy
import random
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
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
from svs.trainer_bridge.ledger import group_shares, mean_rows
from svs.trainer_bridge.probe import probe_entropy, probe_samples
from svs.trainer_bridge.prompt_source import (
    PromptSource,
    PromptVersion,
    heldout_from_config,
    source_from_config,
)
from svs.trainer_bridge.rollout_log import rollouts_path, write_rollouts
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
from svs.trainer_bridge.train_log import MetricsLog, Progress, mean_nll, sample_metrics
from svs.trainer_bridge.update import MicroBatch, micro_batch_loss, stream_token_metrics, update

__all__ = ["MicroBatch", "TrainResult", "evaluate", "micro_batch_loss", "push_weights",
           "rollouts_path", "sample_problems", "train", "update"]


LEDGER_FILE = "ledger.jsonl"  # one row per optimizer step: the entropy ledger


@dataclass
class TrainResult:
    steps_done: int
    prompt_version: str
    history: list[dict[str, Any]] = field(default_factory=list)


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
    ledger_log = MetricsLog(config.output_dir, tensorboard=False, start_step=start,
                            filename=LEDGER_FILE) if config.entropy_ledger else None
    progress = Progress(config.progress, config.steps, start)
    svs = svs_settings(config) if config.mode == "svs" else None
    result = TrainResult(steps_done=start, prompt_version=version)
    prompts: PromptVersion | None = None
    probe = []
    if config.probe_every:
        probe = probe_samples(probe_problems(config, heldout, source), config.solve_template,
                              policy.encode, tokenizer)
    last_probe = state.extra.get("probe_entropy") if checkpoint is not None else None
    if probe and last_probe is None:
        last_probe = probe_entropy(model, probe, pad_id, bf16=config.bf16_autocast)
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

            rewards = torch.tensor([s.reward for s in samples])  # (N_all,)
            group_ids = torch.tensor(_group_index([s.group for s in samples]))  # (N_all,)
            advantages = losses.group_advantages(config.advantage, rewards, group_ids,
                                                 config.advantage_eps, config.passk_k)  # (N_all,)
            flat = losses.zero_variance_groups(rewards, group_ids)  # (N_all,) bool
            zero_groups: dict[str, set[str]] = defaultdict(set)
            for sample, is_flat in zip(samples, flat.tolist(), strict=True):
                if is_flat:
                    zero_groups[sample.stream].add(sample.group)
            keep = [i for i, f in enumerate(flat.tolist()) if not (config.drop_zero_variance and f)]
            if config.log_rollouts:
                kept = set(keep)
                write_rollouts(config.output_dir, step, batch_problems, samples,
                               advantages.tolist(), [i in kept for i in range(len(samples))])
            metrics.update(sample_metrics(samples, zero_groups))
            ledger_rows: list[dict[str, float]] | None = [] if ledger_log else None
            if keep:
                generator = torch.Generator().manual_seed(step_seed(config, step, 5))
                update_metrics, totals = update(
                    model, optimizer, scheduler, [samples[i] for i in keep], advantages[keep],
                    config, pad_id, ref_model, generator=generator, ledger_rows=ledger_rows)
                metrics.update(update_metrics)
                metrics.update(stream_token_metrics(totals))
                push_weights(policy, model)
            metrics["train/trained_samples"] = float(len(keep))
            if ledger_log is not None:
                metrics.update(group_shares([s.reward for s in samples],
                                            [s.group for s in samples],
                                            [s.stream for s in samples]))
                metrics.update(mean_rows(ledger_rows))
                for index, row in enumerate(ledger_rows):
                    ledger_log.write(step, {"optimizer_step": index, **row})
            if probe and step % config.probe_every == 0:
                entropy = probe_entropy(model, probe, pad_id, bf16=config.bf16_autocast)
                metrics["entropy/probe"] = entropy
                metrics["entropy/probe_delta"] = entropy - last_probe
                last_probe = entropy
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
                extra = {"config": config.to_dict(), "probe_entropy": last_probe}
                save_checkpoint(config.output_dir, model=model, tokenizer=tokenizer,
                                optimizer=optimizer, scheduler=scheduler,
                                state=TrainingState(step, version, extra),
                                keep=config.keep_checkpoints)
            if step == stop_after:
                break
    finally:
        progress.close()
        log.close()
        if ledger_log is not None:
            ledger_log.close()
    return result


def probe_problems(config: GRPOConfig, heldout: Sequence[Problem],
                   source: PromptSource) -> list[Problem]:
    """The fixed probe set: the first `probe_problems` of probe_file, else of the held-out
    set, else of the prompt set's first version (sorted by id: the same for every arm)."""
    if config.probe_file:
        from svs.trainer_bridge.prompt_source import load_problems_file

        return load_problems_file(config.probe_file)[:config.probe_problems]
    if heldout:
        return list(heldout)[:config.probe_problems]
    return sorted(source.current().problems, key=lambda p: p.id)[:config.probe_problems]


def _group_index(groups: Sequence[str]) -> list[int]:
    index: dict[str, int] = {}
    return [index.setdefault(g, len(index)) for g in groups]

