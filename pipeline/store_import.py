"""Publishing imported problems into the store: a new set (v1) or the next version of one."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from pathlib import Path

from svs.core.records import Problem
from svs.pipeline import lineage
from svs.pipeline.importers import ColumnMap, import_problems
from svs.pipeline.store import NewVersion, PromptStore, PublishResult, StoreError, version_label


def publish_import(store: PromptStore, name: str, path: Path | str, problems: Sequence[Problem],
                   weights: Mapping[str, float], duplicates: int,
                   add: bool) -> tuple[PublishResult, int, int]:
    """Publish problems read from `path` as a new set (v1), or with `add` as the next
    version of an existing set (problems already in it are skipped). Returns the publish
    result, the problems added and the duplicates skipped. Re-running the same import is
    recognized by its run key and publishes nothing twice."""
    key = hashlib.sha256(("import\x1f" + name + "\x1f" + "\x1f".join(p.id for p in problems))
                         .encode()).hexdigest()
    with store.lock(name, purpose="import"):
        if store.current_or_none(name) is None:  # new, or its first publish died
            graph = lineage.graph_for(problems, 1)
            new = NewVersion(problems, graph, weights=weights, note=f"import {Path(path).name}")
            return store.publish(name, new, parent=None, run_key=key), len(problems), duplicates
        if not add:
            raise StoreError(f"prompt set {name!r} already exists (current "
                             f"{version_label(store.current(name))}); pass --add to publish the "
                             f"file's problems as its next version, or choose another --set")
        done = store.resume(name, key)
        if done is not None:
            return done, 0, duplicates
        base = store.load(name)
        known = {p.id for p in base.problems}
        fresh = [p for p in problems if p.id not in known]
        graph = base.lineage.copy()
        version = store.next_version(name)
        lineage.add_problems(graph, fresh, version, allow_missing_parents=True)
        lineage.mark_active(graph, (p.id for p in fresh))
        new = NewVersion([*base.problems, *fresh], graph,
                         weights={**base.weights, **{p.id: weights.get(p.id, 1.0) for p in fresh}},
                         summary={"added": len(fresh)}, note=f"add {Path(path).name}")
        result = store.publish(name, new, parent=base.version, run_key=key)
        return result, len(fresh), duplicates + len(problems) - len(fresh)


def import_table(store: PromptStore, name: str, path: Path | str, columns: ColumnMap,
                 add: bool) -> tuple[PublishResult, int, int]:
    """`publish_import` of a table of (problem, answer) rows (`importers.import_problems`)."""
    result = import_problems(path, columns)
    return publish_import(store, name, path, result.problems, result.weights,
                          result.duplicates, add)
