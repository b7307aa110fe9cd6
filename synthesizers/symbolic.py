r"""A model-free synthesizer: rewrites that sympy proves, for problems it can read.

It finds the one piece of maths in a problem (a ``$...$`` segment, or a plain-text run
such as ``3x + 5 = 20``), parses it with the strict `synthesizers.mathparse` (never
`sympify`), and writes variants of three kinds:

- `keep` (the reference answer holds by construction, and is re-checked):
  an arithmetic literal ``n`` becomes ``(a \times b + c)`` with the same value; an
  equation ``L = R`` becomes ``k L + p(x) = k R + p(x)``, expanded, whose solution set
  is the same, so any question about the solutions keeps its answer.
- `recompute` (a new answer, computed): one arithmetic literal or a linear equation's
  constant changes and sympy computes the new value / solution. Only done when the
  seed's own reference answer equals what sympy computes for it (checked in the
  sandboxed grader), so we know the problem asks for exactly that value.
- `template`: problems that carry `metadata["template"]` (text with ``{name}`` slots),
  `metadata["variables"]` ({name: integer}) and `metadata["answer_formula"]` get new
  variable values and the formula's recomputed value (a positive integer).

Every item draws from `Random(f"{seed}:{problem.id}:{index}")`, so any variant can be
regenerated alone.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field

import sympy

from svs.synthesizers.registry import Candidate, Seed, register
from svs.verifiers.mathparse import ParseError, parse_equation, parse_expression, tokenize
from svs.verifiers.sympy_answers import (
    MathSpan,
    answer_text,
    equation_parts,
    find_math,
    render,
    seed_value,
)

NAME = "symbolic"
KINDS = ("keep", "recompute", "template")
_MAX_TRIES = 20


@dataclass(frozen=True)
class SymbolicConfig:
    """Which sympy-proven rewrites to make and how many."""

    variants_per_seed: int = field(default=4, metadata={
        "help": "Variants written per seed problem (distinct texts)."})
    kinds: tuple[str, ...] = field(default=KINDS, metadata={
        "help": "Rewrite kinds to use: keep (same answer), recompute (new answer), "
                "template (number templates in metadata)."})
    seed: int = field(default=0, metadata={"help": "Seed of the per-item random draws."})
    max_value: int = field(default=50, metadata={
        "help": "Largest magnitude of the numbers a rewrite introduces."})

    def __post_init__(self) -> None:
        object.__setattr__(self, "kinds", tuple(self.kinds))
        if self.variants_per_seed < 1:
            raise ValueError(f"variants_per_seed must be >= 1, got {self.variants_per_seed}")
        unknown = set(self.kinds) - set(KINDS)
        if unknown or not self.kinds:
            raise ValueError(f"kinds must be a non-empty subset of {KINDS}, got {self.kinds}")
        if self.max_value < 2:
            raise ValueError(f"max_value must be >= 2, got {self.max_value}")


def _nice(value: sympy.Expr, max_denominator: int = 12) -> bool:
    return bool(value.is_Rational) and value.q <= max_denominator and abs(value) < 10**9


def _literals(body: str):
    return [t for t in tokenize(body) if t.kind == "num" and "." not in t.text]


def keep_arithmetic(span: MathSpan, rng: random.Random, max_value: int) -> str | None:
    r"""Replace one integer literal n with (a x b + c) = n; the value is re-checked."""
    literals = _literals(span.body)
    if not literals:
        return None
    token = rng.choice(literals)
    number = int(token.text)
    a = rng.randint(2, max(2, min(9, max_value)))
    b = rng.randint(2, max(2, min(9, max_value)))
    c = number - a * b
    times = " \\times " if span.latex else " * "
    sign = "+" if c >= 0 else "-"
    piece = f"({a}{times}{b} {sign} {abs(c)})"
    body = span.body[:token.start] + piece + span.body[token.end:]
    if parse_expression(body) != parse_expression(span.body):  # exact rationals
        return None
    return body


def recompute_arithmetic(span: MathSpan, rng: random.Random,
                         max_value: int) -> tuple[str, sympy.Expr] | None:
    literals = _literals(span.body)
    if not literals:
        return None
    old_value = parse_expression(span.body)
    token = rng.choice(literals)
    replacement = rng.randint(1, max_value)
    if replacement == int(token.text):
        return None
    body = span.body[:token.start] + str(replacement) + span.body[token.end:]
    try:
        value = parse_expression(body)
    except ParseError:
        return None
    if not _nice(value) or value == old_value:
        return None
    return body, value


def keep_equation(span: MathSpan, rng: random.Random, max_value: int) -> str | None:
    """k L + p(x) = k R + p(x): the same solution set, proven by the expansion."""
    parts = equation_parts(span.body)
    if parts is None:
        return None
    left, right = parse_equation(span.body)
    variable = parts[1]
    scale = rng.choice([k for k in range(-4, 5) if k not in (0, 1)])
    shift = rng.randint(-max_value, max_value) * variable + rng.randint(-max_value, max_value)
    new_left = sympy.expand(scale * left + shift)
    new_right = sympy.expand(scale * right + shift)
    body = f"{render(new_left, span.latex)} = {render(new_right, span.latex)}"
    new_difference = sympy.expand(parse_equation(body)[0] - parse_equation(body)[1])
    if sympy.expand(new_difference - scale * parts[0]) != 0 or body == span.body:
        return None
    return body


def recompute_equation(span: MathSpan, rng: random.Random,
                       max_value: int) -> tuple[str, sympy.Expr] | None:
    """A linear equation with a new right-hand constant, and its new solution."""
    parts = equation_parts(span.body)
    if parts is None or sympy.degree(parts[0], parts[1]) != 1:
        return None
    left, _ = parse_equation(span.body)
    variable = parts[1]
    new_right = sympy.Integer(rng.randint(-max_value, max_value))
    solutions = sympy.solve(sympy.Eq(left, new_right), variable)
    if len(solutions) != 1 or not _nice(solutions[0]):
        return None
    old_solution = sympy.solve(parts[0], variable)
    if solutions == old_solution:
        return None
    right_text = render(new_right, span.latex)
    body = span.body[:span.body.index("=") + 1] + " " + right_text
    return body, solutions[0]


def template_variant(metadata, rng: random.Random) -> tuple[str, sympy.Expr, dict] | None:
    template = metadata.get("template")
    variables = metadata.get("variables")
    formula = metadata.get("answer_formula")
    if not (isinstance(template, str) and isinstance(variables, dict)
            and isinstance(formula, str)):
        return None
    names = frozenset(variables)
    values = {}
    for name, old in variables.items():
        old = int(old)
        low, high = max(1, old // 2), max(2, old * 3 // 2 + 1)
        values[name] = rng.randint(low, high)
    expression = parse_expression(formula, names)
    value = expression.subs({sympy.Symbol(n): sympy.Integer(v) for n, v in values.items()})
    if not (value.is_Integer and value > 0):
        return None
    text = template
    for name, number in values.items():
        text = text.replace("{" + name + "}", str(number))
    return text, value, values


def _one_variant(seed: Seed, span: MathSpan | None, kind: str, rng: random.Random,
                 config: SymbolicConfig, recompute_ok: bool):
    """(text, new answer or None for the original's, rewrite label) or None."""
    problem = seed.problem
    if kind == "template":
        made = template_variant(problem.metadata, rng)
        if made is None:
            return None
        return made[0], answer_text(made[1]), "template", {"variables": made[2]}
    if span is None:
        return None
    is_equation = "=" in span.body
    if kind == "keep":
        body = (keep_equation if is_equation else keep_arithmetic)(span, rng, config.max_value)
        label = "keep_equation" if is_equation else "keep_arithmetic"
        answer = None
    else:
        if not recompute_ok:
            return None
        made = (recompute_equation if is_equation else recompute_arithmetic)(
            span, rng, config.max_value)
        if made is None:
            return None
        body, answer = made[0], answer_text(made[1])
        label = "recompute_equation" if is_equation else "recompute_arithmetic"
    if body is None:
        return None
    return problem.text[:span.start] + body + problem.text[span.end:], answer, label, {}


def _recompute_allowed(seeds: Sequence[Seed], spans: list[MathSpan | None]) -> list[bool]:
    """Whether each seed's reference answer equals sympy's value (graded in the sandbox)."""
    from svs.verifiers.grader import grade_batch

    values = [seed_value(span) if span is not None else None for span in spans]
    asks = [(answer_text(v), seed.problem.answer) for seed, v in zip(seeds, values, strict=True)
            if v is not None]
    grades = iter(grade_batch(asks, extract=False) if asks else [])
    return [next(grades).correct if v is not None else False for v in values]


@register(NAME, config=SymbolicConfig, needs_policy=False)
def synthesize_symbolic(seeds: Sequence[Seed], policy, config: SymbolicConfig) -> list[Candidate]:
    """Up to `variants_per_seed` sympy-proven variants per seed; policy is unused."""
    del policy  # model-free by design; the registry's signature is shared
    unique = list({seed.problem.id: seed for seed in seeds}.values())
    spans = [find_math(seed.problem.text) for seed in unique]
    recompute_ok = (_recompute_allowed(unique, spans) if "recompute" in config.kinds
                    else [False] * len(unique))
    candidates: list[Candidate] = []
    for seed, span, may_recompute in zip(unique, spans, recompute_ok, strict=True):
        seen = {seed.problem.text}
        made = 0
        for index in range(config.variants_per_seed * _MAX_TRIES):
            if made >= config.variants_per_seed:
                break
            rng = random.Random(f"{config.seed}:{seed.problem.id}:{index}")
            kind = config.kinds[index % len(config.kinds)]
            try:
                variant = _one_variant(seed, span, kind, rng, config, may_recompute)
            except ParseError:
                variant = None
            if variant is None or variant[0] in seen:
                continue
            text, answer, label, extra = variant
            seen.add(text)
            made += 1
            problem = seed.problem.variant(text, answer, synthesizer=NAME, rewrite=label,
                                           seed_rollout=seed.rollout_ref, **extra)
            candidates.append(Candidate(seed, problem, text, NAME, answer_proven=True))
        if made == 0:
            candidates.append(Candidate(
                seed, None, "", NAME, "not_symbolic",
                "no single readable maths segment, equation or number template"))
    return candidates
