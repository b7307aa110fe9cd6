"""The native rollout format: reading jsonl/parquet records and validating rows.

The native format is jsonl or parquet, one rollout per row:

    problem_id: str      required
    prompt: str          required (the problem text as shown to the policy)
    answer: str          required (reference answer; numbers are accepted and stringified)
    completion: str      required
    step: int            optional
    reward: float        optional
    correct: bool        optional (if absent, the verifier grades the row)
    token_logprobs: [float]  optional

Reader errors name the file and the line (1-based line for jsonl, 1-based row for
parquet). With `skip_bad=True` bad rows are counted and reported instead; good rows are
never dropped either way.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from svs.core.records import Rollout

NATIVE_REQUIRED = ("problem_id", "prompt", "answer", "completion")


class RolloutFileError(ValueError):
    """A rollout file could not be read; the message names file and line."""

    def __init__(self, path: Path | str, line: int | None, message: str) -> None:
        self.path = str(path)
        self.line = line
        where = f"{self.path}:{line}" if line is not None else self.path
        super().__init__(f"{where}: {message}")


@dataclass
class ReadResult:
    """Rows read from one or more files, in file order, plus what was skipped."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    # (file, line, message) for every skipped row
    skipped: list[tuple[str, int, str]] = field(default_factory=list)


def _decode_line(raw: bytes) -> str:
    # surrogateescape keeps invalid UTF-8 bytes reversible instead of failing the file;
    # the verifier treats the resulting lone surrogates as hostile text (a verdict).
    return raw.decode("utf-8", errors="surrogateescape")


def iter_jsonl(path: Path) -> Iterator[tuple[int, Any, str | None]]:
    """Yield (line_number, parsed_object_or_None, error_or_None) for non-blank lines."""
    with open(path, "rb") as handle:
        for line_no, raw in enumerate(handle, start=1):
            text = _decode_line(raw).strip()
            if not text:
                continue
            try:
                yield line_no, json.loads(text), None
            except json.JSONDecodeError as exc:
                yield line_no, None, f"bad JSON ({exc.msg} at column {exc.colno})"


def iter_parquet(path: Path) -> Iterator[tuple[int, Any, str | None]]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow raises several types for corrupt files
        raise RolloutFileError(path, None, f"not a readable parquet file ({exc})") from exc
    for index, row in enumerate(table.to_pylist(), start=1):
        yield index, row, None


def iter_records(path: Path | str) -> Iterator[tuple[int, Any, str | None]]:
    path = Path(path)
    if not path.exists():
        raise RolloutFileError(path, None, "no such file")
    if path.suffix == ".parquet":
        yield from iter_parquet(path)
    elif path.suffix in (".jsonl", ".json", ".ndjson"):
        yield from iter_jsonl(path)
    else:
        raise RolloutFileError(path, None, "unknown file type; expected .jsonl or .parquet")


def _check_native_row(row: Any) -> str | None:
    """Return why `row` is not a valid native rollout row, or None when it is."""
    if not isinstance(row, Mapping):
        return f"expected a JSON object, got {type(row).__name__}"
    missing = [key for key in NATIVE_REQUIRED if row.get(key) is None]
    if missing:
        return "missing field(s): " + ", ".join(missing)
    for key in ("problem_id", "prompt", "completion"):
        if not isinstance(row[key], str):
            return f"field '{key}' must be a string, got {type(row[key]).__name__}"
    answer = row["answer"]
    if isinstance(answer, bool) or not isinstance(answer, str | int | float):
        return f"field 'answer' must be a string or number, got {type(answer).__name__}"
    step = row.get("step")
    if step is not None and (isinstance(step, bool) or not isinstance(step, int)):
        return f"field 'step' must be an integer, got {type(step).__name__}"
    reward = row.get("reward")
    if reward is not None and (isinstance(reward, bool) or not isinstance(reward, int | float)):
        return f"field 'reward' must be a number, got {type(reward).__name__}"
    correct = row.get("correct")
    if correct is not None and not isinstance(correct, bool):
        return f"field 'correct' must be true/false, got {type(correct).__name__}"
    logprobs = row.get("token_logprobs")
    if logprobs is not None:
        if not isinstance(logprobs, list | tuple) or not all(
            isinstance(x, int | float) and not isinstance(x, bool) for x in logprobs
        ):
            return "field 'token_logprobs' must be a list of numbers"
    return None


def answer_str(answer: str | int | float) -> str:
    if isinstance(answer, float) and math.isfinite(answer) and answer.is_integer():
        return str(int(answer))
    return str(answer)


def read_native_rows(paths: list[Path | str] | Path | str, *, skip_bad: bool = False) -> ReadResult:
    """Read native rollout rows, validating each; raise on the first bad row unless skip_bad."""
    if isinstance(paths, str | Path):
        paths = [paths]
    result = ReadResult()
    for path in paths:
        for line, row, error in iter_records(path):
            error = error or _check_native_row(row)
            if error is not None:
                if not skip_bad:
                    raise RolloutFileError(path, line, error + " (use --skip-bad to skip such rows)")
                result.skipped.append((str(path), line, error))
                continue
            result.rows.append(row)
    return result


def rollout_from_row(row: Mapping[str, Any]) -> Rollout:
    """Build a Rollout from a validated native row; unknown keys go to metadata."""
    known = set(NATIVE_REQUIRED) | {"step", "reward", "correct", "token_logprobs", "extracted", "reason"}
    logprobs = row.get("token_logprobs")
    return Rollout(
        problem_id=row["problem_id"],
        prompt=row["prompt"],
        answer=answer_str(row["answer"]),
        completion=row["completion"],
        step=row.get("step"),
        reward=None if row.get("reward") is None else float(row["reward"]),
        correct=row.get("correct"),
        extracted=row.get("extracted"),
        reason=row.get("reason"),
        token_logprobs=None if logprobs is None else tuple(float(x) for x in logprobs),
        metadata={k: v for k, v in row.items() if k not in known},
    )


def read_native(paths: list[Path | str] | Path | str, *, skip_bad: bool = False) -> tuple[list[Rollout], ReadResult]:
    """Read native rollout files into Rollout records (and the raw read result)."""
    result = read_native_rows(paths, skip_bad=skip_bad)
    return [rollout_from_row(row) for row in result.rows], result
