"""Prefect flows over the refresh stages: `refresh_flow` and `diagnose_flow`.

The flow body reads like the diagram:

    load the set -> load rollouts -> diagnose -> synthesize -> verify -> plan -> publish -> export

Every task is one stage function of `svs.pipeline.refresh_stages`, so the CLI, a
schedule and a watch run all do the same work. What Prefect adds:

- retries at the I/O edges only (reading the prompt set and the rollout files,
  publishing, exporting); a failed publish leaves the previous version current (the
  store publishes by rename) and a retry with the same run key never publishes twice;
- input-based caching of the one pure, expensive stage: diagnosis, per shard of problems;
- diagnosis on the task runner picked by `runner` (threads, Dask or Ray; see
  `flows/runners.py`);
- artifacts in the run's page of the UI: a markdown summary and tables (labels, rejects
  by reason, the new version and its parent).

The body is `refresh_steps`; `Steps(prefect=False)` runs it with the plain functions under
the tasks (`svs refresh --no-prefect`), so there is one composition with or without Prefect.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import INPUTS, NO_CACHE, TASK_SOURCE

from svs.flows import events as _events  # noqa: F401 - registers svs.prompt_set.published
from svs.flows import store_commands as shown
from svs.flows.artifacts import publish_diagnosis_artifacts, publish_refresh_artifacts
from svs.flows.runners import RunnerConfig, make_task_runner, merge_diagnoses, shard_groups
from svs.pipeline import refresh_stages as stages
from svs.pipeline.policy.loading import load_configured_policy
from svs.trainer_bridge.formats import export_version

NO_RESULT = {"cache_policy": NO_CACHE, "persist_result": False}
# OSErrors that a second try cannot change.
PERMANENT_OS_ERRORS = (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError,
                       FileExistsError)


@dataclass(frozen=True)
class RefreshOutcome:
    """What `refresh_flow` returns: the stage summary and the files it exported."""

    summary: stages.RefreshSummary
    exported: Mapping[str, str] = field(default_factory=dict)
    report: str | None = None


class WeakPolicyError(ValueError):
    """The policy gave no seeds or no acceptable variants: the refresh publishes nothing."""


# ---------------------------------------------------------------------------- tasks
# Each task is the pipeline's stage function itself (`svs.pipeline.refresh_stages`);
# `Steps(prefect=False)` calls the same functions through `.fn`.
load_set = task(stages.load_base, name="load-prompt-set", **NO_RESULT)
load_policy = task(load_configured_policy, name="load-policy", **NO_RESULT)
load_rollouts = task(stages.rollout_groups, name="load-rollouts", **NO_RESULT)
seeds_from = task(stages.seeds_from, name="seeds", **NO_RESULT)
synthesize = task(stages.synthesize, name="synthesize", **NO_RESULT)
verify = task(stages.verify, name="verify", **NO_RESULT)
plan = task(stages.plan, name="plan-next-version", **NO_RESULT)
publish = task(stages.publish, name="publish", **NO_RESULT)
export = task(export_version, name="export", **NO_RESULT)
load_rollout_files = task(stages.rollout_files, name="load-rollout-files", **NO_RESULT)
write_report = task(stages.write_report, name="write-report", **NO_RESULT)


@task(name="diagnose-shard", cache_policy=INPUTS + TASK_SOURCE, persist_result=True,
      cache_expiration=timedelta(days=7))
def diagnose_shard(groups: list[Any], config: Any, code_version: str = ""):
    """`code_version` is part of the cache key only: a changed diagnosis module must not
    be answered from a cache filled by the old code."""
    return stages.diagnose(groups, config)


@functools.cache
def diagnosis_code_version() -> str:
    """sha256 over the source of the modules a diagnosis depends on."""
    from svs.pipeline import diagnosis_types, diversity, memorization
    from svs.verifiers import textsim

    digest = hashlib.sha256()
    for module in (memorization, diagnosis_types, diversity, textsim, stages):
        digest.update(Path(module.__file__).read_bytes())
    return digest.hexdigest()


def retry_on_io_error(task: Any, task_run: Any, state: Any) -> bool:
    """Retry an I/O edge only for an error a retry can mend (a transient OSError); a
    missing file, a bad set name or a config error fails at once with its one line."""
    error = state.data if isinstance(state.data, BaseException) else None
    if error is None:
        try:
            state.result()
        except BaseException as raised:  # noqa: BLE001 - we only classify it
            error = raised
    return isinstance(error, OSError) and not isinstance(error, PERMANENT_OS_ERRORS)


# ---------------------------------------------------------------------------- helpers
def diagnose_on_runner(groups: Sequence[Any], config: Any, runner: RunnerConfig):
    """Diagnose shards of whole problems as tasks on `runner`; merged, the result equals
    one `pipeline.memorization.diagnose` call over all groups."""
    shards = shard_groups(groups, runner.shard_size)
    if runner.kind == "thread" and len(shards) == 1:
        return merge_diagnoses([diagnose_shard(shards[0], config, diagnosis_code_version())],
                               groups)
    with make_task_runner(runner) as task_runner:
        futures = [task_runner.submit(diagnose_shard, {"groups": shard, "config": config,
                                                       "code_version": diagnosis_code_version()})
                   for shard in shards]
        parts = [future.result() for future in futures]
    return merge_diagnoses(parts, groups)


def io_task(stage, retries: int, delay_s: float):
    """`stage` with the flow's retry settings: used only for the I/O edges, and only for
    errors a retry can mend (`retry_on_io_error`)."""
    return stage.with_options(retries=retries, retry_delay_seconds=delay_s,
                              retry_condition_fn=retry_on_io_error)


def export_targets(exports: Sequence[str], name: str, version: int) -> dict[str, str]:
    """`["verl=out/{name}-v{version}.parquet", ...]` -> {format: path}, placeholders filled."""
    from svs.trainer_bridge.exporters import check_destination

    targets = {}
    for item in exports:
        fmt, sep, path = item.partition("=")
        if not sep or not path:
            raise ValueError(f"export {item!r}: write it as FORMAT=PATH, e.g. "
                             f"verl=exports/{{name}}-v{{version}}.parquet")
        if fmt in targets:
            raise ValueError(f"export format {fmt!r} is given twice")
        targets[fmt] = str(check_destination(fmt, path.format(name=name, version=version)))
    return targets


def run_config(config: str | Mapping[str, Any] | None) -> stages.RefreshRunConfig:
    if config is None or isinstance(config, str):
        return stages.RefreshRunConfig.from_file(config)
    return stages.RefreshRunConfig.from_dict(config)


# ---------------------------------------------------------------------------- the body
class Steps:
    """How the refresh body calls its stages: as Prefect tasks inside a flow run, or, with
    `prefect=False` (`svs refresh --no-prefect`), as the plain functions under the same
    tasks, in the same order, with no API server, retries, caching or artifacts."""

    def __init__(self, prefect: bool, io_retries: int = 2, io_retry_delay_s: float = 5.0,
                  say: Callable[[str], None] | None = None) -> None:
        self.prefect, self.io_retries, self.io_retry_delay_s = prefect, io_retries, io_retry_delay_s
        self._say = say

    def __call__(self, stage: Any, *args: Any) -> Any:
        return stage(*args) if self.prefect else stage.fn(*args)

    def io(self, stage: Any, *args: Any) -> Any:
        """An I/O edge: retried in a flow run."""
        if not self.prefect:
            return stage.fn(*args)
        return io_task(stage, self.io_retries, self.io_retry_delay_s)(*args)

    def diagnose(self, groups: Sequence[Any], config: Any, runner: RunnerConfig) -> Any:
        if self.prefect:
            return diagnose_on_runner(groups, config, runner)
        shards = shard_groups(groups, runner.shard_size)
        return merge_diagnoses([diagnose_shard.fn(shard, config) for shard in shards], groups)

    def say(self, line: str) -> None:
        if self._say is not None:
            self._say(line)
        if self.prefect:
            get_run_logger().info(line)


def refresh_steps(steps: Steps, store: str, name: str, rollouts: Sequence[str] = (),
                  prompts: str | None = None, model: str | None = None,
                  backend: str | None = None, config: str | Mapping[str, Any] | None = None,
                  text_col: str | None = None, answer_col: str | None = None,
                  exports: Sequence[str] = (), report: str | None = None,
                  runner: Mapping[str, Any] | None = None,
                  policy: Mapping[str, Any] | None = None) -> RefreshOutcome:
    """The one composition of the refresh stages (the flow and `--no-prefect` both run it).

    `model`, `backend` and `policy` (PolicyConfig fields) override the config's `policy:`
    section where given."""
    from svs.pipeline.importers import ColumnMap
    from svs.pipeline.store import PromptStore

    settings, runner_config = run_config(config), RunnerConfig.from_dict(dict(runner or {}))
    settings = replace(settings, policy=settings.policy.with_overrides(
        model=model, backend=backend, **dict(policy or {})))
    model = settings.policy.model
    rollout_paths = [Path(p) for p in rollouts]
    export_targets(exports, name, 1)  # a bad FORMAT=PATH fails before any work
    prompt_store = PromptStore(store)
    key = stages.run_key(name, rollout_paths, model, settings)
    diagnosis = None
    with prompt_store.lock(name, purpose="refresh"):
        steps.say("[1/8] prompt set")
        base, how = steps.io(load_set, prompt_store, name, Path(prompts) if prompts else None,
                             ColumnMap(text=text_col, answer=answer_col))
        done = prompt_store.resume(name, key)
        if done is not None:
            steps.say(f"{name}@v{done.version}: this run's inputs were already refreshed")
            summary = stages.summarize(prompt_store.load(name, done.parent), done)
        else:
            steps.say(f"      {base.label} ({how}, {len(base.problems)} problems)")
            policy = steps(load_policy, settings.policy,
                           settings.needs_policy(bool(rollout_paths)),
                           "to generate rollouts or to synthesize/verify with it")
            steps.say("[2/8] rollouts" + (f" (from {len(rollout_paths)} path(s))" if rollout_paths
                                          else f" (generated by {model})"))
            groups, unmatched = steps.io(load_rollouts, base, rollout_paths, policy,
                                         settings.generate)
            for line in shown.rollouts_lines(groups, unmatched):
                steps.say(line)
            steps.say(f"[3/8] diagnose ({runner_config.kind} runner)")
            diagnosis = steps.diagnose(groups, settings.diagnosis, runner_config)
            for line in shown.diagnosis_lines(diagnosis):
                steps.say(line)
            steps.say("[4/8] synthesize")
            seeds = steps(seeds_from, base, diagnosis, settings)
            candidates = steps(synthesize, seeds, policy, settings)
            for line in shown.synthesis_lines(seeds, candidates):
                steps.say(line)
            steps.say("[5/8] verify")
            accepted, rejects = steps(verify, candidates, policy, base, settings)
            for line in shown.verify_lines(accepted, rejects):
                steps.say(line)
            refusal = shown.weak_policy_refusal(settings, seeds, accepted, diagnosis)
            if refusal is not None:
                steps.say(f"      refused: {refusal}")
                raise WeakPolicyError(refusal)
            steps.say("[6/8] plan the next version")
            next_version = steps(plan, prompt_store, base, accepted, diagnosis, settings.refresh)
            steps.say("[7/8] publish")
            result = steps.io(publish, prompt_store, base, next_version, diagnosis, rejects,
                              settings, key)
            summary = stages.summarize(base, result, diagnosis=diagnosis, seeds=seeds,
                                       candidates=candidates, accepted=accepted,
                                       verify_rejects=rejects, refresh_plan=next_version,
                                       unmatched=unmatched,
                                       generated_tokens=getattr(policy, "generated_tokens", 0))
    steps.say("[8/8] export")
    exported = steps.io(export, prompt_store, name, summary.version,
                        export_targets(exports, name, summary.version))
    report_dir = steps(write_report, diagnosis, report) if report and diagnosis else None
    if steps.prefect:
        publish_refresh_artifacts(summary, diagnosis, exported, runner_config.kind)
    return RefreshOutcome(summary, exported, report_dir)


# ---------------------------------------------------------------------------- flows
@flow(name="svs-refresh", log_prints=True)
def refresh_flow(store: str, name: str, rollouts: list[str] | None = None,
                 prompts: str | None = None, model: str | None = None,
                 backend: str | None = None, config: str | dict[str, Any] | None = None,
                 text_col: str | None = None, answer_col: str | None = None,
                 exports: list[str] | None = None, report: str | None = None,
                 runner: dict[str, Any] | None = None, io_retries: int = 2,
                 io_retry_delay_s: float = 5.0,
                 policy: dict[str, Any] | None = None) -> RefreshOutcome:
    """Refresh prompt set `name` in `store` from rollout files (or rollouts the policy
    generates), publish the next version and export it.

    `config`: a YAML/JSON file or the same sections inline; `exports`: FORMAT=PATH items
    (`{name}` and `{version}` are filled in); `report`: folder for the diagnosis report;
    `runner`: flows.runners.RunnerConfig fields for the diagnosis.
    """
    return refresh_steps(Steps(True, io_retries, io_retry_delay_s), store, name,
                         rollouts or [], prompts, model, backend, config, text_col,
                         answer_col, exports or [], report, runner, policy)


@flow(name="svs-diagnose", log_prints=True)
def diagnose_flow(rollouts: list[str], out: str | None = None,
                  config: dict[str, Any] | None = None, skip_bad: bool = False,
                  correct_column: str | None = None, timeout_s: float = 5.0,
                  runner: dict[str, Any] | None = None, io_retries: int = 2,
                  io_retry_delay_s: float = 5.0):
    """Diagnose rollout files (any supported format) on the chosen task runner; write
    report.json / report.html into `out` when given. Returns the Diagnosis."""
    from svs.pipeline.memorization import DiagnosisConfig

    logger = get_run_logger()
    runner_config = RunnerConfig.from_dict(runner)
    groups, notes, skipped = io_task(load_rollout_files, io_retries, io_retry_delay_s)(
        rollouts, skip_bad, correct_column, timeout_s)
    for note in notes[:5]:
        logger.info(note)
    if skipped:
        logger.warning(f"skipped {len(skipped)} malformed rows, e.g. {skipped[0]}")
    diagnosis = diagnose_on_runner(groups, DiagnosisConfig.from_dict(config or {}), runner_config)
    report_dir = write_report(diagnosis, out) if out else None
    publish_diagnosis_artifacts(diagnosis, report_dir)
    return diagnosis
