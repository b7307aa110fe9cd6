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

BOXED_COMMANDS = ("\\boxed", "\\fbox")
# How far from the end of a completion a trailing math block may start and still count
# as "the answer at the end".
TAIL_CHARS = 300
# Bounds that keep extraction linear on hostile input (1 MB of unbalanced "\boxed{"):
# a boxed answer longer than this is not an answer, and only the last few boxed
# commands are tried.
MAX_BOXED_CHARS = 20_000
MAX_BOXED_TRIES = 50

_ANSWER_LINE = re.compile(
    r"(?:final\s+answer|answer)\s*(?:is|:|=)\s*:?\s*(?P<body>[^\n]{1,500})",
    re.IGNORECASE,
)
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
    body = body.replace("**", "").strip()
    inner = last_boxed(body)
    if inner is not None:
        return inner
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
        if any(text.startswith(command + "{") for command in BOXED_COMMANDS):
            inner = last_boxed(text)
            if inner is not None and text.endswith("}"):
                text = inner
        if text == previous:
            break
    return text
