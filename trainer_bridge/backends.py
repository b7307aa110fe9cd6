"""Model and rollout backend of the GRPO learner: load the model, wrap it in a policy,
and push updated weights to vLLM when vLLM serves the rollouts."""

from __future__ import annotations

import os
from typing import Any

import torch

from svs.pipeline.policy.base import Policy
from svs.trainer_bridge.grpo_config import GRPOConfig


def load_model(config: GRPOConfig) -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from svs.pipeline.policy.loading import resolve_model_path

    path = resolve_model_path(config.model)
    device = config.device or ("cuda" if torch.cuda.is_available() else "cpu")
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).to(device)
    return model, tokenizer


def make_policy(config: GRPOConfig, model: Any, tokenizer: Any) -> Policy:
    if config.backend == "transformers":
        from svs.pipeline.policy.hf import HFPolicy

        return HFPolicy(model, tokenizer, batch_size=config.generation_batch_size)
    # In-process engine, so the learner can reach the model runner to push weights.
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    from svs.pipeline.policy.vllm import VLLMPolicy

    return VLLMPolicy(config.model, seed=config.seed,
                      gpu_memory_utilization=config.vllm_memory_utilization,
                      max_model_len=config.vllm_max_model_len)


def push_weights(policy: Policy, model: Any) -> None:
    """Load the learner's current weights into the vLLM engine serving the rollouts.

    Uses the workers' `reload_weights` (vLLM >= 0.11: it re-runs the layer-wise weight
    processing, so repacked CPU/GPU kernels get the new values); older versions get the
    model's `load_weights` directly (the engine must then run in-process:
    VLLM_ENABLE_V1_MULTIPROCESSING=0).
    """
    llm = getattr(policy, "llm", None)
    if llm is None:
        return  # the transformers backend samples from the training model itself
    weights = [(name, tensor.detach()) for name, tensor in model.state_dict().items()]
    try:
        llm.collective_rpc("reload_weights", kwargs={"weights_iterator": weights,
                                                     "is_checkpoint_format": True})
    except (AttributeError, NotImplementedError, TypeError):
        try:
            worker = llm.llm_engine.model_executor.driver_worker
            runner = getattr(getattr(worker, "worker", None), "model_runner", None) \
                or worker.model_runner
        except AttributeError as error:
            raise RuntimeError("cannot load new weights into this vLLM: use vLLM >= 0.11, or "
                               "an in-process engine (VLLM_ENABLE_V1_MULTIPROCESSING=0), or "
                               "backend 'transformers'") from error
        runner.model.load_weights(weights)
    llm.reset_prefix_cache()
