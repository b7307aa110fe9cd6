r"""Export a prompt set (a list of `Problem`) in the formats external trainers load.

- verl: parquet for `RLHFDataset`: `data_source`, `prompt` (chat messages), `ability`,
  `reward_model: {style: "rule", ground_truth}`, `extra_info` (split, index, the problem
  text and svs's lineage fields). verl hands `extra_info` to the reward function, so our
  `compute_score` can return the problem id and verl's rollout dumps can be grouped.
- TRL: a dataset with a `prompt` column (chat messages or a plain string) and a
  `solution` column; every other column reaches TRL reward functions as a keyword
  argument, so the id columns are there for them too.
- OpenRLHF: jsonl (or parquet) with an input key and a label key, both named by the
  caller (`--data.input_key`, `--data.label_key` on the OpenRLHF side), `datasource`
  (OpenRLHF's per-row data source, our `data_source`), plus the ids.

Every format carries the raw problem text and the lineage fields, so
`trainer_bridge.formats.import_problems` reads an export back into identical problems.
`metadata` travels as a JSON string: a parquet struct column would merge the keys of all
rows and hand back nulls that were never there.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from svs.core.constants import SOLVE_INSTRUCTION
from svs.core.records import Problem

# The solve instruction of the SvS paper's scripts, appended to every problem.
DEFAULT_INSTRUCTION = SOLVE_INSTRUCTION  # the method's solve instruction (svs.core.constants)
FORMATS = ("verl", "trl", "openrlhf")
# Suffixes each format may be written as; no suffix means a `datasets` folder
# (`Dataset.save_to_disk`), which only TRL loads directly.
SUFFIXES = {
    "verl": (".parquet",),
    "trl": (".parquet", ".jsonl", ""),
    "openrlhf": (".jsonl", ".parquet"),
}
# Columns (TRL, OpenRLHF) and extra_info keys (verl) that carry a problem's identity.
ID_FIELDS = ("problem_id", "origin_id", "parent_id", "generation", "synthesizer", "source")


@dataclass(frozen=True)
class ExportConfig:
    """How problems are turned into trainer rows."""

    instruction: str = field(default=DEFAULT_INSTRUCTION, metadata={
        "help": "Solve instruction appended to every problem (after a space); '' for none. "
                "The default is the SvS paper's."})
    system_prompt: str | None = field(default=None, metadata={
        "help": "Optional system message put before the user message in chat prompts."})
    conversational: bool = field(default=True, metadata={
        "help": "TRL and OpenRLHF prompts as chat messages (True) or a plain string "
                "(False). verl prompts are always chat messages. OpenRLHF needs "
                "--data.apply_chat_template for chat messages."})
    data_source: str = field(default="svs", metadata={
        "help": "verl `data_source` / OpenRLHF `datasource`: verl logs validation metrics "
                "per data source and, without a custom reward, picks its built-in scorer "
                "by it."})
    ability: str = field(default="math", metadata={"help": "verl `ability` column."})
    split: str = field(default="train", metadata={"help": "Split name put in verl extra_info."})
    input_key: str = field(default="input", metadata={
        "help": "OpenRLHF key holding the prompt (pass the same to --data.input_key)."})
    label_key: str = field(default="label", metadata={
        "help": "OpenRLHF key holding the reference answer (--data.label_key)."})

    def __post_init__(self) -> None:
        if not isinstance(self.instruction, str):
            raise TypeError("ExportConfig.instruction must be a string ('' for none)")
        for name in ("data_source", "ability", "split", "input_key", "label_key"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"ExportConfig.{name} must be a non-empty string, got {value!r}")
        reserved = {"question", "metadata", "datasource", *ID_FIELDS}
        if self.input_key == self.label_key:
            raise ValueError(f"ExportConfig.input_key and label_key are both {self.input_key!r}; "
                             "give them different names")
        for name in ("input_key", "label_key"):
            if getattr(self, name) in reserved:
                raise ValueError(f"ExportConfig.{name}={getattr(self, name)!r} clashes with a "
                                 f"column svs writes itself; pick another (not {sorted(reserved)})")


def prompt_text(problem: Problem, config: ExportConfig) -> str:
    """The user message: the problem, then the solve instruction."""
    if not config.instruction:
        return problem.text
    return f"{problem.text} {config.instruction}"


def chat_messages(problem: Problem, config: ExportConfig) -> list[dict[str, str]]:
    messages = []
    if config.system_prompt:
        messages.append({"role": "system", "content": config.system_prompt})
    messages.append({"role": "user", "content": prompt_text(problem, config)})
    return messages


def metadata_json(problem: Problem) -> str:
    try:
        return json.dumps(dict(problem.metadata), sort_keys=True, ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"problem {problem.id}: metadata is not JSON-serializable ({exc}); "
                         "keep metadata to strings, numbers, lists and dicts") from exc


def id_fields(problem: Problem) -> dict[str, Any]:
    return {
        "problem_id": problem.id,
        "origin_id": problem.origin_id,
        "parent_id": problem.parent_id,
        "generation": problem.generation,
        "synthesizer": problem.synthesizer,
        "source": problem.source,
    }


def _identity(problem: Problem) -> dict[str, Any]:
    """Everything an importer needs to rebuild the problem, besides the answer."""
    return {**id_fields(problem), "question": problem.text, "metadata": metadata_json(problem)}


def verl_rows(problems: Sequence[Problem], config: ExportConfig | None = None) -> list[dict]:
    config = config or ExportConfig()
    return [{
        "data_source": config.data_source,
        "prompt": chat_messages(problem, config),
        "ability": config.ability,
        "reward_model": {"style": "rule", "ground_truth": problem.answer},
        "extra_info": {"split": config.split, "index": index, **_identity(problem)},
    } for index, problem in enumerate(problems)]


def trl_rows(problems: Sequence[Problem], config: ExportConfig | None = None) -> list[dict]:
    config = config or ExportConfig()
    return [{
        "prompt": chat_messages(problem, config) if config.conversational
        else prompt_text(problem, config),
        "solution": problem.answer,
        **_identity(problem),
    } for problem in problems]


def openrlhf_rows(problems: Sequence[Problem], config: ExportConfig | None = None) -> list[dict]:
    config = config or ExportConfig()
    return [{
        config.input_key: chat_messages(problem, config) if config.conversational
        else prompt_text(problem, config),
        config.label_key: problem.answer,
        "datasource": config.data_source,
        **_identity(problem),
    } for problem in problems]


def _schema(fmt: str, config: ExportConfig):
    """Explicit Arrow types, so all-null columns (e.g. parent_id of originals) stay strings."""
    import pyarrow as pa

    messages = pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))
    identity = [
        ("problem_id", pa.string()), ("origin_id", pa.string()), ("parent_id", pa.string()),
        ("generation", pa.int64()), ("synthesizer", pa.string()), ("source", pa.string()),
        ("question", pa.string()), ("metadata", pa.string()),
    ]
    prompt_type = messages if config.conversational else pa.string()
    if fmt == "verl":
        return pa.schema([
            ("data_source", pa.string()), ("prompt", messages), ("ability", pa.string()),
            ("reward_model", pa.struct([("style", pa.string()), ("ground_truth", pa.string())])),
            ("extra_info", pa.struct([("split", pa.string()), ("index", pa.int64()), *identity])),
        ])
    if fmt == "trl":
        return pa.schema([("prompt", prompt_type), ("solution", pa.string()), *identity])
    return pa.schema([(config.input_key, prompt_type), (config.label_key, pa.string()),
                      ("datasource", pa.string()), *identity])


ROW_BUILDERS = {"verl": verl_rows, "trl": trl_rows, "openrlhf": openrlhf_rows}


def check_destination(fmt: str, out: Path | str) -> Path:
    """Validate format and output suffix before any work; returns `out` as a Path."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    out = Path(out)
    if out.suffix not in SUFFIXES[fmt]:
        shown = [s or "a folder (no suffix)" for s in SUFFIXES[fmt]]
        raise ValueError(f"{out}: {fmt} exports are written as {' or '.join(shown)}")
    return out


