"""Code that runs inside a sandboxed verifier worker process.

This is the only place where model-written text is parsed as mathematics (math-verify,
which uses sympy and latex2sympy underneath). A worker:

- caps its address space and CPU time with `resource.setrlimit`, so a parse bomb ends
  in MemoryError or SIGXCPU inside the worker, never in the caller;
- refuses strings that look like Python code (dunder names, `import`, `exec`, ...)
  before sympy sees them — defence in depth, since sympy's `parse_expr` evaluates
  Python;
- applies a soft per-item deadline with `setitimer` (math-verify's own `signal.alarm`
  timeouts are switched off: they swallow the timeout into a plain False). The parent
  adds a hard deadline and kills the worker when C code ignores the soft one.

A worker is a fresh interpreter (`python -m verifiers.sandbox FD MEMORY_MB CPU_S`), not
a multiprocessing child: nothing of the caller (torch, threads, its `__main__`) is
inherited or re-imported. Messages travel over a socketpair wrapped in a
`multiprocessing.connection.Connection`, parent -> worker:
    ("chunk", gold, [(task_id, answer), ...], timeout_s)   or   ("stop",)
Each item is (task_id, kind, text): kind "answer" is an answer already isolated by
`verifiers.answers` (parsed as ``\boxed{text}``), kind "completion" is a whole completion
read with math-verify's own extraction (`read_completion`).
worker -> parent: ("ready",) once imports are done, then one message per event, sent as
soon as it happens:
    ("gold", ok, detail)  then
    ("item", task_id, correct, reason, detail, extracted, method) per item
    ("fatal", detail) right before exiting on MemoryError.
"""

from __future__ import annotations

import logging
import os
import re
import resource
import signal
import sys
import tempfile
import unicodedata
from multiprocessing.connection import Connection

# Python-code markers that never occur in a mathematical answer.
_CODE_MARKERS = re.compile(
    r"__|\b(?:import|exec|eval|compile|open|getattr|setattr|delattr|globals|locals|"
    r"lambda|subprocess|system|popen|builtins|breakpoint|input)\b"
)
MAX_ANSWER_CHARS = 1000


class ItemTimeout(BaseException):
    """Raised by the soft timer. BaseException so that math-verify's `except Exception`
    handlers cannot swallow it."""


def _on_alarm(signum, frame):  # noqa: ARG001 - signal handler signature
    raise ItemTimeout()


def looks_like_code(text: str) -> bool:
    # NFKC first: Python folds identifiers that way, so "ｅｘｅｃ" *is* exec to parse_expr.
    return _CODE_MARKERS.search(unicodedata.normalize("NFKC", text)) is not None


def _limit_resources(memory_mb: int, cpu_seconds: int) -> None:
    if memory_mb > 0:
        limit = memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    if cpu_seconds > 0:
        resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 5))


def _wrap(answer: str) -> str:
    # math-verify extracts best from a boxed expression: bare "[0,1)" or "2\sqrt{3}"
    # parse wrongly or not at all, "\boxed{...}" parses as written.
    return "\\boxed{" + answer + "}"


def make_parser():
    """math-verify `parse` for an answer already isolated by `verifiers.answers`.

    LaTeX extraction with the boxed match first is 3-10x faster than math-verify's
    default (which also tries plain-expression extraction on every input); the default
    configuration is the fallback when it finds nothing.
    """
    from math_verify import parse
    from math_verify.parser import LatexExtractionConfig

    boxed_first = [LatexExtractionConfig(boxed_match_priority=0)]

    def parse_answer(answer: str):
        wrapped = _wrap(answer)
        return (parse(wrapped, extraction_config=boxed_first, parsing_timeout=None)
                or parse(wrapped, parsing_timeout=None))

    return parse_answer


def _method_of(pattern, target) -> str:
    """The graded row's name for one of math-verify's extraction patterns."""
    from math_verify.parser import LatexExtractionConfig

    if "boxed" in pattern.pattern:
        return "boxed"
    if pattern.pattern.lower().find("answer") >= 0:
        return "final_answer"
    return "latex_tail" if isinstance(target, LatexExtractionConfig) else "last_number"


