"""The two tables of a stored version: problems and rejects (parquet through `datasets`).

Problems: one row per `Problem` (`Problem.to_row()` fields) plus `weight`, the sampling
weight the refresh policy gave it (1.0 unless down-weighted). `metadata` is stored as a
JSON string so that any JSON value survives the round trip exactly; parquet structs
would merge the keys of all rows and turn missing keys into nulls.

Rejects: one row per candidate that did not make it into the version, with the stage
that dropped it (`verify` for the consistency and text checks, `refresh` for the
policy's caps and de-duplication), a machine-readable `reason` and a free-text `detail`.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from svs.core.records import Problem

PROBLEM_COLUMNS = {"id": "string", "text": "string", "answer": "string", "source": "string",
                   "origin_id": "string", "parent_id": "string", "generation": "int64",
                   "synthesizer": "string", "metadata": "string", "weight": "float64"}
REJECT_COLUMNS = ("candidate_id", "parent_id", "origin_id", "synthesizer", "stage", "reason",
                  "detail", "text", "answer", "extra")


FAULT_ENV = "SVS_STORE_FAULT"  # "<point>:kill" or "<point>:wait:<file>" (tests only)
FAULT_POINTS = ("staging_started", "problems_written", "before_manifest", "before_rename",
                "after_rename", "after_pointer")


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fault_point(point: str) -> None:
    """Crash or pause at a named point of a publish, when a test asks for it."""
    spec = os.environ.get(FAULT_ENV, "")
    if not spec.startswith(point + ":"):
        return
    action = spec[len(point) + 1:]
    if action == "kill":
        os.kill(os.getpid(), 9)
    if action.startswith("wait:"):
        release = Path(action[len("wait:"):])
        Path(str(release) + ".reached").touch()
        deadline = time.monotonic() + 120
        while not release.exists() and time.monotonic() < deadline:
            time.sleep(0.05)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_text(path: Path, text: str) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())


class StoreFileError(ValueError):
    """A stored table has the wrong shape; the message names the file and the row."""


def _features(columns: Mapping[str, str]):
    from datasets import Features, Value

    return Features({name: Value(dtype) for name, dtype in columns.items()})


def _to_parquet(path: Path, columns: Mapping[str, list[Any]], dtypes: Mapping[str, str]) -> None:
    import uuid

    import pyarrow as pa
    from datasets import Dataset, DatasetInfo
    from datasets import utils as datasets_utils

    features = _features(dtypes)
    table = pa.Table.from_pydict(dict(columns), schema=features.arrow_schema)
    # an explicit fingerprint: `datasets` would otherwise hash the whole table with dill
    dataset = Dataset(table, info=DatasetInfo(features=features), fingerprint=uuid.uuid4().hex)
    bars_were_on = not datasets_utils.are_progress_bars_disabled()
    datasets_utils.disable_progress_bars()  # one bar per tiny table is noise in a refresh
    try:
        dataset.to_parquet(str(path))
    finally:
        if bars_were_on:
            datasets_utils.enable_progress_bars()
    with open(path, "rb+") as handle:
        os.fsync(handle.fileno())


def write_problem_table(path: Path, problems: Sequence[Problem],
                        weights: Mapping[str, float]) -> None:
    columns: dict[str, list[Any]] = {name: [] for name in PROBLEM_COLUMNS}
    for problem in problems:
        weight = float(weights.get(problem.id, 1.0))
        if not math.isfinite(weight) or weight < 0:
            raise StoreFileError(f"problem {problem.id} has weight {weight}; weights must be "
                                 f"finite and >= 0")
        row = problem.to_row()
        row["metadata"] = json.dumps(row["metadata"], sort_keys=True, ensure_ascii=False)
        for name in ("text", "answer", "metadata"):
            try:
                row[name].encode("utf-8")
            except UnicodeEncodeError as exc:
                raise StoreFileError(f"problem {problem.id}: its {name} is not valid Unicode "
                                     f"(lone surrogate at character {exc.start})") from exc
        row["weight"] = weight
        for name in PROBLEM_COLUMNS:
            columns[name].append(row[name])
    _to_parquet(path, columns, PROBLEM_COLUMNS)


def read_problem_table(path: Path) -> tuple[list[Problem], dict[str, float]]:
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    missing = sorted(set(PROBLEM_COLUMNS) - set(table.column_names))
    if missing:
        raise StoreFileError(f"{path}: missing columns {missing}")
    problems, weights = [], {}
    for index, row in enumerate(table.to_pylist(), start=1):
        try:
            row["metadata"] = json.loads(row["metadata"] or "{}")
            problem = Problem.from_row(row)
        except (TypeError, ValueError) as exc:
            raise StoreFileError(f"{path}: row {index}: {exc}") from exc
        problems.append(problem)
        weights[problem.id] = float(row["weight"])
    return problems, weights


def reject_row(candidate: Problem | None = None, *, stage: str, reason: str, detail: str = "",
               **extra: Any) -> dict[str, Any]:
    """A rejects-table row for a candidate problem (or for a bare reason)."""
    row: dict[str, Any] = {"stage": stage, "reason": reason, "detail": detail}
    if candidate is not None:
        row.update(candidate_id=candidate.id, parent_id=candidate.parent_id,
                   origin_id=candidate.origin_id, synthesizer=candidate.synthesizer,
                   text=candidate.text, answer=candidate.answer)
    row.update(extra)
    return row


def write_rejects_table(path: Path, rejects: Sequence[Mapping[str, Any]]) -> None:
    columns: dict[str, list[Any]] = {name: [] for name in REJECT_COLUMNS}
    for index, reject in enumerate(rejects, start=1):
        if not reject.get("reason"):
            raise StoreFileError(f"reject {index} has no reason; every reject needs one")
        extra = {k: v for k, v in reject.items() if k not in REJECT_COLUMNS}
        for name in REJECT_COLUMNS[:-1]:
            value = reject.get(name)
            columns[name].append(None if value is None else str(value))
        columns["extra"].append(json.dumps(extra, sort_keys=True, default=str) if extra else None)
    _to_parquet(path, columns, dict.fromkeys(REJECT_COLUMNS, "string"))


def read_rejects_table(path: Path) -> list[dict[str, Any]]:
    import pyarrow.parquet as pq

    rows = []
    for row in pq.read_table(path).to_pylist():
        extra = json.loads(row.pop("extra") or "{}")
        rows.append({**{k: v for k, v in row.items() if v is not None}, **extra})
    return rows
