"""The SvS synthesizer: the policy writes variational problems from its own solutions.

Faithful to the method (Liang et al., 2025): the synthesis prompt shows a correct
solution only (`include_problem=True` adds the original problem), the policy samples
`n_samples` outputs per seed at temperature 1.0 / top_p 1.0, and the problem is pulled
out with the method's extraction cascade (`synthesizers.extract`). Each variant keeps
the original's reference answer; `verifiers.consistency` then checks that it really
does. Added over the reference implementation: caps on seeds per problem and kept
candidates per seed, exact duplicates within a seed dropped with a reason, a
replaceable template file, and lineage on every candidate.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from svs.core.constants import PROBLEM_SLOT, SOLUTION_SLOT, fill_slot
from svs.core.protocols import Policy, SamplingParams
from svs.core.records import Problem, normalize_text
from svs.synthesizers.extract import NO_PROBLEM, extract_problem
from svs.synthesizers.registry import Candidate, Seed, register

NAME = "svs"
PROMPTS = Path(__file__).resolve().parent / "prompts"


@dataclass(frozen=True)
class SvSConfig:
    """How the policy is asked to write variational problems."""

    n_samples: int = field(default=8, metadata={
        "help": "Synthesis samples per seed (the method uses 8; they form one GRPO group)."})
    temperature: float = field(default=1.0, metadata={"help": "Sampling temperature."})
    top_p: float = field(default=1.0, metadata={"help": "Nucleus sampling mass."})
    max_new_tokens: int = field(default=1024, metadata={
        "help": "Token budget of one synthesis output (reasoning plus the problem)."})
    seed: int | None = field(default=0, metadata={"help": "Sampling seed; None: unseeded."})
    include_problem: bool = field(default=False, metadata={
        "help": "Show the original problem next to the solution (the method shows the "
                "solution only)."})
    template_path: str | None = field(default=None, metadata={
        "help": "A template file with {solution} (and {problem} when include_problem) "
                "slots; default: the bundled prompt."})
    max_seeds_per_problem: int | None = field(default=4, metadata={
        "help": "Seeds used per original problem (the method's band gives 1-4 correct of "
                "8 rollouts); None: all."})
    max_candidates_per_seed: int | None = field(default=None, metadata={
        "help": "Distinct extracted problems kept per seed; None: all n_samples."})
    extraction_fallbacks: bool = field(default=True, metadata={
        "help": "After the method's extraction cascade, try svs's fallbacks (a 'new "
                "problem:' / 'problem:' marker, an unclosed fence; synthesizers.extract); "
                "each candidate records which step found it."})
    seed_labels: tuple[str, ...] = field(default=(), metadata={
        "help": "Diagnosis labels whose problems are seeds too, beyond those the diagnosis "
                "flagged (its SvS band), e.g. ('memorized',)."})

    def __post_init__(self) -> None:
        if self.n_samples < 1:
            raise ValueError(f"n_samples must be >= 1, got {self.n_samples}")
        for name in ("max_seeds_per_problem", "max_candidates_per_seed"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be >= 1 or None, got {value}")
        if self.template_path is not None and not Path(self.template_path).is_file():
            raise ValueError(f"template_path {self.template_path} is not a file")
        template = self.template()
        if SOLUTION_SLOT not in template:
            raise ValueError(f"the synthesis template has no {SOLUTION_SLOT} slot")
        if self.include_problem and PROBLEM_SLOT not in template:
            raise ValueError(f"include_problem=True but the template has no {PROBLEM_SLOT} "
                             f"slot; use synthesizers/prompts/svs_synthesis_with_problem.txt")
        object.__setattr__(self, "seed_labels", tuple(self.seed_labels))
        # Validates temperature, top_p and max_new_tokens with SamplingParams' messages.
        self.sampling()

    def template(self) -> str:
        if self.template_path is not None:
            return Path(self.template_path).read_text(encoding="utf-8")
        name = "svs_synthesis_with_problem.txt" if self.include_problem else "svs_synthesis.txt"
        return (PROMPTS / name).read_text(encoding="utf-8")

    def sampling(self) -> SamplingParams:
        return SamplingParams(n=self.n_samples, temperature=self.temperature, top_p=self.top_p,
                              max_new_tokens=self.max_new_tokens, seed=self.seed)


def render_prompt(template: str, seed: Seed, include_problem: bool) -> str:
    """Fill the template's slots (plain replacement: solutions are full of braces)."""
    prompt = fill_slot(template, SOLUTION_SLOT, seed.solution)
    if include_problem:
        prompt = fill_slot(prompt, PROBLEM_SLOT, seed.problem.text)
    return prompt


