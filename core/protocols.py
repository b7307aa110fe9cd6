"""The policy protocol: n sampled completions per prompt, with token ids and logprobs.

It lives in the floor so that verifiers (consistency) and synthesizers can take a policy
without importing the backends (`svs.pipeline.policy`).

Both backends (`hf.HFPolicy`, `vllm.VLLMPolicy`) tokenize prompts the same way
(`encode_prompt`), so a prompt means the same token ids whichever backend serves it:
the model's chat template is applied when the tokenizer has one (the prompt becomes a
single user message), and special tokens are not added a second time on top of it.

Log-probabilities are those of the sampled tokens under the model's own distribution
(raw logits, temperature 1, before top-p), which is what vLLM returns by default and
what a GRPO learner compares its new log-probabilities against.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

FINISH_STOP = "stop"  # end-of-sequence token or a stop string
FINISH_LENGTH = "length"  # ran into max_new_tokens


@dataclass(frozen=True)
class SamplingParams:
    """How to sample completions. Mirrors vLLM's names where they exist."""

    n: int = field(default=1, metadata={"help": "Completions per prompt."})
    temperature: float = field(
        default=1.0, metadata={"help": "Softmax temperature; 0 means greedy decoding."})
    top_p: float = field(default=1.0, metadata={"help": "Nucleus sampling mass in (0, 1]."})
    max_new_tokens: int = field(default=256, metadata={"help": "Tokens generated at most."})
    seed: int | None = field(
        default=None, metadata={"help": "Seed for this call; None draws from the global RNG."})
    stop: tuple[str, ...] = field(
        default=(), metadata={"help": "Strings that end a completion; they are cut from the "
                                      "text (the token ids keep the token that completed them)."})

    def __post_init__(self) -> None:
        if isinstance(self.stop, str):
            object.__setattr__(self, "stop", (self.stop,))
        else:
            object.__setattr__(self, "stop", tuple(self.stop))
        if self.n < 1:
            raise ValueError(f"SamplingParams.n must be >= 1, got {self.n}")
        if self.temperature < 0:
            raise ValueError(f"SamplingParams.temperature must be >= 0 (0 = greedy), "
                             f"got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"SamplingParams.top_p must be in (0, 1], got {self.top_p}")
        if self.max_new_tokens < 1:
            raise ValueError(f"SamplingParams.max_new_tokens must be >= 1, "
                             f"got {self.max_new_tokens}")
        if any(not s for s in self.stop):
            raise ValueError("SamplingParams.stop must not contain empty strings")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0


@dataclass(frozen=True)
class Generation:
    """One sampled completion.

    `token_ids` are the generated ids (the end-of-sequence token included when the model
    emitted it); `token_logprobs[i]` is the log-probability of `token_ids[i]`.
    """

    text: str
    token_ids: tuple[int, ...]
    token_logprobs: tuple[float, ...]
    finish_reason: str = FINISH_STOP

    def __post_init__(self) -> None:
        object.__setattr__(self, "token_ids", tuple(int(t) for t in self.token_ids))
        object.__setattr__(self, "token_logprobs", tuple(float(x) for x in self.token_logprobs))
        if len(self.token_ids) != len(self.token_logprobs):
            raise ValueError(f"Generation has {len(self.token_ids)} token ids but "
                             f"{len(self.token_logprobs)} logprobs")


@runtime_checkable
class Policy(Protocol):
    """Anything that samples completions for prompts.

    `generate` returns one list per prompt, in prompt order, each with `params.n`
    generations.
    """

    name: str

    def generate(self, prompts: Sequence[str], params: SamplingParams, *,
                 progress: bool = False) -> list[list[Generation]]: ...


class CountingPolicy:
    """A policy that counts the tokens it generates: the cost of the stage that uses it
    (the refresh reports it; the lab adds it to the training arm's budget). Every other
    attribute is the wrapped policy's."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.generated_tokens = 0

    def generate(self, prompts: Sequence[str], params: SamplingParams, *,
                 progress: bool = False) -> list[list[Generation]]:
        groups = self.policy.generate(prompts, params, progress=progress)
        self.generated_tokens += sum(len(g.token_ids) for group in groups for g in group)
        return groups

    def __getattr__(self, name: str) -> Any:
        return getattr(self.policy, name)
