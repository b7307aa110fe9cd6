"""The self-play flow: rounds of train -> diagnose -> refresh -> train, on one prompt set.

Each round trains the bundled GRPO learner (`trainer_bridge.grpo.train`) for
`steps_per_round` more steps on the prompt set's current version, then runs the refresh
flow with the round's checkpoint as the policy: it diagnoses the rollouts the learner
logged in the round (`log_rollouts: true`; otherwise it generates rollouts of the set's
problems with the checkpoint), synthesizes and verifies variants with the same policy
and publishes the next version, which the next round trains on.

Resumable: `selfplay.json` in the learner's output folder records every finished round
(its step, checkpoint and published version). A re-run skips finished rounds; in the
first unfinished one the learner continues from its newest checkpoint (a segment
already trained is not trained again) and the refresh, identified by its inputs, either
publishes or finds what a crashed run already published.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task

from svs.flows.refresh_flow import NO_RESULT, refresh_flow

STATE_NAME = "selfplay.json"


def train_config(config: str | Mapping[str, Any]):
    from svs.trainer_bridge.grpo_config import GRPOConfig

    loaded = GRPOConfig.from_yaml(config) if isinstance(config, str) else GRPOConfig.from_dict(config)
    if not loaded.prompt_set or not loaded.prompt_store:
        raise ValueError("self-play refreshes a stored prompt set: set prompt_store and "
                         "prompt_set in the training config (not prompts_file)")
    return loaded


def load_rounds(output_dir: Path | str) -> list[dict[str, Any]]:
    path = Path(output_dir) / STATE_NAME
    if not path.exists():
        return []
    try:
        return json.loads(path.read_text(encoding="utf-8"))["rounds"]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ValueError(f"{path} is damaged ({exc}); delete it to re-check every round "
                         f"(finished refreshes are recognized and not published twice)") from exc


def save_rounds(output_dir: Path | str, rounds: list[dict[str, Any]]) -> None:
    path = Path(output_dir) / STATE_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{STATE_NAME}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"rounds": rounds}, indent=1), encoding="utf-8")
    tmp.replace(path)


def segment_checkpoint(output_dir: str, step: int) -> Path:
    """The checkpoint the learner wrote at the end of a segment (step `step`)."""
    from svs.trainer_bridge.checkpoint import PREFIX, STATE, checkpoint_dir

    folder = checkpoint_dir(output_dir) / f"{PREFIX}{step:06d}"
    if not (folder / STATE).is_file():
        raise FileNotFoundError(f"no finished checkpoint {folder}; the training segment that "
                                f"ends at step {step} did not complete")
    return folder


def round_rollouts(config: Any, until_step: int, steps_per_round: int) -> list[str]:
    """The rollouts the learner logged during the round (`log_rollouts: true`): the
    refresh diagnoses what the policy actually did in training, and generates nothing.
    Without them (empty list) the refresh samples fresh rollouts with the checkpoint."""
    if not config.log_rollouts:
        return []
    from svs.trainer_bridge.grpo import rollouts_path

    paths = [rollouts_path(config.output_dir, step)
             for step in range(until_step - steps_per_round + 1, until_step + 1)]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"the learner logged no rollouts for {missing[0]} (and "
                                f"{len(missing) - 1} more steps) of this round")
    return [str(p) for p in paths]


@task(name="train-segment", **NO_RESULT)
def train_segment(config: Any, until_step: int) -> dict[str, Any]:
    from svs.trainer_bridge.grpo import train

    result = train(replace(config, steps=until_step, resume=True))
    last = result.history[-1] if result.history else {}
    return {"steps_done": result.steps_done, "prompt_version": result.prompt_version,
            **{k: v for k, v in last.items() if k.startswith(("train/", "eval/"))
               and isinstance(v, int | float)}}


@flow(name="svs-selfplay", log_prints=True)
def selfplay_flow(train: str | dict[str, Any], rounds: int, steps_per_round: int,
                  refresh: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """`train`: the learner's config (YAML file or mapping; needs prompt_store and
    prompt_set); `refresh`: refresh-flow parameters other than store, name, model and
    rollouts (e.g. config, exports, runner). Returns every finished round."""
    from prefect.artifacts import create_table_artifact

    from svs.flows.artifacts import artifact_key

    if rounds < 1 or steps_per_round < 1:
        raise ValueError(f"rounds and steps_per_round must be >= 1, got {rounds} and "
                         f"{steps_per_round}")
    reserved = {"store", "name", "model", "rollouts", "backend"} & set(refresh or {})
    if reserved:
        raise ValueError(f"self-play sets {sorted(reserved)} of the refresh itself; drop them "
                         f"from `refresh`")
    logger = get_run_logger()
    config = train_config(train)
    done = load_rounds(config.output_dir)
    for number in range(len(done) + 1, rounds + 1):
        target = number * steps_per_round
        segment = train_segment(config, target)
        checkpoint = segment_checkpoint(config.output_dir, target)
        logger.info(f"round {number}: trained to step {segment['steps_done']} on "
                    f"{segment['prompt_version']}; refreshing with {checkpoint.name}")
        outcome = refresh_flow(store=config.prompt_store, name=config.prompt_set,
                               model=str(checkpoint), backend=config.backend,
                               rollouts=round_rollouts(config, target, steps_per_round),
                               **(refresh or {}))
        done.append({"round": number, "step": segment["steps_done"],
                     "trained_on": segment["prompt_version"], "checkpoint": str(checkpoint),
                     "published": f"{config.prompt_set}@v{outcome.summary.version}",
                     "outcome": outcome.summary.outcome, "labels": dict(outcome.summary.labels),
                     "seeds": outcome.summary.seeds, "candidates": outcome.summary.candidates,
                     "accepted": outcome.summary.accepted, "added": outcome.summary.added,
                     "downweighted": outcome.summary.downweighted,
                     "retired": outcome.summary.retired,
                     "generated_tokens": outcome.summary.generated_tokens,
                     "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds")})
        save_rounds(config.output_dir, done)
    create_table_artifact(
        table=[{k: v for k, v in r.items() if k != "labels"} for r in done],
        key=artifact_key("svs-selfplay", config.prompt_set), description="self-play rounds")
    return done
