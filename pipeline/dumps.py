"""Trainer dumps: verl rollout folders and TRL completion logs, read as graded rollouts."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from svs.core.records import Rollout, problem_id
from svs.pipeline.rollout_files import NATIVE_REQUIRED, RolloutFileError, answer_str, iter_records

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


def dump_rollouts(path: Path, fmt: str, skip_bad: bool, correct_column: str | None,
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
        gold = answer_str(gold) if isinstance(gold, str | int | float) else str(gold)
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
