"""Parse bombs in problem text (model-written in later rounds) end in ParseError, fast.

These run in the caller's process, so each case is run in a child with a time limit: a
regression hangs the child, not the test session.
"""

import subprocess
import sys

import pytest

BOMBS = [
    "(" * 6 + "9" + ")^{20}" * 6,
    "((((9^{20})^{20})^{20})^{20})^{20}",
    "((((x+1)^{20})^{20})^{20})^{20}",
    "((((\\frac{1}{3})^{20})^{20})^{20})^{20}",
]


@pytest.mark.parametrize("text", BOMBS)
def test_nested_powers_are_refused_quickly(text):
    code = ("from svs.verifiers.mathparse import ParseError, parse_expression\n"
            f"try:\n    parse_expression({text!r})\nexcept ParseError as e:\n    print('refused', e)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("refused"), done.stdout


def test_ordinary_powers_still_parse():
    from svs.verifiers.mathparse import parse_expression

    assert parse_expression("2^{10} + (x+1)^2") is not None
    assert parse_expression("(10^{12})^{20}") == 10**240
