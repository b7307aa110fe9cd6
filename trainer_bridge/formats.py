"""Read trainer files back into `Problem`s: our own exports and foreign ones.

`import_problems` reads a verl parquet, a TRL dataset (parquet, jsonl or a
`save_to_disk` folder) or an OpenRLHF jsonl/parquet. Our exports carry the raw problem
text and the lineage fields, so they come back identical (same ids). Foreign files
(verl's own preprocessing scripts, someone's TRL dataset) come back as originals: the
text is the last user message with the solve instruction stripped, the answer is the
ground truth, and ids are derived from content.

`read_problems` reads svs's native problem rows (`Problem.to_row`, jsonl or parquet).
Errors name the file and the 1-based row.
"""

from __future__ import annotations

import json
import numbers
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from svs.core.records import Problem
from svs.trainer_bridge.exporters import DEFAULT_INSTRUCTION, FORMATS


class TrainerFileError(ValueError):
    """A trainer or problem file could not be read; the message names file and row."""

    def __init__(self, path: Path | str, row: int | None, message: str) -> None:
        self.path, self.row = str(path), row
        where = f"{path}:{row}" if row is not None else str(path)
        super().__init__(f"{where}: {message}")


def iter_rows(path: Path | str) -> Iterator[tuple[int, Mapping[str, Any]]]:
    """Yield (1-based row, row) from a .jsonl, .csv, .parquet or a `datasets` folder
    (`pipeline.importers.iter_table`, with this module's error type)."""
    from svs.pipeline.importers import ImportFileError, iter_table

    try:
        yield from iter_table(path)
    except ImportFileError as exc:
        raise TrainerFileError(exc.path, exc.row, exc.message) from exc


def detect_format(row: Mapping[str, Any], input_key: str = "input") -> str:
    if "reward_model" in row and "prompt" in row:
        return "verl"
    if "solution" in row and "prompt" in row:
        return "trl"
    if input_key in row:
        return "openrlhf"
    raise ValueError(f"cannot tell the trainer format from columns {sorted(row)}; "
                     f"pass the format ({', '.join(FORMATS)}) and, for OpenRLHF, the input key")


def user_text(prompt: Any) -> str:
    """The text of a prompt: a plain string, or the last user message of a chat."""
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, list):
        for message in reversed(prompt):
            if isinstance(message, Mapping) and message.get("role") == "user":
                content = message.get("content")
                if isinstance(content, str):
                    return content
    raise ValueError("prompt is neither a string nor chat messages with a user message")


def strip_instruction(text: str, instruction: str) -> str:
    if instruction and text.endswith(instruction):
        return text[: -len(instruction)].rstrip()
    return text


