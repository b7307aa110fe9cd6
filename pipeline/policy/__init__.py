"""Policy backends behind one protocol: transformers (`hf`) and vLLM (`vllm`).

    from svs.pipeline.policy import SamplingParams, load_policy
    policy = load_policy("path/to/model", backend="transformers")
    groups = policy.generate(["What is 2+3?"], SamplingParams(n=4, max_new_tokens=64))

Backends import torch / vLLM lazily, so importing this package is cheap.
"""

from svs.pipeline.policy.base import Generation, Policy, SamplingParams, encode_prompt
from svs.pipeline.policy.loading import PolicyLoadError, load_policy, resolve_model_path

__all__ = ["Generation", "Policy", "PolicyLoadError", "SamplingParams", "encode_prompt",
           "load_policy", "resolve_model_path"]
