r"""Final-answer extraction from model completions, and gold-answer normalization.

Pure string work on hostile text: no regex with nested quantifiers over the whole
completion, no sympy, bounded time in the completion's length. Parsing the extracted
answer as mathematics happens only in the sandboxed workers of `verifiers.grader`.

The cascade, first hit wins:
1. the last ``\boxed{...}`` (or ``\fbox{...}``), nested braces respected;
2. the last "Answer:" / "final answer is" line;
3. LaTeX math at the very end of the completion (``$...$``, ``\[...\]``, ``\(...\)``);
4. the last number in the completion, *flagged* because it may be an intermediate value.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction

BOXED_COMMANDS = ("\\boxed", "\\fbox")
# How far from the end of a completion a trailing math block may start and still count
# as "the answer at the end".
TAIL_CHARS = 300
# Bounds that keep extraction linear on hostile input (1 MB of unbalanced "\boxed{"):
# a boxed answer longer than this is not an answer, and only the last few boxed
# commands are tried.
MAX_BOXED_CHARS = 20_000
MAX_BOXED_TRIES = 50
# Longer answers go to math-verify: this keeps every number the fast path converts far
# below Python's 4300-digit limit on int(str) (a ValueError in the caller's process).
MAX_FAST_CHARS = 200

_ANSWER_LINE = re.compile(
    r"(?:final\s+answer|answer)\s*(?:is|:|=)\s*:?\s*(?P<body>[^\n]{1,500})",
    re.IGNORECASE,
)
# The first inline math span in an answer line ("The answer is $16\pi$ square units.");
# escaped dollars (\$18.75) are currency, not delimiters. The body is at most 500 chars.
_MATH_SPAN = re.compile(r"(?<!\\)\$\$?(?P<dollar>[^$]{1,500}?)(?<!\\)\$|\\\((?P<paren>.{1,500}?)\\\)")
_SENTENCE_END = re.compile(r"\.\s")  # a period then space; "3.5" is not an end
# A number with optional sign, thousands separators, decimals and percent; linear-time.
_NUMBER = re.compile(r"-?\d{1,3}(?:,\d{3})+(?:\.\d+)?%?|-?\d+(?:\.\d+)?%?|-?\.\d+%?")
_TRAILING_PUNCT = " \t\r\n.;,:!"


@dataclass(frozen=True)
class Extraction:
    """What `extract_answer` found: the answer text, how, and whether it is a guess."""

    answer: str | None
    method: str  # boxed | answer_line | latex_end | last_number | none
    flagged: bool = False


def _matching_brace(text: str, open_index: int) -> int:
    """Index of the brace closing the one at `open_index`, or -1 when unbalanced.

    Gives up (-1) after MAX_BOXED_CHARS characters.
    """
    depth = 0
    index = open_index
    length = min(len(text), open_index + MAX_BOXED_CHARS)
    while index < length:
        char = text[index]
        if char == "\\":
            index += 2  # skip escaped characters such as \{ and \}
            continue
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return index
        index += 1
    return -1


def last_boxed(text: str) -> str | None:
    r"""Content of the last balanced ``\boxed{...}`` / ``\fbox{...}``, else None.

    Unbalanced ones are skipped in favour of an earlier balanced one. ``\boxed 5`` (no
    braces, a single token) is accepted too.
    """
    search_end = len(text)
    for _ in range(MAX_BOXED_TRIES):
        start = max(text.rfind(command, 0, search_end) for command in BOXED_COMMANDS)
        if start < 0:
            return None
        command = next(c for c in BOXED_COMMANDS if text.startswith(c, start))
        after = start + len(command)
        rest = text[after:after + 1]
        if rest == "{":
            close = _matching_brace(text, after)
            if close >= 0:
                return text[after + 1:close].strip()
        elif rest == " ":
            token = text[after + 1:after + 64].split(maxsplit=1)
            if token:
                return token[0].rstrip("$.")
        search_end = start
    return None


def _strip_math_delimiters(text: str) -> str:
    text = text.strip().strip(_TRAILING_PUNCT)
    for left, right in (("$$", "$$"), ("$", "$"), ("\\[", "\\]"), ("\\(", "\\)")):
        if text.startswith(left) and text.endswith(right) and len(text) >= len(left) + len(right):
            text = text[len(left):len(text) - len(right)].strip()
    return text.strip(_TRAILING_PUNCT)


def _answer_line(text: str) -> str | None:
    tail = text[-4000:]  # answer lines sit at the end; bounds regex work on 1 MB inputs
    body = None
    for match in _ANSWER_LINE.finditer(tail):
        body = match.group("body")
    if body is None:
        return None
    for _ in range(3):  # "Final Answer: The final answer is 10." holds a second phrase
        nested = _ANSWER_LINE.search(body)
        if nested is None:
            break
        body = nested.group("body")
    body = body.replace("**", "").strip()
    inner = last_boxed(body)
    if inner is not None:
        return inner
    span = _MATH_SPAN.search(body)
    if span is not None:
        body = span.group("dollar") or span.group("paren") or ""
    else:  # "The final answer is 10. I hope it is correct.": the first sentence only
        body = _SENTENCE_END.split(body, maxsplit=1)[0]
    body = _strip_math_delimiters(body)
    return body or None


def _latex_at_end(text: str) -> str | None:
    tail = text.rstrip(_TRAILING_PUNCT)
    for left, right in (("\\[", "\\]"), ("$$", "$$"), ("\\(", "\\)"), ("$", "$")):
        if not tail.endswith(right):
            continue
        start = tail.rfind(left, max(0, len(tail) - TAIL_CHARS), len(tail) - len(right))
        if start >= 0:
            inner = tail[start + len(left):len(tail) - len(right)].strip()
            if inner:
                return inner
    return None


def _last_number(text: str) -> str | None:
    tail = text[-2000:]
    found = None
    for match in _NUMBER.finditer(tail):
        found = match.group(0)
    return found


def extract_answer(completion: str) -> Extraction:
    """Find the final answer in a completion; never raises on str input."""
    if not isinstance(completion, str) or not completion.strip():
        return Extraction(None, "none")
    boxed = last_boxed(completion)
    if boxed:
        return Extraction(boxed, "boxed")
    line = _answer_line(completion)
    if line:
        return Extraction(line, "answer_line")
    latex = _latex_at_end(completion)
    if latex:
        return Extraction(latex, "latex_end")
    number = _last_number(completion)
    if number:
        return Extraction(number, "last_number", flagged=True)
    return Extraction(None, "none")


def strip_gold(gold: str) -> str:
    r"""A reference answer as written in datasets, without ``$...$`` or ``\boxed{}``."""
    text = str(gold).strip()
    for _ in range(3):  # "$\boxed{x}$" and similar stacks
        previous = text
        text = _strip_math_delimiters(text)
        for command in BOXED_COMMANDS:
            # only a box around the whole gold: "\boxed{1}+\boxed{2}" is left as it is
            if (text.startswith(command + "{")
                    and _matching_brace(text, len(command)) == len(text) - 1):
                text = text[len(command) + 1:-1].strip()
        if text == previous:
            break
    return text


# LaTeX spellings that typeset identically; rewriting them is a textual identity.
_SAME_TYPESET = (("\\dfrac", "\\frac"), ("\\tfrac", "\\frac"), ("\\left", ""), ("\\right", ""),
                 ("\\!", ""), ("\\,", ""), ("\\;", ""), ("\\displaystyle", ""),
                 ("\\varnothing", "\\emptyset"),
                 # the same symbols typed in unicode (math-verify reads only the LaTeX)
                 ("·", "\\cdot "), ("∞", "\\infty "), ("°", "^\\circ "), ("≤", "\\le "),
                 ("≥", "\\ge "), ("≠", "\\ne "), ("½", "\\frac{1}{2}"), ("⅓", "\\frac{1}{3}"),
                 ("⅔", "\\frac{2}{3}"), ("¼", "\\frac{1}{4}"), ("¾", "\\frac{3}{4}"), ("²", "^{2}"),
                 ("³", "^{3}"))
# "√2", "3√x", "√(x+1)", "√{12}" -> "\sqrt{...}"; the radicand is one token or one group.
_UNICODE_ROOT = re.compile(r"√\s*(?:(\d+(?:\.\d+)?|[a-zA-Z])|\(([^()]{0,200})\)|\{([^{}]{0,200})\})")
_SPACE_RUN = re.compile(r"\s+")


def _latex_root(match: re.Match) -> str:
    return "\\sqrt{" + next(group for group in match.groups() if group is not None) + "}"


_ENDS_WITH_COMMAND = re.compile(r"\\[a-zA-Z]+$")  # "\cdot 12" == "\cdot12", "\pi r" != "\pir"
_PLAIN_NUMBER = re.compile(r"-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?")


def canonical_answer(answer: str) -> str:
    r"""A textual canonical form: two answers with the same form are the same answer.

    Only rewrites that cannot change the mathematics: typesetting-only commands dropped,
    unicode symbols (√, ∞, °, ½, ², ...) written as the LaTeX math-verify reads,
    white space removed except between two letters/digits ("2 3" stays apart, and
    "\pi r" is not "\pir"; "\cdot 12" is "\cdot12"),
    trailing sentence punctuation dropped.
    """
    text = answer
    for old, new in _SAME_TYPESET:
        text = text.replace(old, new)
    text = _UNICODE_ROOT.sub(_latex_root, text)
    parts = _SPACE_RUN.split(text.strip())
    out = parts[0] if parts else ""
    for part in parts[1:]:
        after_command = part[:1].isdigit() and _ENDS_WITH_COMMAND.search(out) is not None
        if out and part and out[-1].isalnum() and part[0].isalnum() and not after_command:
            out += " "
        out += part
    return out.rstrip(".")


_NUMBER_LIST = r"-?\d+(?:\.\d+)?(?:,-?\d+(?:\.\d+)?)*"
_INTERVAL = re.compile(r"([\[(])(-?\d+(?:\.\d+)?),(-?\d+(?:\.\d+)?)([\])])")
_NUMBER_SET = re.compile(r"\\\{(" + _NUMBER_LIST + r")\\\}")


def _plain_number(text: str) -> Fraction | None:
    if _PLAIN_NUMBER.fullmatch(text):
        return Fraction(text.replace(",", ""))
    return None


_FRACTION = re.compile(r"\\frac\{(-?\d{1,6})\}\{(\d{1,3})\}|(-?\d{1,6})/(\d{1,3})")
_PI_MULTIPLE = re.compile(r"(-?\d{1,6})?\\pi|\\pi(?:\\cdot|\*)(\d{1,6})|(\d{1,6})(?:\\cdot|\*)\\pi")
_RADICAL = re.compile(r"(\d{1,4})?\\sqrt(?:\{(\d{1,6})\}|(\d))")
_ASSIGNMENT = re.compile(r"[a-zA-Z]=(?!=)")
_PERCENT = re.compile(r"(-?\d{1,6}(?:\.\d{1,6})?)\\?%")


def _exact_value(text: str) -> tuple | None:
    """(kind, value) for answers whose value is exact and cheap to read, else None.

    kinds: "decimal" (plain numbers with at most 6 decimals) and "fraction" (integer
    over at most 999): two distinct values of one kind differ by more than
    math-verify's 6-decimal rounding can hide; "pi" (integer multiples of pi),
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
        return None
    gold_pair, answer_pair = _number_pair(gold_c), _number_pair(answer_c)
    if gold_pair and answer_pair:
        return gold_pair == answer_pair
    if gold_pair is not None or answer_pair is not None:
        return None
    gold_s, answer_s = _NUMBER_SET.fullmatch(gold_c), _NUMBER_SET.fullmatch(answer_c)
    if gold_s and answer_s:
        return ({Fraction(x) for x in gold_s[1].split(",")}
                == {Fraction(x) for x in answer_s[1].split(",")})
    return None
