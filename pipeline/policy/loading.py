"""Load a policy by backend name from a local model folder.

A hub name (`Qwen/Qwen2.5-0.5B-Instruct`) works only when it is already in the local
hub cache or the hub is reachable; otherwise the error says how to point at a folder.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from svs.pipeline.policy.base import Policy

BACKENDS = ("transformers", "vllm")


class PolicyLoadError(RuntimeError):
    """The model could not be found or loaded; the message says what to do."""


def _offline() -> bool:
    return any(os.environ.get(flag, "").lower() in ("1", "true", "yes")
               for flag in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def _how_to_fix(name: str) -> str:
    return (f"On a machine with network run `hf download {name} --local-dir DIR` (or "
            f"`huggingface-cli download {name} --local-dir DIR`), copy DIR here and pass "
            f"its path instead of the hub name. A local model folder holds config.json, "
            f"the weights (*.safetensors) and the tokenizer files.")


def resolve_model_path(model: str | Path) -> Path:
    """The local folder of `model`: the path itself, or a hub snapshot (cache first)."""
    path = Path(model).expanduser()
    if path.exists():
        from svs.pipeline.policy.gguf import dequantized_folder, is_gguf

        if is_gguf(path):
            return dequantized_folder(path)
        if not path.is_dir():
            raise PolicyLoadError(f"model path {path} is a file; pass the folder that holds "
                                  f"config.json and the weights, or a .gguf file")
        if not (path / "config.json").exists():
            raise PolicyLoadError(f"model folder {path} has no config.json; pass a folder "
                                  f"saved with save_pretrained (or downloaded from the hub)")
        return path
    name = str(model)
    if name.startswith((".", "/", "~")) or name.count("/") > 1:
        raise PolicyLoadError(f"model folder {name} does not exist")
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(name, local_files_only=True))
    except Exception:  # noqa: BLE001 - any cache miss falls through to the download
        pass
    if _offline():
        raise PolicyLoadError(f"model {name!r} is not a local folder and is not in the hub "
                              f"cache, and the hub is off (HF_HUB_OFFLINE is set). "
                              + _how_to_fix(name))
    try:
        return Path(snapshot_download(name))
    except Exception as error:  # noqa: BLE001 - network errors come in many types
        raise PolicyLoadError(f"model {name!r} is not a local folder and downloading it "
                              f"failed ({type(error).__name__}: {error}). "
                              + _how_to_fix(name)) from error


def load_policy(model: str | Path, backend: str = "transformers", **kwargs: Any) -> Policy:
    """A `Policy` for `model` (a local folder) on `backend` ("transformers" or "vllm").

    Keyword arguments go to the backend: `HFPolicy.from_pretrained` (device, dtype,
    batch_size, use_chat_template) or `VLLMPolicy` (gpu_memory_utilization,
    max_model_len, dtype, use_chat_template, ...).
    """
    if backend not in BACKENDS:
        raise PolicyLoadError(f"unknown policy backend {backend!r}; choose one of "
                              f"{', '.join(BACKENDS)}")
    path = resolve_model_path(model)
    if backend == "transformers":
        from svs.pipeline.policy.hf import HFPolicy

        return HFPolicy.from_pretrained(path, **kwargs)
    from svs.pipeline.policy.vllm import VLLMPolicy

    return VLLMPolicy(path, **kwargs)


def load_configured_policy(config: Any, needed: bool, why: str) -> Any:
    """The refresh's policy from its `policy:` section (`refresh_config.PolicyConfig`),
    wrapped to count generated tokens; None when no model is set and none is needed."""
    if config.model is None:
        if needed:
            raise ValueError(f"this refresh needs a policy ({why}); pass --model PATH (a "
                             f"model folder or a .gguf file) or set policy.model")
        return None
    from svs.pipeline.policy.base import CountingPolicy

    kwargs = {k: v for k, v in config.load_kwargs().items() if v is not None}
    return CountingPolicy(load_policy(config.model, backend=config.backend, **kwargs))
