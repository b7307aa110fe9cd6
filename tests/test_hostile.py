r"""Hostile completions and gold answers: each gets a verdict in time, nothing they hold runs.

Parse bombs (``9^{9^{9^{9}}}``, fractions nested thousands deep, ``1000000!``), 1 MB
completions, broken text (NUL, lone surrogates, unbalanced braces) and code injection
aimed at sympy's `parse_expr` (which evaluates Python) go through the real pool with a
1 s soft limit. Each must come back as a `Grade` (never an exception) within the hard
deadline plus a little slack, the pool must keep grading normal pairs afterwards, and
no payload may create its sentinel file.
"""

import subprocess
import sys
import time

import pytest

from svs.verifiers.grader import HARD_GRACE_S, Grade, VerifierPool

TIMEOUT_S = 1.0
# Killing a worker, reading its pipe and a loaded shared machine: time on top of the
# hard deadline (soft limit + HARD_GRACE_S) that an item may take in this test.
SLACK_S = 1.0
SENTINEL = "{SENTINEL}"  # replaced by an absolute path in the test's tmp dir
# replaced by the byte values of "import os; os.system('touch <that path>')"
SENTINEL_BYTES = "{SENTINEL_BYTES}"

WRONG_OR_SLOW = {"wrong", "timeout"}
MB = 1_000_000


def _nested_fraction(depth: int) -> str:
    return "\\frac{1}{" * depth + "2" + "}" * depth


def _matrix(entry: str, size: int) -> str:
    rows = "\\\\".join("&".join([entry] * size) for _ in range(size))
    return "\\begin{pmatrix}" + rows + "\\end{pmatrix}"


# Python that creates the sentinel when run; as text in answers it must never run.
PAYLOADS = {
    "os_system": f"__import__('os').system('touch {SENTINEL}')",
    "pathlib": f"__import__('pathlib').Path('{SENTINEL}').touch()",
    "open": f"open('{SENTINEL}', 'w').write('ran')",
    # no dunder, no keyword: fullwidth letters, which Python folds to `exec`/`open`
    "fullwidth_exec": "ｅｘｅｃ(bytes((" + SENTINEL_BYTES + ")).decode())",
    "fullwidth_open": f"ｏｐｅｎ('{SENTINEL}', 'w')",
    # exec passed as a value, never called by name
    "map_exec": "list(map(exec, [bytes((" + SENTINEL_BYTES + ")).decode()]))",
}
# Code-shaped text that passes the screen in verifiers/sandbox.py entirely.
UNSCREENED = {
    "method_call": f"Path('{SENTINEL}').touch()",
    "sympy_names": f"Function('f')(Symbol('{SENTINEL}'))",
    "semicolon": f"1+1; print('{SENTINEL}')",
}

