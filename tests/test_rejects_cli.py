"""`svs rejects`: a version's rejects by stage and reason, with examples, filterable."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from svs.core.records import Problem
from svs.flows.cli import app
from svs.pipeline import lineage
from svs.pipeline.store import NewVersion, PromptStore

PROBLEMS = [Problem("What is 2 + 3 in this little sum?", "5"),
            Problem("What is 7 times 6 in this product?", "42")]
REJECTS = [
    {"stage": "verify", "reason": "tag_soup", "detail": "5 tags make up 88% of the text",
     "text": "<providers>\n</providers>\n<problem>"},
    {"stage": "verify", "reason": "tag_soup", "detail": "3 tags", "text": "<a><b><c>"},
    {"stage": "verify", "reason": "unsolvable", "detail": "solved 0/8",
     "text": "How many apples are in the empty basket?"},
    {"stage": "verify", "reason": "no_problem_extracted", "detail": "no fenced block",
     "raw_output": "I cannot write a problem for this."},
]


def _store(tmp_path):
    store = PromptStore(tmp_path / "store")
    store.publish("toy", NewVersion(PROBLEMS, lineage.graph_for(PROBLEMS, 1)), parent=None)
    store.publish("toy", NewVersion(PROBLEMS, lineage.graph_for(PROBLEMS, 2), rejects=REJECTS),
                  parent=1)
    return tmp_path / "store"


def test_rejects_lists_counts_and_examples_by_reason(tmp_path):
    store = _store(tmp_path)
    result = CliRunner().invoke(app, ["rejects", "--set", "toy", "--store", str(store)],
                                terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "toy@v2" in result.output
    counts = [line.replace("│", " ").split() for line in result.output.splitlines()]
    assert ["verify", "tag_soup", "2"] in counts
    assert ["verify", "unsolvable", "1"] in counts
    assert "I cannot write a problem" in result.output  # raw output when no text
    assert "empty basket" in result.output


def test_rejects_filters_by_reason_and_version(tmp_path):
    store = _store(tmp_path)
    result = CliRunner().invoke(app, ["rejects", "--set", "toy", "--store", str(store),
                                      "--reason", "unsolvable", "--json"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.output.splitlines()]
    assert [r["reason"] for r in rows] == ["unsolvable"]
    first = CliRunner().invoke(app, ["rejects", "--set", "toy", "--store", str(store),
                                     "--version", "v1", "--json"])
    assert first.exit_code == 0 and first.output == ""


def test_rejects_of_a_missing_set_is_one_error_line(tmp_path):
    result = CliRunner().invoke(app, ["rejects", "--set", "nope", "--store", str(tmp_path)])
    assert result.exit_code == 2
    assert "error:" in result.output
