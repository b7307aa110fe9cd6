r"""The caller-side shortcuts give math-verify's own verdict (STYLE.md #13).

Hypothesis draws answer pairs from a grammar of every kind the fast path knows (integers
with signs, decimals with and without a leading digit, fractions in their spellings,
percentages, multiples of pi and square roots as people write them, intervals, tuples,
sets, thousands separators, spacing), puts the answer into a completion with one box,
and compares svs's caller-side verdict (`sole_box` then `fast_equivalence`) with
math-verify itself: `verify(parse(gold), parse(completion))`, math-verify's default
extraction on the whole completion, run in this process (its `signal.alarm` timeouts
work on the main thread). Any pair the fast path decides differently fails the test.

The gold is read as svs reads dataset golds, ``\boxed{gold}`` (math-verify's parse of a
bare ``\frac{1}{2}`` finds nothing). Pairs the fast path leaves to math-verify (None)
are not checked here: the workers run math-verify on them.
"""

import logging
from fractions import Fraction

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from svs.verifiers.answers import sole_box, strip_gold
from svs.verifiers.fast_path import fast_equivalence, latex_spelling

math_verify = pytest.importorskip("math_verify")
logging.getLogger("math_verify").setLevel(logging.CRITICAL)


def _integer_forms(n: int) -> list[str]:
    forms = [str(n), f"{n}.0", f"{n}.00"]
    if n > 0:
        forms.append(f"+{n}")
    if abs(n) >= 1000:
        grouped = f"{abs(n):,}"
        sign = "-" if n < 0 else ""
        forms += [sign + grouped, sign + grouped.replace(",", "{,}"),
                  sign + grouped.replace(",", "\\,"), sign + grouped.replace(",", " "),
                  sign + grouped.replace(",", ", ")]
    return forms


def _decimal_forms(value: Fraction) -> list[str]:
    text = f"{float(value):.6f}".rstrip("0").rstrip(".")
    forms = [text, text + "0"]
    if text.startswith("0."):
        forms.append(text[1:])  # .25
    if text.startswith("-0."):
        forms.append("-" + text[2:])  # -.25
    return forms


def _fraction_forms(a: int, b: int) -> list[str]:
    sign = "-" if a < 0 else ""
    forms = [f"{sign}\\frac{{{abs(a)}}}{{{b}}}", f"\\frac{{{a}}}{{{b}}}", f"\\dfrac{{{a}}}{{{b}}}",
             f"{a}/{b}", f"\\tfrac{{{a}}}{{{b}}}", f"{sign}\\frac{abs(a)}{b}"
             if abs(a) < 10 and b < 10 else f"{a}/{b}"]
    return forms


def _pi_forms(a: int, b: int) -> list[str]:
    sign, a = ("-" if a < 0 else ""), abs(a)
    if b == 1:
        return [f"{sign}{a}\\pi", f"{sign}{a} \\pi", f"{sign}\\pi \\cdot {a}", f"{sign}{a}*\\pi"]
    forms = [f"{sign}\\frac{{{a}\\pi}}{{{b}}}", f"{sign}\\frac{{{a}}}{{{b}}}\\pi", f"{sign}{a}\\pi/{b}",
             f"{sign}\\dfrac{{{a}\\pi}}{{{b}}}", f"{sign}{a * 2}\\pi/{b * 2}"]
    if a == 1:
        forms += [f"{sign}\\frac{{\\pi}}{{{b}}}", f"{sign}\\pi/{b}"]
    return forms


def _sqrt_forms(k: int, m: int) -> list[str]:
    forms = [f"{k}\\sqrt{{{m}}}", f"\\sqrt{{{k * k * m}}}", f"{k} \\sqrt{{{m}}}"]
    if m < 10:
        forms.append(f"{k}\\sqrt{m}")
    if k == 1:
        forms.append(f"\\sqrt{{{m}}}")
    return forms


def _percent_forms(n: int) -> list[str]:
    return [f"{n}\\%", f"{n}%", f"{n} \\%"]


def _pair_forms(left: str, right: str, brackets: tuple[str, str]) -> list[str]:
    lo, hi = brackets
    return [f"{lo}{left},{right}{hi}", f"{lo}{left}, {right}{hi}",
            f"\\left{lo} {left}, {right} \\right{hi}", f"{lo} {left} ,\\ {right} {hi}"]


def _set_forms(items: list[int]) -> list[str]:
    body = ", ".join(map(str, items))
    return [f"\\{{{body}\\}}", f"\\{{{','.join(map(str, items))}\\}}",
            f"\\left\\{{ {body} \\right\\}}", f"\\{{{', '.join(map(str, reversed(items)))}\\}}"]