# (name, gold, completion, allowed reasons, expected correct)
HOSTILE = [
    # parse bombs
    ("power_tower_answer", "1", r"so \boxed{9^{9^{9^{9}}}}", WRONG_OR_SLOW, False),
    ("power_tower_gold", "9^{9^{9^{9}}}", r"\boxed{1}", WRONG_OR_SLOW | {"bad_gold"}, False),
    ("two_tower", "2", r"\boxed{2^{2^{2^{2^{2^{2}}}}}}", WRONG_OR_SLOW, False),
    ("ten_tower_plus_one", "10^{10^{10}}", r"\boxed{10^{10^{10}}+1}",
     WRONG_OR_SLOW | {"bad_gold"}, False),
    ("fraction_depth_60", "1", r"\boxed{" + _nested_fraction(60) + "}", WRONG_OR_SLOW, False),
    ("fraction_depth_3000", "1", r"\boxed{" + _nested_fraction(3000) + "}",
     {"no_answer", "answer_too_long"}, False),
    ("fraction_depth_3000_gold", _nested_fraction(3000), r"\boxed{1}", {"bad_gold"}, False),
    ("parens_depth_400", "1", r"\boxed{" + "(" * 400 + "1" + ")" * 400 + "}", WRONG_OR_SLOW, False),
    ("parens_depth_10000", "1", r"\boxed{" + "(" * 10_000 + "1" + ")" * 10_000 + "}",
     {"no_answer", "answer_too_long"}, False),
    ("sqrt_depth_100", "2", r"\boxed{" + "\\sqrt{" * 100 + "2" + "}" * 100 + "}", WRONG_OR_SLOW, False),
    ("symbol_tower", "x", r"\boxed{" + "x^{" * 200 + "x" + "}" * 200 + "}", WRONG_OR_SLOW, False),
    ("e_tower", "1", r"\boxed{e^{e^{e^{e^{e}}}}}", WRONG_OR_SLOW, False),
    ("factorial_million", "1", r"\boxed{1000000!}", WRONG_OR_SLOW, False),
    ("factorial_gold", "1000000!", r"\boxed{1000000!+1}", WRONG_OR_SLOW | {"bad_gold"}, False),
    ("sum_to_a_billion", "1", r"\boxed{\sum_{k=1}^{10^{9}} k^{k}}", WRONG_OR_SLOW, False),
    ("sine_of_huge", "0", r"\boxed{\sin(10^{100000})}", WRONG_OR_SLOW, False),
    ("matrix_power", "1", r"\boxed{\begin{pmatrix}1&1\\1&0\end{pmatrix}^{1000000000}}",
     WRONG_OR_SLOW, False),
    ("matrix_15x15", _matrix("1", 15), r"\boxed{" + _matrix("2", 15) + "}", WRONG_OR_SLOW, False),
    ("matrix_40x40", _matrix("1", 40), r"\boxed{" + _matrix("1", 40) + "}",
     {"correct", "bad_gold", "answer_too_long"}, None),
    ("giant_integer_wrong", "1", r"\boxed{" + "9" * 900 + "}", {"wrong"}, False),
    ("giant_integer_equal", "9" * 900, r"\boxed{" + "9" * 900 + "}", {"correct"}, True),
    ("integer_5000_digits", "1", r"\boxed{" + "7" * 5000 + "}", {"answer_too_long"}, False),
    ("integer_5000_digits_gold", "7" * 5000, r"\boxed{7" + "0" * 4999 + "}",
     {"bad_gold", "answer_too_long"}, False),
    ("division_by_zero", "1", r"\boxed{\frac{1}{0}}", {"wrong"}, False),
    ("backslash_spam", "1", r"\boxed{" + "\\\\" * 400 + "}", WRONG_OR_SLOW, False),
    ("percent_spam", "1", r"\boxed{100" + "\\%" * 300 + "}", WRONG_OR_SLOW, False),
    ("text_depth_300", "1", r"\boxed{" + "\\text{" * 300 + "a" + "}" * 300 + "}",
     {"answer_too_long"}, False),
    ("boxed_depth_1000", "1", "\\boxed{" * 1000 + "1" + "}" * 1000, {"correct"}, True),
    # size
    ("1mb_then_answer", "42", "word " * (MB // 5) + r"\boxed{42}", {"correct"}, True),
    ("1mb_open_boxes", "42", "\\boxed{" * (MB // 7), {"no_answer"}, False),
    ("1mb_digits", "42", "1" * MB, {"answer_too_long", "wrong"}, False),
    # math-verify's extraction finds no answer in it (no digits, no math)
    ("1mb_answer_lines", "42", "Answer: " * (MB // 8), WRONG_OR_SLOW | {"no_answer"}, False),
    ("1mb_dollars", "42", "$" * MB, {"no_answer"}, False),
    ("1mb_open_braces", "5", "{" * MB + r" so \boxed{5}", {"correct"}, True),
    ("1mb_gold", "1" * MB, r"\boxed{1}", {"bad_gold", "wrong"}, False),
    # broken text
    ("nul_bytes", "4", "The answer is \x00 \\boxed{4\x00}", {"wrong", "correct"}, None),
    ("nul_gold", "4\x00", r"\boxed{4}", {"wrong", "correct", "bad_gold"}, None),
    ("lone_surrogates", "4", "\ud800 so \\boxed{4\udfff}", {"wrong", "correct"}, None),
    ("surrogate_gold", "\udc80", r"\boxed{4}", {"wrong", "bad_gold"}, False),
    ("invalid_utf8", "3", b"\xff\xfe so \\boxed{3\xc3}".decode("utf-8", "surrogateescape"),
     {"wrong", "correct"}, None),
    ("zero_width_and_rtl", "5", "\u200b\u202e\\boxed{\u200b5\u200b}\u202c", {"wrong", "correct"}, None),
    ("unbalanced_braces", "1", r"\boxed{\frac{1}{2} }}}}{{{ \left( \right", {"wrong"}, False),
    ("only_closing_braces", "1", "}" * 10_000, {"no_answer"}, False),
]
# injection: every payload in a box, in an answer line, at the end, and as the gold
# (what matters is that nothing runs; a parse slowed down by a loaded machine may time out)
_INJECTED = {"unsafe_input", "wrong", "timeout"}
for _name, _code in {**PAYLOADS, **UNSCREENED}.items():
    HOSTILE += [
        (f"inject_{_name}_boxed", "1", f"Thus \\boxed{{{_code}}}", _INJECTED, False),
        # math-verify's extraction may find no math in a line of code: no_answer
        (f"inject_{_name}_answer_line", "2", f"Answer: {_code}", _INJECTED | {"no_answer"}, False),
        (f"inject_{_name}_at_end", "3", f"so we get ${_code}$", _INJECTED, False),
        (f"inject_{_name}_gold", _code, r"\boxed{1}", _INJECTED | {"bad_gold"}, False),
    ]

NORMAL = [("x+1", r"so $\boxed{1+x}$"), (r"\frac{1}{2}", r"$\boxed{0.5}$"),
          ("[0,1)", r"$\boxed{[0,1]}$"), ("(1,2)", r"Answer: $(1, 2)$")]
NORMAL_EXPECTED = [(True, "correct"), (True, "correct"), (False, "wrong"), (True, "correct")]


@pytest.fixture(scope="module")
def sentinel(tmp_path_factory):
    # Absolute: the workers run in their own temporary working directories.
    return tmp_path_factory.mktemp("hostile") / "SENTINEL"


@pytest.fixture(scope="module")
def pool():
    with VerifierPool(workers=2, timeout_s=TIMEOUT_S) as shared:
        yield shared


def _place(text: str, sentinel) -> str:
    code = f"import os; os.system('touch {sentinel}')"
    text = text.replace(SENTINEL_BYTES, ",".join(str(byte) for byte in code.encode()))
    return text.replace(SENTINEL, str(sentinel))


def test_enough_hostile_inputs():
    assert len(HOSTILE) >= 30
    assert len({name for name, *_ in HOSTILE}) == len(HOSTILE)


@pytest.mark.parametrize("name, gold, completion, allowed, expected_correct", HOSTILE,
                         ids=[item[0] for item in HOSTILE])
def test_hostile_item_gets_a_verdict_in_time(pool, sentinel, name, gold, completion, allowed,
                                             expected_correct):
    gold, completion = _place(gold, sentinel), _place(completion, sentinel)
    # A pair only a worker can settle: returns once a worker is up, so a replacement
    # still starting after the previous item's kill is not charged to this item.
    assert pool.grade([("2x", "x \\cdot 2")], extract=False)[0].correct
    start = time.monotonic()
    grade = pool.grade([(gold, completion)])[0]
    elapsed = time.monotonic() - start
    assert isinstance(grade, Grade)
    assert grade.reason in allowed, f"{name}: {grade}"
    if expected_correct is not None:
        assert grade.correct is expected_correct, f"{name}: {grade}"
    assert grade.correct == (grade.reason == "correct")
    assert elapsed < TIMEOUT_S + HARD_GRACE_S + SLACK_S, f"{name} took {elapsed:.2f}s"
    assert not sentinel.exists(), f"{name} ran injected code"


def test_one_batch_of_everything_survives_and_keeps_order(pool, sentinel):
    pairs = [(_place(gold, sentinel), _place(completion, sentinel))
             for _, gold, completion, *_ in HOSTILE]
    # normal pairs before, between and after the hostile ones
    batch = NORMAL + pairs[: len(pairs) // 2] + NORMAL + pairs[len(pairs) // 2:] + NORMAL
    start = time.monotonic()
    grades = pool.grade(batch, timeout_s=TIMEOUT_S)
    elapsed = time.monotonic() - start
    half = len(NORMAL) + len(pairs) // 2
    normal_grades = grades[:len(NORMAL)] + grades[half:half + len(NORMAL)] + grades[-len(NORMAL):]
    assert [(g.correct, g.reason) for g in normal_grades] == NORMAL_EXPECTED * 3
    hostile_grades = grades[len(NORMAL):half] + grades[half + len(NORMAL):-len(NORMAL)]
    for (name, _, _, allowed, _), grade in zip(HOSTILE, hostile_grades, strict=True):
        assert grade.reason in allowed, f"{name}: {grade}"
    # Every item at worst waits for its own hard deadline, one after another.
    assert elapsed < len(HOSTILE) * (TIMEOUT_S + HARD_GRACE_S)
    assert not sentinel.exists()
    # and the pool still grades normal pairs afterwards
    assert [(g.correct, g.reason) for g in pool.grade(NORMAL)] == NORMAL_EXPECTED


def test_answers_given_directly_are_screened_too(pool, sentinel):
    pairs = [("1", _place(code, sentinel)) for code in {**PAYLOADS, **UNSCREENED}.values()]
    grades = pool.grade(pairs, extract=False)
    assert [g.reason for g in grades[:len(PAYLOADS)]] == ["unsafe_input"] * len(PAYLOADS)
    assert all(g.reason == "wrong" for g in grades[len(PAYLOADS):])
    assert not sentinel.exists()


def test_payloads_are_live_python(tmp_path):
    """Control: each payload really creates its sentinel when run as Python, so the
    tests above would notice if the verifier ever evaluated one."""
    for name, code in PAYLOADS.items():
        target = tmp_path / f"{name}.sentinel"
        subprocess.run([sys.executable, "-c", _place(code, target)],
                       check=True, timeout=60, cwd=tmp_path)
        assert target.exists(), name


def test_math_verify_does_not_run_payloads_even_unscreened(tmp_path):
    """Defence in depth: with the screen bypassed, math-verify's own parse and verify
    (in a separate process) still do not execute any payload."""
    target = tmp_path / "SENTINEL"
    codes = [_place(code, target) for code in {**PAYLOADS, **UNSCREENED}.values()]
    script = (
        "import sys\n"
        "from math_verify import verify\n"
        "from svs.verifiers.sandbox import make_parser\n"
        "parse = make_parser()\n"
        "gold = parse('1')\n"
        "for code in sys.argv[1:]:\n"
        "    verify(gold, parse(code), timeout_seconds=None)\n"
        "    verify(parse(code), gold, timeout_seconds=None)\n"
    )
    subprocess.run([sys.executable, "-c", script, *codes], check=True, timeout=120,
                   cwd=tmp_path, capture_output=True)
    assert not target.exists()


def test_values_that_are_not_strings_get_verdicts(pool):
    # Parquet and JSON readers hand over ints, floats and nulls; none of them may raise.
    grades = pool.grade([(42, r"\boxed{42}"), (0.5, r"\boxed{1/2}"), (None, r"\boxed{1}"),
                         ("1", None), ("1", 1), ("1", b"\\boxed{1}")])
    assert [(g.correct, g.reason) for g in grades] == [
        (True, "correct"), (True, "correct"), (False, "wrong"),
        (False, "no_answer"), (False, "no_answer"), (False, "no_answer")]
    direct = pool.grade([("1", 1), ("1", None)], extract=False)
    assert [g.reason for g in direct] == ["no_answer", "no_answer"]
