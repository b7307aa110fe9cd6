"""The grader's exact fast paths must agree with math-verify itself.

Equivalence test in the style of STYLE.md #10: random answer pairs of every kind the
fast path decides, graded once with the fast path and once with every pair sent to
math-verify in the workers.
"""

import random

import pytest

from svs.verifiers.fast_path import canonical_answer, fast_equivalence
from svs.verifiers.grader import VerifierPool


def _forms(r: random.Random) -> tuple[str, list[str]]:
    kind = r.randrange(8)
    a, b = r.randint(-30, 30), r.randint(1, 40)
    if kind == 0:
        return str(a), [str(a), str(a + 1), f"{a}.0", f"x = {a}", f"{a * 1000:,}", str(-a)]
    if kind == 1:
        return f"\\frac{{{a}}}{{{b}}}", [f"{a}/{b}", f"\\dfrac{{{a}}}{{{b}}}", f"\\frac{{{b}}}{{{a or 1}}}",
                                         f"{a * 2}/{b * 2}", f"\\frac{{{a + 1}}}{{{b}}}"]
    if kind == 2:
        v = round(r.uniform(-50, 50), r.randint(1, 3))
        return str(v), [str(v), f"{v}0", str(round(v + 0.01, 3)), str(-v), f"{a}/{b}",
                        f"\\frac{{{round(v * 8)}}}{{8}}"]
    if kind == 3:
        return f"{b}\\pi", [f"{b} \\pi", f"\\pi \\cdot {b}", f"{b + 1}\\pi", f"{b}\\cdot\\pi"]
    if kind == 4:
        k, m = r.randint(1, 6), r.choice([2, 3, 5, 7])
        return f"{k}\\sqrt{{{m}}}", [f"\\sqrt{{{k * k * m}}}", f"{k}\\sqrt{m}", f"{k + 1}\\sqrt{{{m}}}"]
    if kind == 5:
        lo, hi = sorted(r.sample(range(-9, 9), 2))
        return f"[{lo},{hi})", [f"[{lo}, {hi})", f"({lo},{hi})", f"[{lo},{hi}]", f"({hi},{lo})"]
    if kind == 6:
        x, y = r.randint(-5, 5), r.randint(-5, 5)
        return f"({x},{y})", [f"({x}, {y})", f"({y},{x})", f"({x},{y + 1})"]
    s = sorted(r.sample(range(-9, 9), 3))
    return f"\\{{{s[0]},{s[1]},{s[2]}\\}}", [f"\\{{{s[2]}, {s[0]}, {s[1]}\\}}", f"\\{{{s[0]},{s[1]}\\}}"]


def test_fast_path_agrees_with_math_verify():
    r = random.Random(7)
    pairs = []
    for _ in range(120):
        gold, answers = _forms(r)
        pairs += [(gold, answer) for answer in answers]
    decided = [p for p in pairs if fast_equivalence(*p) is not None]
    assert len(decided) > len(pairs) // 2  # the fast path really covers these kinds
    with VerifierPool(workers=2, fast_path=False) as slow:
        reference = slow.grade(decided, extract=False)
    for (gold, answer), grade in zip(decided, reference, strict=True):
        assert fast_equivalence(gold, answer) == grade.correct, (gold, answer, grade)


@pytest.mark.parametrize(
    ("text", "canonical"),
    [("[0, 4)", "[0, 4)"), ("2 3", "2 3"), ("\\pi r", "\\pi r"), ("\\pi \\cdot 12", "\\pi\\cdot12"),
     ("\\dfrac{1}{2}", "\\frac{1}{2}"), ("\\left( 1, 2 \\right)", "(1, 2)"), ("x = 5.", "x=5")],
)
def test_canonical_answer(text, canonical):
    assert canonical_answer(text) == canonical


def test_fast_path_leaves_uncertain_cases_to_math_verify():
    assert fast_equivalence("0.3333333", "\\frac{1}{3}") is None  # math-verify rounds
    assert fast_equivalence("\\pi", "3.14159") is None
    assert fast_equivalence("0.5", "0.5000001") is None
    assert fast_equivalence("0.333333", "\\frac{1}{3}") is None
    assert fast_equivalence("0.5", "\\frac{1}{2}") is True
