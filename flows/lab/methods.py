"""Exact method statistics of a lab policy, and the curriculum's own problem parser.

Every curriculum solution opens with a method tag that is one token of the lab's
tokenizer, so the policy's distribution over methods for a problem is exactly its
next-token distribution over the kind's tags after the solve prompt: one forward pass,
no sampling. `method_distributions` returns it per prompt (renormalised over the kind's
tags, with the mass left on other tokens reported), `entropy` its entropy in nats.

`parse_problem` reads a problem text in the curriculum's own grammar back into a `Spec`
with regular expressions (integers only, anchored, length-capped): the lab's exact
faithfulness check of a synthesized problem. Model text never reaches eval or sympify.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

from svs.flows.lab.curriculum import FORMS, METHODS, Spec, answer_of

_INT = r"(\d{1,4})"


def _patterns() -> list[tuple[str, int, re.Pattern[str]]]:
    """(kind, form, anchored regex) of every phrasing; numbers as capture groups."""
    names = {"a": _INT, "b": _INT, "c": _INT}
    out = []
    for kind, forms in FORMS.items():
        for form, template in enumerate(forms):
            pattern = re.escape(template)
            for name, group in names.items():
                pattern = pattern.replace(re.escape("{" + name + "}"), group)
            out.append((kind, form, re.compile(pattern)))
    return out


_PATTERNS = _patterns()
MAX_TEXT = 200


def parse_problem(text: str) -> Spec | None:
    """The Spec of a problem written in one of the curriculum's phrasings (any numbers,
    not only the drawing ranges), or None: another text or a non-integer root."""
    text = text.strip()
    if len(text) > MAX_TEXT:
        return None
    for kind, form, pattern in _PATTERNS:
        match = pattern.fullmatch(text)
        if match is None:
            continue
        values = [int(v) for v in match.groups()]
        if kind == "mul":
            return Spec(kind, tuple(values), form)
        if kind == "linear":
            a, b, c = values
            if a == 0 or (c - b) % a or c < b:
                return None
            return Spec(kind, (a, (c - b) // a, b), form)
        return Spec(kind, tuple(values), form)  # sum: three terms
    return None


def faithful(text: str, answer: str) -> bool:
    """True when `text` is a curriculum problem whose sympy-computed answer is `answer`."""
    spec = parse_problem(text)
    return spec is not None and str(answer_of(spec)) == str(answer).strip()


def entropy(distribution: dict[str, float]) -> float:
    return -sum(p * math.log(p) for p in distribution.values() if p > 0)


def tag_ids(tokenizer: Any) -> dict[str, int]:
    """{method: token id of its tag}; raises when a tag is not a single token."""
    ids = {}
    for methods in METHODS.values():
        for method in methods:
            tokens = tokenizer(f"[{method}]", add_special_tokens=False)["input_ids"]
            if len(tokens) != 1:
                raise ValueError(f"the tag [{method}] is {len(tokens)} tokens in this "
                                 f"tokenizer; the lab's policy must be built with the tags "
                                 f"as added tokens (flows.lab.bootstrap)")
            ids[method] = tokens[0]
    return ids


def method_distributions(policy: Any, prompts: Sequence[str], kinds: Sequence[str],
                         batch_size: int = 64) -> list[tuple[dict[str, float], float]]:
    """Per prompt: (the policy's distribution over its kind's methods, renormalised;
    the probability mass on those tags before renormalising), at temperature 1."""
    import torch

    ids = tag_ids(policy.tokenizer)
    model = policy.model
    device = next(model.parameters()).device
    pad = policy.pad_id
    results: list[tuple[dict[str, float], float]] = []
    with torch.no_grad():
        for start in range(0, len(prompts), batch_size):
            encoded = [policy.encode(p) for p in prompts[start:start + batch_size]]
            width = max(len(e) for e in encoded)
            input_ids = torch.full((len(encoded), width), pad, dtype=torch.long)  # (B, T)
            attention = torch.zeros((len(encoded), width), dtype=torch.long)  # (B, T)
            for row, e in enumerate(encoded):
                input_ids[row, width - len(e):] = torch.tensor(e)
                attention[row, width - len(e):] = 1
            logits = model(input_ids=input_ids.to(device),
                           attention_mask=attention.to(device)).logits[:, -1, :]  # (B, V)
            probs = torch.softmax(logits.float(), dim=-1).cpu()  # (B, V)
            for row, kind in enumerate(kinds[start:start + batch_size]):
                raw = {m: float(probs[row, ids[m]]) for m in METHODS[kind]}
                mass = sum(raw.values())
                results.append(({m: p / mass for m, p in raw.items()} if mass > 0 else raw,
                                mass))
    return results


def mean_shares(distributions: Sequence[dict[str, float]]) -> dict[str, float]:
    """Mean probability of each method over problems (a method absent from a kind
    counts 0 there), normalised to sum to 1."""
    totals: dict[str, float] = {}
    for dist in distributions:
        for method, p in dist.items():
            totals[method] = totals.get(method, 0.0) + p
    whole = sum(totals.values()) or 1.0
    return {m: totals[m] / whole for m in sorted(totals)}
