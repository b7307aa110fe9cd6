"""The SvS extraction cascade on crafted model outputs."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from svs.synthesizers.extract import MAX_PROBLEM_CHARS, extract_problem

CASES = [
    # (output, expected text, expected method)
    ("Some thoughts.\n```text\nFind x if 2x = 6.\n```\nDone.", "Find x if 2x = 6.", "text_block"),
    ("```python\nprint(1)\n```\n```text\nFirst.\n```\n```text\nSecond.\n```", "Second.",
     "text_block"),
    ("```\nHow many primes are below 10?\n```", "How many primes are below 10?", "fenced_block"),
    ("```markdown\nA.\n```\n```latex\nB.\n```", "A.", "fenced_block"),
    ("Analysis...\n**Reconstructed Question:** What is 2 + 2?", "What is 2 + 2?", "marker"),
    ("<think>```text\ndraft problem\n```</think>\n```text\nFinal problem.\n```", "Final problem.",
     "text_block"),
    ("<think>```text\ndraft\n```</think> no block after thinking", None, "none"),
    ("The problem is about triangles.", None, "none"),
    # svs's fallback (the method's cascade alone finds nothing: test_synth_extract_fallbacks)
    ("```text\nunclosed fence because the output was cut",
     "unclosed fence because the output was cut", "unclosed_fence"),
    ("```text\n   \n```", None, "text_block"),
    ("", None, "none"),
]


@pytest.mark.parametrize("output, text, method", CASES)
def test_cascade(output, text, method):
    extracted = extract_problem(output)
    assert extracted.text == text
    assert extracted.method == method
    assert extracted.ok == (text is not None)
    if text is None:
        assert extracted.detail


def test_overlong_problem_is_refused():
    extracted = extract_problem("```text\n" + "a " * MAX_PROBLEM_CHARS + "\n```")
    assert not extracted.ok and "characters" in extracted.detail


def test_hostile_inputs_finish():
    assert not extract_problem("```text\n" * 200_000).ok
    assert not extract_problem("```" * 300_000).ok
    assert not extract_problem(None).ok  # type: ignore[arg-type]


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_never_raises_and_returns_stripped_text(output):
    extracted = extract_problem(output)
    if extracted.ok:
        assert extracted.text == extracted.text.strip() and extracted.text
