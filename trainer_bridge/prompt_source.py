"""Where the learner's problems come from: a versioned prompt store, or a fixed list.

The loop only needs `current() -> PromptVersion` (label, problems, sampling weights).
Weights come from the store (the refresh flow down-weights memorized problems; missing
ids weigh 1.0). A store-backed source answers
with the store's CURRENT version, so a run in periodic-refresh mode picks up a newly
published version the next time it asks (at its refresh boundary); the loop never
reads a half-published version because the store publishes by rename.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

from svs.core.records import Problem


@dataclass(frozen=True)
class PromptVersion:
    """One version of the training prompts."""

    label: str
    problems: Sequence[Problem]
    weights: Mapping[str, float] = field(default_factory=dict)  # problem id -> weight

    def weight_list(self) -> list[float]:
        return [float(self.weights.get(p.id, 1.0)) for p in self.problems]


@runtime_checkable
class PromptSource(Protocol):
    def current(self) -> PromptVersion:
        """The current version (non-empty)."""
        ...


class StaticPromptSource:
    """A fixed list of problems under one version label."""

    def __init__(self, problems: Sequence[Problem], version: str = "static") -> None:
        if not problems:
            raise ValueError("the prompt source has no problems")
        self.problems = tuple(problems)
        self.version = version

    def current(self) -> PromptVersion:
        return PromptVersion(self.version, self.problems)


class StorePromptSource:
    """The current version of prompt set `name` in a `pipeline.store.PromptStore`."""

    def __init__(self, root: str | Path, name: str) -> None:
        from svs.pipeline.store import PromptStore

        self.store = PromptStore(root)
        self.name = name
        if not self.store.exists(name):
            raise ValueError(f"prompt store {root} has no prompt set {name!r}; it has "
                             f"{', '.join(self.store.names()) or 'none'}")
        self._cache: tuple[int, PromptVersion] | None = None

    def current(self) -> PromptVersion:
        version = self.store.current(self.name)
        if self._cache is None or self._cache[0] != version:
            loaded = self.store.load(self.name, version)
            if not loaded.problems:
                raise ValueError(f"{loaded.label} has no problems")
            self._cache = (version, PromptVersion(f"{self.name}@v{version}",
                                                  tuple(loaded.problems), dict(loaded.weights)))
        return self._cache[1]


def load_problems_file(path: str | Path) -> list[Problem]:
    """Native problem rows (`Problem.to_row`) from a .jsonl or .parquet file, read by the
    one native reader (`svs.trainer_bridge.formats.read_problems`); an empty file is an
    error (a learner cannot sample from it)."""
    from svs.trainer_bridge.formats import read_problems

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"problems file {path} does not exist")
    if path.suffix not in (".jsonl", ".parquet"):
        raise ValueError(f"{path}: use a .jsonl or .parquet problems file")
    problems = read_problems(path)
    if not problems:
        raise ValueError(f"{path} holds no problems")
    return problems


def source_from_config(config) -> PromptSource:
    if config.prompts_file:
        return StaticPromptSource(load_problems_file(config.prompts_file),
                                  version=Path(config.prompts_file).name)
    return StorePromptSource(config.prompt_store, config.prompt_set)


def heldout_from_config(config) -> list[Problem]:
    if config.heldout_file:
        return load_problems_file(config.heldout_file)
    if config.heldout_set:
        return list(StorePromptSource(config.prompt_store, config.heldout_set).current().problems)
    return []
