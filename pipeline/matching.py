"""Rollout groups to the problems of a prompt set: by id, else by content.

A trainer dump names its problem only when the reward put an id into it (svs's rewards
do, and verl's legacy trainer dumps reward extras). verl 0.9.1's default V1 trainer
dumps only `input, output, gts, score, step, uid`: `input` is the decoded,
chat-templated prompt (the template's role markers, a system prompt, the solve
instruction and whatever spacing the tokenizer's decoder puts back, around the problem
text), and `gts` the reference answer. Such a group is matched by content: among the
problems whose answer equals the group's gold answer, the one whose text occurs inside
the prompt; the longest such text wins ("What is 3 + 4?" inside "... What is 3 + 4? Then
double it." loses to the longer problem). Text is compared without any white space
(after NFKC), so a decoder that adds or drops spaces between tokens still matches.

Order of the rules, first match wins: the group's id is a set id; the content id of
(prompt, answer) is a set id; the normalized prompt, minus the SvS solve instruction,
is a problem text; the problem text occurs in the prompt (same answer). Groups that
match nothing are kept in the result with an example, never dropped silently.
"""

from __future__ import annotations

import unicodedata
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from svs.core.constants import SOLVE_INSTRUCTION
from svs.core.records import Problem, RolloutGroup, normalize_text, problem_id


def squeezed(text: str) -> str:
    """NFKC text without any white space: the form content matching compares."""
    return "".join(unicodedata.normalize("NFKC", text).split())


@dataclass
class MatchResult:
    """Groups re-keyed to the set's ids (merged per problem and step), the groups that
    matched no problem, and how many groups each rule matched."""

    matched: list[RolloutGroup] = field(default_factory=list)
    unmatched: list[RolloutGroup] = field(default_factory=list)
    rules: Counter = field(default_factory=Counter)

    def unmatched_message(self, label: str) -> str:
        """One line naming how many groups matched no problem of `label`, with an example."""
        if not self.unmatched:
            return ""
        example = self.unmatched[0]
        prompt = " ".join(example.prompt.split())
        return (f"{len(self.unmatched)} of {len(self.matched) + len(self.unmatched)} rollout "
                f"groups match no problem of {label}, e.g. prompt {prompt[:160]!r} with answer "
                f"{example.answer!r} (group {example.problem_id}, step {example.step})")


class ProblemIndex:
    """The lookups of `match`, built once per prompt set."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.ids = {p.id for p in problems}
        self.by_text = {normalize_text(p.text): p.id for p in problems}
        self.by_answer: dict[str, list[tuple[str, str]]] = {}
        for p in problems:
            text = squeezed(p.text)
            if text:
                self.by_answer.setdefault(squeezed(p.answer), []).append((text, p.id))
        self.suffix = normalize_text(SOLVE_INSTRUCTION)

    def find(self, group: RolloutGroup) -> tuple[str | None, str]:
        """(the set's problem id or None, the rule that matched or "none")."""
        if group.problem_id in self.ids:
            return group.problem_id, "id"
        if problem_id(group.prompt, group.answer) in self.ids:
            return problem_id(group.prompt, group.answer), "content id"
        prompt = normalize_text(group.prompt)
        if prompt.endswith(self.suffix):
            prompt = prompt[: -len(self.suffix)].strip()
        if prompt in self.by_text:
            return self.by_text[prompt], "text"
        haystack = squeezed(group.prompt)
        found = [(len(text), pid) for text, pid in self.by_answer.get(squeezed(group.answer), ())
                 if text in haystack]
        if found:
            return max(found)[1], "text in prompt"
        return None, "none"


def match(problems: Sequence[Problem], groups: Sequence[RolloutGroup]) -> MatchResult:
    """Re-key `groups` to the ids of `problems`; groups of one problem at one step (verl
    keeps one uid per prompt of a batch, so a prompt sampled twice has two) are merged."""
    index = ProblemIndex(problems)
    result = MatchResult()
    merged: dict[tuple[str, int | None], list[RolloutGroup]] = {}
    for group in groups:
        pid, rule = index.find(group)
        result.rules[rule] += 1
        if pid is None:
            result.unmatched.append(group)
        else:
            merged.setdefault((pid, group.step), []).append(group)
    for (pid, _), parts in merged.items():
        first = parts[0]
        rollouts = tuple(replace(r, problem_id=pid) for part in parts for r in part.rollouts)
        result.matched.append(replace(first, problem_id=pid, rollouts=rollouts))
    return result
