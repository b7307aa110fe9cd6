r"""Answers sympy computes from problem texts, read by svs's own bounded parser
(`svs.verifiers.mathparse`: no eval, no sympify, power-size limits).

`find_math` finds the one piece of maths in a problem (a ``$...$`` segment, or a plain
run such as ``3x + 5 = 20``); `seed_value` computes it (the unique solution for an
equation). The sympy check of consistency (`sympy_verdict`) and the symbolic synthesizer
both stand on these, so they live here, below the synthesizers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import sympy

from svs.core.records import Verdict
from svs.verifiers.answers import strip_gold
from svs.verifiers.mathparse import ParseError, parse_equation, parse_expression

_DOLLAR = re.compile(r"\$([^$]{1,300})\$")
_PLAIN = re.compile(r"[0-9x+\-*/^().=\s]{3,300}")


@dataclass(frozen=True)
class MathSpan:
    """The one readable piece of maths in a problem text, and how to put it back."""

    start: int
    end: int
    body: str
    latex: bool


def find_math(text: str) -> MathSpan | None:
    """The single parseable maths segment with a digit in it, or None (zero or several)."""
    spans = [MathSpan(m.start(1), m.end(1), m.group(1), True) for m in _DOLLAR.finditer(text)]
    if not spans:
        spans = []
        for match in _PLAIN.finditer(text):
            body = match.group(0).strip().rstrip(".")
            if any(op in body for op in "+-*/^="):
                start = text.index(body, match.start())
                spans.append(MathSpan(start, start + len(body), body, False))
    readable = []
    for span in spans:
        if not any(ch.isdigit() for ch in span.body):
            continue
        try:
            (parse_equation if "=" in span.body else parse_expression)(span.body)
        except ParseError:
            continue
        readable.append(span)
    return readable[0] if len(readable) == 1 else None


def render(value: sympy.Expr, latex: bool) -> str:
    return sympy.latex(value) if latex else sympy.sstr(value).replace("**", "^")


def answer_text(value: sympy.Expr) -> str:
    return sympy.latex(value)


def equation_parts(body: str) -> tuple[sympy.Expr, sympy.Symbol] | None:
    left, right = parse_equation(body)
    difference = sympy.expand(left - right)
    symbols = difference.free_symbols
    if len(symbols) != 1:
        return None
    variable = next(iter(symbols))
    if not difference.is_polynomial(variable):
        return None
    degree = sympy.degree(difference, variable)
    return (difference, variable) if degree in (1, 2) else None


def seed_value(span: MathSpan) -> sympy.Expr | None:
    """What sympy says the seed's maths evaluates to (the unique solution for equations)."""
    if "=" not in span.body:
        value = parse_expression(span.body)
        return value if value.is_number and value.is_finite else None
    parts = equation_parts(span.body)
    if parts is None:
        return None
    solutions = sympy.solve(parts[0], parts[1])
    return solutions[0] if len(solutions) == 1 else None


MAX_COMPUTED_CHARS = 400  # longer texts are not single computations; not parsed at all


def computed_value(text: str) -> Any:
    """The number sympy computes for a problem that is one arithmetic expression or one
    polynomial equation in one unknown with one solution, or None (anything else, or
    unreadable)."""
    if len(text) > MAX_COMPUTED_CHARS:
        return None
    try:
        span = find_math(text)
        return seed_value(span) if span is not None else None
    except Exception:  # noqa: BLE001 - hostile text: unreadable means "not computable"
        return None


def computed_answer(text: str) -> str | None:
    """`computed_value` written as an answer (`answer_text`)."""
    value = computed_value(text)
    return answer_text(value) if value is not None else None


def answer_value(answer: str) -> Any:
    """The number a reference answer states (`7`, `0.5`, `\\frac{50}{3}`, `$-1/4$`), or None."""
    text = strip_gold(answer)
    if len(text) > 64:
        return None
    try:
        value = parse_expression(text)
    except Exception:  # noqa: BLE001 - not a plain number: no basis for the check
        return None
    return value if value.is_number and value.is_finite else None


def _same(a: Any, b: Any) -> bool | None:
    return (a - b).is_zero  # exact for the rationals and integers mathparse yields


def sympy_verdict(text: str, answer: str, original_text: str) -> Verdict:
    """`sympy_mismatch` when sympy computes `original_text` to `answer` but `text` to
    another number; ok otherwise (agreeing, or not a pure computation)."""
    reference = answer_value(answer)
    original = computed_value(original_text) if reference is not None else None
    if original is None or _same(original, reference) is not True:
        return Verdict(True, "ok", "the original is not a computation sympy checks")
    value = computed_value(text)
    if value is None:
        return Verdict(True, "ok", "sympy cannot read the variant as one computation")
    if _same(value, reference) is False:
        return Verdict(False, "sympy_mismatch", f"sympy computes the variant to "
                                                f"{answer_text(value)}, not the reference {answer}")
    return Verdict(True, "ok", f"sympy computes the variant to {answer_text(value)}")
