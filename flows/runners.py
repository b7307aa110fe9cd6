"""Scale-out: which Prefect task runner executes the heavy stages, and how diagnosis is
split so that a cluster can share it.

Diagnosis is per problem (a problem's label depends only on its own rollout groups), so
the groups are cut into shards of whole problems, each shard is diagnosed as its own
task on whatever runner the flow uses (threads, a Dask cluster, a Ray cluster), and
the shards are merged back. `merge_diagnoses(diagnose_shards(...))` equals one call of
`pipeline.memorization.diagnose` on all groups: the tests check it.

Loading and grading stay in the flow's own process: the sandboxed verifier pool starts
worker processes, which Dask's daemonic worker processes may not do.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from svs.core.records import RolloutGroup

RUNNERS = ("thread", "dask", "ray")


@dataclass(frozen=True)
class RunnerConfig:
    """Where a flow's tasks run."""

    kind: str = field(default="thread", metadata={"help": (
        "`thread` (Prefect's default thread pool, one machine), `dask` (a local Dask "
        "cluster, or the one at `address`; needs `pip install svs[dask]`) or `ray` (a local "
        "Ray instance, or the cluster at `address`; needs `pip install svs[ray]`).")})
    workers: int = field(default=2, metadata={"help": (
        "Worker processes of a local Dask cluster / CPUs of a local Ray instance; "
        "thread pool size for `thread`. Ignored when `address` names a running cluster.")})
    address: str | None = field(default=None, metadata={"help": (
        "A running cluster to use instead of starting one: a Dask scheduler "
        "(tcp://host:8786) or a Ray address (ray://host:10001, or 'auto').")})
    shard_size: int = field(default=2000, metadata={"help": (
        "Problems per diagnosis task. Smaller shards spread better over many workers; "
        "each shard costs one task's overhead (~50 ms on Prefect's thread runner).")})

    def __post_init__(self) -> None:
        if self.kind not in RUNNERS:
            raise ValueError(f"unknown task runner {self.kind!r}; choose one of {RUNNERS}")
        if self.workers < 1:
            raise ValueError(f"RunnerConfig.workers must be >= 1, got {self.workers}")
        if self.shard_size < 1:
            raise ValueError(f"RunnerConfig.shard_size must be >= 1, got {self.shard_size}")
        if self.address is not None and self.kind == "thread":
            raise ValueError("RunnerConfig.address names a cluster, which only the `dask` "
                             "and `ray` runners use; pick one of them or drop the address")

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> RunnerConfig:
        return cls(**(data or {}))


def make_task_runner(config: RunnerConfig):
    """The Prefect task runner for `config`, with an install hint when its extra is missing."""
    if config.kind == "thread":
        from prefect.task_runners import ThreadPoolTaskRunner

        return ThreadPoolTaskRunner(max_workers=config.workers)
    if config.kind == "dask":
        try:
            from prefect_dask import DaskTaskRunner
        except ImportError as exc:
            raise RuntimeError("the dask task runner needs prefect-dask: "
                               "pip install 'svs[dask]'") from exc
        if config.address:
            return DaskTaskRunner(address=config.address)
        return DaskTaskRunner(cluster_kwargs={
            "n_workers": config.workers, "threads_per_worker": 1, "processes": True,
            "dashboard_address": None})
    try:
        from prefect_ray import RayTaskRunner
    except ImportError as exc:
        raise RuntimeError("the ray task runner needs prefect-ray: pip install 'svs[ray]'") from exc
    if config.address:
        return RayTaskRunner(address=config.address)
    return RayTaskRunner(init_kwargs={"num_cpus": config.workers, "include_dashboard": False})


def shard_groups(groups: Sequence[RolloutGroup], shard_size: int) -> list[list[RolloutGroup]]:
    """Cut groups into shards of at most `shard_size` whole problems, keeping the order in
    which problems first appear (so merged shards list problems as one call would)."""
    if shard_size < 1:
        raise ValueError(f"shard_size must be >= 1, got {shard_size}")
    order: dict[str, int] = {}
    for group in groups:
        order.setdefault(group.problem_id, len(order))
    n_shards = max(1, -(-len(order) // shard_size))
    shards: list[list[RolloutGroup]] = [[] for _ in range(n_shards)]
    for group in groups:
        shards[order[group.problem_id] // shard_size].append(group)
    return [shard for shard in shards if shard]


def merge_diagnoses(parts: Sequence[Any], groups: Sequence[RolloutGroup]):
    """One Diagnosis from the diagnoses of disjoint shards of `groups`."""
    from svs.pipeline import memorization

    if not parts:
        raise ValueError("no diagnosis shards to merge")
    configs = {part.config for part in parts}
    if len(configs) != 1:
        raise ValueError("diagnosis shards were made with different configs; diagnose all "
                         "shards with one DiagnosisConfig")
    problems = tuple(p for part in parts for p in part.problems)
    ids = [p.problem_id for p in problems]
    if len(set(ids)) != len(ids):
        raise ValueError("a problem appears in two diagnosis shards; shard with shard_groups")
    steps = sorted({g.step for g in groups if g.step is not None})
    return memorization.Diagnosis(problems=problems, config=parts[0].config,
                                  totals=memorization.diagnosis_totals(problems, groups,
                                                                       parts[0].config),
                                  steps=tuple(steps))
