"""Config helpers shared by every settings dataclass: field help, strict construction from
a mapping, and the inclusive solve-rate band."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, NamedTuple, TypeVar

T = TypeVar("T")

# Float slack for band edges: 5/8 computed as a count ratio must sit inside [.., 0.625].
_EDGE = 1e-9


def option(default: Any, help: str) -> Any:  # noqa: A002 - the word every config uses
    """A dataclass field with a default and its help text (`field_help` reads it back)."""
    if isinstance(default, (list, dict, set)):
        value = default
        return dataclasses.field(default_factory=lambda: type(value)(value),
                                 metadata={"help": help})
    return dataclasses.field(default=default, metadata={"help": help})


def field_help(cls: type) -> dict[str, str]:
    """{field name: help text} of a settings dataclass."""
    return {f.name: f.metadata.get("help", "") for f in dataclasses.fields(cls)}


def from_mapping(cls: type[T], data: Mapping[str, Any] | None, what: str | None = None,
                 where: str = "") -> T:
    """Build `cls` from a mapping, naming any unknown key and listing the valid ones:
    "unknown {what}(s) ['x']{where}; valid: a, b" (`what` defaults to "<cls> field")."""
    what = what or f"{cls.__name__} field"
    if data is None:
        return cls()
    if not isinstance(data, Mapping):
        raise ValueError(f"{what}s{where} must be a mapping of setting: value, got "
                         f"{type(data).__name__}")
    known = [f.name for f in dataclasses.fields(cls) if f.init]
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ValueError(f"unknown {what}(s) {unknown}{where}; valid: {', '.join(sorted(known))}")
    return cls(**dict(data))


class Band(NamedTuple):
    """An inclusive solve-rate band [low, high]. A tuple, so configs serialize as before;
    `contains` is the one boundary rule of diagnosis, consistency and the learner."""

    low: float
    high: float

    @classmethod
    def of(cls, value: Any, name: str = "band") -> Band:
        try:
            low, high = (float(x) for x in value)
        except (TypeError, ValueError):
            raise ValueError(f"{name} must be [low, high], got {value!r}") from None
        if not 0 <= low <= high <= 1:
            raise ValueError(f"{name} must be [low, high] with 0 <= low <= high <= 1, "
                             f"got {[low, high]}")
        return cls(low, high)

    def contains(self, rate: float) -> bool:
        return self.low - _EDGE <= rate <= self.high + _EDGE

    def contains_count(self, correct: int, total: int) -> bool:
        return total > 0 and self.contains(correct / total)
