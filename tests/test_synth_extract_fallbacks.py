"""svs's extraction fallbacks after the method's cascade, each recorded as the method."""

from __future__ import annotations

import pytest

from svs.core.records import Problem
from svs.synthesizers.extract import extract_problem
from svs.synthesizers.registry import Seed
from svs.synthesizers.svs import SvSConfig, candidates_from_outputs


@pytest.mark.parametrize("output, text, method", [
    ("Sure! The new problem: A box has 3 red and 4 blue balls. How many balls are there?\n"
     "Solution: 3 + 4 = 7", "A box has 3 red and 4 blue balls. How many balls are there?",
     "problem_marker"),
    ("**New Problem:** Find the sum of 3 and 4.\n\n**Answer:** 7",
     "Find the sum of 3 and 4.", "problem_marker"),
    ("Here it is:\n```text\nFind x such that x + 1 = 3.", "Find x such that x + 1 = 3.",
     "unclosed_fence"),
    # the method's cascade still comes first
    ("Problem: ignored\n```text\nHow many?\n```", "How many?", "text_block"),
    ("Reconstructed Question: How many balls?", "How many balls?", "marker"),
])
def test_fallbacks_find_problems_the_cascade_missed(output, text, method):
    found = extract_problem(output)
    assert (found.text, found.method) == (text, method)


def test_fallbacks_can_be_turned_off():
    output = "The new problem: Find the sum of 3 and 4."
    assert extract_problem(output, fallbacks=False).text is None
    assert extract_problem(output).text == "Find the sum of 3 and 4."


def test_candidates_record_the_extraction_method():
    seed = Seed(Problem("What is 3 + 4?", "7"), "3 + 4 = 7, so \\boxed{7}.")
    outputs = ["The new problem: Find the sum of 3 and 4.", "nothing here",
               "```text\nWhat is 4 + 3?\n```"]
    candidates = candidates_from_outputs(seed, outputs, SvSConfig())
    assert [c.problem.metadata["extraction"] if c.problem else c.reason
            for c in candidates] == ["problem_marker", "no_problem_extracted", "text_block"]
    strict = candidates_from_outputs(seed, outputs, SvSConfig(extraction_fallbacks=False))
    assert strict[0].reason == "no_problem_extracted"


def test_fallbacks_stay_linear_on_hostile_output():
    import time

    output = "problem:" * 50_000 + "```" * 30_001
    started = time.perf_counter()
    extract_problem(output)
    assert time.perf_counter() - started < 2.0
