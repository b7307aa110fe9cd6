"""Grade native rollout files: every row gets `extracted`, `method`, `correct` and `reason`.

`method` says how the answer was found: boxed, final_answer, latex_tail, last_number (a
guess) or none.

The rows keep all their other columns untouched; grading itself is the verifier's job
(`verifiers.grader`), this module only moves rows between files and the verifier.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from svs.pipeline.rollouts import ReadResult, read_native_rows
from svs.verifiers.grader import grade_batch


@dataclass
class GradeSummary:
    rows: int = 0
    correct: int = 0
    by_reason: Counter = field(default_factory=Counter)
    flagged: int = 0  # answers taken from the last-number fallback
    skipped: list[tuple[str, int, str]] = field(default_factory=list)

    @property
    def accuracy(self) -> float:
        return self.correct / self.rows if self.rows else float("nan")


def grade_rows(rows: Sequence[dict[str, Any]], *, timeout_s: float | None = None,
               progress: bool = False) -> tuple[list[dict[str, Any]], GradeSummary]:
    """Return copies of native rows with `extracted`, `method`, `correct`, `reason` added."""
    pairs = [(str(row["answer"]), row["completion"]) for row in rows]
    grades = grade_batch(pairs, timeout_s=timeout_s, progress=progress)
    summary = GradeSummary(rows=len(rows))
    graded = []
    for row, grade in zip(rows, grades, strict=True):
        graded.append({**row, "extracted": grade.extracted, "method": grade.method,
                       "correct": grade.correct, "reason": grade.reason})
        summary.correct += grade.correct
        summary.by_reason[grade.reason] += 1
        summary.flagged += grade.flagged
    return graded, summary


def write_rows(path: Path | str, rows: Sequence[dict[str, Any]]) -> None:
    """Write rows as jsonl or parquet (by extension), via a temporary file and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    if path.suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        # Arrow strings must be valid UTF-8: bytes that were invalid in a jsonl input
        # (kept as lone surrogates by the reader) are written as visible \xNN escapes.
        clean = [{k: _arrow_safe(v) for k, v in row.items()} for row in rows]
        pq.write_table(pa.Table.from_pylist(clean), tmp)
    elif path.suffix in (".jsonl", ".ndjson", ".json"):
        with open(tmp, "w", encoding="ascii") as handle:
            for row in rows:
                # ensure_ascii keeps lone surrogates as \udcXX escapes: nothing is lost
                handle.write(json.dumps(row, ensure_ascii=True) + "\n")
    else:
        raise ValueError(f"{path}: unknown output type; use .jsonl or .parquet")
    tmp.replace(path)


def _arrow_safe(value: Any) -> Any:
    if isinstance(value, str):
        return value.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return value


def grade_file(inputs: Sequence[Path | str], out: Path | str, *, skip_bad: bool = False,
               timeout_s: float | None = None, progress: bool = False) -> GradeSummary:
    """Read native rollout files, grade every row, write them to `out`."""
    read: ReadResult = read_native_rows(list(inputs), skip_bad=skip_bad)
    graded, summary = grade_rows(read.rows, timeout_s=timeout_s, progress=progress)
    summary.skipped = read.skipped
    write_rows(out, graded)
    return summary