def export_problems(problems: Sequence[Problem], fmt: str, out: Path | str,
                    config: ExportConfig | None = None) -> Path:
    """Write `problems` for trainer `fmt` to `out` (atomically: temp file, then rename).

    Returns the path written. Raises ValueError for an unknown format, a suffix the
    format cannot use, an empty problem list, or duplicate problem ids.
    """
    config = config or ExportConfig()
    out = check_destination(fmt, out)
    if not problems:
        raise ValueError("no problems to export: the prompt set is empty")
    seen: dict[str, int] = {}
    for index, problem in enumerate(problems):
        if problem.id in seen:
            raise ValueError(f"problem id {problem.id} appears twice (rows {seen[problem.id]} "
                             f"and {index}); de-duplicate the prompt set before exporting")
        seen[problem.id] = index
    rows = ROW_BUILDERS[fmt](problems, config)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    if out.suffix == ".jsonl":
        with open(tmp, "w", encoding="utf-8") as handle:
            for row in rows:
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    else:
        import pyarrow as pa

        table = pa.Table.from_pylist(rows, schema=_schema(fmt, config))
        if out.suffix == ".parquet":
            import pyarrow.parquet as pq

            pq.write_table(table, tmp)
        else:
            import shutil

            from datasets import Dataset

            Dataset(table).save_to_disk(str(tmp))
            if out.exists():
                shutil.rmtree(out)
    os.replace(tmp, out)
    return out


def summarize(problems: Sequence[Problem]) -> Mapping[str, int]:
    """Counts shown after an export: problems, originals, variants."""
    originals = sum(1 for p in problems if p.is_original)
    return {"problems": len(problems), "originals": originals,
            "variants": len(problems) - originals}
