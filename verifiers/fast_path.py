"""Exact shortcuts in front of math-verify, and the textual identities they stand on.

`fast_equivalence` settles a (gold, answer) pair by exact arithmetic when both are plain
numbers, small fractions, multiples of pi, k*sqrt(m), intervals, pairs or sets of plain
numbers, and returns None for everything else (math-verify decides). It is a cache of
math-verify's verdict, not a second opinion: tests/test_fast_path_math_verify.py checks
it against math-verify on generated pairs of every kind.
"""

from __future__ import annotations

import math
import re
from fractions import Fraction

# Longer answers go to math-verify: this keeps every number the fast path converts far
# below Python's 4300-digit limit on int(str) (a ValueError in the caller's process).
MAX_FAST_CHARS = 200

# LaTeX spellings that typeset identically; rewriting them is a textual identity.
# Spacing commands (\, \; \!) are left alone: math-verify reads "12\,345" as 12+345.
_SAME_TYPESET = (("\\dfrac", "\\frac"), ("\\tfrac", "\\frac"), ("\\displaystyle", ""))
# Symbols math-verify does not read, written as the LaTeX it reads: `latex_spelling`.
_SAME_SYMBOL = (("\\varnothing", "\\emptyset"),
                # the same symbols typed in unicode (math-verify reads only the LaTeX)
                ("·", "\\cdot "), ("∞", "\\infty "), ("°", "^\\circ "), ("≤", "\\le "),
                ("≥", "\\ge "), ("≠", "\\ne "), ("½", "\\frac{1}{2}"), ("⅓", "\\frac{1}{3}"),
                ("⅔", "\\frac{2}{3}"), ("¼", "\\frac{1}{4}"), ("¾", "\\frac{3}{4}"), ("²", "^{2}"),
                ("³", "^{3}"))
# "\left(" and "\right]" size a delimiter; "\leftarrow" and "\rightarrow" are arrows.
_SIZED_DELIMITER = re.compile(r"\\(?:left|right)(?![a-zA-Z])")
# "√2", "3√x", "√(x+1)", "√{12}" -> "\sqrt{...}"; the radicand is one token or one group.
_UNICODE_ROOT = re.compile(r"√\s*(?:(\d+(?:\.\d+)?|[a-zA-Z])|\(([^()]{0,200})\)|\{([^{}]{0,200})\})")
_SPACE_RUN = re.compile(r"\s+")


def latex_spelling(text: str) -> str:
    r"""`text` with unicode maths (√, ∞, °, ½, ², ...) and ``\varnothing`` written as the
    LaTeX math-verify reads; the same symbols, so never a different answer."""
    if not any(symbol in text for symbol in ("\\varnothing", "√")) and text.isascii():
        return text
    for old, new in _SAME_SYMBOL:
        text = text.replace(old, new)
    return _UNICODE_ROOT.sub(_latex_root, text)


def _latex_root(match: re.Match) -> str:
    return "\\sqrt{" + next(group for group in match.groups() if group is not None) + "}"


_ENDS_WITH_COMMAND = re.compile(r"\\[a-zA-Z]+$")  # "\cdot 12" == "\cdot12", "\pi r" != "\pir"
_PLAIN_NUMBER = re.compile(r"-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|-?\.\d+")  # ".25" too


def canonical_answer(answer: str) -> str:
    r"""A textual canonical form: two answers with the same form are the same answer.

    Only rewrites that cannot change the mathematics: typesetting-only commands dropped
    (``\\dfrac``, ``\\left(``; not ``\\leftarrow``), `latex_spelling`, ``\\ `` read as the
    space it is, white space removed except between two letters/digits ("2 3" stays
    apart, "\\pi r" is not "\\pir"; "\\cdot 12" is "\\cdot12") and after a comma ("1, 234"
    is a list to math-verify, "1,234" a number), trailing sentence punctuation dropped.
    """
    text = latex_spelling(answer).replace("\\ ", " ")
    for old, new in _SAME_TYPESET:
        text = text.replace(old, new)
    text = _SIZED_DELIMITER.sub("", text)
    parts = _SPACE_RUN.split(text.strip())
    out = parts[0] if parts else ""
    for part in parts[1:]:
        after_command = part[:1].isdigit() and _ENDS_WITH_COMMAND.search(out) is not None
        if out and part and out[-1].isalnum() and part[0].isalnum() and not after_command:
            out += " "
        elif out.endswith(",") and part:
            out += " "
        out += part
    return out.rstrip(".")


