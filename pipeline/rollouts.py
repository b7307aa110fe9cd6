"""Rollout readers: files in, validated `Rollout` records out.

`load_rollouts` reads every supported format (auto-detected per file): the native one
(`rollout_files`) and trainer dumps (`dumps`: verl, TRL), then grades the rows that carry
no correctness with the sandboxed verifier.

Reader errors name the file and the line; with `skip_bad=True` bad rows are counted and
reported instead, and good rows are never dropped either way.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from svs.core.records import Rollout, RolloutGroup
from svs.pipeline.dumps import (  # noqa: F401 - re-exported: the readers' one entry module
    FORMATS,
    GROUP_KEY,
    LoadedRollouts,
    detect_format,
    dump_rollouts,
    expand_paths,
    logging_gaps,
)
from svs.pipeline.rollout_files import (  # noqa: F401 - re-exported
    NATIVE_REQUIRED,
    ReadResult,
    RolloutFileError,
    iter_records,
    read_native,
    read_native_rows,
    rollout_from_row,
)


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
            dump_rollouts(path, fmt, skip_bad, correct_column, out)
    if gap := logging_gaps(out.rollouts):
        out.warnings.append(gap)
    out.seen_rows.clear()
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
    out.notes[:0] = [f"warning: {warning}" for warning in out.warnings]
    return out


def groups_from_rollouts(rollouts: list[Rollout]) -> list[RolloutGroup]:
    """One RolloutGroup per (problem_id, step, verl GRPO group), in order of first
    appearance (a verl V1 dump without ids keeps one group per prompt uuid of its uid)."""
    by_key: dict[tuple[str, int | None, str | None], list[Rollout]] = {}
    for rollout in rollouts:
        key = (rollout.problem_id, rollout.step, rollout.metadata.get(GROUP_KEY))
        by_key.setdefault(key, []).append(rollout)
    return [RolloutGroup.from_rollouts(members, step=step) for (_, step, _), members in by_key.items()]


def load_rollout_groups(paths: list[Path | str] | Path | str, *, skip_bad: bool = False,
                        progress: bool = False, correct_column: str | None = None,
                        timeout_s: float | None = None) -> list[RolloutGroup]:
    """The one entry point: files or folders in, graded RolloutGroups per (problem, step)."""
    loaded = load_rollouts(paths, skip_bad=skip_bad, progress=progress,
                           correct_column=correct_column, timeout_s=timeout_s)
    return groups_from_rollouts(loaded.rollouts)