def cap_seeds(seeds: Sequence[Seed], per_problem: int | None) -> list[Seed]:
    """At most `per_problem` seeds per original problem, first come first kept."""
    if per_problem is None:
        return list(seeds)
    used: dict[str, int] = defaultdict(int)
    kept = []
    for seed in seeds:
        if used[seed.problem.id] < per_problem:
            used[seed.problem.id] += 1
            kept.append(seed)
    return kept


def seeds_from_diagnosis(diagnosis, problems: Iterable[Problem] = (),
                         config: SvSConfig | None = None) -> list[Seed]:
    """One seed per kept correct solution of each seed problem of a diagnosis.

    Seed problems are those the diagnosis flagged (`is_seed`: the SvS band, or memorized
    when its config says so) plus any whose label is in `config.seed_labels`; at most
    `config.max_seeds_per_problem` solutions each. `problems` supplies the full records
    (lineage, metadata) by id; a problem missing there is rebuilt from the diagnosis's
    prompt and answer under the same id. The diagnosis must keep correct solutions
    (`keep_solutions` 'seeds' or 'all').
    """
    config = config or SvSConfig()
    kept = getattr(diagnosis.config, "keep_solutions", "all")
    if kept == "none" or (config.seed_labels and kept != "all"):
        raise ValueError(f"the diagnosis kept solutions of {kept!r} problems, which does not "
                         f"cover these seeds; diagnose with keep_solutions='all' (needed "
                         f"for seed_labels) or 'seeds'")
    by_id = {p.id: p for p in problems}
    seeds = []
    for entry in diagnosis.problems:
        if not (entry.is_seed or entry.label in config.seed_labels):
            continue
        problem = by_id.get(entry.problem_id) or Problem(entry.prompt, entry.answer,
                                                          id=entry.problem_id)
        solutions = list(entry.correct_solutions)[:config.max_seeds_per_problem]
        seeds += [Seed(problem, solution, rollout_ref=f"{entry.problem_id}/correct={i}",
                       metadata={"label": entry.label})
                  for i, solution in enumerate(solutions)]
    return seeds


def candidates_from_outputs(seed: Seed, outputs: Sequence[str],
                            config: SvSConfig) -> list[Candidate]:
    """Extract, dedupe and cap one seed's synthesis outputs; failures keep their reason."""
    candidates = []
    seen: set[str] = set()
    for index, output in enumerate(outputs):
        extracted = extract_problem(output, config.extraction_fallbacks)
        if not extracted.ok:
            candidates.append(Candidate(seed, None, output, NAME, NO_PROBLEM, extracted.detail))
            continue
        key = normalize_text(extracted.text).lower()
        if key in seen:
            candidates.append(Candidate(seed, None, output, NAME, "duplicate_sample",
                                        "same text as an earlier sample of this seed"))
            continue
        if config.max_candidates_per_seed is not None and len(seen) >= config.max_candidates_per_seed:
            candidates.append(Candidate(seed, None, output, NAME, "seed_cap",
                                        f"over max_candidates_per_seed="
                                        f"{config.max_candidates_per_seed}"))
            continue
        seen.add(key)
        variant = seed.problem.variant(
            extracted.text, synthesizer=NAME, seed_rollout=seed.rollout_ref,
            sample_index=index, extraction=extracted.method)
        candidates.append(Candidate(seed, variant, output, NAME))
    return candidates


@register(NAME, config=SvSConfig, needs_policy=True)
def synthesize_svs(seeds: Sequence[Seed], policy: Policy | None,
                   config: SvSConfig) -> list[Candidate]:
    """Ask `policy` for `n_samples` variational problems per seed."""
    if policy is None:
        raise ValueError("the svs synthesizer needs a policy")
    seeds = cap_seeds(seeds, config.max_seeds_per_problem)
    if not seeds:
        return []
    template = config.template()
    prompts = [render_prompt(template, seed, config.include_problem) for seed in seeds]
    groups = policy.generate(prompts, config.sampling(), progress=len(prompts) > 8)
    candidates = []
    for seed, group in zip(seeds, groups, strict=True):
        candidates.extend(candidates_from_outputs(seed, [g.text for g in group], config))
    return candidates