_NUMBER_LIST = r"-?\d+(?:\.\d+)?(?:, ?-?\d+(?:\.\d+)?)*"
_INTERVAL = re.compile(r"([\[(])(-?\d+(?:\.\d+)?), ?(-?\d+(?:\.\d+)?)([\])])")
_NUMBER_SET = re.compile(r"\\\{(" + _NUMBER_LIST + r")\\\}")


def _plain_number(text: str) -> Fraction | None:
    if _PLAIN_NUMBER.fullmatch(text):
        return Fraction(text.replace(",", ""))
    return None


_FRACTION = re.compile(r"\\frac\{(-?\d{1,6})\}\{(\d{1,3})\}|(-?\d{1,6})/(\d{1,3})")
_PI_MULTIPLE = re.compile(r"(-?\d{1,6})?\\pi|\\pi(?:\\cdot|\*)(\d{1,6})|(\d{1,6})(?:\\cdot|\*)\\pi")
# a/b of pi, b <= 99: "\frac{3\pi}{4}", "\frac{3}{4}\pi", "3\pi/4", "\frac{\pi}{4}", signed;
# two distinct values differ by at least pi/99^2, far above math-verify's rounding.
_PI_FRACTION = re.compile(r"(-?)(?:\\frac\{(\d{0,4})\\pi\}\{(\d{1,2})\}|\\frac\{(\d{1,4})\}\{(\d{1,2})\}\\pi"
                          r"|(\d{0,4})\\pi/(\d{1,2}))")
_RADICAL = re.compile(r"(\d{1,4})?\\sqrt(?:\{(\d{1,6})\}|(\d))")
_ASSIGNMENT = re.compile(r"[a-zA-Z]=(?!=)")
_PERCENT = re.compile(r"(-?\d{1,6}(?:\.\d{1,6})?)\\?%")


def _exact_value(text: str) -> tuple | None:
    """(kind, value) for answers whose value is exact and cheap to read, else None.

    kinds: "decimal" (plain numbers with at most 6 decimals) and "fraction" (integer
    over at most 999): two distinct values of one kind differ by more than
    math-verify's 6-decimal rounding can hide; "pi" (integer multiples of pi and
    a/b of pi with b <= 99),
    "sqrt" (k*sqrt(m) keyed by k^2 m), "percent".
    """
    number = _plain_number(text)
    if number is not None:
        if abs(number) < 10**6 and number.denominator <= 10**6:
            return ("decimal", number)
        return None
    match = _FRACTION.fullmatch(text)
    if match:
        numerator, denominator = (match[1], match[2]) if match[1] else (match[3], match[4])
        if int(denominator) > 0:
            return ("fraction", Fraction(int(numerator), int(denominator)))
        return None
    match = _PI_MULTIPLE.fullmatch(text)
    if match:
        coefficient = match[1] or match[2] or match[3]
        if coefficient in (None, "-"):
            coefficient = "-1" if text.startswith("-") else "1"
        return ("pi", Fraction(coefficient))
    match = _PI_FRACTION.fullmatch(text)
    if match:
        numerator, denominator = next((match[i], match[i + 1]) for i in (2, 4, 6)
                                      if match[i + 1] is not None)
        if int(denominator) > 0:
            value = Fraction(int(numerator or 1), int(denominator))
            return ("pi", -value if match[1] else value)
        return None
    match = _RADICAL.fullmatch(text)
    if match:
        k = int(match[1] or 1)
        return ("sqrt", k * k * int(match[2] or match[3]))
    match = _PERCENT.fullmatch(text)
    if match:
        return ("percent", Fraction(match[1]))
    return None


