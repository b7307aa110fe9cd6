"""Import (problem, answer) tables into `Problem`s, and write problems back out.

Reads plain `.jsonl`, `.csv`, `.parquet` files and folders saved with
`datasets.Dataset.save_to_disk`. Columns are found by name (`--text-col`/`--answer-col`
override the guess); every other column is kept in `metadata`, so nothing in the file is
lost. Ids are derived from the content (`records.problem_id` of the normalized text and
answer), so the same problem gets the same id on every run and every machine; an id
column of the file's own is kept as `metadata["source_id"]`.

Files svs wrote itself (`write_problems`, or rows shaped like `Problem.to_row()`) carry
lineage columns (`origin_id`, `parent_id`, `generation`, `synthesizer`, `source`); they
are restored, so import -> store -> export -> import gives back equal problems.
Trainer formats (verl, TRL, OpenRLHF) are read by `trainer_bridge.formats`.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from svs.core.records import ORIGINAL, Problem

TEXT_COLUMNS = ("problem", "question", "text", "prompt", "query", "input")
ANSWER_COLUMNS = ("answer", "final_answer", "ground_truth", "gold", "label", "target")
LINEAGE_COLUMNS = ("origin_id", "parent_id", "generation", "synthesizer", "source")
NATIVE_COLUMNS = ("id", "text", "answer", *LINEAGE_COLUMNS, "metadata")


class ImportFileError(ValueError):
    """A problem file could not be imported; the message names the file and the row."""

    def __init__(self, path: Path | str, row: int | None, message: str) -> None:
        self.path, self.row, self.message = str(path), row, message
        where = f"{path}:{row}" if row is not None else str(path)
        super().__init__(f"{where}: {message}")


@dataclass(frozen=True)
class ColumnMap:
    """Which columns hold what; None means guess from the usual names."""

    text: str | None = field(default=None, metadata={"help": "Column with the problem text."})
    answer: str | None = field(default=None, metadata={"help": "Column with the reference answer."})
    id: str | None = field(default=None, metadata={
        "help": "Column with the file's own problem id (kept as metadata.source_id)."})
    strip_gold: bool = field(default=True, metadata={
        "help": "Remove $...$ and \\boxed{} around answers, as datasets often write them."})


def iter_table(path: Path | str) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (1-based row, row dict) from .jsonl, .csv, .parquet or a `datasets` folder."""
    path = Path(path)
    if not path.exists():
        raise ImportFileError(path, None, "no such file or folder")
    if path.is_dir():
        from datasets import load_from_disk

        try:
            dataset = load_from_disk(str(path))
        except (FileNotFoundError, ValueError) as exc:
            raise ImportFileError(path, None, f"not a folder saved by `datasets` ({exc})") from exc
        if not hasattr(dataset, "to_list"):
            raise ImportFileError(path, None, f"holds splits {sorted(dataset)}; point at one "
                                              f"split's folder, e.g. {path / sorted(dataset)[0]}")
        yield from enumerate(dataset.to_list(), start=1)
    elif path.suffix == ".parquet":
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(path)
        except Exception as exc:  # pyarrow raises several unrelated types on bad files
            raise ImportFileError(path, None, f"not a readable parquet file ({exc})") from exc
        yield from enumerate(table.to_pylist(), start=1)
    elif path.suffix == ".csv":
        with open(path, encoding="utf-8", newline="") as handle:
            # every value stays a string: "007" and "1e3" are answers, not numbers
            for number, row in enumerate(csv.DictReader(handle), start=2):
                yield number, dict(row)
    elif path.suffix in (".jsonl", ".ndjson"):
        with open(path, encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ImportFileError(path, number, f"invalid JSON ({exc.msg})") from exc
                if not isinstance(row, dict):
                    raise ImportFileError(path, number, "each line must be a JSON object")
                yield number, row
    else:
        raise ImportFileError(path, None, "unknown file type; expected .jsonl, .csv, .parquet "
                                          "or a folder saved by `datasets`")


def _pick(columns: Sequence[str], wanted: str | None, guesses: Sequence[str], what: str,
          flag: str) -> str:
    if wanted is not None:
        if wanted not in columns:
            raise ValueError(f"no column {wanted!r} for the {what}; columns are {list(columns)}")
        return wanted
    for guess in guesses:
        if guess in columns:
            return guess
    raise ValueError(f"cannot tell which column holds the {what}; columns are {list(columns)}. "
                     f"Pass {flag} COLUMN")


def _answer(value: Any) -> str:
    if isinstance(value, bool) or value is None or value == "":
        raise ValueError(f"the reference answer is empty or not a string/number ({value!r})")
    if isinstance(value, float) and value.is_integer() and math.isfinite(value):
        return str(int(value))  # 42.0 from a float column is the answer 42
    if isinstance(value, (int, float, str)):
        return str(value)
    raise ValueError(f"the reference answer must be a string or a number, got "
                     f"{type(value).__name__}")


def _check_unicode(value: str, what: str) -> str:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(f"the {what} is not valid Unicode (a lone surrogate at character "
                         f"{exc.start}); fix the file's encoding") from exc
    return value


def _json_safe(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def _metadata(value: Any) -> dict[str, Any]:
    if value in (None, ""):
        return {}
    parsed = json.loads(value) if isinstance(value, str) else value
    if not isinstance(parsed, Mapping):
        raise ValueError("the metadata column must hold a JSON object")
    return dict(parsed)


def row_to_problem(row: Mapping[str, Any], columns: ColumnMap) -> Problem:
    """One table row -> Problem. Raises ValueError with a reason on a malformed row."""
    from svs.verifiers.answers import strip_gold

    names = list(row)
    native = "text" in row and "answer" in row and "origin_id" in row
    text_col = "text" if native and columns.text is None else \
        _pick(names, columns.text, TEXT_COLUMNS, "problem text", "--text-col")
    answer_col = "answer" if native and columns.answer is None else \
        _pick(names, columns.answer, ANSWER_COLUMNS, "answer", "--answer-col")
    text = row[text_col]
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"the problem text in column {text_col!r} is empty or not a string")
    _check_unicode(text, "problem text")
    answer = _check_unicode(_answer(row[answer_col]), "answer")
    if columns.strip_gold and not native:
        answer = strip_gold(answer)
    used = {text_col, answer_col}
    metadata: dict[str, Any] = {}
    if native:
        used.update(NATIVE_COLUMNS)
        metadata.update(_metadata(row.get("metadata")))
    if columns.id is not None:
        if columns.id not in row:
            raise ValueError(f"no column {columns.id!r} for the id; columns are {names}")
        used.add(columns.id)
        metadata["source_id"] = _json_safe(row[columns.id])
    metadata.update({key: _json_safe(value) for key, value in row.items() if key not in used})
    if not native or not row.get("origin_id"):
        return Problem(text=text, answer=answer, metadata=metadata)
    # the id is always recomputed from the content: an edited text gets a new id
    is_original = row["origin_id"] == row.get("id") or not row.get("parent_id")
    generation = row.get("generation")
    return Problem(text=text, answer=answer, source=row.get("source") or ORIGINAL,
                   origin_id="" if is_original else row["origin_id"],
                   parent_id=None if is_original else row["parent_id"],
                   generation=int(generation) if generation not in (None, "") else 0,
                   synthesizer=row.get("synthesizer") or None, metadata=metadata)


@dataclass(frozen=True)
class ImportResult:
    problems: list[Problem]
    weights: dict[str, float]  # from a `weight` column (svs exports); empty otherwise
    duplicates: int  # rows that repeated an earlier (text, answer) and were dropped


def import_problems(path: Path | str, columns: ColumnMap | None = None) -> ImportResult:
    """Read every row of a problem table; the first bad row stops the import, named.

    Rows that repeat an earlier (text, answer) have the same id and are dropped (counted).
    """
    columns = columns or ColumnMap()
    problems: list[Problem] = []
    weights: dict[str, float] = {}
    seen: set[str] = set()
    duplicates = 0
    for number, row in iter_table(path):
        weight = row.pop("weight", None) if "origin_id" in row else None
        try:
            problem = row_to_problem(row, columns)
            if weight not in (None, ""):
                weights[problem.id] = float(weight)
        except (KeyError, TypeError, ValueError) as exc:
            raise ImportFileError(path, number, str(exc)) from exc
        if problem.id in seen:
            duplicates += 1
            continue
        seen.add(problem.id)
        problems.append(problem)
    if not problems:
        raise ImportFileError(path, None, "holds no problems")
    return ImportResult(problems, weights, duplicates)


def write_problems(path: Path | str, problems: Sequence[Problem],
                   weights: Mapping[str, float] | None = None) -> None:
    """Write problems as native rows (.jsonl, .csv or .parquet); `import_problems` reads
    them back equal. A `weight` column is added when weights are given."""
    path = Path(path)
    rows = []
    for problem in problems:
        row = problem.to_row()
        if weights is not None:
            row["weight"] = float(weights.get(problem.id, 1.0))
        rows.append(row)
    if path.suffix in (".jsonl", ".ndjson"):
        with open(path, "w", encoding="utf-8") as handle:
            for row in rows:
                handle.write(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n")
        return
    for row in rows:
        row["metadata"] = json.dumps(row["metadata"], ensure_ascii=False, sort_keys=True)
    if path.suffix == ".csv":
        names = [*NATIVE_COLUMNS, *(["weight"] if weights is not None else [])]
        with open(path, "w", encoding="utf-8", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=names)
            writer.writeheader()
            writer.writerows(rows)
    elif path.suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(rows), path)
    else:
        raise ValueError(f"{path}: unknown file type; write .jsonl, .csv or .parquet")
