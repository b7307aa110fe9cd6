"""The symbolic synthesizer: strict parsing, and answers proven by computation."""

from __future__ import annotations

import pytest
import sympy
from hypothesis import given, settings
from hypothesis import strategies as st

from svs.core.records import Problem
from svs.synthesizers.registry import Seed, synthesize
from svs.synthesizers.symbolic import SymbolicConfig
from svs.verifiers.grader import grade_batch
from svs.verifiers.mathparse import ParseError, parse_equation, parse_expression
from svs.verifiers.sympy_answers import answer_text, find_math, seed_value

ARITHMETIC = Problem("What is the value of $3 \\times 4 + 5$?", "17")
LINEAR = Problem("Solve for $x$: $3x + 5 = 20$.", "5")
QUADRATIC = Problem("Find the sum of the roots of x^2 - 5x + 6 = 0 in this case.", "5")
TEMPLATE = Problem("Tom has 3 apples and buys 4 more apples. How many apples has he?", "7",
                   metadata={"template": "Tom has {a} apples and buys {b} more apples. "
                                         "How many apples has he?",
                             "variables": {"a": 3, "b": 4}, "answer_formula": "a + b"})
PROSE = Problem("Prove that there are infinitely many prime numbers.", "QED")


@pytest.mark.parametrize("text, value", [
    ("1 + 2 * 3", 7), ("(1 + 2) * 3", 9), ("2^3^2", 512), ("-3^2", -9), ("\\frac{3}{4} + 1", "7/4"),
    ("2 \\times 3 \\cdot 4 \\div 6", 4), ("\\left(1+1\\right)^{3}", 8), ("1.5 * 2", 3), ("2**3", 8),
])
def test_parser_builds_the_right_value(text, value):
    assert parse_expression(text) == sympy.Rational(value)


@pytest.mark.parametrize("text", [
    "__import__('os')", "2^1000", "1/0", "x +", "\\input{x}", "9" * 20, "abc + 1", "1 2",
    "(" * 200, "0^-1",
])
def test_parser_refuses_what_it_should_not_compute(text):
    with pytest.raises(ParseError):
        parse_expression(text)


def test_equations_and_implicit_products():
    left, right = parse_equation("2(x + 1) = 3x - 4")
    assert sympy.solve(sympy.Eq(left, right)) == [6]
    with pytest.raises(ParseError):
        parse_equation("x = 1 = 2")


def test_find_math_needs_exactly_one_readable_segment():
    assert find_math(ARITHMETIC.text).body == "3 \\times 4 + 5"
    assert find_math(LINEAR.text).body == "3x + 5 = 20"
    assert find_math(QUADRATIC.text).body == "x^2 - 5x + 6 = 0"
    assert find_math("Is $1 + 1$ more than $1 + 2$?") is None
    assert find_math(PROSE.text) is None


def _recomputed_value_matches(problem: Problem) -> bool:
    value = seed_value(find_math(problem.text))
    return grade_batch([(answer_text(value), problem.answer)], extract=False)[0].correct


def test_variants_keep_or_recompute_their_answer_provably():
    seeds = [Seed(p, "a solution") for p in (ARITHMETIC, LINEAR, QUADRATIC, TEMPLATE, PROSE)]
    candidates = synthesize("symbolic", seeds, None, SymbolicConfig(variants_per_seed=4))
    by_parent: dict[str, list] = {}
    for candidate in candidates:
        by_parent.setdefault(candidate.seed.problem.id, []).append(candidate)
    assert [c.reason for c in by_parent[PROSE.id]] == ["not_symbolic"]
    for original in (ARITHMETIC, LINEAR, QUADRATIC, TEMPLATE):
        made = by_parent[original.id]
        assert len(made) == 4 and all(c.answer_proven for c in made)
        assert len({c.problem.text for c in made}) == 4
        for candidate in made:
            variant = candidate.problem
            assert variant.parent_id == original.id and variant.synthesizer == "symbolic"
            assert variant.generation == 1 and variant.text != original.text
            rewrite = variant.metadata["rewrite"]
            if rewrite.startswith("keep"):
                assert variant.answer == original.answer
            if rewrite == "template":
                values = variant.metadata["variables"]
                assert variant.answer == str(values["a"] + values["b"])
            elif original is not QUADRATIC:  # quadratics: the question asks for a sum
                assert _recomputed_value_matches(variant), variant.text
    rewrites = {c.problem.metadata["rewrite"] for c in candidates if c.problem}
    assert {"keep_arithmetic", "recompute_arithmetic", "keep_equation",
            "recompute_equation", "template"} <= rewrites


def test_recompute_needs_the_seed_answer_to_match_sympy():
    wrong_gold = Problem("What is the value of $3 \\times 4 + 5$?", "18")
    candidates = synthesize("symbolic", [Seed(wrong_gold, "s")], None,
                            SymbolicConfig(variants_per_seed=3))
    assert {c.problem.metadata["rewrite"] for c in candidates} == {"keep_arithmetic"}


def test_variants_are_reproducible():
    seeds = [Seed(LINEAR, "s")]
    first = synthesize("symbolic", seeds, None, SymbolicConfig(seed=5))
    second = synthesize("symbolic", seeds, None, SymbolicConfig(seed=5))
    assert [c.problem.text for c in first] == [c.problem.text for c in second]


@pytest.mark.parametrize("kwargs", [{"variants_per_seed": 0}, {"kinds": ("magic",)},
                                    {"kinds": ()}, {"max_value": 1}])
def test_config_checks(kwargs):
    with pytest.raises(ValueError):
        SymbolicConfig(**kwargs)


# Expression trees rendered as text (plain or LaTeX) must parse back to the value the
# tree computes with sympy directly.
_leaves = st.integers(0, 50).map(lambda n: (str(n), sympy.Integer(n)))


def _combine(children):
    def build(op, left, right, latex):
        (lt, lv), (rt, rv) = left, right
        if op == "/":
            if rv == 0:
                return lt, lv
            return (f"\\frac{{{lt}}}{{{rt}}}" if latex else f"({lt}) / ({rt})"), lv / rv
        symbol = {"+": "+", "-": "-", "*": " \\times " if latex else "*"}[op]
        return f"({lt} {symbol} {rt})", {"+": lv + rv, "-": lv - rv, "*": lv * rv}[op]

    return st.builds(build, st.sampled_from("+-*/"), children, children, st.booleans())


@settings(max_examples=150, deadline=None)
@given(st.recursive(_leaves, _combine, max_leaves=12))
def test_parser_agrees_with_sympy_on_random_trees(tree):
    text, value = tree
    assert parse_expression(text) == value