def _number_pair(text: str) -> tuple | None:
    """Classify "(a,b)" / "[a,b)" / ... of plain numbers the way math-verify reads them.

    math-verify reads a bracketed pair with a < b as an interval and "(a,b)" with
    a >= b as an ordered pair (checked against math-verify 0.9); intervals never
    equal pairs. Returns a comparable key, None when the text is not such a pair, or
    False when it is one whose reading is uncertain (a closed bracket with a >= b).
    """
    match = _INTERVAL.fullmatch(text)
    if match is None:
        return None
    left, right = Fraction(match[2]), Fraction(match[3])
    if left < right:
        return ("interval", match[1], match[4], left, right)
    if (match[1], match[4]) == ("(", ")"):
        return ("pair", left, right)
    return False


def fast_equivalence(gold: str, answer: str) -> bool | None:
    """Decide equivalence without sympy when the answer is certain, else None.

    Written by hand because parsing in the workers costs 1-20 ms per answer (intervals
    and sets are the slowest, see benchmarks/verify_bench.py) while most answers in a
    batch are plain numbers or number lists. Decided here, all exact:
    - identical canonical text;
    - two plain numbers (thousands separators allowed): equal values are equivalent,
      two different integers are not (unequal decimals go to math-verify, which rounds);
    - two bracketed pairs of plain numbers: intervals (left < right) equal iff same
      brackets and endpoints, ordered pairs iff same entries, never one the other;
    - two sets of plain numbers: equivalent iff the same set.
    - small exact values of the same kind (integers, decimals, small fractions,
      integer multiples of pi, k*sqrt(m), percents), also as "x=..." against a bare
      gold: equal iff the same value; their distinct values differ by more than
      math-verify's 6-decimal rounding can hide;
    Everything else goes to math-verify in the workers.
    """
    gold_c, answer_c = canonical_answer(gold), canonical_answer(answer)
    if gold_c == answer_c and gold_c:
        return True
    if max(len(gold_c), len(answer_c)) > MAX_FAST_CHARS:
        return None
    # "x=3" against a gold of "3" (or the reverse) is read as the assignment's value.
    if _ASSIGNMENT.match(answer_c) and "=" not in gold_c:
        answer_c = answer_c[2:]
    elif _ASSIGNMENT.match(gold_c) and "=" not in answer_c:
        gold_c = gold_c[2:]
    gold_v, answer_v = _exact_value(gold_c), _exact_value(answer_c)
    if gold_v is not None and answer_v is not None:
        if gold_v[0] == answer_v[0]:
            return gold_v[1] == answer_v[1]
        # 0.333333 vs 1/3: math-verify's rounding may call them equal; let it decide.
        if {gold_v[0], answer_v[0]} == {"decimal", "fraction"} and gold_v[1] == answer_v[1]:
            return True
        # k*pi against a rational number: irrational unless k = 0; far apart (> 0.001)
        # they differ whatever math-verify rounds, near each other it decides.
        kinds = {gold_v[0]: gold_v[1], answer_v[0]: answer_v[1]}
        if set(kinds) in ({"pi", "decimal"}, {"pi", "fraction"}):
            rational = kinds.get("decimal", kinds.get("fraction"))
            if kinds["pi"] != 0 and abs(float(kinds["pi"]) * math.pi - float(rational)) > 1e-3:
                return False
        return None
    gold_pair, answer_pair = _number_pair(gold_c), _number_pair(answer_c)
    if gold_pair and answer_pair:
        return gold_pair == answer_pair
    if gold_pair is not None or answer_pair is not None:
        return None
    gold_s, answer_s = _NUMBER_SET.fullmatch(gold_c), _NUMBER_SET.fullmatch(answer_c)
    if gold_s and answer_s:
        return ({Fraction(x.strip()) for x in gold_s[1].split(",")}
                == {Fraction(x.strip()) for x in answer_s[1].split(",")})
    return None
