import os

# Tests never reach a hub: fail fast instead of hanging on a closed network.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
# `svs refresh` runs the Prefect flow; CLI tests run the same steps without a server
# (each CLI process would start one, ~10 s). tests/flows/ tests the flow mode.
os.environ.setdefault("SVS_NO_PREFECT", "1")


# Tiny models for the policy / synthesis / consistency tests (tests/tiny_models.py).
import pytest  # noqa: E402


@pytest.fixture(scope="session")
def toy_policy_dir(tmp_path_factory):
    from tiny_models import build_toy_policy_dir

    return build_toy_policy_dir(tmp_path_factory.mktemp("toy-policy"))
