"""Rollout readers: files in, validated `Rollout` records out.

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
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from svs.core.records import Rollout, RolloutGroup, problem_id

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


def _answer_str(answer: str | int | float) -> str:
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
        answer=_answer_str(row["answer"]),
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


# --- trainer dumps: verl rollout folders and TRL completion logs -------------------------
#
# verl (`trainer.rollout_data_dir/{step}.jsonl`): one object per rollout with `input`
# (decoded prompt), `output`, `gts`, `score`, `step` and whatever keys the reward function
# returned. Rows are grouped by `problem_id` when the reward returned one (svs's verl
# reward does), else by (normalized prompt, gold answer).
# TRL (`completions/[train/]completions_{step:05d}.parquet`): `step`, `prompt`,
# `completion`, one column per reward function, `advantage`, extra logged columns.
#
# Correctness. A trainer's reward is not correctness (format bonuses, -1/1 conventions,
# partial credit), so it is accepted only when it is unambiguous; otherwise the verifier
# grades the row against the gold answer. Per file, first match wins:
#   1. a boolean / 0-1 `correct` or `acc` key (reward functions often log one);
#   2. the reward (`score` for verl; for TRL the single reward column whose values are
#      all 0 or 1, or the one named in `correct_column`) when every value in the file is
#      exactly 0 or 1;
#   3. the verifier, when rows carry a gold answer (`gts`, `answer`, `solution`, ...);
#   4. otherwise the file cannot be diagnosed and the error says which option fixes it.
# Extracted answers (for answer-spread metrics) are always filled in, by the verifier's
# pure-string `extract_answer` when no grading ran.

FORMATS = ("native", "verl", "trl")
_GOLD_KEYS = ("gts", "answer", "ground_truth", "solution", "reference")
_CORRECT_KEYS = ("correct", "acc")
_TRL_NON_REWARD = {"step", "advantage", "mode", "prompt", "completion", "problem_id"}


@dataclass
class LoadedRollouts:
    """Graded rollouts from every input file, what was skipped, and how each file's
    correctness was decided (`notes`: one line per file)."""

    rollouts: list[Rollout] = field(default_factory=list)
    skipped: list[tuple[str, int, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    formats: dict[str, str] = field(default_factory=dict)


def _step_from_name(path: Path) -> int | None:
    digits = "".join(ch for ch in path.stem if ch.isdigit())
    return int(digits) if digits else None


def detect_format(path: Path) -> str:
    """`native`, `verl` or `trl` for one file, from its columns (or first JSON object);
    `empty` for a jsonl file without any line."""
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        try:
            names = set(pq.read_schema(path).names)
        except Exception as exc:  # pyarrow raises several types for corrupt files
            raise RolloutFileError(path, None, f"not a readable parquet file ({exc})") from exc
    else:
        names, seen = set(), False
        for count, (_, row, _) in enumerate(iter_records(path)):
            seen = True
            if isinstance(row, Mapping) or count >= 20:  # the first good row decides
                names = set(row) if isinstance(row, Mapping) else set()
                break
        if not seen:
            return "empty"
    if {"problem_id", "prompt", "answer", "completion"} <= names:
        return "native"
    if {"input", "output"} <= names:
        return "verl"
    if {"prompt", "completion"} <= names:
        return "trl"
    raise RolloutFileError(path, None, "unknown rollout format: expected native columns "
                           f"{NATIVE_REQUIRED}, a verl dump (input, output, gts, score) or a "
                           f"TRL completions log (prompt, completion); found {sorted(names)}")


def expand_paths(paths: list[Path | str] | Path | str) -> list[Path]:
    """Files named, plus the .jsonl/.parquet files inside folders, in step order."""
    if isinstance(paths, str | Path):
        paths = [paths]
    files: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            found = [p for p in path.rglob("*") if p.suffix in (".jsonl", ".parquet") and p.is_file()]
            if not found:
                raise RolloutFileError(path, None, "folder holds no .jsonl or .parquet files")
            files.extend(sorted(found, key=lambda p: (_step_from_name(p) is None,
                                                      _step_from_name(p) or 0, str(p))))
        elif path.exists():
            files.append(path)
        else:
            raise RolloutFileError(path, None, "no such file or folder")
    return files


def _text(value: Any) -> str | None:
    """A prompt or completion as text; chat messages are joined by their contents."""
    if isinstance(value, str):
        return value
    if isinstance(value, list | tuple) and all(isinstance(m, Mapping) for m in value):
        return "\n".join(str(m.get("content", "")) for m in value)
    return None


def _zero_one(values: list[Any]) -> bool:
    return bool(values) and all(
        isinstance(v, bool) or (isinstance(v, int | float) and v in (0, 1)) for v in values)


def _correctness_source(path: Path, rows: list[Mapping[str, Any]], rewards: list[str],
                        correct_column: str | None) -> tuple[str | None, str]:
    """(column whose 0/1 values are correctness, or None for the verifier; a note)."""
    if correct_column is not None:
        if not rows or correct_column not in rows[0]:
            raise RolloutFileError(path, None, f"correct column {correct_column!r} not found; "
                                   f"columns: {sorted(rows[0]) if rows else []}")
        return correct_column, f"{path}: correctness from column {correct_column!r} (> 0 is correct)"
    for key in (*_CORRECT_KEYS, *rewards):
        if rows and key in rows[0] and _zero_one([row.get(key) for row in rows]):
            return key, f"{path}: correctness from 0/1 column {key!r}"
    if rows and any(key in rows[0] for key in _GOLD_KEYS):
        return None, f"{path}: rewards are not 0/1, graded by the verifier against the gold answer"
    raise RolloutFileError(path, None, "cannot tell which rollouts are correct: no 0/1 reward "
                           f"column among {rewards} and no gold answer column {_GOLD_KEYS}; "
                           "name the column with --correct-column")


def _dump_rollouts(path: Path, fmt: str, skip_bad: bool, correct_column: str | None,
                   out: LoadedRollouts) -> None:
    rows: list[tuple[int, Mapping[str, Any]]] = []
    text_keys = ("input", "output") if fmt == "verl" else ("prompt", "completion")
    for line, row, error in iter_records(path):
        if error is None and not isinstance(row, Mapping):
            error = f"expected a JSON object, got {type(row).__name__}"
        if error is None:
            bad = [k for k in text_keys if _text(row.get(k)) is None]
            if bad:
                error = "missing or non-text field(s): " + ", ".join(bad)
        if error is not None:
            if not skip_bad:
                raise RolloutFileError(path, line, error + " (use --skip-bad to skip such rows)")
            out.skipped.append((str(path), line, error))
            continue
        rows.append((line, row))
    plain = [row for _, row in rows]
    if not plain:
        out.notes.append(f"{path}: no rollout rows")
        return
    if fmt == "verl":
        rewards = ["score"]
    else:
        rewards = [k for k in plain[0] if k not in _TRL_NON_REWARD
                   and k not in _GOLD_KEYS and isinstance(plain[0][k], int | float)]
    source, note = _correctness_source(path, plain, rewards, correct_column)
    out.notes.append(note)
    file_step = _step_from_name(path)
    for _, row in rows:
        prompt, completion = _text(row[text_keys[0]]), _text(row[text_keys[1]])
        gold = next((row[k] for k in _GOLD_KEYS if row.get(k) is not None), "")
        gold = _answer_str(gold) if isinstance(gold, str | int | float) else str(gold)
        pid = row.get("problem_id")
        step = row.get("step", file_step)
        reward = row.get("score") if fmt == "verl" else row.get(
            source if source in rewards else (rewards[0] if rewards else ""))
        value = row.get(source) if source is not None else None
        correct = None if source is None else (
            isinstance(value, bool | int | float) and not math.isnan(value) and value > 0)
        extracted = row.get("pred") if isinstance(row.get("pred"), str) else None
        out.rollouts.append(Rollout(
            problem_id=pid if isinstance(pid, str) and pid else problem_id(prompt, gold),
            prompt=prompt, answer=gold, completion=completion,
            step=int(step) if isinstance(step, int | float | str) and str(step).lstrip("-").isdigit() else None,
            reward=float(reward) if isinstance(reward, int | float) else None,
            correct=correct, extracted=extracted,
            metadata={"format": fmt, **{k: v for k, v in row.items()
                                        if k not in (*text_keys, "problem_id", "step") and _plain(v)}}))


def _plain(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def load_rollouts(paths: list[Path | str] | Path | str, *, skip_bad: bool = False,
                  progress: bool = False, correct_column: str | None = None,
                  timeout_s: float | None = None) -> LoadedRollouts:
    """Read native files, verl dump folders and TRL completion logs (auto-detected per
    file), grade rows that carry no correctness and fill in extracted answers."""
    from svs.verifiers.answers import extract_answer
    from svs.verifiers.grader import grade_batch

    out = LoadedRollouts()
    files = expand_paths(paths)
    if progress and len(files) > 1:
        from rich.progress import track

        files = track(files, description="reading rollout files", transient=True)
    for path in files:
        fmt = detect_format(path)
        out.formats[str(path)] = fmt
        if fmt == "empty":
            out.notes.append(f"{path}: no rollout rows")
        elif fmt == "native":
            rollouts, read = read_native(path, skip_bad=skip_bad)
            out.rollouts.extend(rollouts)
            out.skipped.extend(read.skipped)
        else:
            _dump_rollouts(path, fmt, skip_bad, correct_column, out)
    ungraded = [i for i, r in enumerate(out.rollouts) if r.correct is None]
    if ungraded:
        grades = grade_batch([(out.rollouts[i].answer, out.rollouts[i].completion) for i in ungraded],
                             timeout_s=timeout_s, progress=progress)
        for i, grade in zip(ungraded, grades, strict=True):
            out.rollouts[i] = out.rollouts[i].graded(correct=grade.correct,
                                                     extracted=grade.extracted, reason=grade.reason)
    for i, rollout in enumerate(out.rollouts):
        if rollout.extracted is None and rollout.reason is None:
            found = extract_answer(rollout.completion).answer
            if found is not None:
                out.rollouts[i] = replace(rollout, extracted=found)
    return out


def groups_from_rollouts(rollouts: list[Rollout]) -> list[RolloutGroup]:
    """One RolloutGroup per (problem_id, step), in order of first appearance."""
    by_key: dict[tuple[str, int | None], list[Rollout]] = {}
    for rollout in rollouts:
        by_key.setdefault((rollout.problem_id, rollout.step), []).append(rollout)
    return [RolloutGroup.from_rollouts(members, step=step) for (_, step), members in by_key.items()]


def load_rollout_groups(paths: list[Path | str] | Path | str, *, skip_bad: bool = False,
                        progress: bool = False, correct_column: str | None = None,
                        timeout_s: float | None = None) -> list[RolloutGroup]:
    """The one entry point: files or folders in, graded RolloutGroups per (problem, step)."""
    loaded = load_rollouts(paths, skip_bad=skip_bad, progress=progress,
                           correct_column=correct_column, timeout_s=timeout_s)
    return groups_from_rollouts(loaded.rollouts)
