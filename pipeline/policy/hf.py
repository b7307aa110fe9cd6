"""The transformers backend: batched `generate` on CPU or GPU.

`HFPolicy` wraps an in-memory (model, tokenizer) pair, so a learner can sample from the
model it is training (the model's train/eval mode is restored after each call), or
loads a local folder with `HFPolicy.from_pretrained`.

Prompts are left-padded by hand (the caller's tokenizer is never mutated), each prompt
row is repeated `n` times so greedy decoding and sampling share one path, and the
log-probability of each sampled token is recorded step by step by a logits processor
(one rows x vocab tensor alive at a time, not the whole batch's logits).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from svs.pipeline.policy.base import (
    FINISH_LENGTH,
    FINISH_STOP,
    Generation,
    SamplingParams,
    encode_prompt,
    truncate_at_stop,
)


def _eos_ids(model: Any, tokenizer: Any) -> set[int]:
    ids: set[int] = set()
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    if isinstance(configured, int):
        ids.add(configured)
    elif configured:
        ids.update(int(i) for i in configured)
    if tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    return ids


def _tokens_before_stop(tokenizer: Any, token_ids: list[int], stop: Sequence[str]) -> int:
    """Fewest leading tokens whose decoded text already contains a stop string."""
    low, high = 1, len(token_ids)
    while low < high:
        middle = (low + high) // 2
        text = tokenizer.decode(token_ids[:middle], skip_special_tokens=True)
        if truncate_at_stop(text, stop)[1]:
            high = middle
        else:
            low = middle + 1
    return low


class _SampledLogprobs:
    """A logits processor that keeps only the log-probability of each sampled token.

    Called before sampling at every step, it sees the token sampled at the previous
    step as the last input id and gathers its log-probability from that step's
    log-softmax, so one (rows, vocab) tensor is alive at a time instead of all the
    step logits `output_logits=True` would keep. transformers runs custom processors
    before the temperature / top-p warpers, so these are the model's own scores.
    """

    def __init__(self) -> None:
        self.previous = None  # (B*n, V) log-softmax of the last step
        self.collected: list = []  # each (B*n,)

    def __call__(self, input_ids, scores):
        import torch

        if self.previous is not None:
            self.collected.append(self.previous.gather(1, input_ids[:, -1:]).squeeze(1))
        self.previous = torch.log_softmax(scores.float(), dim=-1)
        return scores

    def finish(self, new_tokens):
        import torch

        last = new_tokens.shape[1] - 1
        if self.previous is not None and len(self.collected) == last:
            self.collected.append(self.previous.gather(1, new_tokens[:, last:]).squeeze(1))
        if len(self.collected) != new_tokens.shape[1]:
            raise RuntimeError(f"recorded {len(self.collected)} logprob steps for "
                               f"{new_tokens.shape[1]} generated tokens")
        return torch.stack(self.collected, dim=1)  # (B*n, T_new)


class HFPolicy:
    """A `Policy` on a transformers causal LM.

    `batch_size` counts sequences per `generate` call (prompts x n); a prompt's n
    samples always share a call.
    """

    name = "transformers"

    def __init__(self, model: Any, tokenizer: Any, *, batch_size: int = 32,
                 use_chat_template: bool | None = None, system_prompt: str | None = None,
                 max_new_tokens: int | None = None) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if tokenizer.pad_token_id is None and tokenizer.eos_token_id is None:
            raise ValueError("the tokenizer has neither a pad nor an eos token; set "
                             "tokenizer.pad_token before building an HFPolicy")
        self.model = model
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.use_chat_template = use_chat_template
        self.system_prompt = system_prompt
        if max_new_tokens is not None and max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1 or None, got {max_new_tokens}")
        self.max_new_tokens = max_new_tokens  # a cap over every caller's own budget
        self.eos_ids = _eos_ids(model, tokenizer)
        self.pad_id = (tokenizer.pad_token_id if tokenizer.pad_token_id is not None
                       else tokenizer.eos_token_id)

    @classmethod
    def from_pretrained(cls, model: str | Path, *, device: str | None = None,
                        dtype: str = "auto", threads: int | None = None,
                        chat_template: str | None = None, **kwargs: Any) -> HFPolicy:
        """Load a local folder, a .gguf file (dequantized once into a cached folder,
        `policy.gguf`) or a cached hub name on `device` (default: cuda if any).

        `threads` sets torch's intra-op threads; `chat_template` replaces the
        tokenizer's template (the Jinja text itself, or a file holding it).
        """
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from svs.pipeline.policy.loading import resolve_model_path

        if threads is not None:
            if threads < 1:
                raise ValueError(f"threads must be >= 1, got {threads}")
            torch.set_num_threads(threads)
        path = resolve_model_path(model)
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        tokenizer = AutoTokenizer.from_pretrained(path)
        if chat_template is not None:
            template = Path(chat_template)
            tokenizer.chat_template = (template.read_text(encoding="utf-8")
                                       if "{" not in chat_template and template.is_file()
                                       else chat_template)
        lm = AutoModelForCausalLM.from_pretrained(path, dtype=dtype).to(device)
        lm.eval()
        return cls(lm, tokenizer, **kwargs)

    def encode(self, prompt: str) -> list[int]:
        return encode_prompt(self.tokenizer, prompt, self.use_chat_template,
                             self.system_prompt)

    def generate(self, prompts: Sequence[str], params: SamplingParams, *,
                 progress: bool = False) -> list[list[Generation]]:
        import torch
        from tqdm.auto import tqdm

        if isinstance(prompts, str):
            raise TypeError("generate takes a sequence of prompts, not a single string")
        if self.max_new_tokens is not None and params.max_new_tokens > self.max_new_tokens:
            params = replace(params, max_new_tokens=self.max_new_tokens)
        encoded = [self.encode(p) for p in prompts]
        per_call = max(1, self.batch_size // params.n)
        device = next(self.model.parameters()).device
        rng_devices = [device] if device.type == "cuda" else []
        was_training = self.model.training
        self.model.eval()
        results: list[list[Generation]] = []
        try:
            with torch.random.fork_rng(devices=rng_devices), torch.no_grad():
                if params.seed is not None:
                    torch.manual_seed(params.seed)
                starts = range(0, len(encoded), per_call)
                for start in tqdm(starts, desc=f"generating ({self.name})",
                                  disable=not progress):
                    results.extend(self._generate_batch(encoded[start:start + per_call],
                                                        params, device))
        finally:
            self.model.train(was_training)
        return results

    def _generate_batch(self, encoded: list[list[int]], params: SamplingParams,
                        device: Any) -> list[list[Generation]]:
        import torch
        from transformers import LogitsProcessorList

        width = max(len(ids) for ids in encoded)
        rows = len(encoded) * params.n
        input_ids = torch.full((rows, width), self.pad_id, dtype=torch.long)  # (B*n, T)
        attention = torch.zeros((rows, width), dtype=torch.long)  # (B*n, T)
        for index, ids in enumerate(encoded):
            for copy in range(params.n):
                row = index * params.n + copy
                input_ids[row, width - len(ids):] = torch.tensor(ids)
                attention[row, width - len(ids):] = 1
        recorder = _SampledLogprobs()
        kwargs: dict[str, Any] = {
            "max_new_tokens": params.max_new_tokens,
            "pad_token_id": self.pad_id,
            "eos_token_id": sorted(self.eos_ids) or None,
            "return_dict_in_generate": True,
            "logits_processor": LogitsProcessorList([recorder]),
            "do_sample": not params.greedy,
            "top_k": None,  # no top-k cut (vLLM default), whatever the model config says
            "repetition_penalty": 1.0,
        }
        if not params.greedy:
            kwargs.update(temperature=params.temperature, top_p=params.top_p)
        if params.stop:
            kwargs.update(stop_strings=list(params.stop), tokenizer=self.tokenizer)
        out = self.model.generate(input_ids=input_ids.to(device),
                                  attention_mask=attention.to(device), **kwargs)
        new_tokens = out.sequences[:, width:]  # (B*n, T_new)
        token_logprobs = recorder.finish(new_tokens).cpu().tolist()  # (B*n, T_new)
        new_token_list = new_tokens.cpu().tolist()
        grouped: list[list[Generation]] = []
        for index in range(len(encoded)):
            group = []
            for copy in range(params.n):
                row = index * params.n + copy
                group.append(self._to_generation(new_token_list[row], token_logprobs[row],
                                                 params))
            grouped.append(group)
        return grouped

    def _to_generation(self, ids: list[int], logprobs: list[float],
                       params: SamplingParams) -> Generation:
        finish = FINISH_LENGTH
        for position, token in enumerate(ids):
            if token in self.eos_ids:
                ids, logprobs, finish = ids[:position + 1], logprobs[:position + 1], FINISH_STOP
                break
        text = self.tokenizer.decode(ids, skip_special_tokens=True)
        if params.stop:
            text, found = truncate_at_stop(text, params.stop)
            if found:
                keep = _tokens_before_stop(self.tokenizer, ids, params.stop)
                ids, logprobs, finish = ids[:keep], logprobs[:keep], FINISH_STOP
        return Generation(text=text, token_ids=ids, token_logprobs=logprobs,
                          finish_reason=finish)
