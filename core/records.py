"""Record types that travel through the whole pipeline.

Everything here is a frozen dataclass: stages pass records along and build new ones,
they never mutate what they were given. Ids are derived from content so that the same
problem imported twice, or by two machines, gets the same id.
"""

from __future__ import annotations

import hashlib
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

ORIGINAL = "original"


def normalize_text(text: str) -> str:
    """Canonical form used for ids and prompt grouping: NFKC, collapsed white space."""
    return " ".join(unicodedata.normalize("NFKC", text).split())


def problem_id(text: str, answer: str) -> str:
    """Stable content-derived id: the same (text, answer) always gives the same id."""
    payload = normalize_text(text) + "\x1f" + normalize_text(answer)
    digest = hashlib.sha256(payload.encode("utf-8", errors="surrogatepass")).hexdigest()
    return "p-" + digest[:16]


def _frozen_mapping(value: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return MappingProxyType(dict(value or {}))


@dataclass(frozen=True)
class Verdict:
    """The outcome of one check: never an exception, always a reason.

    `reason` is a short machine-readable slug (`correct`, `no_answer`, `answer_leak`,
    ...); `detail` is free text for people.
    """

    ok: bool
    reason: str
    detail: str = ""

    def __bool__(self) -> bool:
        return self.ok


@dataclass(frozen=True)
class Problem:
    """A math problem with its reference answer and where it came from.

    Originals have `origin_id == id`, no parent, generation 0 and no synthesizer.
    A variant keeps its original's `origin_id`, names its direct `parent_id`, and has
    `generation = parent.generation + 1`.
    """

    text: str
    answer: str
    id: str = ""
    source: str = ORIGINAL
    origin_id: str = ""
    parent_id: str | None = None
    generation: int = 0
    synthesizer: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.text, str) or not isinstance(self.answer, str):
            raise TypeError("Problem.text and Problem.answer must be strings")
        if self.generation < 0:
            raise ValueError(f"Problem.generation must be >= 0, got {self.generation}")
        if not self.id:
            object.__setattr__(self, "id", problem_id(self.text, self.answer))
        if not self.origin_id:
            object.__setattr__(self, "origin_id", self.id)
        object.__setattr__(self, "metadata", _frozen_mapping(self.metadata))

    @property
    def is_original(self) -> bool:
        return self.parent_id is None

    def variant(self, text: str, answer: str | None = None, *, synthesizer: str,
                source: str = "synthetic", **metadata: Any) -> Problem:
        """A child problem of this one (same answer unless given), lineage filled in."""
        return Problem(
            text=text,
            answer=self.answer if answer is None else answer,
            source=source,
            origin_id=self.origin_id,
            parent_id=self.id,
            generation=self.generation + 1,
            synthesizer=synthesizer,
            metadata=metadata,
        )

    def to_row(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "text": self.text,
            "answer": self.answer,
            "source": self.source,
            "origin_id": self.origin_id,
            "parent_id": self.parent_id,
            "generation": self.generation,
            "synthesizer": self.synthesizer,
            "metadata": dict(self.metadata),
        }

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Problem:
        return cls(
            text=row["text"],
            answer=row["answer"],
            id=row.get("id") or "",
            source=row.get("source") or ORIGINAL,
            origin_id=row.get("origin_id") or "",
            parent_id=row.get("parent_id") or None,
            generation=int(row.get("generation") or 0),
            synthesizer=row.get("synthesizer") or None,
            metadata=row.get("metadata") or {},
        )


@dataclass(frozen=True)
class Rollout:
    """One sampled completion for one problem.

    `correct` is None until graded; `extracted` is the final answer the verifier pulled
    out of the completion (None when there was none or it was not graded yet).
    `token_logprobs` are the log-probabilities of the sampled tokens, when the trainer
    or the policy backend recorded them.
    """

    problem_id: str
    prompt: str
    answer: str
    completion: str
    step: int | None = None
    reward: float | None = None
    correct: bool | None = None
    extracted: str | None = None
    reason: str | None = None
    token_logprobs: tuple[float, ...] | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.token_logprobs is not None and not isinstance(self.token_logprobs, tuple):
            object.__setattr__(self, "token_logprobs", tuple(float(x) for x in self.token_logprobs))
        object.__setattr__(self, "metadata", _frozen_mapping(self.metadata))

    def graded(self, *, correct: bool, extracted: str | None, reason: str) -> Rollout:
        return replace(self, correct=correct, extracted=extracted, reason=reason)

    def to_row(self) -> dict[str, Any]:
        """The native rollout row (`svs.pipeline.rollouts.rollout_from_row` reads it back):
        the required fields, the optional ones that are set, metadata keys alongside."""
        row: dict[str, Any] = {"problem_id": self.problem_id, "prompt": self.prompt,
                               "answer": self.answer, "completion": self.completion}
        for key in ("step", "reward", "correct", "extracted", "reason"):
            if getattr(self, key) is not None:
                row[key] = getattr(self, key)
        if self.token_logprobs is not None:
            row["token_logprobs"] = list(self.token_logprobs)
        for key, value in self.metadata.items():
            row.setdefault(key, value)
        return row


@dataclass(frozen=True)
class RolloutGroup:
    """All rollouts of one problem at one training step (step None: steps pooled)."""

    problem_id: str
    prompt: str
    answer: str
    rollouts: tuple[Rollout, ...]
    step: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.rollouts, tuple):
            object.__setattr__(self, "rollouts", tuple(self.rollouts))

    @property
    def n(self) -> int:
        return len(self.rollouts)

    @property
    def n_correct(self) -> int:
        return sum(1 for r in self.rollouts if r.correct)

    @property
    def is_graded(self) -> bool:
        return all(r.correct is not None for r in self.rollouts)

    @classmethod
    def from_rollouts(cls, rollouts: Sequence[Rollout], step: int | None = None) -> RolloutGroup:
        if not rollouts:
            raise ValueError("a RolloutGroup needs at least one rollout")
        first = rollouts[0]
        return cls(first.problem_id, first.prompt, first.answer, tuple(rollouts), step)


@dataclass(frozen=True)
class Seed:
    """An original problem and one correct solution of it (a rollout's completion).

    `rollout_ref` names the rollout the solution came from (e.g. "step=12/sample=3"),
    so a synthesized problem can be traced back to it.
    """

    problem: Problem
    solution: str
    rollout_ref: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.solution, str):
            raise TypeError("Seed.solution must be a string")
        object.__setattr__(self, "metadata", MappingProxyType(dict(self.metadata)))


@dataclass(frozen=True)
class Candidate:
    """One synthesized problem before verification.

    `problem` is the variant (lineage filled by `Problem.variant`) or None when nothing
    usable came out, in which case `reason` says why (`no_problem_extracted`, ...).
    `answer_proven` is True when the synthesizer proved the reference answer by
    computation (symbolic rewrites); the policy's solve rate is then measured against
    that answer, otherwise against the original's.
    """

    seed: Seed
    problem: Problem | None
    raw_output: str
    synthesizer: str
    reason: str | None = None
    detail: str = ""
    answer_proven: bool = False

    def __post_init__(self) -> None:
        if (self.problem is None) == (self.reason is None):
            raise ValueError("a Candidate has either a problem or a failure reason, not both "
                             "or neither")
