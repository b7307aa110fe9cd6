"""Pull the synthesized problem out of a model's synthesis output.

The cascade follows the SvS method, first hit wins:
1. keep only the text after the last ``</think>`` when the model reasoned first;
2. the last fenced block tagged ``text`` (the synthesis prompt asks for one);
3. else the first fenced block of any kind;
4. else whatever follows a "Reconstructed Question" marker.

Then svs's fallbacks, for real models that do not follow the format (measured on
SmolLM2-135M-Instruct, docs/synthesis.md), each recorded as the candidate's method:

5. `problem_marker`: the text after the last "new problem:" / "problem:" marker (the
   model wrote "The new problem: ..." without a fence), up to a "solution:" /
   "answer:" line or a fence;
6. `unclosed_fence`: the body of a fence that was opened and never closed (the output
   was cut off or the model forgot the closing fence), when nothing above matched.

The text checks (`verifiers.problems`) judge what comes out: a fallback finds more
problems and more junk, and the checks are what keeps the junk out.

Model output is hostile: everything here is `str.find` scanning, linear in the output's
length, with no regular expression that can backtrack over the whole output.
"""

from __future__ import annotations

from dataclasses import dataclass

FENCE = "```"
THINK_END = "</think>"
MARKERS = ("reconstructed question", "reconstructed problem")
PROBLEM_MARKERS = ("new problem:", "problem:", "new problem**:", "problem**:", "new problem :",
                   "**new problem**", "**problem**")
PROBLEM_ENDS = ("solution:", "answer:", "final answer", "**solution", "**answer", FENCE)
METHODS = ("text_block", "fenced_block", "marker", "problem_marker", "unclosed_fence", "none")
MAX_PROBLEM_CHARS = 4000
NO_PROBLEM = "no_problem_extracted"


@dataclass(frozen=True)
class ExtractedProblem:
    """The problem text (None when nothing usable was found) and the step that found it."""

    text: str | None
    method: str  # one of METHODS
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.text is not None


def _fenced_blocks(text: str) -> list[tuple[str, str]]:
    """(info string, body) of every closed fenced block, in order."""
    blocks = []
    position = 0
    while True:
        start = text.find(FENCE, position)
        if start < 0:
            return blocks
        line_end = text.find("\n", start + len(FENCE))
        if line_end < 0:
            return blocks
        close = text.find(FENCE, line_end + 1)
        if close < 0:
            return blocks  # an unclosed fence: the output was cut off
        info = text[start + len(FENCE):line_end].strip().lower()
        blocks.append((info, text[line_end + 1:close]))
        position = close + len(FENCE)


def _after_marker(text: str) -> str | None:
    lowered = text.lower()
    for marker in MARKERS:
        index = lowered.rfind(marker)
        if index >= 0:
            return text[index + len(marker):].lstrip(" \t*:#-_\n").strip()
    return None


def _after_problem_marker(text: str) -> str | None:
    lowered = text.lower()
    best = -1
    best_marker = ""
    for marker in PROBLEM_MARKERS:
        index = lowered.rfind(marker)
        if index > best:
            best, best_marker = index, marker
    if best < 0:
        return None
    start = best + len(best_marker)
    end = len(text)
    for stop in PROBLEM_ENDS:
        index = lowered.find(stop, start)
        if 0 <= index < end:
            end = index
    return text[start:end].lstrip(" \t*:#-_\n").rstrip(" \t*#-_\n")


def _unclosed_fence(text: str) -> str | None:
    """The body after the last fence opening that no fence closes."""
    fences = []
    position = 0
    while (index := text.find(FENCE, position)) >= 0:
        fences.append(index)
        position = index + len(FENCE)
    if len(fences) % 2 == 0:
        return None
    line_end = text.find("\n", fences[-1] + len(FENCE))
    return text[line_end + 1:] if line_end >= 0 else None


def _finish(body: str | None, method: str) -> ExtractedProblem:
    if body is None:
        return ExtractedProblem(None, "none", "no fenced block, no 'Reconstructed "
                                "Question' or 'problem:' marker, no unclosed fence")
    body = body.strip()
    if not body:
        return ExtractedProblem(None, method, "the extracted block is empty")
    if len(body) > MAX_PROBLEM_CHARS:
        return ExtractedProblem(None, method, f"the extracted problem is {len(body)} "
                                f"characters, over {MAX_PROBLEM_CHARS}")
    return ExtractedProblem(body, method)


def extract_problem(output: str, fallbacks: bool = True) -> ExtractedProblem:
    """The synthesized problem in `output`, or `text=None` with the reason in `detail`.

    `fallbacks=False` runs the method's cascade only (steps 1-4).
    """
    if not isinstance(output, str):
        return ExtractedProblem(None, "none", f"output is {type(output).__name__}, not str")
    think_end = output.rfind(THINK_END)
    if think_end >= 0:
        output = output[think_end + len(THINK_END):]
    blocks = _fenced_blocks(output)
    tagged = [body for info, body in blocks if info == "text"]
    if tagged:
        return _finish(tagged[-1], "text_block")
    if blocks:
        return _finish(blocks[0][1], "fenced_block")
    marked = _after_marker(output)
    if marked is not None:
        return _finish(marked, "marker")
    if fallbacks:
        marked = _after_problem_marker(output)
        if marked:
            return _finish(marked, "problem_marker")
        unclosed = _unclosed_fence(output)
        if unclosed is not None and unclosed.strip():
            return _finish(unclosed, "unclosed_fence")
    return _finish(None, "none")
