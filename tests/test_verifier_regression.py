"""Regression table of real model-output shapes through the whole grader.

Each row of `tests/data/verifier_regression.jsonl` is (gold, completion,
expected_correct, expected_reason, note). Every verifier bug found becomes a row; rows
whose behaviour comes from a math-verify limitation say "known limitation" in the note.
The table is graded twice with one pool: with the exact fast path (the default) and
with every pair sent to math-verify, and both must match the table.
"""

import json
from collections import Counter
from pathlib import Path

import pytest

from svs.verifiers.grader import VerifierPool

TABLE = Path(__file__).parent / "data" / "verifier_regression.jsonl"
ROWS = [json.loads(line) for line in TABLE.read_text(encoding="utf-8").splitlines() if line]
REASONS = {"correct", "wrong", "no_answer", "timeout", "worker_crash", "bad_gold",
           "unsafe_input", "answer_too_long"}


@pytest.fixture(scope="module")
def graded():
    pairs = [(row["gold"], row["completion"]) for row in ROWS]
    with VerifierPool(workers=2, timeout_s=2.0) as pool:
        fast = pool.grade(pairs)
        pool.fast_path = False
        full = pool.grade(pairs)
    return {"fast_path": fast, "math_verify_only": full}


def test_table_shape():
    assert len(ROWS) >= 160
    assert all(set(row) == {"gold", "completion", "expected_correct", "expected_reason", "note"}
               for row in ROWS)
    assert len({(row["gold"], row["completion"]) for row in ROWS}) == len(ROWS), "duplicate rows"
    counts = Counter(row["expected_reason"] for row in ROWS)
    assert set(counts) <= REASONS
    # A table of only right answers would not catch a grader that says yes to everything.
    assert counts["wrong"] >= 60 and counts["correct"] >= 60
    for row in ROWS:
        assert row["expected_correct"] == (row["expected_reason"] == "correct"), row["note"]


@pytest.mark.parametrize("mode", ["fast_path", "math_verify_only"])
@pytest.mark.parametrize("index", range(len(ROWS)),
                         ids=[f"{i}-{row['note'][:40]}" for i, row in enumerate(ROWS)])
def test_row(graded, mode, index):
    row = ROWS[index]
    grade = graded[mode][index]
    got = (grade.correct, grade.reason)
    assert got == (row["expected_correct"], row["expected_reason"]), (
        f"{row['note']}: gold {row['gold']!r}, extracted {grade.extracted!r}, "
        f"got {got}, detail {grade.detail!r}")