def _answer(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        raise ValueError(f"reference answer must be a string or a number, got {value!r}")
    if isinstance(value, str):
        return str(value)
    if isinstance(value, numbers.Real):
        return str(value.item() if hasattr(value, "item") else value)
    raise ValueError(f"reference answer must be a string or a number, got {type(value).__name__}")


def _metadata(value: Any) -> Mapping[str, Any]:
    if value in (None, ""):
        return {}
    if isinstance(value, Mapping):
        return value
    parsed = json.loads(value)
    if not isinstance(parsed, dict):
        raise ValueError("metadata must be a JSON object")
    return parsed


def problem_from_row(row: Mapping[str, Any], fmt: str, *, input_key: str = "input",
                     label_key: str = "label",
                     instruction: str = DEFAULT_INSTRUCTION) -> Problem:
    """One trainer row -> Problem. Raises ValueError (or KeyError) on a malformed row."""
    if fmt == "verl":
        identity = row.get("extra_info") or {}
        reward_model = row["reward_model"] or {}
        answer, prompt = reward_model["ground_truth"], row["prompt"]
    elif fmt == "trl":
        identity, answer, prompt = row, row["solution"], row["prompt"]
    elif fmt == "openrlhf":
        identity, answer, prompt = row, row[label_key], row[input_key]
    else:
        raise ValueError(f"unknown trainer format {fmt!r}; choose one of {', '.join(FORMATS)}")
    text = identity.get("question")
    if not isinstance(text, str):
        text = strip_instruction(user_text(prompt), instruction)
    generation = identity.get("generation")
    return Problem(
        text=text,
        answer=_answer(answer),
        id=identity.get("problem_id") or "",
        source=identity.get("source") or "original",
        origin_id=identity.get("origin_id") or "",
        parent_id=identity.get("parent_id") or None,
        generation=int(generation) if generation is not None else 0,
        synthesizer=identity.get("synthesizer") or None,
        metadata=_metadata(identity.get("metadata")),
    )


def import_problems(path: Path | str, fmt: str | None = None, *, input_key: str = "input",
                    label_key: str = "label",
                    instruction: str = DEFAULT_INSTRUCTION) -> list[Problem]:
    """Read a trainer file back into problems (format detected from the first row if None).

    `instruction` is the solve instruction stripped from prompts of foreign files that do
    not carry the raw problem text; `input_key`/`label_key` name OpenRLHF's keys.
    """
    problems = []
    for number, row in iter_rows(path):
        try:
            fmt = fmt or detect_format(row, input_key)
            problems.append(problem_from_row(row, fmt, input_key=input_key,
                                             label_key=label_key, instruction=instruction))
        except KeyError as exc:
            raise TrainerFileError(path, number, f"missing key {exc} for a {fmt} row") from exc
        except (TypeError, ValueError) as exc:
            raise TrainerFileError(path, number, str(exc)) from exc
    return problems


def read_problems(path: Path | str) -> list[Problem]:
    """Read native problem rows (`Problem.to_row`), from .jsonl or .parquet."""
    problems = []
    for number, row in iter_rows(path):
        try:
            problems.append(Problem.from_row({**row, "answer": _answer(row["answer"]),
                                              "metadata": _metadata(row.get("metadata"))}))
        except KeyError as exc:
            raise TrainerFileError(path, number, f"missing key {exc}; problem rows need "
                                                 "`text` and `answer`") from exc
        except (TypeError, ValueError) as exc:
            raise TrainerFileError(path, number, str(exc)) from exc
    return problems


def load_source(*, store: Path | str | None = None, set_name: str | None = None,
                version: str | int | None = None,
                problems_file: Path | str | None = None) -> tuple[list[Problem], str]:
    """The problems to export and a label saying where they came from.

    Either a prompt-store set (`store` + `set_name`, the current version unless
    `version` is given, e.g. "v3"; its weights applied, see `pipeline.refresh.apply_weights`)
    or a native problems file; not both.
    """
    if problems_file is not None:
        if store is not None or set_name is not None or version is not None:
            raise ValueError("give either --problems FILE or --store/--set[/--version], not both")
        return read_problems(problems_file), str(problems_file)
    if store is None or set_name is None:
        raise ValueError("say what to export: --store DIR --set NAME [--version vN], "
                         "or --problems FILE (native problem rows)")
    from svs.pipeline.store import PromptStore, StoreError, parse_version

    prompt_store = PromptStore(store)
    if not prompt_store.exists(set_name):
        known = ", ".join(prompt_store.names()) or "none"
        raise StoreError(f"no prompt set {set_name!r} in {store} (sets there: {known})")
    from svs.pipeline.refresh import apply_weights

    loaded = prompt_store.load(set_name, None if version is None else parse_version(version))
    # The version's sampling weights become what the trainer sees: a down-weighted
    # (memorized) problem of weight 0.25 is kept with probability 0.25, drawn by a hash
    # of (version, id) so the same version always exports the same rows.
    problems = apply_weights(loaded.problems, loaded.weights, seed=loaded.version)
    return problems, loaded.label


def export_version(store: Any, name: str, version: int,
                   targets: Mapping[str, str]) -> dict[str, str]:
    """Export `name@v{version}` of a PromptStore to each {format: path}; returns what was
    written (the refresh's last stage)."""
    from svs.trainer_bridge.exporters import export_problems

    problems, _ = load_source(store=store.root, set_name=name, version=version)
    return {fmt: str(export_problems(problems, fmt, path)) for fmt, path in targets.items()}
