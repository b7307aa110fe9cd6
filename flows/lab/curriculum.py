r"""A deterministic, sympy-computed curriculum that teaches both tasks of the SvS method.

Each item is a small problem (arithmetic or a linear equation), a short worked solution
that ends in ``\boxed{answer}``, and the answer. Every number in a solution (each step
and the answer) is computed by sympy on the item's own drawn numbers, never parsed
from text. Item `i` draws only from `Random(seed + i)`, so any item can be regenerated
alone, and every problem carries its provenance in `metadata` (curriculum name and
version, seed, index, kind).

The two tasks, as (prompt, completion) pairs for supervised warm-up:
- solving: the problem in the learner's solve prompt -> the worked solution;
- synthesis: the SvS synthesis prompt filled with the solution
  (`synthesizers.svs.render_prompt`, the bundled template by default) -> the problem in
  a fenced ``text`` block, which is what `synthesizers.extract` pulls out.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import sympy

from svs.core.constants import DEFAULT_SOLVE_TEMPLATE, PROBLEM_SLOT, SOLUTION_SLOT, fill_slot
from svs.core.records import Problem, Seed
from svs.synthesizers.svs import PROMPTS, render_prompt

NAME = "svs-lab-curriculum"
VERSION = 2  # bump when a template or a draw changes: cached policies key on it
SOURCE = "curriculum"
KINDS = ("add", "sub", "mul", "mixed", "linear")
ARITHMETIC_KINDS = ("add", "sub", "mul", "mixed")
X = sympy.Symbol("x")


@dataclass(frozen=True)
class CurriculumConfig:
    """Which problems the curriculum draws and how its training pairs are built."""

    seed: int = field(default=0, metadata={"help": "Item i draws from Random(seed + i)."})
    n_train: int = field(default=2000, metadata={"help": "Items 0..n_train-1 are for training."})
    n_heldout: int = field(default=100, metadata={
        "help": "Held-out items: drawn after the training items, skipping any whose problem "
                "text also occurs in training."})
    kinds: tuple[str, ...] = field(default=KINDS, metadata={
        "help": f"Problem kinds, drawn uniformly: {', '.join(KINDS)}."})
    max_value: int = field(default=12, metadata={
        "help": "Largest operand (and, for linear equations, largest |coefficient| and "
                "|solution|). Small values keep a tiny model's task learnable."})
    synthesis_fraction: float = field(default=0.5, metadata={
        "help": "Share of training pairs that teach synthesis (solution -> problem); the "
                "rest teach solving."})
    solve_template: str = field(default=DEFAULT_SOLVE_TEMPLATE, metadata={
        "help": "Solve prompt with a {problem} slot (default: the GRPO learner's)."})
    synthesis_template_path: str | None = field(default=None, metadata={
        "help": "Synthesis template file with a {solution} slot; default: the bundled "
                "synthesizers/prompts/svs_synthesis.txt."})

    def __post_init__(self) -> None:
        object.__setattr__(self, "kinds", tuple(self.kinds))
        unknown = sorted(set(self.kinds) - set(KINDS))
        if unknown or not self.kinds:
            raise ValueError(f"kinds must be a non-empty subset of {KINDS}, got {self.kinds}")
        if self.n_train < 1 or self.n_heldout < 0:
            raise ValueError(f"n_train must be >= 1 and n_heldout >= 0, got {self.n_train}, "
                             f"{self.n_heldout}")
        if self.max_value < 2:
            raise ValueError(f"max_value must be >= 2, got {self.max_value}")
        if not 0 <= self.synthesis_fraction <= 1:
            raise ValueError(f"synthesis_fraction must be in [0, 1], got "
                             f"{self.synthesis_fraction}")
        if PROBLEM_SLOT not in self.solve_template:
            raise ValueError(f"solve_template has no {PROBLEM_SLOT} slot")
        if (self.synthesis_template_path is not None
                and not Path(self.synthesis_template_path).is_file()):
            raise ValueError(f"synthesis_template_path {self.synthesis_template_path} is not "
                             f"a file")
        if SOLUTION_SLOT not in self.synthesis_template():
            raise ValueError(f"the synthesis template has no {SOLUTION_SLOT} slot")

    def synthesis_template(self) -> str:
        path = self.synthesis_template_path or PROMPTS / "svs_synthesis.txt"
        return Path(path).read_text(encoding="utf-8")


@dataclass(frozen=True)
class CurriculumItem:
    """One problem (with provenance in its metadata) and its worked solution."""

    problem: Problem
    solution: str

    @property
    def kind(self) -> str:
        return self.problem.metadata["kind"]


def _signed(value: int) -> str:
    return f"- {-value}" if value < 0 else f"+ {value}"


def _arithmetic(kind: str, rng: random.Random, top: int) -> tuple[str, list[str], sympy.Integer]:
    a, b, c = (sympy.Integer(rng.randint(1, top)) for _ in range(3))
    # "Compute the value of": the pipeline's problem checks want >= 20 characters
    if kind == "add":
        total = a + b
        return f"Compute the value of {a} + {b}.", [f"{a} + {b} = {total}."], total
    if kind == "sub":
        a, b = max(a, b), min(a, b)
        difference = a - b
        return f"Compute the value of {a} - {b}.", [f"{a} - {b} = {difference}."], difference
    if kind == "mul":
        product = a * b
        return f"Compute the value of {a} * {b}.", [f"{a} * {b} = {product}."], product
    product = b * c
    total = a + product
    return (f"Compute the value of {a} + {b} * {c}.",
            [f"First {b} * {c} = {product}.", f"Then {a} + {product} = {total}."], total)


def _linear(rng: random.Random, top: int) -> tuple[str, list[str], sympy.Integer]:
    a = sympy.Integer(rng.randint(2, top))
    solution = sympy.Integer(rng.randint(-top, top))
    b = sympy.Integer(rng.choice([v for v in range(-top, top + 1) if v]))
    c = a * solution + b
    roots = sympy.solve(sympy.Eq(a * X + b, c), X)
    if roots != [solution]:
        raise RuntimeError(f"sympy solved {a}x {_signed(b)} = {c} to {roots}, expected "
                           f"[{solution}]")
    rhs = c - b
    move = f"Subtract {b} from both sides" if b > 0 else f"Add {-b} to both sides"
    text = f"Solve for x: {a}x {_signed(b)} = {c}."
    return text, [f"{move}: {a}x = {rhs}.", f"Divide by {a}: x = {roots[0]}."], roots[0]


def make_item(config: CurriculumConfig, index: int) -> CurriculumItem:
    """Item `index` of the curriculum, drawn from `Random(config.seed + index)` alone."""
    rng = random.Random(config.seed + index)
    kind = rng.choice(config.kinds)
    if kind == "linear":
        text, steps, answer = _linear(rng, config.max_value)
    else:
        text, steps, answer = _arithmetic(kind, rng, config.max_value)
    solution = "\n".join(steps) + f"\nThe answer is \\boxed{{{answer}}}."
    problem = Problem(text, str(answer), source=SOURCE, metadata={
        "curriculum": NAME, "curriculum_version": VERSION, "curriculum_seed": config.seed,
        "curriculum_index": index, "kind": kind})
    return CurriculumItem(problem, solution)


def items(config: CurriculumConfig, start: int, count: int) -> list[CurriculumItem]:
    return [make_item(config, index) for index in range(start, start + count)]


def split(config: CurriculumConfig) -> tuple[list[CurriculumItem], list[CurriculumItem]]:
    """(training items, held-out items); no held-out problem text occurs in training.

    Held-out items are drawn from index `n_train` on; raises when the kinds and
    `max_value` leave too few distinct problems to fill `n_heldout`.
    """
    train = items(config, 0, config.n_train)
    seen = {item.problem.text for item in train}
    heldout: list[CurriculumItem] = []
    index = config.n_train
    limit = config.n_train + 20 * max(config.n_heldout, 1)
    while len(heldout) < config.n_heldout:
        if index >= limit:
            raise ValueError(f"only {len(heldout)} held-out problems not seen in training "
                             f"after {limit - config.n_train} draws; raise max_value, add "
                             f"kinds or lower n_train / n_heldout")
        item = make_item(config, index)
        if item.problem.text not in seen:
            seen.add(item.problem.text)
            heldout.append(item)
        index += 1
    return train, heldout


def solve_prompt(config: CurriculumConfig, problem_text: str) -> str:
    return fill_slot(config.solve_template, PROBLEM_SLOT, problem_text)


def synthesis_prompt(config: CurriculumConfig, item: CurriculumItem) -> str:
    """The SvS synthesis prompt for this item's solution (no problem shown)."""
    return render_prompt(config.synthesis_template(), Seed(item.problem, item.solution), False)


def synthesis_target(item: CurriculumItem) -> str:
    """What a good synthesis output looks like: the problem in a fenced text block."""
    return f"```text\n{item.problem.text}\n```"


def training_pairs(config: CurriculumConfig,
                   train: Sequence[CurriculumItem]) -> list[tuple[str, str]]:
    """(prompt, completion) pairs: every item's solve pair, plus synthesis pairs for a
    `synthesis_fraction` share of the total (items chosen with `Random(seed)`)."""
    pairs = [(solve_prompt(config, item.problem.text), item.solution) for item in train]
    fraction = config.synthesis_fraction
    if fraction == 0:
        return pairs
    n_synthesis = len(train) if fraction == 1 else round(len(train) * fraction / (1 - fraction))
    rng = random.Random(config.seed)
    template = config.synthesis_template()
    chosen = [train[rng.randrange(len(train))] for _ in range(n_synthesis)]
    synthesis = [(render_prompt(template, Seed(item.problem, item.solution), False),
                  synthesis_target(item)) for item in chosen]
    return synthesis if fraction == 1 else pairs + synthesis
