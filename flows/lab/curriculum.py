r"""The lab's curriculum: problem kinds that each have three solution methods.

Three kinds, each solvable by three methods that differ in reliability by construction
(how much a step asks the model to compute in one go):

| kind | problem | methods (tag: what the steps do) |
|---|---|---|
| mul | `What is 7 times 8?` | `[split]` 7 = 3 + 4, two small products, a sum; `[round]` 7 = 10 - 3, two products, a difference; `[direct]` the product at once |
| linear | `Solve for x: 6x + 5 = 47.` | `[isolate]` subtract, divide; `[guess]` try a wrong value, then the root, each checked; `[direct]` the root at once |
| sum | `What is the sum of 4, 8 and 7?` | `[left]` 4 + 8, then + 7; `[right]` 8 + 7, then 4 +; `[direct]` the total at once |

Numbers are small (products of 2..9, roots 1..9, three terms of 1..9):
every step is a fact a tiny model can learn; several phrasings per kind give the probe
and the RL pool hundreds of distinct texts.

Every solution opens with its method tag (one token of the lab's tokenizer), so the
method of every sample is known exactly, and ends in `The answer is \boxed{...}.`.
Every number in a step is computed by sympy on the item's drawn numbers.

Problems are drawn i.i.d. from one generator (`draw(config, index)`, its own
`Random`), and `split` assigns them by index: the held-out probe first, then the RL
pool (each seed's prompts and its fresh-oracle replacements come from it), then the
bootstrap's items, each part skipping texts already taken, so the probe and the RL
pool come from the same distribution and neither was seen in the bootstrap.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import sympy

from svs.core.config import option
from svs.core.constants import DEFAULT_SOLVE_TEMPLATE, PROBLEM_SLOT, SOLUTION_SLOT, fill_slot
from svs.core.records import Problem, Seed
from svs.synthesizers.svs import render_prompt

# The bundled SvS prompt is ~200 tokens of instructions, which made synthesis pairs 3x
# the cost of a solve pair for a policy that reads none of them; the lab's own template
# says the same in one sentence (the method's output format, a fenced text block, kept).
LAB_TEMPLATE = Path(__file__).with_name("synthesis.txt")
NAME = "svs-lab-curriculum"
VERSION = 3  # bump when a template or a draw changes: cached policies key on it
SOURCE = "curriculum"
METHODS: dict[str, tuple[str, ...]] = {
    "mul": ("split", "round", "direct"),
    "linear": ("isolate", "guess", "direct"),
    "sum": ("left", "right", "direct"),
}
KINDS = tuple(METHODS)
TAGS = tuple(sorted({f"[{m}]" for methods in METHODS.values() for m in methods}))
X = sympy.Symbol("x")


@dataclass(frozen=True)
class CurriculumConfig:
    """Which problems the curriculum draws and how the bootstrap's pairs are built."""

    seed: int = option(0, "Seed of the problem generator (item i draws from its own Random).")
    n_heldout: int = option(256, "Held-out probe: distinct problems, drawn first.")
    n_pool: int = option(384, "RL pool: distinct problems after the probe; each seed's "
                              "prompts and fresh-oracle replacements are drawn from it.")
    n_bootstrap: int = option(4000, "Bootstrap items (texts outside the probe and the pool).")
    kinds: tuple[str, ...] = option(KINDS, f"Problem kinds, drawn uniformly: {', '.join(KINDS)}.")
    synthesis_fraction: float = option(0.3, "Share of bootstrap pairs that teach synthesis "
                                            "(solution -> a same-answer variant problem).")
    solve_template: str = option(DEFAULT_SOLVE_TEMPLATE,
                                 "Solve prompt with a {problem} slot (the learner's default).")
    synthesis_template_path: str | None = option(None, "Synthesis template with a {solution} "
                                                       "slot; default: the lab's short one "
                                                       "(flows/lab/synthesis.txt).")

    def __post_init__(self) -> None:
        object.__setattr__(self, "kinds", tuple(self.kinds))
        unknown = sorted(set(self.kinds) - set(KINDS))
        if unknown or not self.kinds:
            raise ValueError(f"kinds must be a non-empty subset of {KINDS}, got {self.kinds}")
        for name in ("n_heldout", "n_pool", "n_bootstrap"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0 <= self.synthesis_fraction < 1:
            raise ValueError(f"synthesis_fraction must be in [0, 1), got "
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
        path = self.synthesis_template_path or LAB_TEMPLATE
        return Path(path).read_text(encoding="utf-8")


@dataclass(frozen=True)
class Spec:
    """A problem before text: its kind, drawn numbers and phrasing (`FORMS[kind]`)."""

    kind: str
    numbers: tuple[int, ...]
    form: int = 0


@dataclass(frozen=True)
class CurriculumItem:
    """One problem (provenance in its metadata), a worked solution and its method."""

    problem: Problem
    solution: str
    method: str

    @property
    def kind(self) -> str:
        return self.problem.metadata["kind"]

    @property
    def spec(self) -> Spec:
        return spec_of(self.problem)


def spec_of(problem: Problem) -> Spec:
    meta = problem.metadata
    return Spec(meta["kind"], tuple(meta["numbers"]), int(meta.get("form", 0)))


# ----------------------------------------------------------------------- the draws
# Small numbers (every step is a fact a tiny model can learn) and several phrasings per
# kind, so that the probe and the RL pool can hold hundreds of distinct texts.
FORMS: dict[str, tuple[str, ...]] = {
    "mul": ("Compute the value of {a} * {b}.", "What is {a} times {b}?",
            "Find the product of {a} and {b}.", "Multiply {a} by {b}. What do you get?",
            "How much is {a} multiplied by {b}?", "Evaluate the product {a} * {b}."),
    "linear": ("Solve for x: {a}x + {b} = {c}.", "Find x if {a}x + {b} = {c}.",
               "What value of x satisfies {a}x + {b} = {c}?"),
    "sum": ("Compute the value of {a} + {b} + {c}.", "What is the sum of {a}, {b} and {c}?",
            "Add {a}, {b} and {c}. What is the total?", "Find the total of {a}, {b} and {c}."),
}
RANGES = {"mul": ((2, 9), (2, 9)), "linear": ((2, 5), (1, 9), (1, 10)),
          "sum": ((1, 9), (1, 9), (1, 9))}


def draw_spec(rng: random.Random, kind: str) -> Spec:
    numbers = tuple(rng.randint(low, high) for low, high in RANGES[kind])
    return Spec(kind, numbers, rng.randrange(len(FORMS[kind])))


def in_ranges(spec: Spec) -> bool:
    return all(low <= v <= high for v, (low, high) in zip(spec.numbers, RANGES[spec.kind],
                                                          strict=True))


def text_of(spec: Spec) -> str:
    form = FORMS[spec.kind][spec.form]
    if spec.kind == "mul":
        a, b = spec.numbers
        return form.format(a=a, b=b)
    if spec.kind == "linear":
        a, root, b = spec.numbers
        return form.format(a=a, b=b, c=a * root + b)
    a, b, c = spec.numbers
    return form.format(a=a, b=b, c=c)


@functools.lru_cache(maxsize=65536)
def answer_of(spec: Spec) -> sympy.Integer:
    """The answer, computed by sympy from the problem's own statement (the linear root by
    `sympy.solve_linear`, checked by substitution; a sum as a sympy Add)."""
    if spec.kind == "mul":
        a, b = spec.numbers
        return sympy.Integer(a) * sympy.Integer(b)
    if spec.kind == "linear":
        a, root, b = spec.numbers
        lhs, rhs = a * X + b, sympy.Integer(a * root + b)
        _, value = sympy.solve_linear(lhs - rhs, symbols=[X])
        if value != root or lhs.subs(X, value) != rhs:
            raise RuntimeError(f"sympy solved {text_of(spec)} to {value}, expected {root}")
        return sympy.Integer(value)
    return sympy.Add(*(sympy.Integer(v) for v in spec.numbers))


# ----------------------------------------------------------------------- the methods
def steps_of(spec: Spec, method: str, rng: random.Random) -> list[str]:
    """The worked steps of `method` (no tag, no answer line); `rng` picks a wrong guess."""
    if method not in METHODS[spec.kind]:
        raise ValueError(f"{spec.kind} has methods {METHODS[spec.kind]}, not {method!r}")
    if spec.kind == "mul":
        a, b = (sympy.Integer(v) for v in spec.numbers)
        if method == "direct":
            return [f"{a} * {b} = {a * b}."]
        if method == "split":  # a = h + r with h about half of a
            h = a // 2
            r = a - h
            return [f"{a} = {h} + {r}.", f"{h} * {b} = {h * b}.", f"{r} * {b} = {r * b}.",
                    f"{h * b} + {r * b} = {a * b}."]
        up = 5 * (a // 5 + 1)  # round: a = up - down, up the next multiple of 5
        down = up - a
        return [f"{a} = {up} - {down}.", f"{up} * {b} = {up * b}.",
                f"{down} * {b} = {down * b}.", f"{up * b} - {down * b} = {a * b}."]
    if spec.kind == "linear":
        a, root, b = (sympy.Integer(v) for v in spec.numbers)
        c = a * root + b
        if method == "direct":
            return [f"x = {answer_of(spec)}."]
        if method == "isolate":
            return [f"{a}x = {c} - {b} = {c - b}.", f"x = {c - b} / {a} = {(c - b) / a}."]
        guess = sympy.Integer(rng.choice([v for v in range(1, 10) if v != root]))
        side = "too small" if a * guess + b < c else "too large"
        return [f"Try x = {guess}: {a} * {guess} + {b} = {a * guess + b}, {side}.",
                f"Try x = {root}: {a} * {root} + {b} = {c}, correct.", f"x = {root}."]
    a, b, c = (sympy.Integer(v) for v in spec.numbers)
    if method == "direct":
        return [f"{a} + {b} + {c} = {a + b + c}."]
    if method == "left":
        return [f"{a} + {b} = {a + b}.", f"{a + b} + {c} = {a + b + c}."]
    return [f"{b} + {c} = {b + c}.", f"{a} + {b + c} = {a + b + c}."]


def solution_of(spec: Spec, method: str, rng: random.Random) -> str:
    steps = steps_of(spec, method, rng)
    return "\n".join([f"[{method}] " + steps[0], *steps[1:],
                      f"The answer is \\boxed{{{answer_of(spec)}}}."])


def method_of(completion: str) -> str | None:
    """The method tag a completion opens with (None: it opens with no tag)."""
    head = completion.lstrip()
    for tag in TAGS:
        if head.startswith(tag):
            return tag[1:-1]
    return None


def make_problem(spec: Spec, config: CurriculumConfig, index: int | None,
                 origin: str = "draw") -> Problem:
    metadata = {"curriculum": NAME, "curriculum_version": VERSION,
                "curriculum_seed": config.seed, "kind": spec.kind,
                "numbers": list(spec.numbers), "form": spec.form, "origin": origin}
    if index is not None:
        metadata["curriculum_index"] = index
    return Problem(text_of(spec), str(answer_of(spec)), source=SOURCE, metadata=metadata)


def draw(config: CurriculumConfig, index: int, method: str | None = None) -> CurriculumItem:
    """Item `index`: its problem from `Random((seed, index))` alone; its worked solution
    uses `method`, or one drawn uniformly from the kind's methods."""
    rng = random.Random(f"{config.seed}:{index}")
    spec = draw_spec(rng, rng.choice(config.kinds))
    method = method or rng.choice(METHODS[spec.kind])
    return CurriculumItem(make_problem(spec, config, index), solution_of(spec, method, rng),
                          method)


@dataclass(frozen=True)
class Split:
    heldout: list[CurriculumItem]
    pool: list[CurriculumItem]
    bootstrap: list[CurriculumItem]


def split(config: CurriculumConfig) -> Split:
    """Held-out probe, RL pool and bootstrap items by index, no text in two parts
    (and none twice in the probe or the pool); raises when the space runs out."""
    taken: set[str] = set()
    index = 0
    parts: list[list[CurriculumItem]] = []
    for size, distinct in ((config.n_heldout, True), (config.n_pool, True),
                           (config.n_bootstrap, False)):
        part: list[CurriculumItem] = []
        own: set[str] = set()
        limit = index + 50 * size
        while len(part) < size:
            if index >= limit:
                raise ValueError(f"only {len(part)} of {size} problems found in "
                                 f"{50 * size} draws; lower n_heldout / n_pool or add kinds")
            item = draw(config, index)
            index += 1
            text = item.problem.text
            if text in taken or (distinct and text in own):
                continue
            own.add(text)
            part.append(item)
        taken |= own
        parts.append(part)
    return Split(*parts)


# ------------------------------------------------------------------ same-answer variants
def variant_specs(spec: Spec) -> list[Spec]:
    """Every other problem in the curriculum's ranges with the same answer and other
    numbers (any phrasing), same kind first, then linear equations with that root."""
    answer = int(answer_of(spec))
    (a_lo, a_hi), (b_lo, b_hi) = RANGES["mul"]
    same: list[tuple[int, ...]] = []
    if spec.kind == "mul":
        same = [(answer // b, b) for b in range(b_lo, b_hi + 1)
                if answer % b == 0 and a_lo <= answer // b <= a_hi]
    elif spec.kind == "linear":
        (lo, hi), _, (blo, bhi) = RANGES["linear"]
        same = [(a, spec.numbers[1], b) for a in range(lo, hi + 1) for b in range(blo, bhi + 1)]
    else:
        lo, hi = RANGES["sum"][0]
        same = [(a, b, answer - a - b) for a in range(lo, hi + 1) for b in range(lo, hi + 1)
                if lo <= answer - a - b <= hi]
    specs = [Spec(spec.kind, n, f) for n in same if n != spec.numbers
             for f in range(len(FORMS[spec.kind]))]
    if spec.kind != "linear":
        (lo, hi), (rlo, rhi), (blo, bhi) = RANGES["linear"]
        if rlo <= answer <= rhi:
            specs += [Spec("linear", (a, answer, b), f) for a in range(lo, hi + 1)
                      for b in range(blo, bhi + 1) for f in range(len(FORMS["linear"]))]
    return [s for s in specs if in_ranges(s)]


def variant(item: CurriculumItem, rng: random.Random,
            config: CurriculumConfig) -> CurriculumItem | None:
    """A different problem with the same answer (same kind when one exists), its answer
    proven equal by sympy, with a worked solution by a uniformly drawn method; None when
    the curriculum's ranges hold no other problem with this answer."""
    specs = variant_specs(item.spec)
    same = [s for s in specs if s.kind == item.kind]
    pool = same or specs
    if not pool:
        return None
    spec = rng.choice(pool)
    if answer_of(spec) != sympy.Integer(item.problem.answer):
        raise RuntimeError(f"variant {text_of(spec)} of {item.problem.text} has another "
                           f"answer")
    method = rng.choice(METHODS[spec.kind])
    problem = make_problem(spec, config, None, origin="variant")
    return CurriculumItem(problem, solution_of(spec, method, rng), method)


# ------------------------------------------------------------------ prompts and pairs
def solve_prompt(config: CurriculumConfig, problem_text: str) -> str:
    return fill_slot(config.solve_template, PROBLEM_SLOT, problem_text)


def synthesis_prompt(config: CurriculumConfig, item: CurriculumItem) -> str:
    """The SvS synthesis prompt for this item's solution (no problem shown)."""
    return render_prompt(config.synthesis_template(), Seed(item.problem, item.solution), False)


def synthesis_target(problem_text: str) -> str:
    """What a good synthesis output looks like: a problem in a fenced text block."""
    return f"```text\n{problem_text}\n```"


def training_pairs(config: CurriculumConfig, items: Sequence[CurriculumItem]
                   ) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(solve pairs, synthesis pairs) of the bootstrap. Solving: every item's prompt ->
    its worked solution (methods uniform). Synthesis: an item's solution in the SvS
    prompt -> a same-answer VARIANT, never the original problem, for a
    `synthesis_fraction` share of all pairs."""
    solve = [(solve_prompt(config, item.problem.text), item.solution) for item in items]
    fraction = config.synthesis_fraction
    n_synthesis = round(len(items) * fraction / (1 - fraction))
    rng = random.Random(f"{config.seed}:synthesis")
    template = config.synthesis_template()
    synthesis: list[tuple[str, str]] = []
    while len(synthesis) < n_synthesis:
        item = items[rng.randrange(len(items))]
        other = variant(item, rng, config)
        if other is not None:
            synthesis.append((render_prompt(template, Seed(item.problem, item.solution), False),
                              synthesis_target(other.problem.text)))
    return solve, synthesis
