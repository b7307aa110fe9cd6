"""What changed between two versions of a prompt set (`svs diff A B`).

Ids are content-derived, so a problem whose text or answer changed is one problem
retired and another added. "Changed" therefore means same id, different weight or
metadata, grouped by the label in B's diagnosis (the diagnosis that led to B).
Retired problems are grouped by why they left: the reason the refresh policy recorded
in B's manifest (`memorized`, `target_size`), else B's diagnosis label, else `removed`.
Added problems are grouped by synthesizer (`original` for imported ones).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from svs.core.records import Problem
from svs.pipeline.store import PromptSet


@dataclass(frozen=True)
class Change:
    problem_id: str
    field: str
    old: Any
    new: Any
    label: str = "unlabelled"  # B's diagnosis label for the problem, if it has one


@dataclass(frozen=True)
class VersionDiff:
    a: str
    b: str
    added: tuple[Problem, ...]
    retired: tuple[Problem, ...]
    changed: tuple[Change, ...]
    retired_because: dict[str, str]  # problem id -> reason

    @property
    def added_by_synthesizer(self) -> Counter[str]:
        return Counter(p.synthesizer or "original" for p in self.added)

    @property
    def retired_by_reason(self) -> Counter[str]:
        return Counter(self.retired_because[p.id] for p in self.retired)

    @property
    def changed_by_label(self) -> Counter[str]:
        return Counter(f"{c.field}/{c.label}" for c in self.changed)

    def to_dict(self) -> dict[str, Any]:
        return {
            "a": self.a, "b": self.b,
            "added": [p.id for p in self.added], "retired": [p.id for p in self.retired],
            "changed": [{"id": c.problem_id, "field": c.field, "old": c.old, "new": c.new,
                         "label": c.label} for c in self.changed],
            "added_by_synthesizer": dict(sorted(self.added_by_synthesizer.items())),
            "retired_by_reason": dict(sorted(self.retired_by_reason.items())),
            "changed_by_label": dict(sorted(self.changed_by_label.items())),
        }


def _labels(diagnosis: Any) -> dict[str, str]:
    if not isinstance(diagnosis, dict):
        return {}
    return {p["problem_id"]: p["label"] for p in diagnosis.get("problems", ())
            if isinstance(p, dict) and "problem_id" in p and "label" in p}


def diff_versions(a: PromptSet, b: PromptSet) -> VersionDiff:
    a_by_id = {p.id: p for p in a.problems}
    b_by_id = {p.id: p for p in b.problems}
    added = tuple(p for p in b.problems if p.id not in a_by_id)
    retired = tuple(p for p in a.problems if p.id not in b_by_id)
    recorded = (b.manifest.get("summary") or {}).get("retired") or {}
    labels = _labels(b.diagnosis)
    because = {p.id: recorded.get(p.id) or labels.get(p.id) or "removed" for p in retired}
    changed = []
    for pid, new in b_by_id.items():
        old = a_by_id.get(pid)
        if old is None:
            continue
        label = labels.get(pid, "unlabelled")
        if a.weight(pid) != b.weight(pid):
            changed.append(Change(pid, "weight", a.weight(pid), b.weight(pid), label))
        if dict(old.metadata) != dict(new.metadata):
            changed.append(Change(pid, "metadata", dict(old.metadata), dict(new.metadata), label))
    return VersionDiff(a.label, b.label, added, retired, tuple(changed), because)
