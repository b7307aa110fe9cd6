"""Versioned prompt store: named prompt sets, one folder per version, atomic publish.

Layout of a store directory:

    <root>/<name>/
        CURRENT            the current version ("v3"), replaced with an atomic rename
        history.jsonl      every move of CURRENT: publish, adopt, rollback
        lock               flock'd while a refresh or a publish runs; holds pid and time
        staging/           unfinished versions; the next lock holder removes them
        versions/v3/       problems.parquet (written through `datasets`), lineage.json,
                           rejects.parquet, diagnosis.json, manifest.json (written last)

A version is written into `staging/`, fsync'd, then renamed into `versions/` in one
step, then CURRENT is switched with another rename. A crash at any point leaves the
previous version current and readable: a half-written folder never sits in `versions/`,
and a finished folder that never became current (crash between the two renames) is
adopted by the next publish of the same run (same `run_key`) instead of being written
twice. Reads verify sha256 checksums and name the file that is corrupt.

The lock is `fcntl.flock` on `<name>/lock`: the kernel drops it when its process dies,
so a killed refresh never leaves a stale lock behind (on local file systems; NFS locks
depend on the server). In one process the lock is re-entrant, so a refresh that holds it
can publish.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from svs.core.records import Problem
from svs.pipeline import lineage as lineage_mod
from svs.pipeline.store_files import (
    fault_point,
    fsync_dir,
    read_problem_table,
    read_rejects_table,
    sha256_file,
    write_problem_table,
    write_rejects_table,
    write_text,
)
from svs.pipeline.store_lock import SetLockedError as SetLockedError  # re-exported
from svs.pipeline.store_lock import StoreError, exclusive
from svs.pipeline.store_types import (  # noqa: F401 - re-exported with the store
    SCHEMA,
    SET_NAME_PATTERN,
    CorruptVersionError,
    NewVersion,
    PromptSet,
    PublishResult,
    StaleParentError,
    parse_version,
    version_label,
)

# ------------------------------------------------------------------ on-publish hooks
# Called after a version became current by a publish (or by adopting a crashed run's
# finished version), with a `PublishEvent`. The store knows nothing of who listens:
# `svs.flows.events` registers the Prefect event `svs.prompt_set.published`. A failing
# hook is logged, never raised: the version is already current.

@dataclass(frozen=True)
class PublishEvent:
    root: str
    name: str
    version: int
    parent: int | None
    action: str  # "publish" or "adopt"
    counts: Mapping[str, Any]  # problems, rejects, by source / synthesizer / generation


_publish_hooks: list[Callable[[PublishEvent], None]] = []


def on_publish(hook: Callable[[PublishEvent], None]) -> Callable[[], None]:
    """Call `hook(event)` after every publish in this process; returns its remover.
    Registering the same hook twice keeps one."""
    if hook not in _publish_hooks:
        _publish_hooks.append(hook)
    return lambda: _publish_hooks.remove(hook) if hook in _publish_hooks else None


def _notify(event: PublishEvent) -> None:
    for hook in list(_publish_hooks):
        try:
            hook(event)
        except Exception:  # a listener's failure must not undo or fail a finished publish
            logging.getLogger(__name__).exception("on-publish hook %r failed for %s@v%d",
                                                  hook, event.name, event.version)


def _manifest_checksum(manifest: Mapping[str, Any]) -> str:
    body = {k: v for k, v in manifest.items() if k != "manifest_sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def _counts(problems: Sequence[Problem]) -> dict[str, dict[str, int]]:
    return {
        "source": dict(sorted(Counter(p.source for p in problems).items())),
        "synthesizer": dict(sorted(Counter(p.synthesizer or "none" for p in problems).items())),
        "generation": {str(g): n for g, n in sorted(Counter(p.generation for p in problems).items())},
    }


class PromptStore:
    """A directory of named, versioned prompt sets."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    # ---------------------------------------------------------------- paths and reads
    def set_dir(self, name: str) -> Path:
        if not SET_NAME_PATTERN.match(name):
            raise StoreError(f"prompt set name {name!r} is not allowed: use letters, digits, "
                             f"'.', '_' or '-' (at most 100, not starting with a symbol)")
        return self.root / name

    def names(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if (p / "versions").is_dir())

    def exists(self, name: str) -> bool:
        return (self.set_dir(name) / "versions").is_dir()

    def versions(self, name: str) -> list[int]:
        folder = self.set_dir(name) / "versions"
        if not folder.is_dir():
            raise StoreError(f"no prompt set {name!r} in {self.root}; known sets: "
                             f"{', '.join(self.names()) or 'none'} (create one with `svs import`)")
        return sorted(int(p.name[1:]) for p in folder.iterdir() if re.fullmatch(r"v\d+", p.name))

    def current(self, name: str) -> int:
        pointer = self.set_dir(name) / "CURRENT"
        if not pointer.exists():
            self.versions(name)  # raises a clear error for an unknown set
            raise StoreError(f"prompt set {name!r} has no CURRENT pointer ({pointer}): its "
                             f"first publish did not finish. Run the same `svs import` again, "
                             f"or `svs rollback --to vN` to choose a version")
        return parse_version(pointer.read_text().strip())

    def history(self, name: str) -> list[dict[str, Any]]:
        path = self.set_dir(name) / "history.jsonl"
        if not path.exists():
            return []
        entries = []
        for line in path.read_text(errors="replace").splitlines():
            try:  # a line torn by a crash mid-append is skipped, not fatal
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(entry, dict) and isinstance(entry.get("version"), int):
                entries.append(entry)
        return entries

    def manifest(self, name: str, version: int) -> dict[str, Any]:
        folder = self.set_dir(name) / "versions" / version_label(version)
        path = folder / "manifest.json"
        if not folder.is_dir():
            raise StoreError(f"prompt set {name!r} has no version v{version}; it has "
                             f"{', '.join(map(version_label, self.versions(name))) or 'none'}")
        try:
            manifest = json.loads(path.read_text())
        except FileNotFoundError as exc:
            raise CorruptVersionError(folder, "manifest.json", "the file is missing") from exc
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise CorruptVersionError(folder, "manifest.json", f"not valid JSON ({exc})") from exc
        if not isinstance(manifest, dict) or manifest.get("schema") != SCHEMA:
            raise CorruptVersionError(folder, "manifest.json", f"not a {SCHEMA} manifest")
        if manifest.get("manifest_sha256") != _manifest_checksum(manifest):
            raise CorruptVersionError(folder, "manifest.json", "its checksum does not match")
        return manifest

    def verify(self, name: str, version: int) -> dict[str, Any]:
        """Check the manifest and every file's sha256; returns the manifest."""
        manifest = self.manifest(name, version)
        folder = self.set_dir(name) / "versions" / version_label(version)
        for file, expected in sorted(manifest["files"].items()):
            path = folder / file
            if not path.exists():
                raise CorruptVersionError(folder, file, "the file is missing")
            actual = sha256_file(path)
            if actual != expected:
                raise CorruptVersionError(folder, file, f"sha256 {actual[:12]}… does not match "
                                                        f"the manifest's {expected[:12]}…")
        return manifest

    def load(self, name: str, version: int | None = None) -> PromptSet:
        """Read a version (the current one by default), checksums verified."""
        version = self.current(name) if version is None else version
        manifest = self.verify(name, version)
        folder = self.set_dir(name) / "versions" / version_label(version)
        problems, weights = read_problem_table(folder / "problems.parquet")
        try:
            graph = lineage_mod.from_json((folder / "lineage.json").read_text(encoding="utf-8"))
        except lineage_mod.LineageError as exc:
            raise CorruptVersionError(folder, "lineage.json", str(exc)) from exc
        diagnosis = None
        if (folder / "diagnosis.json").exists():
            diagnosis = json.loads((folder / "diagnosis.json").read_text(encoding="utf-8"))
        rejects = tuple(read_rejects_table(folder / "rejects.parquet"))
        return PromptSet(name, version, tuple(problems), weights, graph, manifest,
                         diagnosis, rejects)

    def find_run(self, name: str, run_key: str) -> int | None:
        """The newest version published by the run with this key, if any."""
        if not run_key or not self.exists(name):
            return None
        for version in reversed(self.versions(name)):
            try:
                if self.manifest(name, version).get("run_key") == run_key:
                    return version
            except CorruptVersionError:
                continue
        return None

    # ---------------------------------------------------------------- locking
    @contextmanager
    def lock(self, name: str, *, purpose: str = "publish") -> Iterator[None]:
        """Hold the set's lock; fail at once (SetLockedError) when another process has it.
        Re-entrant within one process, so a refresh that holds it can publish."""
        folder = self.set_dir(name)
        folder.mkdir(parents=True, exist_ok=True)
        with exclusive(folder / "lock", what=f"prompt set {name!r}", purpose=purpose,
                       on_acquire=lambda: self._clean_staging(name)):
            yield

    def _clean_staging(self, name: str) -> None:
        staging = self.set_dir(name) / "staging"
        if staging.is_dir():
            for leftover in staging.iterdir():
                shutil.rmtree(leftover, ignore_errors=True)

    # ---------------------------------------------------------------- writes
    def publish(self, name: str, new: NewVersion, *, parent: int | None, run_key: str = "",
                note: str = "") -> PublishResult:
        """Write `new` as the next version of `name` and make it current.

        `parent` is the version `new` was built on (None for a new set); if it is no
        longer current the publish fails with StaleParentError. `run_key` identifies the
        run's inputs: a version already published for it is reported or adopted, never
        written twice.
        """
        with self.lock(name):
            done = self._resolve_run(name, run_key)
            if done is not None:
                return done
            current = self.current_or_none(name)
            if parent != current:
                if current is None:
                    raise StaleParentError(f"prompt set {name!r} does not exist; publish its "
                                           f"first version with parent=None (`svs import`)")
                raise StaleParentError(
                    f"this run was built on {name}@{version_label(parent)}, but "
                    f"{version_label(current)} is current now (another refresh or a rollback "
                    f"happened meanwhile). Nothing was published; run again on "
                    f"{version_label(current)}.")
            version = self.next_version(name)
            folder = self._write_staging(name, new, version, parent, run_key, note or new.note)
            versions_dir = self.set_dir(name) / "versions"
            versions_dir.mkdir(exist_ok=True)
            fault_point("before_rename")
            os.rename(folder, versions_dir / version_label(version))
            fsync_dir(versions_dir)
            fault_point("after_rename")
            self._point(name, version, "publish", note or new.note)
        self._announce(name, version, parent, "publish")
        return PublishResult(name, version, parent, "published")

    def resume(self, name: str, run_key: str) -> PublishResult | None:
        """What a run with this key already published: "already" (it is current),
        "adopted" (a crash left it finished but not current, and it is current now), or
        None (nothing yet: run it)."""
        with self.lock(name):
            return self._resolve_run(name, run_key)

    def next_version(self, name: str) -> int:
        return max(self.versions(name), default=0) + 1 if self.exists(name) else 1

    def current_or_none(self, name: str) -> int | None:
        """The current version; None for a set that does not exist or whose first
        publish died before CURRENT was written."""
        if self.exists(name) and (self.set_dir(name) / "CURRENT").exists():
            return self.current(name)
        return None

    def _resolve_run(self, name: str, run_key: str) -> PublishResult | None:
        existing = self.find_run(name, run_key)
        if existing is None:
            return None
        current = self.current_or_none(name)
        parent = self.manifest(name, existing).get("parent")
        if existing == current:
            return PublishResult(name, existing, parent, "already")
        ever_current = {h["version"] for h in self.history(name)}
        if existing not in ever_current and parent == current:
            self.verify(name, existing)
            self._point(name, existing, "adopt", f"finished {version_label(existing)} of run "
                                                 f"{run_key[:12]} left by a crash")
            self._announce(name, existing, parent, "adopt")
            return PublishResult(name, existing, parent, "adopted")
        return None

    def rollback(self, name: str, to: int | None = None) -> tuple[int | None, int]:
        """Make an earlier (or any verified) version current; returns (from, to)."""
        with self.lock(name, purpose="rollback"):
            current = self.current_or_none(name)
            if to is None and current is None:
                raise StoreError(f"prompt set {name!r} has no current version; choose one "
                                 f"with --to (it has {', '.join(map(version_label, self.versions(name)))})")
            if to is None:
                to = self.manifest(name, current).get("parent")
                if to is None:
                    raise StoreError(f"{name}@{version_label(current)} is the first version; "
                                     f"there is nothing to roll back to")
            if to == current:
                raise StoreError(f"{name}@{version_label(to)} is already current")
            self.verify(name, to)
            self._point(name, to, "rollback", f"from {version_label(current)}")
            return current, to

    def _announce(self, name: str, version: int, parent: int | None, action: str) -> None:
        if not _publish_hooks:
            return
        manifest = self.manifest(name, version)
        counts = {"problems": manifest.get("n_problems"), "rejects": manifest.get("n_rejects"),
                  **manifest.get("counts", {})}
        _notify(PublishEvent(str(self.root), name, version, parent, action, counts))

    def _point(self, name: str, version: int, action: str, note: str) -> None:
        folder = self.set_dir(name)
        tmp = folder / f"CURRENT.tmp-{os.getpid()}"
        write_text(tmp, version_label(version) + "\n")
        os.replace(tmp, folder / "CURRENT")
        fsync_dir(folder)
        fault_point("after_pointer")
        entry = {"version": version, "action": action, "note": note, "pid": os.getpid(),
                 "time": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        with open(folder / "history.jsonl", "a", encoding="utf-8") as handle:
            handle.write(json.dumps(entry, sort_keys=True) + "\n")
            handle.flush()
            os.fsync(handle.fileno())

    def _write_staging(self, name: str, new: NewVersion, version: int, parent: int | None,
                       run_key: str, note: str) -> Path:
        ids = [p.id for p in new.problems]
        if len(set(ids)) != len(ids):
            duplicates = [pid for pid, n in Counter(ids).items() if n > 1]
            raise StoreError(f"a version cannot hold the same problem twice: {duplicates[:5]}")
        unknown = sorted(set(ids) - set(new.lineage.nodes))
        if unknown:
            raise StoreError(f"{len(unknown)} problems are missing from the lineage graph, "
                             f"e.g. {unknown[:3]}; add them with pipeline.lineage.add_problems")
        folder = self.set_dir(name) / "staging" / f"v{version}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        folder.mkdir(parents=True)
        fault_point("staging_started")
        write_problem_table(folder / "problems.parquet", new.problems, new.weights)
        fault_point("problems_written")
        write_text(folder / "lineage.json", lineage_mod.to_json(new.lineage))
        write_rejects_table(folder / "rejects.parquet", new.rejects)
        if new.diagnosis is not None:
            write_text(folder / "diagnosis.json",
                        json.dumps(new.diagnosis, sort_keys=True, indent=1, default=str) + "\n")
        files = {f.name: sha256_file(f) for f in sorted(folder.iterdir())}
        fault_point("before_manifest")
        manifest: dict[str, Any] = {
            "schema": SCHEMA, "name": name, "version": version, "parent": parent,
            "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "run_key": run_key, "note": note, "n_problems": len(new.problems),
            "n_rejects": len(new.rejects), "counts": _counts(new.problems),
            "config": json.loads(json.dumps(dict(new.config), default=str)),
        "summary": json.loads(json.dumps(dict(new.summary), default=str)), "files": files,
        }
        manifest["manifest_sha256"] = _manifest_checksum(manifest)
        write_text(folder / "manifest.json", json.dumps(manifest, sort_keys=True, indent=1) + "\n")
        fsync_dir(folder)
        return folder
