"""Watch mode: process only the dump files that appeared in a folder since the last run.

A trainer writes rollout dumps into a folder as it goes (verl: `rollout_data_dir/{step}.jsonl`,
TRL: `completions/completions_{step:05d}.parquet`). Each watch run lists the folder,
takes the `.jsonl` / `.parquet` files it has not processed before, hands them to the
refresh flow (or, without a prompt store, to the diagnose flow) and records them in a
small JSON state file, so every file is processed once across runs:

- a file is recorded only after its run succeeded; a failed run leaves it new, and the
  next run tries again (the store's run key keeps a refresh that published but crashed
  before recording from publishing twice);
- a file modified less than `settle_s` seconds ago may still be being written and waits
  for the next run;
- a recorded file that later changes (size or mtime) is reported as changed, not
  processed again;
- two watch runs on one state file never overlap: the second finds the state locked and
  skips its turn.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task

STATE_FORMAT = "svs-watch/1"
STATE_NAME = ".svs-watch.json"
DUMP_SUFFIXES = (".jsonl", ".parquet")


class WatchStateError(RuntimeError):
    """The state file cannot be used; the message says how to recover."""


class WatchLockedError(RuntimeError):
    """Another watch run holds the state file."""


@dataclass(frozen=True)
class Scan:
    """What a run found: files to process now, files still settling, recorded files that
    changed since they were processed."""

    new: tuple[str, ...]
    settling: tuple[str, ...]
    changed: tuple[str, ...]
    fingerprints: dict[str, dict[str, int]]


def default_state_path(folder: Path | str) -> Path:
    return Path(folder) / STATE_NAME


def load_state(path: Path | str, folder: Path | str) -> dict[str, Any]:
    """The state recorded for `folder` at `path`; an empty state when the file is absent."""
    path, folder = Path(path), Path(folder).resolve()
    if not path.exists():
        return {"format": STATE_FORMAT, "folder": str(folder), "files": {}, "runs": []}
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise WatchStateError(f"watch state {path} is not valid JSON ({exc}); delete it to "
                              f"process every file in {folder} again") from exc
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise WatchStateError(f"{path} is not an {STATE_FORMAT} watch state; point --state "
                              f"at another file")
    if state.get("folder") != str(folder):
        raise WatchStateError(f"watch state {path} belongs to folder {state.get('folder')}, "
                              f"not {folder}; use one state file per watched folder")
    return state


def save_state(path: Path | str, state: dict[str, Any]) -> None:
    """Write the state atomically (temporary file, fsync, rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(state, handle, indent=1, sort_keys=True)
        handle.flush()
        os.fsync(handle.fileno())
    tmp.replace(path)


@contextmanager
def state_lock(path: Path | str) -> Iterator[None]:
    """Hold `<state>.lock`; raise WatchLockedError at once when another run holds it."""
    lock_path = Path(str(path) + ".lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise WatchLockedError(f"another watch run holds {lock_path}; this run skips its "
                                   f"turn") from exc
        yield
    finally:
        os.close(fd)  # releases the flock


def dump_files(folder: Path | str) -> list[Path]:
    """The .jsonl / .parquet files under `folder`, hidden files and folders left out."""
    folder = Path(folder)
    if not folder.is_dir():
        raise WatchStateError(f"watched folder {folder} does not exist or is not a folder")
    found = []
    for path in folder.rglob("*"):
        relative = path.relative_to(folder)
        if any(part.startswith(".") for part in relative.parts):
            continue
        if path.suffix in DUMP_SUFFIXES and path.is_file():
            found.append(path)
    return found


def _step_order(relative: str) -> tuple[bool, int, str]:
    digits = "".join(ch for ch in Path(relative).stem if ch.isdigit())
    return (not digits, int(digits) if digits else 0, relative)


def scan_folder(folder: Path | str, state: dict[str, Any], *, settle_s: float,
                now: float | None = None) -> Scan:
    """Compare the folder with the state; new files come in step order."""
    folder = Path(folder)
    now = time.time() if now is None else now
    seen = state["files"]
    new, settling, changed = [], [], []
    fingerprints: dict[str, dict[str, int]] = {}
    for path in dump_files(folder):
        relative = path.relative_to(folder).as_posix()
        stat = path.stat()
        fingerprint = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
        if relative in seen:
            if {k: seen[relative][k] for k in fingerprint} != fingerprint:
                changed.append(relative)
            continue
        if now - stat.st_mtime < settle_s:
            settling.append(relative)
            continue
        new.append(relative)
        fingerprints[relative] = fingerprint
    return Scan(tuple(sorted(new, key=_step_order)), tuple(sorted(settling)),
                tuple(sorted(changed)), fingerprints)


def record_processed(state: dict[str, Any], scan: Scan, files: Sequence[str], *,
                     run: str, outcome: str, keep_runs: int = 50) -> dict[str, Any]:
    """A new state with `files` recorded as processed by `run` (fingerprints from the scan,
    so a file that changed while it was processed counts as changed next time)."""
    stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
    files_state = dict(state["files"])
    for relative in files:
        files_state[relative] = {**scan.fingerprints[relative], "run": run, "processed_at": stamp}
    runs = [*state.get("runs", []), {"run": run, "at": stamp, "files": len(files),
                                     "outcome": outcome}][-keep_runs:]
    return {**state, "files": files_state, "runs": runs}


# ---------------------------------------------------------------------------- the flow
@task(name="scan-dump-folder", retries=2, retry_delay_seconds=2)
def scan_task(folder: str, state_path: str, settle_s: float) -> tuple[dict[str, Any], Scan]:
    state = load_state(state_path, folder)
    return state, scan_folder(folder, state, settle_s=settle_s)


@task(name="record-processed-files", retries=2, retry_delay_seconds=2)
def save_state_task(state_path: str, state: dict[str, Any]) -> None:
    save_state(state_path, state)


@flow(name="svs-watch", log_prints=True)
def watch_flow(folder: str, state_file: str | None = None, settle_s: float = 10.0,
               refresh: dict[str, Any] | None = None, diagnose: dict[str, Any] | None = None
               ) -> dict[str, Any]:
    """Process the dump files new in `folder`: refresh a prompt set with them (`refresh`:
    the refresh flow's parameters, without `rollouts`) or, without `refresh`, diagnose
    them (`diagnose`: the diagnose flow's parameters, without `rollouts`; its `out`
    gets one sub-folder per run)."""
    from prefect.runtime import flow_run

    if refresh and "rollouts" in refresh or diagnose and "rollouts" in diagnose:
        raise ValueError("watch_flow chooses the rollouts itself; drop `rollouts` from the "
                         "refresh / diagnose parameters")
    if not Path(folder).is_dir():
        raise WatchStateError(f"watched folder {folder} does not exist or is not a folder")
    state_path = state_file or str(default_state_path(folder))
    run = str(flow_run.get_id() or f"local-{int(time.time())}")
    try:
        with state_lock(state_path):
            return _watch_once(folder, state_path, settle_s, run, refresh, diagnose)
    except WatchLockedError as exc:
        get_run_logger().warning(str(exc))
        return {"status": "locked", "processed": []}


def _watch_once(folder: str, state_path: str, settle_s: float, run: str,
                refresh: dict[str, Any] | None, diagnose: dict[str, Any] | None) -> dict[str, Any]:
    from svs.flows.refresh_flow import diagnose_flow, refresh_flow

    logger = get_run_logger()
    state, scan = scan_task(folder, state_path, settle_s)
    for relative in scan.changed:
        logger.warning(f"{relative} changed after it was processed; it is not processed "
                       f"again (each dump file is used once)")
    if scan.settling:
        logger.info(f"{len(scan.settling)} file(s) modified in the last {settle_s:g} s "
                    f"wait for the next run: {', '.join(scan.settling[:5])}")
    if not scan.new:
        logger.info(f"no new dump files in {folder}")
        return {"status": "idle", "processed": [], "settling": list(scan.settling)}
    paths = [str(Path(folder) / relative) for relative in scan.new]
    logger.info(f"processing {len(paths)} new dump file(s): {', '.join(scan.new[:5])}"
                + (" ..." if len(paths) > 5 else ""))
    if refresh is not None:
        outcome = refresh_flow(rollouts=paths, **refresh)
        result = {"version": outcome.summary.version, "outcome": outcome.summary.outcome,
                  "labels": dict(outcome.summary.labels), "exported": dict(outcome.exported)}
    else:
        options = dict(diagnose or {})
        base = Path(options.pop("out", str(Path(state_path).parent / "svs-watch-reports")))
        diagnosis = diagnose_flow(rollouts=paths, out=str(base / run), **options)
        result = {"report": str(base / run), "labels": dict(diagnosis.totals["labels"])}
    save_state_task(state_path, record_processed(state, scan, scan.new, run=run,
                                                 outcome="processed"))
    return {"status": "processed", "processed": list(scan.new), "result": result}