def make_completion_reader():
    """math-verify's `parse(completion)` with default options, that also says which of
    its patterns found the answer and where.

    Same steps as `math_verify.parser.extract_target_from_pred` (math-verify 0.9):
    patterns grouped by priority; in the first group with a parsable match, matches are
    tried rightmost first; the result is [parsed, string of the first match tried].
    One deliberate difference (docs/verifier-tests.md): when the completion has a
    ``\boxed`` that math-verify could not parse, a `latex_tail`/`last_number` match is
    no answer: a guess, possibly a number out of the box, is never graded.
    """
    from itertools import groupby

    from math_verify.parser import (
        ExprExtractionConfig,
        LatexExtractionConfig,
        extract_match,
        get_extraction_regexes,
    )

    from svs.verifiers.answers import MAX_COMPLETION_CHARS

    targets = get_extraction_regexes([LatexExtractionConfig(), ExprExtractionConfig()])
    patterns = sorted(((pattern, target, priority, _method_of(pattern, target))
                       for target_patterns, target in targets
                       for pattern, priority in target_patterns), key=lambda item: item[2])
    groups = [list(group) for _, group in groupby(patterns, key=lambda item: item[2])]

    def read_completion(completion: str) -> tuple[list, str, str]:
        """(math-verify's parse result, the extracted string, method)."""
        text = completion[-MAX_COMPLETION_CHARS:]
        has_box = "\\boxed" in text
        fallback = None
        for group in groups:
            matches = sorted(((match, target, method) for pattern, target, _, method in group
                              for match in pattern.finditer(text)),
                             key=lambda item: (item[0].end(), -item[0].start()), reverse=True)
            for match, target, method in matches:
                if any(looks_like_code(value) for name, value in match.groupdict().items()
                       if value and ("latex" in name or name == "expr")):
                    return [], match.group(0), "unsafe"  # never parsed
                parsed, string = extract_match(match, target)
                if string and fallback is None:
                    fallback = string
                if parsed is None:
                    continue
                if has_box and method in ("latex_tail", "last_number"):
                    return [], "", "none"  # no guess where the box could not be read
                result = [parsed] if fallback is None else [parsed, fallback]
                return result, string, method
        return ([fallback] if fallback else []), fallback or "", "none"

    return read_completion


def worker_main(conn, memory_mb: int, cpu_seconds: int) -> None:
    """Entry point of a worker process (spawned)."""
    logging.disable(logging.CRITICAL)  # math-verify logs every failed parse
    os.chdir(tempfile.mkdtemp(prefix="svs-verify-"))
    from math_verify import verify

    parse_answer = make_parser()
    read_completion = make_completion_reader()
    _limit_resources(memory_mb, cpu_seconds)
    signal.signal(signal.SIGALRM, _on_alarm)
    conn.send(("ready",))

    def timed(fn, timeout_s, *args, **kwargs):
        signal.setitimer(signal.ITIMER_REAL, timeout_s)
        try:
            return fn(*args, **kwargs)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)

    gold_cache: dict[str, object] = {}
    pred_cache: dict[str, object] = {}  # the same answer string recurs across problems
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message[0] == "stop":
            return
        _, gold, items, timeout_s = message
        try:
            if gold in gold_cache:
                gold_parsed = gold_cache[gold]
            else:
                if looks_like_code(gold) or len(gold) > MAX_ANSWER_CHARS:
                    gold_parsed = None
                else:
                    gold_parsed = timed(parse_answer, timeout_s, gold)
                if len(gold_cache) > 4096:
                    gold_cache.clear()
                gold_cache[gold] = gold_parsed
            if not gold_parsed:
                conn.send(("gold", False, "reference answer could not be parsed"))
                continue
            conn.send(("gold", True, ""))
        except ItemTimeout:
            conn.send(("gold", False, f"parsing the reference answer took over {timeout_s:g}s"))
            continue
        except MemoryError:
            conn.send(("fatal", "memory limit while parsing the reference answer"))
            return
        for task_id, kind, text in items:
            try:
                conn.send(("item", task_id, *_grade_item(
                    kind, text, gold_parsed, parse_answer, read_completion, pred_cache,
                    timeout_s, verify)))
            except ItemTimeout:
                conn.send(("item", task_id, False, "timeout", f"soft limit {timeout_s:g}s",
                           None, None))
            except MemoryError:
                conn.send(("fatal", "memory limit exceeded"))
                return
            except Exception as exc:  # a bug in a parser is one verdict, not the run
                conn.send(("item", task_id, False, "wrong",
                           f"parser error: {type(exc).__name__}", None, None))


def _grade_item(kind, text, gold_parsed, parse_answer, read_completion, pred_cache, timeout_s,
                verify) -> tuple:
    """(correct, reason, detail, extracted, method) for one item; the soft timer is on."""
    extracted = method = None
    if kind == "completion":
        signal.setitimer(signal.ITIMER_REAL, timeout_s)
        try:
            pred, extracted, method = read_completion(text)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        if method == "unsafe":
            return False, "unsafe_input", "answer looks like code", extracted[:200], None
        if not pred:
            return False, "no_answer", "math-verify found no answer", None, "none"
        if len(extracted) > MAX_ANSWER_CHARS:
            return (False, "answer_too_long", f"extracted answer has {len(extracted)} characters",
                    extracted, method)
    else:
        if looks_like_code(text):
            return False, "unsafe_input", "answer looks like code", None, None
        if len(text) > MAX_ANSWER_CHARS:
            return False, "answer_too_long", f"extracted answer has {len(text)} characters", None, None
        signal.setitimer(signal.ITIMER_REAL, timeout_s)
        try:
            pred = pred_cache.get(text)
            if pred is None:
                pred = parse_answer(text)
                if len(pred_cache) > 20_000:
                    pred_cache.clear()
                pred_cache[text] = pred
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
    signal.setitimer(signal.ITIMER_REAL, timeout_s)
    try:
        ok = bool(pred) and verify(gold_parsed, pred, timeout_seconds=None)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    return ok, "correct" if ok else "wrong", "", extracted, method


if __name__ == "__main__":
    worker_main(Connection(int(sys.argv[1])), int(sys.argv[2]), int(sys.argv[3]))
