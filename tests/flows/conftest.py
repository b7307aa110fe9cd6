"""One Prefect test server for the whole test session (it takes ~7 s to start), and a
work folder with a tiny problems file and rollout file (see flow_fixtures.py)."""

import pytest
from flow_fixtures import write_problems, write_rollouts


@pytest.fixture(scope="session")
def prefect_harness(tmp_path_factory):
    from prefect.settings import PREFECT_LOCAL_STORAGE_PATH, temporary_settings
    from prefect.testing.utilities import prefect_test_harness

    storage = tmp_path_factory.mktemp("prefect-results")
    with prefect_test_harness(server_startup_timeout=60):
        with temporary_settings({PREFECT_LOCAL_STORAGE_PATH: storage}):
            yield


@pytest.fixture
def workdir(tmp_path):
    write_problems(tmp_path / "problems.jsonl")
    write_rollouts(tmp_path / "rollouts.jsonl")
    return tmp_path
