"""Prompt wording shared by every layer, defined once."""

from __future__ import annotations

# The method's solve instruction, appended to a problem (SvS official scripts).
SOLVE_INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."
PROBLEM_SLOT = "{problem}"
SOLUTION_SLOT = "{solution}"
DEFAULT_SOLVE_TEMPLATE = PROBLEM_SLOT + "\n" + SOLVE_INSTRUCTION


def fill_slot(template: str, slot: str, value: str) -> str:
    """Plain replacement, never `str.format`: problem texts and solutions are full of braces."""
    return template.replace(slot, value.strip())
