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


def encode_prompt(tokenizer: Any, prompt: str, use_chat_template: bool | None = None) -> list[int]:
    """Token ids of one prompt as both backends feed it to the model.

    `use_chat_template=None` applies the template when the tokenizer has one; True
    without a template is an error, since silently sending raw text to a chat model
    gives plausible-looking garbage.
    """
    if use_chat_template is None:
        use_chat_template = has_chat_template(tokenizer)
    if use_chat_template:
        if not has_chat_template(tokenizer):
            raise ValueError("use_chat_template=True but the tokenizer has no chat_template; "
                             "pass use_chat_template=None (auto) or False")
        text = tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True)
        return list(tokenizer(text, add_special_tokens=False)["input_ids"])
    return list(tokenizer(prompt)["input_ids"])


def truncate_at_stop(text: str, stop: Sequence[str]) -> tuple[str, bool]:
    """Text before the earliest stop string, and whether one was found."""
    cut = min((i for i in (text.find(s) for s in stop) if i >= 0), default=-1)
    if cut < 0:
        return text, False
    return text[:cut], True
