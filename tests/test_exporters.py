"""Exports for verl / TRL / OpenRLHF and their importers: layout, round trips, errors."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from svs.core.records import Problem
from svs.trainer_bridge.exporters import (
    DEFAULT_INSTRUCTION,
    ExportConfig,
    export_problems,
    openrlhf_rows,
    trl_rows,
    verl_rows,
)
from svs.trainer_bridge.formats import (
    TrainerFileError,
    import_problems,
    read_problems,
)


@pytest.fixture
def problems() -> list[Problem]:
    original = Problem("What is $3 + 4$?", "7", metadata={"dataset": "toy", "level": 1})
    other = Problem("Solve $x^2 = 9$ for $x > 0$.", "3")
    child = original.variant("A box has 3 red and 4 blue balls. How many balls?",
                             synthesizer="svs", seed_rollout="r-1")
    grandchild = child.variant("Compute $\\frac{14}{2}$.", synthesizer="symbolic")
    return [original, other, child, grandchild]


def test_verl_rows_have_the_layout_rlhfdataset_reads(problems):
    rows = verl_rows(problems)
    row = rows[2]
    assert row["data_source"] == "svs" and row["ability"] == "math"
    assert row["prompt"] == [{"role": "user", "content":
                              f"{problems[2].text} {DEFAULT_INSTRUCTION}"}]
    assert row["reward_model"] == {"style": "rule", "ground_truth": "7"}
    info = row["extra_info"]
    assert info["split"] == "train" and info["index"] == 2
    assert info["problem_id"] == problems[2].id
    assert info["origin_id"] == problems[0].id and info["parent_id"] == problems[0].id
    assert info["generation"] == 1 and info["synthesizer"] == "svs"
    assert info["question"] == problems[2].text
    assert json.loads(info["metadata"]) == {"seed_rollout": "r-1"}


def test_instruction_and_system_prompt_are_configurable(problems):
    config = ExportConfig(instruction="Answer in \\boxed{}.", system_prompt="Be brief.")
    messages = verl_rows(problems[:1], config)[0]["prompt"]
    assert messages == [{"role": "system", "content": "Be brief."},
                        {"role": "user", "content": "What is $3 + 4$? Answer in \\boxed{}."}]
    plain = trl_rows(problems[:1], ExportConfig(instruction="", conversational=False))[0]
    assert plain["prompt"] == "What is $3 + 4$?"


def test_trl_and_openrlhf_rows(problems):
    trl = trl_rows(problems, ExportConfig(conversational=False))[0]
    assert trl["prompt"] == f"What is $3 + 4$? {DEFAULT_INSTRUCTION}"
    assert trl["solution"] == "7" and trl["problem_id"] == problems[0].id
    assert trl["parent_id"] is None and trl["generation"] == 0
    config = ExportConfig(input_key="context_messages", label_key="answer")
    row = openrlhf_rows(problems, config)[3]
    assert row["context_messages"][-1]["role"] == "user"
    assert row["answer"] == "7" and row["generation"] == 2
    assert row["synthesizer"] == "symbolic" and row["origin_id"] == problems[0].id


@pytest.mark.parametrize("fmt,name", [
    ("verl", "train.parquet"),
    ("trl", "train.parquet"),
    ("trl", "train.jsonl"),
    ("trl", "train_ds"),
    ("openrlhf", "train.jsonl"),
    ("openrlhf", "train.parquet"),
])
@pytest.mark.parametrize("conversational", [True, False])
def test_round_trip_gives_identical_problems(problems, tmp_path, fmt, name, conversational):
    config = ExportConfig(conversational=conversational, system_prompt="sys",
                          input_key="query", label_key="gold")
    out = export_problems(problems, fmt, tmp_path / name, config)
    back = import_problems(out, fmt, input_key="query", label_key="gold")
    assert back == problems
    assert [p.id for p in back] == [p.id for p in problems]
    # the format is detected from the columns too
    assert import_problems(out, input_key="query", label_key="gold") == problems


def test_all_null_columns_keep_their_types(tmp_path):
    originals = [Problem("1+1?", "2"), Problem("2+2?", "4")]
    out = export_problems(originals, "verl", tmp_path / "o.parquet")
    fields = pq.read_schema(out).field("extra_info").type
    assert str(fields.field("parent_id").type) == "string"
    assert str(fields.field("synthesizer").type) == "string"


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.text(min_size=1, max_size=40), st.text(min_size=1, max_size=8),
                          st.dictionaries(st.text(max_size=5), st.integers() | st.text(max_size=5),
                                          max_size=3)),
                min_size=1, max_size=5, unique_by=lambda t: (t[0], t[1])))
def test_round_trip_property_jsonl_and_parquet(tmp_path_factory, items):
    problems = [Problem(text, answer, metadata=meta) for text, answer, meta in items]
    if len({p.id for p in problems}) != len(problems):  # texts equal after normalization
        return
    folder = tmp_path_factory.mktemp("rt")
    for fmt, name in (("trl", "a.jsonl"), ("openrlhf", "b.parquet"), ("verl", "c.parquet")):
        out = export_problems(problems, fmt, folder / name)
        assert import_problems(out, fmt) == problems


def test_foreign_verl_file_is_read_as_originals(tmp_path):
    """A verl parquet made by someone else: no svs ids, instruction in the prompt."""
    import pyarrow as pa

    instruction = "Let's think step by step and output the final answer within \\boxed{}."
    rows = [{"data_source": "gsm8k", "ability": "math",
             "prompt": [{"role": "user", "content": "How many legs do 2 cats have? " + instruction}],
             "reward_model": {"style": "rule", "ground_truth": "8"},
             "extra_info": {"split": "train", "index": 0}}]
    path = tmp_path / "gsm8k.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    [problem] = import_problems(path, instruction=instruction)
    assert problem == Problem("How many legs do 2 cats have?", "8")


def test_native_problem_rows_are_read(problems, tmp_path):
    path = tmp_path / "problems.jsonl"
    path.write_text("".join(json.dumps(p.to_row()) + "\n" for p in problems))
    assert read_problems(path) == problems
    path.write_text('{"text": "1+1?", "answer": 2}\n')  # numeric answers are common
    assert read_problems(path) == [Problem("1+1?", "2")]


@pytest.mark.parametrize("fmt,name,match", [
    ("verl", "x.jsonl", "verl exports are written as .parquet"),
    ("openrlhf", "x", "openrlhf exports are written as .jsonl or .parquet"),
    ("csv", "x.csv", "unknown export format 'csv'"),
])
def test_bad_destination_is_refused(problems, tmp_path, fmt, name, match):
    with pytest.raises(ValueError, match=match):
        export_problems(problems, fmt, tmp_path / name)


def test_empty_and_duplicate_sets_are_refused(problems, tmp_path):
    with pytest.raises(ValueError, match="prompt set is empty"):
        export_problems([], "trl", tmp_path / "a.jsonl")
    with pytest.raises(ValueError, match="appears twice"):
        export_problems([problems[0], problems[0]], "trl", tmp_path / "a.jsonl")


def test_config_checks_say_what_to_fix():
    with pytest.raises(ValueError, match="both 'x'"):
        ExportConfig(input_key="x", label_key="x")
    with pytest.raises(ValueError, match="clashes with a column"):
        ExportConfig(label_key="problem_id")
    with pytest.raises(ValueError, match="data_source must be a non-empty string"):
        ExportConfig(data_source=" ")


def test_unserializable_metadata_names_the_problem(tmp_path):
    problem = Problem("q", "1", metadata={"when": object()})
    with pytest.raises(ValueError, match=f"problem {problem.id}: metadata is not JSON"):
        export_problems([problem], "trl", tmp_path / "a.jsonl")


def test_import_errors_name_file_and_row(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"input": "q", "label": "1"}\n{"input": "q2"}\n')
    with pytest.raises(TrainerFileError, match=r"bad\.jsonl:2: missing key 'label'"):
        import_problems(path, "openrlhf")
    path.write_text('{"input": "q", "label": "1"}\nnot json\n')
    with pytest.raises(TrainerFileError, match=r"bad\.jsonl:2: invalid JSON"):
        import_problems(path)
    with pytest.raises(TrainerFileError, match="no such file"):
        import_problems(tmp_path / "missing.parquet")
    with pytest.raises(TrainerFileError, match=r"bad\.jsonl:1: missing key 'answer'; problem rows need"):
        path.write_text('{"question": "q"}\n')
        read_problems(path)


def test_export_replaces_an_existing_file_atomically(problems, tmp_path):
    out = tmp_path / "a.parquet"
    export_problems(problems, "verl", out)
    export_problems(problems[:1], "verl", out)
    assert import_problems(out) == problems[:1]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.parquet"]


def _publish(root, problems):
    from svs.pipeline.lineage import graph_for
    from svs.pipeline.store import NewVersion, PromptStore

    store = PromptStore(root)
    store.publish("math", NewVersion(problems[:2], graph_for(problems[:2], 1)), parent=None)
    store.publish("math", NewVersion(problems, graph_for(problems, 2)), parent=1)
    return store


def test_cli_exports_a_store_version(problems, tmp_path):
    from typer.testing import CliRunner

    from svs.flows.cli import app

    _publish(tmp_path / "store", problems)
    runner = CliRunner()
    out = tmp_path / "verl.parquet"
    result = runner.invoke(app, ["export", "--store", str(tmp_path / "store"), "--set", "math",
                                 "--format", "verl", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "exported 4 problems (2 originals, 2 variants) from math@v2 as verl" in result.output
    assert import_problems(out) == problems
    older = tmp_path / "v1.jsonl"
    result = runner.invoke(app, ["export", "--store", str(tmp_path / "store"), "--set", "math",
                                 "--version", "v1", "-f", "openrlhf", "-o", str(older),
                                 "--plain", "--input-key", "query", "--instruction", ""])
    assert result.exit_code == 0, result.output
    first = json.loads(older.read_text().splitlines()[0])
    assert first["query"] == problems[0].text
    assert import_problems(older, input_key="query", instruction="") == problems[:2]


def test_cli_exports_a_problems_file_and_reports_errors(problems, tmp_path):
    from typer.testing import CliRunner

    from svs.flows.cli import app

    source = tmp_path / "problems.jsonl"
    source.write_text("".join(json.dumps(p.to_row()) + "\n" for p in problems))
    runner = CliRunner()
    result = runner.invoke(app, ["export", "--problems", str(source), "--format", "trl",
                                 "--out", str(tmp_path / "trl_ds")])
    assert result.exit_code == 0, result.output
    assert import_problems(tmp_path / "trl_ds") == problems
    result = runner.invoke(app, ["export", "--format", "trl", "--out", str(tmp_path / "a.jsonl")])
    assert result.exit_code == 2 and "say what to export" in result.output
    result = runner.invoke(app, ["export", "--store", str(tmp_path / "store"), "--set", "nope",
                                 "--format", "trl", "--out", str(tmp_path / "a.jsonl")])
    assert result.exit_code == 2 and "no prompt set 'nope'" in result.output
    result = runner.invoke(app, ["export", "--problems", str(source), "--format", "verl",
                                 "--out", str(tmp_path / "a.jsonl")])
    assert result.exit_code == 2 and "verl exports are written as .parquet" in result.output


def test_store_export_applies_the_version_weights(tmp_path):
    """Weight 0 is never exported, weight 1 always, weight 0.5 about half the time."""
    import networkx as nx

    from svs.pipeline.lineage import add_problems
    from svs.pipeline.store import NewVersion, PromptStore
    from svs.trainer_bridge.formats import load_source

    items = [Problem(f"What is {i} + {i}?", str(2 * i)) for i in range(40)]
    graph = nx.DiGraph()
    add_problems(graph, items, version=1)
    weights = {p.id: 0.0 for p in items[:10]} | {p.id: 0.5 for p in items[10:30]}
    PromptStore(tmp_path).publish("demo", NewVersion(items, graph, weights=weights), parent=None)
    exported, label = load_source(store=tmp_path, set_name="demo")
    ids = {p.id for p in exported}
    assert not ids & {p.id for p in items[:10]}
    assert {p.id for p in items[30:]} <= ids
    assert 0 < len(ids & {p.id for p in items[10:30]}) < 20
    assert load_source(store=tmp_path, set_name="demo")[0] == exported  # deterministic