@st.composite
def answer_pairs(draw):
    """(gold, answer): the answer is the gold's value in another spelling, a nearby
    wrong value, or the same kind with other parameters."""
    kind = draw(st.sampled_from(["integer", "decimal", "fraction", "pi", "sqrt", "percent",
                                 "interval", "tuple", "set"]))
    small = st.integers(-30, 30)

    def value_forms(params):
        if kind == "integer":
            return _integer_forms(params)
        if kind == "decimal":
            return _decimal_forms(params)
        if kind == "fraction":
            return _fraction_forms(*params)
        if kind == "pi":
            return _pi_forms(*params)
        if kind == "sqrt":
            return _sqrt_forms(*params)
        if kind == "percent":
            return _percent_forms(params)
        if kind in ("interval", "tuple"):
            left, right, brackets = params
            return _pair_forms(str(left), str(right), brackets)
        return _set_forms(params)

    def draw_params():
        if kind == "integer":
            return draw(st.one_of(small, st.integers(-99_999_999, 99_999_999)))
        if kind == "decimal":
            return Fraction(draw(st.integers(-99_999, 99_999)), draw(st.sampled_from([10, 100, 1000])))
        if kind == "fraction":
            return draw(st.integers(-40, 40).filter(bool)), draw(st.integers(2, 40))
        if kind == "pi":
            return (draw(st.integers(-12, 12).filter(bool)),
                    draw(st.sampled_from([1, 1, 2, 3, 4, 6, 12, 97])))
        if kind == "sqrt":
            return draw(st.integers(1, 9)), draw(st.sampled_from([2, 3, 5, 6, 7, 10]))
        if kind == "percent":
            return draw(st.integers(0, 250))
        if kind == "interval":
            left, right = sorted(draw(st.lists(small, min_size=2, max_size=2, unique=True)))
            return left, right, draw(st.sampled_from([("(", ")"), ("[", "]"), ("[", ")"), ("(", "]")]))
        if kind == "tuple":
            return draw(small), draw(small), ("(", ")")
        return sorted(draw(st.lists(st.integers(-9, 20), min_size=1, max_size=4, unique=True)))

    gold_params = draw_params()
    choice = draw(st.sampled_from(["same", "same", "other", "near"]))
    if choice == "same":
        answer_params = gold_params
    elif choice == "near" and kind in ("integer", "percent"):
        answer_params = gold_params + draw(st.sampled_from([-1, 1, 10, -1000]))
    elif choice == "near" and kind == "decimal":
        answer_params = gold_params + Fraction(draw(st.sampled_from([-1, 1])), 1000)
    else:
        answer_params = draw_params()
    gold = draw(st.sampled_from(value_forms(gold_params)))
    answer = draw(st.sampled_from(value_forms(answer_params)))
    return gold, answer


COMPLETIONS = [
    "We simplify step by step and get $\\boxed{{{answer}}}$.",
    "Putting it together, the result is\n\\[\n\\boxed{{{answer}}}\n\\]",
    "Check: $3 + 4 = 7$, so the value is $x = \\boxed{{{answer}}}$ as required.",
    "**Final Answer**\n\\boxed{{{answer}}}",
    "\\boxed{{{answer}}}",
    # a "final answer is" phrase whose math is the box itself
    "Therefore, the final answer is $\\boxed{{{answer}}}$.",
    "Final Answer: The final answer is $\\boxed{{{answer}}}$. I hope it is correct.",
]


def _check(gold: str, answer: str, template: str) -> None:
    completion = template.format(answer=answer)
    boxed = sole_box(completion)
    assert boxed is not None, completion  # one box, no "final answer is": ours to read
    verdict = fast_equivalence(strip_gold(gold), latex_spelling(boxed))
    assume(verdict is not None)  # left to math-verify in the workers
    reference = math_verify.verify(math_verify.parse("\\boxed{" + gold + "}"),
                                   math_verify.parse(completion))
    assert verdict == reference, f"gold {gold!r}, completion {completion!r}"


_SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.filter_too_much,
                                                       HealthCheck.too_slow])


@settings(max_examples=1000, **_SETTINGS)
@given(answer_pairs(), st.sampled_from(COMPLETIONS))
def test_fast_path_verdict_is_math_verifys(pair, template):
    _check(*pair, template)


@pytest.mark.slow
@settings(max_examples=5_000, **_SETTINGS)
@given(answer_pairs(), st.sampled_from(COMPLETIONS))
def test_fast_path_verdict_is_math_verifys_many(pair, template):
    _check(*pair, template)


def test_the_grammar_exercises_the_fast_path():
    """The fast path decides most spellings of each kind, or the property says little:
    same-value spellings and different values, built from the grammar's own forms."""
    examples = {
        "integer": (_integer_forms(1234), _integer_forms(-1234)),
        "decimal": (_decimal_forms(Fraction(1, 4)), _decimal_forms(Fraction(-1, 4))),
        "fraction": (_fraction_forms(3, 7), _fraction_forms(7, 3)),
        "pi": (_pi_forms(3, 4), _pi_forms(4, 3)),
        "sqrt": (_sqrt_forms(2, 3), _sqrt_forms(3, 2)),
        "percent": (_percent_forms(15), _percent_forms(16)),
        "interval": (_pair_forms("1", "4", ("[", ")")), _pair_forms("1", "4", ("(", ")"))),
        "set": (_set_forms([1, 2, 5]), _set_forms([1, 2, 6])),
    }
    for kind, (same, other) in examples.items():
        verdicts = [fast_equivalence(strip_gold(same[0]), latex_spelling(a)) for a in same]
        wrong = [fast_equivalence(strip_gold(same[0]), latex_spelling(a)) for a in other]
        assert sum(v is True for v in verdicts) >= min(3, len(same)), (kind, verdicts)
        assert sum(v is False for v in wrong) >= 2, (kind, wrong)
        assert True not in wrong, kind
