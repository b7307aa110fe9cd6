"""`svs grade` and the native rollout reader on good and malformed files."""

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from svs.flows.cli import app
from svs.pipeline.rollouts import RolloutFileError, read_native

runner = CliRunner()

GOOD = [
    {"problem_id": "p1", "prompt": "1+1?", "answer": "2", "completion": "so \\boxed{2}", "step": 1},
    {"problem_id": "p1", "prompt": "1+1?", "answer": "2", "completion": "Answer: 3", "extra": "kept"},
    {"problem_id": "p2", "prompt": "half?", "answer": "\\frac{1}{2}", "completion": "it is $0.5$",
     "token_logprobs": [-0.1, -0.2]},
    {"problem_id": "p3", "prompt": "x?", "answer": 7, "completion": "I do not know"},
]


def write_jsonl(path, rows, extra_lines=()):
    with open(path, "w") as handle:
        for row in rows:
            handle.write(json.dumps(row) + "\n")
        for line in extra_lines:
            handle.write(line + "\n")


def read_jsonl(path):
    return [json.loads(line) for line in open(path)]


def test_grade_jsonl_adds_columns_and_keeps_everything(tmp_path):
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write_jsonl(src, GOOD)
    result = runner.invoke(app, ["grade", str(src), "--out", str(out)])
    assert result.exit_code == 0, result.output
    rows = read_jsonl(out)
    assert [r["correct"] for r in rows] == [True, False, True, False]
    assert [r["reason"] for r in rows] == ["correct", "wrong", "correct", "no_answer"]
    assert rows[0]["extracted"] == "2" and rows[3]["extracted"] is None
    # how each answer was found: a box, an answer line, LaTeX at the end, nothing
    assert [r["method"] for r in rows] == ["boxed", "final_answer", "latex_tail", "none"]
    assert rows[1]["extra"] == "kept" and rows[2]["token_logprobs"] == [-0.1, -0.2]
    assert "correct" in result.output and "accuracy 0.500" in result.output


def test_grade_parquet_round_trip(tmp_path):
    src, out = tmp_path / "in.parquet", tmp_path / "out.parquet"
    rows = [{k: v for k, v in row.items() if k in ("problem_id", "prompt", "answer", "completion")}
            for row in GOOD[:3]]
    pq.write_table(pa.Table.from_pylist(rows), src)
    result = runner.invoke(app, ["grade", str(src), "--out", str(out)])
    assert result.exit_code == 0, result.output
    graded = pq.read_table(out).to_pylist()
    assert [r["correct"] for r in graded] == [True, False, True]


@pytest.mark.parametrize(
    ("bad_line", "message"),
    [
        ('{"problem_id": "p9", "prompt": "q", "answer": "1"', "bad JSON"),
        ('{"problem_id": "p9", "prompt": "q", "answer": "1"}', "missing field(s): completion"),
        ('{"problem_id": "p9", "prompt": "q", "answer": "1", "completion": ["a"]}', "'completion' must be a string"),
        ('{"problem_id": "p9", "prompt": "q", "answer": "1", "completion": "c", "step": "two"}', "'step' must be an integer"),
        ('[1, 2, 3]', "expected a JSON object"),
    ],
)
def test_malformed_row_names_file_and_line(tmp_path, bad_line, message):
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write_jsonl(src, GOOD[:2], extra_lines=[bad_line])
    write_jsonl(tmp_path / "tail.jsonl", GOOD[2:])
    with pytest.raises(RolloutFileError) as info:
        read_native(src)
    assert f"{src}:3:" in str(info.value) and message in str(info.value)

    result = runner.invoke(app, ["grade", str(src), "--out", str(out)])
    assert result.exit_code == 2
    assert f"{src.name}:3" in result.output.replace("\n", "") and not out.exists()

    # With --skip-bad: the bad row is counted, every good row is graded and written.
    with open(src, "a") as handle:
        handle.write(json.dumps(GOOD[3]) + "\n")
    result = runner.invoke(app, ["grade", str(src), "--out", str(out), "--skip-bad"])
    assert result.exit_code == 0, result.output
    assert "skipped 1 malformed rows" in result.output
    assert [r["problem_id"] for r in read_jsonl(out)] == ["p1", "p1", "p3"]


def test_invalid_utf8_is_kept_and_graded(tmp_path):
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    good = json.dumps(GOOD[0]).encode()
    broken = b'{"problem_id": "p5", "prompt": "q", "answer": "4", "completion": "\xff\xfe \\\\boxed{4}"}'
    src.write_bytes(good + b"\n" + broken + b"\n")
    result = runner.invoke(app, ["grade", str(src), "--out", str(out)])
    assert result.exit_code == 0, result.output
    rows = read_jsonl(out)
    assert rows[1]["correct"] is True
    # nothing lost: the invalid bytes come back exactly
    assert rows[1]["completion"].encode("utf-8", "surrogateescape").startswith(b"\xff\xfe")


def test_unknown_file_type_and_missing_file(tmp_path):
    (tmp_path / "x.csv").write_text("problem_id,prompt\n")
    with pytest.raises(RolloutFileError, match="unknown file type"):
        read_native(tmp_path / "x.csv")
    with pytest.raises(RolloutFileError, match="no such file"):
        read_native(tmp_path / "missing.jsonl")


def test_shipped_sample_grades():
    rollouts, _ = read_native("examples/rollouts.jsonl")
    assert len(rollouts) == 32 and len({r.problem_id for r in rollouts}) == 8
