"""Scale-out: sharded diagnosis equals one diagnose call, on threads and on Dask."""

import random
import sys

import pytest
from flow_fixtures import write_rollouts

from svs.flows.runners import RunnerConfig, make_task_runner, merge_diagnoses, shard_groups
from svs.pipeline.memorization import DiagnosisConfig, diagnose
from svs.pipeline.rollouts import load_rollout_groups


def problems(n):
    rng = random.Random(7)
    return [(f"Compute ${a} \\times {b}$.", str(a * b))
            for a, b in ((rng.randint(2, 99), rng.randint(2, 99)) for _ in range(n))]


@pytest.fixture
def dumps(tmp_path):
    rng = random.Random(3)
    items = problems(12)
    for step in (1, 2):
        write_rollouts(tmp_path / f"{step}.jsonl", step=step, seed=step, problems=items,
                       correct_of_8=[rng.randint(0, 8) for _ in items])
    return tmp_path


def test_shards_hold_whole_problems_in_first_seen_order(dumps):
    groups = load_rollout_groups(dumps)
    shards = shard_groups(groups, 5)
    assert [len({g.problem_id for g in shard}) for shard in shards] == [5, 5, 2]
    seen = [g.problem_id for shard in shards for g in shard]
    assert sorted(seen) == sorted(g.problem_id for g in groups)
    whole = diagnose(groups, DiagnosisConfig())
    merged = merge_diagnoses([diagnose(shard, DiagnosisConfig()) for shard in shards], groups)
    assert merged.to_json() == whole.to_json()
    with pytest.raises(ValueError, match="two diagnosis shards"):
        merge_diagnoses([diagnose(shards[0], DiagnosisConfig())] * 2, groups)


def test_runner_config_checks():
    with pytest.raises(ValueError, match="unknown task runner"):
        RunnerConfig(kind="spark")
    with pytest.raises(ValueError, match="only the `dask` and `ray`"):
        RunnerConfig(address="tcp://127.0.0.1:8786")
    assert type(make_task_runner(RunnerConfig())).__name__ == "ThreadPoolTaskRunner"


@pytest.mark.slow  # starts a 2-worker Dask cluster: ~20 s on 2 busy cores
@pytest.mark.usefixtures("prefect_harness")
def test_dask_runner_gives_the_same_diagnosis(dumps):
    pytest.importorskip("prefect_dask")
    from svs.flows.refresh_flow import diagnose_flow

    files = [str(dumps / "1.jsonl"), str(dumps / "2.jsonl")]
    expected = diagnose(load_rollout_groups(files), DiagnosisConfig()).to_json()
    # different shard sizes: no shard of one run is a cache hit for the other
    on_dask = diagnose_flow(files, runner={"kind": "dask", "workers": 2, "shard_size": 4})
    on_threads = diagnose_flow(files, runner={"kind": "thread", "shard_size": 5})
    assert on_dask.to_json() == expected
    assert on_threads.to_json() == expected


@pytest.mark.slow  # starts a local Ray instance: ~30 s (prefect-ray is in the dev extra)
@pytest.mark.usefixtures("prefect_harness")
def test_ray_runner_gives_the_same_diagnosis(dumps):
    if sys.version_info < (3, 11):
        pytest.skip("prefect-ray needs Python >= 3.11 (the dev extra installs it from there on)")
    from svs.flows.refresh_flow import diagnose_flow

    files = [str(dumps / "1.jsonl"), str(dumps / "2.jsonl")]
    expected = diagnose(load_rollout_groups(files), DiagnosisConfig()).to_json()
    on_ray = diagnose_flow(files, runner={"kind": "ray", "workers": 2, "shard_size": 3})
    assert on_ray.to_json() == expected
