r"""Final-answer extraction from model completions, and gold-answer normalization.

Pure string work on hostile text: no regex with nested quantifiers over the whole
completion, no sympy, bounded time in the completion's length. Parsing the extracted
answer as mathematics happens only in the sandboxed workers of `verifiers.grader`.

math-verify's extraction (`math_verify.parse` on the whole completion, run in the
workers by `verifiers.sandbox`) is the specification. This module settles in the
caller only what provably gets math-verify's reading:

- `sole_box`: a completion with exactly one ``\boxed{...}``, no ``\fbox`` and no
  "final answer ... is" phrase; math-verify's boxed patterns then read that box and
  nothing outranks them, so the box content is the answer;
- `box_problem`: the last ``\boxed{`` is unbalanced or longer than MAX_BOXED_CHARS: no
  answer, never a number guessed from inside it (math-verify would fall back to the
  last number in the text, a guess a policy can exploit: deliberately stricter).

Every other completion goes to a worker whole (its last MAX_COMPLETION_CHARS).

`extract_answer` is the cascade used to *show* an answer where no grading runs
(rollout tables), with the method names the graded rows use:
1. the last ``\boxed{...}`` (or ``\fbox{...}``), nested braces respected (`boxed`);
2. the last "Answer:" / "final answer is" line (`final_answer`);
3. LaTeX math at the very end of the completion (`latex_tail`);
4. the last number in the completion, *flagged* because it may be an intermediate
   value (`last_number`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

BOXED_COMMANDS = ("\\boxed", "\\fbox")
# How far from the end of a completion a trailing math block may start and still count
# as "the answer at the end".
TAIL_CHARS = 300
# Bounds that keep extraction linear on hostile input (1 MB of unbalanced "\boxed{"):
# a boxed answer longer than this is not an answer, and only the last few boxed
# commands are tried.
MAX_BOXED_CHARS = 20_000
MAX_BOXED_TRIES = 50
# math-verify's extraction reads only this many characters from the end of a
# completion: its regexes are quadratic on some hostile inputs (1 MB of "\\boxed{").
MAX_COMPLETION_CHARS = 32_000
METHODS = ("boxed", "final_answer", "latex_tail", "last_number", "none")

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
    method: str  # boxed | final_answer | latex_tail | last_number | none
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
    # Trailing punctuation only: a leading "." is a decimal point (".25" is not "25").
    text = text.strip().rstrip(_TRAILING_PUNCT)
    for left, right in (("$$", "$$"), ("$", "$"), ("\\[", "\\]"), ("\\(", "\\)")):
        if text.startswith(left) and text.endswith(right) and len(text) >= len(left) + len(right):
            text = text[len(left):len(text) - len(right)].strip()
    return text.rstrip(_TRAILING_PUNCT)


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
        return Extraction(line, "final_answer")
    latex = _latex_at_end(completion)
    if latex:
        return Extraction(latex, "latex_tail")
    number = _last_number(completion)
    if number:
        return Extraction(number, "last_number", flagged=True)
    return Extraction(None, "none")


# A "final answer ... is <math>" phrase outranks a box in math-verify (its priorities 0
# and 50) unless <math> is the box's own math environment.
_FINAL_ANSWER = re.compile(r"final answer", re.IGNORECASE)
_IS_THEN_MATH = re.compile(r"\sis:?\s*(?=\$|\\\[|\\\(|\[|-?\\frac)")
_MATH_OPENING = re.compile(r"(?:\$\$?|\\\[|\\\()[^$\n]{0,300}")
# Only closers, punctuation and Minerva's sign-off may follow the box.
_BOX_AT_END = re.compile(r"\s*(?:\$\$|\$|\\\]|\\\))?[\s.!]*(?:I hope it is correct\.?)?\s*")
# math-verify reads "$\boxed{5}$%" as 5% (a percent sign after the math environment).
_PERCENT_AFTER = re.compile(r"[\s$]*(?:\\[\])])?[\s$]*(?:\\?%|[Pp]ercent|[Pp]ct)")


def sole_box(completion: str) -> str | None:
    r"""The content of the only ``\boxed{...}`` when math-verify provably reads it, else None.

    Exactly one ``\boxed`` (math-verify joins several boxes into one answer), no
    ``\fbox`` (math-verify does not read it), balanced within MAX_BOXED_CHARS, no
    percent sign after it. A "final answer ... is" followed by math (those patterns
    outrank boxes) is allowed only when that math is the box's own environment and the
    box ends the text: then every pattern math-verify tries reads the same box.
    """
    if not isinstance(completion, str) or completion.count("\\boxed") != 1 or "\\fbox" in completion:
        return None
    start = completion.find("\\boxed{")
    if start < 0:
        return None
    close = _matching_brace(completion, start + len("\\boxed"))
    if close < 0:
        return None
    box_at_end = _BOX_AT_END.fullmatch(completion, close + 1) is not None
    for phrase in _FINAL_ANSWER.finditer(completion):
        for is_math in _IS_THEN_MATH.finditer(completion, phrase.end(), phrase.end() + 120):
            opening = _MATH_OPENING.match(completion, is_math.end())
            own_environment = opening is not None and opening.end() >= start > is_math.end()
            if not (own_environment and box_at_end):
                return None
    if _PERCENT_AFTER.match(completion, close + 1):
        return None
    # "\boxed{\frac{1}{2}.}": a sentence's full stop, not part of the answer
    content = completion[start + len("\\boxed{"):close].strip().rstrip(".").rstrip()
    return content or None


def box_problem(completion: str) -> str | None:
    r"""Why the last ``\boxed{`` cannot be read (unbalanced, over-long), else None."""
    if not isinstance(completion, str):
        return None
    start = completion.rfind("\\boxed{")
    if start < 0:
        return None
    if _matching_brace(completion, start + len("\\boxed")) >= 0:
        return None
    if len(completion) - start > MAX_BOXED_CHARS:
        return f"the last \\boxed{{}} is longer than {MAX_BOXED_CHARS} characters"
    return "the last \\boxed{} is never closed"


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


# The normalisation and the exact shortcuts live in fast_path.py; callers of this module
# keep reaching them here.
from svs.verifiers.fast_path import (  # noqa: E402,F401
    MAX_FAST_CHARS,
    canonical_answer,
    fast_equivalence,
    latex_spelling,
)
