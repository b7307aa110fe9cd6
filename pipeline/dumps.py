"""Trainer dumps: verl rollout folders and TRL completion logs, read as graded rollouts."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from svs.core.records import Rollout, problem_id
from svs.pipeline.rollout_files import NATIVE_REQUIRED, RolloutFileError, answer_str, iter_records

# --- trainer dumps: verl rollout folders and TRL completion logs -------------------------
#
# verl (`trainer.rollout_data_dir/{step}.jsonl`): one object per rollout with `input`
# (decoded, chat-templated prompt), `output`, `gts`, `score`, `step`. verl 0.9.1's default
# V1 trainer adds only `uid` (`<prompt uuid>_<session>_<output>`); its legacy trainer adds
# every key the reward function returned (svs's verl reward returns `problem_id`). Rows
# are grouped by `problem_id` when there is one, else by the prompt uuid of `uid` (one
# GRPO group), else by (normalized prompt, gold answer). Matching groups without an id
# to a prompt set's problems is `svs.pipeline.matching`'s job (by content).
# TRL (`completions/completions_{step:05d}.parquet`): `step`, `prompt`, `completion`, one
# column per reward function, `advantage`, the columns reward functions logged through
# `log_extra` (svs's `math_reward` logs `problem_id`, `solution`, `pred`, `mode` and
# `svs_reward`, its own column's name). TRL writes one file every `logging_steps` with
# only the last generation batch, reuses the names for eval logs, and with
# `num_iterations > 1` writes the same rows again under later steps: rows with
# `mode == "eval"` and files under an `eval/` folder are skipped, a repeated batch is
# read once, and gaps between logged steps are reported as a warning.
#
# Correctness. A trainer's reward is not correctness (format bonuses, -1/1 conventions,
# partial credit), so a column is accepted only by name or when it is unambiguous;
# otherwise the verifier grades the row against the gold answer. Per file, first match
# wins:
#   1. the column named by `correct_column` (`--correct-column`; > 0 is correct);
#   2. a boolean / 0-1 `correct` or `acc` key (reward functions often log one);
#   3. TRL: svs's own reward column (named in `svs_reward`, or `math_reward`), then a
#      reward column whose name contains `accuracy` (TRL's `accuracy_reward`), when its
#      values are 0/1 (NaN: no verdict, graded by the verifier);
#   4. the only reward (`score` for verl, the single TRL reward column) when every value
#      is exactly 0 or 1; several 0/1 TRL reward columns without a name are ambiguous
#      (a format reward is 0/1 too), and the note says so;
#   5. the verifier, when rows carry a gold answer (`gts`, `answer`, `solution`, ...);
#   6. otherwise the file cannot be diagnosed and the error says which option fixes it.
# Extracted answers (for answer-spread metrics) are always filled in, by the verifier's
# pure-string `extract_answer` when no grading ran.

FORMATS = ("native", "verl", "trl")
_GOLD_KEYS = ("gts", "answer", "ground_truth", "solution", "reference")
_CORRECT_KEYS = ("correct", "acc")
_TRL_NON_REWARD = {"step", "advantage", "mode", "prompt", "completion", "problem_id"}
SVS_REWARD_KEY = "svs_reward"  # the column in which svs's TRL reward logs its own name
SVS_REWARD_NAME = "math_reward"
GROUP_KEY = "group"  # Rollout.metadata key of a verl GRPO group (the uid's prompt uuid)


@dataclass
class LoadedRollouts:
    """Graded rollouts from every input file, what was skipped, and how each file's
    correctness was decided (`notes`: one line per file)."""

    rollouts: list[Rollout] = field(default_factory=list)
    skipped: list[tuple[str, int, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    formats: dict[str, str] = field(default_factory=dict)
    # logging gaps and what was left out on purpose (eval rows, repeated rows)
    warnings: list[str] = field(default_factory=list)
    # TRL batches already read, to drop the repeats of num_iterations > 1
    seen_rows: set = field(default_factory=set, repr=False)


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


def _zero_one(values: list[Any], allow_missing: bool = False) -> bool:
    def ok(v: Any) -> bool:
        if isinstance(v, bool) or (isinstance(v, int | float) and v in (0, 1)):
            return True
        return allow_missing and (v is None or (isinstance(v, float) and math.isnan(v)))

    return any(v is not None for v in values) and all(ok(v) for v in values)


def _named_correctness(rows: list[Mapping[str, Any]], rewards: list[str]) -> str | None:
    """TRL: the reward column named as correctness (svs's own, then `accuracy`-named)."""
    own = rows[0].get(SVS_REWARD_KEY)
    names = [own] if isinstance(own, str) else []
    names += [SVS_REWARD_NAME, *(r for r in rewards if "accuracy" in r.lower())]
    for name in names:
        if name in rewards and _zero_one([row.get(name) for row in rows], allow_missing=True):
            return name
    return None


def _correctness_source(path: Path, rows: list[Mapping[str, Any]], rewards: list[str],
                        correct_column: str | None) -> tuple[str | None, str]:
    """(column whose 0/1 values are correctness, or None for the verifier; a note)."""
    if correct_column is not None:
        if not rows or correct_column not in rows[0]:
            raise RolloutFileError(path, None, f"correct column {correct_column!r} not found; "
                                   f"columns: {sorted(rows[0]) if rows else []}")
        return correct_column, f"{path}: correctness from column {correct_column!r} (> 0 is correct)"
    for key in _CORRECT_KEYS:
        if key in rows[0] and _zero_one([row.get(key) for row in rows]):
            return key, f"{path}: correctness from 0/1 column {key!r}"
    named = _named_correctness(rows, rewards) if "score" not in rewards else None
    if named is not None:
        return named, f"{path}: correctness from reward {named!r} (named as correctness)"
    binary = [key for key in rewards if key in rows[0] and _zero_one([row.get(key) for row in rows])]
    has_gold = any(key in rows[0] for key in _GOLD_KEYS)
    if len(binary) == 1 and len(rewards) == 1:
        return binary[0], f"{path}: correctness from 0/1 column {binary[0]!r}"
    if binary:
        ambiguous = (f"{len(binary)} reward columns {binary} are 0/1 and none is named as "
                     "correctness (svs's math_reward, an `accuracy` reward, --correct-column)")
        if has_gold:
            return None, f"{path}: {ambiguous}: graded by the verifier against the gold answer"
        raise RolloutFileError(path, None, f"cannot tell which rollouts are correct: {ambiguous}"
                               "; name the column with --correct-column")
    if has_gold:
        return None, f"{path}: rewards are not 0/1, graded by the verifier against the gold answer"
    raise RolloutFileError(path, None, "cannot tell which rollouts are correct: no 0/1 reward "
                           f"column among {rewards} and no gold answer column {_GOLD_KEYS}; "
                           "name the column with --correct-column")


def _correct(value: Any, named_by_user: bool) -> bool | None:
    """A column value as correctness: > 0 is correct. A missing value (None, NaN: TRL's
    None reward) is no verdict, left to the verifier, unless the user named the column."""
    number = isinstance(value, bool | int | float) and not math.isnan(value)
    if not number and not named_by_user:
        return None
    return number and value > 0


def _uid_group(uid: Any) -> str | None:
    """The prompt uuid of a verl V1 uid (`<uuid>_<session>_<output>`)."""
    if not isinstance(uid, str) or not uid:
        return None
    parts = uid.rsplit("_", 2)
    return parts[0] if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit() else uid


def _read_rows(path: Path, text_keys: tuple[str, str], skip_bad: bool,
               out: LoadedRollouts) -> list[Mapping[str, Any]]:
    rows: list[Mapping[str, Any]] = []
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
        rows.append(row)
    return rows


def _row_key(row: Mapping[str, Any]) -> tuple[str, ...]:
    return tuple(str(row.get(k)) for k in ("prompt", "completion", "advantage", "problem_id"))


def _trl_training_rows(path: Path, rows: list[Mapping[str, Any]],
                       out: LoadedRollouts) -> list[Mapping[str, Any]]:
    """TRL rows minus eval rows, and none when the file repeats an earlier file's batch.

    TRL keeps the last generation batch (`generation_batch_size` rows) and writes it at
    every logging step; with `num_iterations > 1` (or `steps_per_generation > 1`) no new
    batch was generated in between and the file holds exactly the rows of an earlier one.
    Sampled batches that are equal row for row do not happen otherwise."""
    if path.parent.name == "eval":
        out.warnings.append(f"{path}: an eval log, skipped")
        return []
    kept = [row for row in rows if row.get("mode") != "eval"]
    if len(kept) < len(rows):
        out.warnings.append(f"{path}: {len(rows) - len(kept)} eval rows skipped (TRL writes "
                            "eval logs under the same names)")
    batch = frozenset(Counter(map(_row_key, kept)).items())
    if kept and batch in out.seen_rows:
        out.warnings.append(f"{path}: the same {len(kept)} rows as an earlier file (TRL logs "
                            "the last generation batch again when num_iterations > 1), read once")
        return []
    out.seen_rows.add(batch)
    return kept


def dump_rollouts(path: Path, fmt: str, skip_bad: bool, correct_column: str | None,
                  out: LoadedRollouts) -> None:
    text_keys = ("input", "output") if fmt == "verl" else ("prompt", "completion")
    rows = _read_rows(path, text_keys, skip_bad, out)
    if fmt == "trl" and rows:
        rows = _trl_training_rows(path, rows, out)
    if not rows:
        out.notes.append(f"{path}: no rollout rows")
        return
    if fmt == "verl":
        rewards = ["score"]
    else:
        rewards = [k for k in rows[0] if k not in _TRL_NON_REWARD and k not in _GOLD_KEYS
                   and k != SVS_REWARD_KEY and isinstance(rows[0][k], int | float)
                   and not isinstance(rows[0][k], bool)]
    source, note = _correctness_source(path, rows, rewards, correct_column)
    out.notes.append(note)
    file_step = _step_from_name(path)
    for row in rows:
        prompt, completion = _text(row[text_keys[0]]), _text(row[text_keys[1]])
        gold = next((row[k] for k in _GOLD_KEYS if row.get(k) is not None), "")
        gold = answer_str(gold) if isinstance(gold, str | int | float) else str(gold)
        pid = row.get("problem_id")
        step = row.get("step", file_step)
        reward = row.get("score") if fmt == "verl" else row.get(
            source if source in rewards else (rewards[0] if rewards else ""))
        value = row.get(source) if source is not None else None
        correct = _correct(value, named_by_user=source == correct_column) if source else None
        extracted = row.get("pred") if isinstance(row.get("pred"), str) else None
        # a logged `pred` of None is the reward's verifier finding no answer: keep that
        # verdict instead of re-extracting with the looser pure-string extractor
        reason = "no_answer" if "pred" in row and row["pred"] is None and correct is False else None
        metadata = {"format": fmt, **{k: v for k, v in row.items()
                                      if k not in (*text_keys, "problem_id", "step") and _plain(v)}}
        has_id = isinstance(pid, str) and bool(pid)
        group = None if has_id else _uid_group(row.get("uid"))
        if group is not None:
            metadata[GROUP_KEY] = group
        out.rollouts.append(Rollout(
            problem_id=pid if has_id else problem_id(prompt, gold),
            prompt=prompt, answer=gold, completion=completion,
            step=int(step) if isinstance(step, int | float | str) and str(step).lstrip("-").isdigit() else None,
            reward=float(reward) if isinstance(reward, int | float) else None,
            correct=correct, extracted=extracted, reason=reason, metadata=metadata))


def logging_gaps(rollouts: list[Rollout]) -> str | None:
    """A warning when TRL completions were logged at steps further apart than 1."""
    steps = sorted({r.step for r in rollouts
                    if r.step is not None and r.metadata.get("format") == "trl"})
    gaps = sorted({b - a for a, b in zip(steps, steps[1:], strict=False)} - {1})
    if not gaps:
        return None
    return (f"TRL logged completions at steps {steps[:6]}{' ...' if len(steps) > 6 else ''}: "
            f"{gaps[0]} or more steps apart (logging_steps > 1), and each file holds only "
            "the last generation batch, so the diagnosis sees only the logged batches; set "
            "logging_steps=1 to see every step")


def _plain(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)
