"""The prompt store's record types and version labels (`svs.pipeline.store` uses them)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import networkx as nx

from svs.core.records import Problem
from svs.pipeline.store_lock import StoreError

SCHEMA = "svs-prompt-set/1"
SET_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


class CorruptVersionError(StoreError):
    """A stored version failed its checks; `file` names the damaged file."""

    def __init__(self, folder: Path, file: str, why: str) -> None:
        self.folder, self.file = folder, file
        super().__init__(f"{folder / file} is corrupt: {why}. Restore it from a backup, or run "
                         f"`svs rollback` to make an earlier version current.")


class StaleParentError(StoreError):
    """The version a publish was built on is no longer current."""


@dataclass(frozen=True)
class PromptSet:
    """One stored version of a prompt set, as read back (checksums verified)."""

    name: str
    version: int
    problems: tuple[Problem, ...]
    weights: Mapping[str, float]
    lineage: nx.DiGraph
    manifest: Mapping[str, Any]
    diagnosis: Mapping[str, Any] | None = None
    rejects: tuple[Mapping[str, Any], ...] = ()

    @property
    def parent(self) -> int | None:
        return self.manifest.get("parent")

    @property
    def label(self) -> str:
        return f"{self.name}@v{self.version}"

    def weight(self, problem_id: str) -> float:
        return self.weights.get(problem_id, 1.0)


@dataclass(frozen=True)
class NewVersion:
    """What a publish writes. `weights` default to 1.0; `config` is recorded verbatim."""

    problems: Sequence[Problem]
    lineage: nx.DiGraph
    weights: Mapping[str, float] = field(default_factory=dict)
    diagnosis: Mapping[str, Any] | None = None
    rejects: Sequence[Mapping[str, Any]] = ()
    config: Mapping[str, Any] = field(default_factory=dict)
    summary: Mapping[str, Any] = field(default_factory=dict)  # e.g. RefreshPlan.summary()
    note: str = ""


@dataclass(frozen=True)
class PublishResult:
    name: str
    version: int
    parent: int | None
    # "published": new folder; "adopted": a finished folder of this run_key left behind
    # by a crash was made current; "already": this run_key's version is already current
    outcome: str


def version_label(version: int | None) -> str:
    return "-" if version is None else f"v{version}"


def parse_version(text: str | int) -> int:
    match = re.fullmatch(r"v?(\d+)", str(text).strip())
    if not match or int(match.group(1)) < 1:
        raise StoreError(f"{text!r} is not a version; write it as v3 or 3")
    return int(match.group(1))
