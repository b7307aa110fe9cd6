"""Prompt encoding shared by both backends, and the floor's policy protocol re-exported
for `svs.pipeline.policy` users.

Both backends (`hf.HFPolicy`, `vllm.VLLMPolicy`) tokenize prompts the same way
(`encode_prompt`), so a prompt means the same token ids whichever backend serves it:
the model's chat template is applied when the tokenizer has one (the prompt becomes a
single user message), and special tokens are not added a second time on top of it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from svs.core.protocols import (
    FINISH_LENGTH,
    FINISH_STOP,
    CountingPolicy,
    Generation,
    Policy,
    SamplingParams,
)

__all__ = ["FINISH_LENGTH", "FINISH_STOP", "CountingPolicy", "Generation", "Policy",
           "SamplingParams", "encode_prompt", "has_chat_template", "truncate_at_stop"]


def has_chat_template(tokenizer: Any) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


def encode_prompt(tokenizer: Any, prompt: str, use_chat_template: bool | None = None,
                  system_prompt: str | None = None) -> list[int]:
    """Token ids of one prompt as both backends feed it to the model.

    `use_chat_template=None` applies the template when the tokenizer has one; True
    without a template is an error, since silently sending raw text to a chat model
    gives plausible-looking garbage. `system_prompt` (chat templates only) goes first as
    a system message; None leaves the template's own default (SmolLM2's template adds
    "You are a helpful AI assistant named SmolLM..." when no system message is given).
    """
    if use_chat_template is None:
        use_chat_template = has_chat_template(tokenizer)
    if use_chat_template:
        if not has_chat_template(tokenizer):
            raise ValueError("use_chat_template=True but the tokenizer has no chat_template; "
                             "pass use_chat_template=None (auto) or False")
        messages = [{"role": "user", "content": prompt}]
        if system_prompt is not None:
            messages.insert(0, {"role": "system", "content": system_prompt})
        text = tokenizer.apply_chat_template(messages, tokenize=False,
                                             add_generation_prompt=True)
        return list(tokenizer(text, add_special_tokens=False)["input_ids"])
    if system_prompt is not None:
        raise ValueError("a system prompt needs a chat template; this prompt is sent as raw "
                         "text (use_chat_template=False or no template)")
    return list(tokenizer(prompt)["input_ids"])


def truncate_at_stop(text: str, stop: Sequence[str]) -> tuple[str, bool]:
    """Text before the earliest stop string, and whether one was found."""
    cut = min((i for i in (text.find(s) for s in stop) if i >= 0), default=-1)
    if cut < 0:
        return text, False
    return text[:cut], True
