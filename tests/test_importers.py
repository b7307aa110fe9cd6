import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from svs.core.records import Problem, problem_id
from svs.pipeline import lineage
from svs.pipeline.importers import ColumnMap, ImportFileError, import_problems, write_problems
from svs.pipeline.store import NewVersion, PromptStore

ROWS = [
    {"question": "What is 7 * 6?", "final_answer": "$42$", "level": 2, "tags": ["easy"]},
    {"question": "Write 007 without leading zeros.", "final_answer": "007", "level": 1, "tags": []},
    {"question": "Evaluate $\\frac{1}{2}+\\frac{1}{3}$.", "final_answer": "\\boxed{\\frac{5}{6}}",
     "level": 3, "tags": ["fractions", "ünïcode"]},
]


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
                    encoding="utf-8")
    return path


def test_jsonl_columns_guessed_answers_stripped_extras_kept(tmp_path):
    result = import_problems(write_jsonl(tmp_path / "p.jsonl", ROWS))
    problems = result.problems
    assert [p.answer for p in problems] == ["42", "007", "\\frac{5}{6}"]
    assert problems[0].metadata == {"level": 2, "tags": ["easy"]}
    assert problems[0].id == problem_id("What is 7 * 6?", "42")
    assert all(p.is_original and p.origin_id == p.id for p in problems)


def test_ids_are_stable_across_formats_and_runs(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq
    from datasets import Dataset

    jsonl = import_problems(write_jsonl(tmp_path / "p.jsonl", ROWS)).problems
    flat = [{k: v for k, v in r.items() if k != "tags"} for r in ROWS]
    csv_path = tmp_path / "p.csv"
    csv_path.write_text("question,final_answer,level\n" + "".join(
        f'"{r["question"]}","{r["final_answer"]}",{r["level"]}\n' for r in flat), encoding="utf-8")
    pq.write_table(pa.Table.from_pylist(flat), tmp_path / "p.parquet")
    Dataset.from_list(flat).save_to_disk(str(tmp_path / "folder"))
    expected = [p.id for p in jsonl]
    for source in ("p.csv", "p.parquet", "folder"):
        problems = import_problems(tmp_path / source).problems
        assert [p.id for p in problems] == expected, source
    assert import_problems(tmp_path / "p.csv").problems[0].metadata == {"level": "2"}
    assert [p.id for p in import_problems(tmp_path / "p.jsonl").problems] == expected


def test_column_mapping_flags_and_source_id(tmp_path):
    rows = [{"uid": "gsm-1", "q": "What is 2+2?", "a": 4, "solution": "2+2=4"}]
    path = write_jsonl(tmp_path / "p.jsonl", rows)
    with pytest.raises(ImportFileError, match=r"p.jsonl:1: cannot tell which column holds the "
                                              r"problem text.*--text-col"):
        import_problems(path)
    problem = import_problems(path, ColumnMap(text="q", answer="a", id="uid")).problems[0]
    assert (problem.text, problem.answer) == ("What is 2+2?", "4")
    assert problem.metadata == {"source_id": "gsm-1", "solution": "2+2=4"}
    with pytest.raises(ImportFileError, match="no column 'nope' for the answer"):
        import_problems(path, ColumnMap(text="q", answer="nope"))


def test_bad_rows_and_files_are_named(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"problem": "ok", "answer": "1"}\n{"problem": "x", "answer": null}\n')
    with pytest.raises(ImportFileError, match="bad.jsonl:2: the reference answer is empty"):
        import_problems(bad)
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"problem": "ok", "answer": "1"}\n{oops\n')
    with pytest.raises(ImportFileError, match="broken.jsonl:2: invalid JSON"):
        import_problems(broken)
    with pytest.raises(ImportFileError, match="unknown file type"):
        import_problems(_touch(tmp_path / "p.xlsx"))
    with pytest.raises(ImportFileError, match="no such file"):
        import_problems(tmp_path / "missing.jsonl")


def _touch(path):
    path.write_text("")
    return path


def test_duplicates_are_dropped_and_counted(tmp_path):
    rows = [{"problem": "What is 1+1?", "answer": "2"}, {"problem": "What  is 1+1? ", "answer": 2}]
    result = import_problems(write_jsonl(tmp_path / "p.jsonl", rows))
    assert len(result.problems) == 1 and result.duplicates == 1


@pytest.mark.parametrize("suffix", [".jsonl", ".csv", ".parquet"])
def test_import_store_export_import_is_lossless(tmp_path, suffix):
    imported = import_problems(write_jsonl(tmp_path / "p.jsonl", ROWS)).problems
    child = imported[0].variant("Compute six times seven.", synthesizer="svs", seed_rollout="r1")
    grandchild = child.variant("Six sevens make?", synthesizer="symbolic")
    store = PromptStore(tmp_path / "store")
    graph = lineage.graph_for(imported, 1)
    lineage.add_problems(graph, [child, grandchild], 1)
    problems = [*imported, child, grandchild]
    store.publish("m", NewVersion(problems, graph, weights={child.id: 0.25}), parent=None)
    stored = store.load("m")
    # the parent of the grandchild is exported without its own parent: still lossless
    out = tmp_path / f"export{suffix}"
    write_problems(out, stored.problems[1:], stored.weights)
    again = import_problems(out)
    if suffix == ".csv":  # CSV holds strings only; metadata travels as JSON text
        assert [p.metadata for p in again.problems] == [p.metadata for p in stored.problems[1:]]
    assert again.problems == list(stored.problems[1:])
    assert again.weights[child.id] == 0.25
    regraph = lineage.graph_for(again.problems, 1)
    assert lineage.depth(regraph, grandchild.id) == 2


def test_edited_text_gets_a_new_id(tmp_path):
    problem = Problem("What is 3+3?", "6")
    out = tmp_path / "p.jsonl"
    write_problems(out, [problem])
    row = json.loads(out.read_text())
    row["text"] = "What is 3 + 3?"
    out.write_text(json.dumps(row) + "\n")
    edited = import_problems(out).problems[0]
    assert edited.id == problem_id("What is 3 + 3?", "6") != problem.id
    assert edited.origin_id == edited.id


_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=40).filter(
    lambda s: s.strip())
_JSON = st.recursive(st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.text(max_size=8),
                     lambda inner: st.lists(inner, max_size=3)
                     | st.dictionaries(st.text(max_size=5), inner, max_size=3), max_leaves=6)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.tuples(_TEXT, _TEXT, st.dictionaries(st.text(max_size=6), _JSON, max_size=3)),
                     min_size=1, max_size=5))
@pytest.mark.parametrize("suffix", [".jsonl", ".csv", ".parquet"])
def test_write_then_import_is_lossless_for_any_text(tmp_path, suffix, rows):
    problems = list({p.id: p for p in (Problem(t, a, metadata=m) for t, a, m in rows)}.values())
    out = tmp_path / f"p{suffix}"
    write_problems(out, problems)
    assert import_problems(out).problems == problems


def test_text_that_is_not_utf8_is_refused_with_its_row(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text('{"problem": "ok", "answer": "1"}\n{"problem": "bad \\ud800", "answer": "2"}\n')
    with pytest.raises(ImportFileError, match="p.jsonl:2: .*not valid Unicode"):
        import_problems(path)
