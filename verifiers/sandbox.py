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
worker -> parent: ("ready",) once imports are done, then one message per event, sent as
soon as it happens:
    ("gold", ok, detail)  then  ("item", task_id, correct, reason, detail) per answer
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


def worker_main(conn, memory_mb: int, cpu_seconds: int) -> None:
    """Entry point of a worker process (spawned)."""
    logging.disable(logging.CRITICAL)  # math-verify logs every failed parse
    os.chdir(tempfile.mkdtemp(prefix="svs-verify-"))
    from math_verify import verify

    parse_answer = make_parser()
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
        for task_id, answer in items:
            try:
                if looks_like_code(answer):
                    conn.send(("item", task_id, False, "unsafe_input", "answer looks like code"))
                    continue
                if len(answer) > MAX_ANSWER_CHARS:
                    conn.send(("item", task_id, False, "answer_too_long",
                               f"extracted answer has {len(answer)} characters"))
                    continue
                signal.setitimer(signal.ITIMER_REAL, timeout_s)
                try:
                    pred = pred_cache.get(answer)
                    if pred is None:
                        pred = parse_answer(answer)
                        if len(pred_cache) > 20_000:
                            pred_cache.clear()
                        pred_cache[answer] = pred
                    ok = bool(pred) and verify(gold_parsed, pred, timeout_seconds=None)
                finally:
                    signal.setitimer(signal.ITIMER_REAL, 0)
                conn.send(("item", task_id, ok, "correct" if ok else "wrong", ""))
            except ItemTimeout:
                conn.send(("item", task_id, False, "timeout", f"soft limit {timeout_s:g}s"))
            except MemoryError:
                conn.send(("fatal", "memory limit exceeded"))
                return
            except Exception as exc:  # a bug in a parser is one verdict, not the run
                conn.send(("item", task_id, False, "wrong", f"parser error: {type(exc).__name__}"))


if __name__ == "__main__":
    worker_main(Connection(int(sys.argv[1])), int(sys.argv[2]), int(sys.argv[3]))
