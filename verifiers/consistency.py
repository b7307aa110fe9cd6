"""Consistency verification: the policy's own solve rate decides which variants survive.

Each candidate that passes the problem-text checks (`verifiers.problems`: not empty or
garbage, a sensible length, answer not leaked, not a near-duplicate of the corpus or of
an earlier accepted candidate; their reason slugs pass through unchanged) is
solved `n_solves` times with the solve prompt. The completions are graded by
`verifiers.grader.grade_batch` against the ORIGINAL problem's reference answer (for a
synthesizer that proved a new answer by computation, against that answer). A variant
is accepted when its solve rate lies in `band`, by default [1/8, 5/8] as in SvS:

- 0 correct: `unsolvable` (the variant changed the answer, or is too hard);
- above 0 but below the band: `too_hard` (only reachable with a band floor above 1/n);
- above the band: `too_easy` (nothing left to learn from it).

Before the solve rate, the sympy check (`sympy_check`, an svs addition): when sympy
computes the seed's ORIGINAL problem to its reference answer (the problem is one
arithmetic expression or one polynomial equation in one unknown,
`svs.verifiers.sympy_answers.find_math`), the variant must compute to the same answer, else
`sympy_mismatch`. A policy's solve rate alone cannot catch a variant that is wrong the
same way the policy is ("Compute 3 + 4 * 5." kept with the answer 21): measured in the
lab (docs/lab.md), ~95% of the variants a tiny policy accepted by solve rate were such.
Word problems, whose numbers are not one expression, are left to the solve rate.
The text is read by svs's own bounded parser (`svs.verifiers.mathparse`: no eval, no
sympify, power-size limits), never by sympy's string parser.

A guess is not a solve (svs's own rule; trainers keep math-verify's verdict): a solution
counts toward the solve rate only when the grader found a real answer in it (a
``\\boxed{}`` or an answer line: `Grade.method` in `REAL_ANSWER_METHODS`) and the
completion ended by itself (`finish_reason` "stop", not cut at the token limit). A
correct last number picked out of cut-off text is what a 135M model "solves" with;
counting it accepted gibberish variants (issue 18). `accept_guesses` and
`accept_truncated` turn each back on. Every accepted variant keeps its solve records
(`metadata["solves"]`: correct, method, finish reason, counted).

Every reject keeps its candidate, its reason slug and a detail for people.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from svs.core.config import Band
from svs.core.constants import SOLVE_INSTRUCTION
from svs.core.protocols import FINISH_LENGTH, Policy, SamplingParams
from svs.core.records import Candidate, Problem, Verdict
from svs.verifiers.problems import NearDuplicateIndex, ProblemCheckConfig, check_problem

# How the grader found an answer, when that answer was really given (not guessed).
REAL_ANSWER_METHODS = ("boxed", "final_answer", "given")


def is_guess(method: str | None) -> bool:
    """The answer was picked out of the text (last number, trailing LaTeX), not given."""
    return method not in REAL_ANSWER_METHODS


def is_truncated(finish_reason: str | None) -> bool:
    """The completion was cut at the token limit (unknown finish reasons are not)."""
    return finish_reason == FINISH_LENGTH


def counts_as_solve(correct: bool | None, method: str | None, finish_reason: str | None, *,
                    accept_guesses: bool = False, accept_truncated: bool = False) -> bool:
    """Whether a graded solution counts as solved for svs (see the module docstring)."""
    if not correct:
        return False
    if is_guess(method) and not accept_guesses:
        return False
    return accept_truncated or not is_truncated(finish_reason)


@dataclass(frozen=True)
class ConsistencyConfig:
    """How candidates are solved and which solve rates are accepted."""

    n_solves: int = field(default=8, metadata={"help": "Solutions sampled per candidate."})
    band: tuple[float, float] = field(default=(0.125, 0.625), metadata={
        "help": "Inclusive solve-rate band for acceptance; SvS uses [1/8, 5/8]."})
    temperature: float = field(default=1.0, metadata={"help": "Solve sampling temperature."})
    top_p: float = field(default=1.0, metadata={"help": "Solve nucleus sampling mass."})
    max_new_tokens: int = field(default=1024, metadata={"help": "Token budget per solution."})
    seed: int | None = field(default=0, metadata={"help": "Solve sampling seed."})
    solve_suffix: str = field(default=SOLVE_INSTRUCTION, metadata={
        "help": "Appended to the problem text to make the solve prompt (the method's)."})
    grade_timeout_s: float = field(default=5.0, metadata={
        "help": "Per-answer time limit in the sandboxed grader."})
    check_text: bool = field(default=True, metadata={
        "help": "Run the problem-text checks (well-formed, leak, near-duplicate) first."})
    text_checks: ProblemCheckConfig = field(default_factory=ProblemCheckConfig, metadata={
        "help": "Thresholds of the problem-text checks (verifiers.problems)."})
    sympy_check: bool = field(default=True, metadata={
        "help": "Reject a variant that sympy computes to another answer when sympy computes "
                "its original to the reference answer (sympy_mismatch)."})
    accept_guesses: bool = field(default=False, metadata={
        "help": "Count a correct answer the grader only guessed (last number, trailing "
                "LaTeX; no \\boxed{} or answer line) as a solve."})
    accept_truncated: bool = field(default=False, metadata={
        "help": "Count a correct answer from a completion cut at max_new_tokens as a solve."})

    def __post_init__(self) -> None:
        object.__setattr__(self, "band", Band.of(self.band, "band"))
        if isinstance(self.text_checks, Mapping):  # from a YAML/JSON config or asdict()
            object.__setattr__(self, "text_checks", ProblemCheckConfig(**self.text_checks))
        if not isinstance(self.text_checks, ProblemCheckConfig):
            raise TypeError(f"text_checks must be a ProblemCheckConfig or a mapping of its "
                            f"fields, got {type(self.text_checks).__name__}")
        if self.n_solves < 1:
            raise ValueError(f"n_solves must be >= 1, got {self.n_solves}")
        if self.grade_timeout_s <= 0:
            raise ValueError(f"grade_timeout_s must be > 0, got {self.grade_timeout_s}")
        self.sampling()

    def sampling(self) -> SamplingParams:
        return SamplingParams(n=self.n_solves, temperature=self.temperature, top_p=self.top_p,
                              max_new_tokens=self.max_new_tokens, seed=self.seed)


@dataclass(frozen=True)
class Reject:
    """A candidate that did not make it, and why (`reason` is a slug)."""

    reason: str
    detail: str
    candidate: Candidate
    solve_rate: float | None = None

    def to_row(self) -> dict[str, Any]:
        problem = self.candidate.problem
        seed_problem = self.candidate.seed.problem
        return {
            "reason": self.reason,
            "detail": self.detail,
            "synthesizer": self.candidate.synthesizer,
            "origin_id": seed_problem.origin_id,
            "parent_id": seed_problem.id,
            "seed_rollout": self.candidate.seed.rollout_ref,
            "candidate_id": problem.id if problem is not None else None,
            "text": problem.text if problem is not None else None,
            "answer": problem.answer if problem is not None else None,
            "solve_rate": self.solve_rate,
            "raw_output": self.candidate.raw_output,
        }


def solve_prompt(problem_text: str, suffix: str = SOLVE_INSTRUCTION) -> str:
    return f"{problem_text.strip()}\n{suffix}" if suffix else problem_text.strip()


def band_verdict(n_correct: int, n: int, band: tuple[float, float]) -> Verdict:
    """Accept a solve rate inside the inclusive band; otherwise say which side."""
    if n < 1 or not 0 <= n_correct <= n:
        raise ValueError(f"need 0 <= n_correct <= n and n >= 1, got {n_correct}/{n}")
    band = Band.of(band)
    rate = n_correct / n
    detail = f"solved {n_correct}/{n} (rate {rate:.3f}, band [{band.low:.3f}, {band.high:.3f}])"
    if band.contains(rate):
        return Verdict(True, "in_band", detail)
    if rate < band.low:
        return Verdict(False, "unsolvable" if n_correct == 0 else "too_hard", detail)
    return Verdict(False, "too_easy", detail)


def text_verdicts(problems: Sequence[Problem], corpus: Iterable[Problem | str],
                  checks: ProblemCheckConfig | None = None, *,
                  seed_texts: Sequence[str | None] | None = None,
                  prompt_texts: Sequence[Sequence[str]] | None = None) -> list[Verdict]:
    """The problem-text checks of `verifiers.problems`, in order. Each text that passes
    joins the near-duplicate index, so later candidates must not duplicate it either.
    `seed_texts[i]` / `prompt_texts[i]`: problem i's seed problem (its language) and what
    its synthesis prompt showed (not to be echoed)."""
    checks = checks or ProblemCheckConfig()
    corpus_texts = {}
    for position, item in enumerate(corpus):
        if isinstance(item, Problem):
            corpus_texts[item.id] = item.text
        else:
            corpus_texts[f"corpus-{position}"] = item
    index = NearDuplicateIndex(corpus_texts, checks)
    verdicts = []
    for position, problem in enumerate(problems):
        verdict = check_problem(
            problem.text, problem.answer, checks, index,
            seed_text=seed_texts[position] if seed_texts else None,
            prompt_texts=prompt_texts[position] if prompt_texts else ())
        if verdict.ok:
            index.add([problem.id], [problem.text])
        verdicts.append(verdict)
    return verdicts


def solve_records(problems: Sequence[Problem], policy: Policy,
                  config: ConsistencyConfig) -> list[list[dict[str, Any]]]:
    """Per problem, one record per sampled solution: correct (the grader's verdict),
    method, finish_reason, extracted, counted (`counts_as_solve` under `config`)."""
    from svs.verifiers.grader import grade_batch

    if not problems:
        return []
    prompts = [solve_prompt(p.text, config.solve_suffix) for p in problems]
    groups = policy.generate(prompts, config.sampling(), progress=True)
    pairs = [(p.answer, g.text) for p, group in zip(problems, groups, strict=True)
             for g in group]
    grades = iter(grade_batch(pairs, timeout_s=config.grade_timeout_s, progress=True))
    records = []
    for group in groups:
        records.append([])
        for generation in group:
            grade = next(grades)
            finish = getattr(generation, "finish_reason", None)
            records[-1].append({
                "correct": bool(grade.correct), "method": grade.method,
                "finish_reason": finish, "extracted": grade.extracted,
                "counted": counts_as_solve(grade.correct, grade.method, finish,
                                           accept_guesses=config.accept_guesses,
                                           accept_truncated=config.accept_truncated)})
    return records


def solve_rates(problems: Sequence[Problem], policy: Policy,
                config: ConsistencyConfig) -> list[tuple[int, int]]:
    """(counted solves, total) per problem: n_solves samples graded against
    `problem.answer`; guesses and truncated solutions count only when `config` says so."""
    return [(sum(r["counted"] for r in records), len(records))
            for records in solve_records(problems, policy, config)]


def _solve_summary(records: Sequence[Mapping[str, Any]]) -> str:
    graded = sum(r["correct"] for r in records)
    counted = sum(r["counted"] for r in records)
    if graded == counted:
        return ""
    guessed = sum(r["correct"] and is_guess(r["method"]) for r in records)
    cut = sum(r["correct"] and is_truncated(r["finish_reason"]) for r in records)
    return (f"; {graded} graded correct but {graded - counted} not counted "
            f"({guessed} guessed answers, {cut} cut at the token limit)")


def verify_candidates(candidates: Sequence[Candidate], policy: Policy | None,
                      config: ConsistencyConfig | None = None, *,
                      corpus: Iterable[Problem | str] = ()) -> tuple[list[Problem], list[Reject]]:
    """Accepted variants (metadata gains `solve_rate`) and a reject per dropped candidate.

    `corpus` is what a variant must not duplicate (the current prompt set, originals).
    `policy=None` skips the solve-rate check, which is allowed only for candidates whose
    answer was proven by computation (`Candidate.answer_proven`).
    """
    config = config or ConsistencyConfig()
    rejects: list[Reject] = []
    pending: list[Candidate] = []
    for candidate in candidates:
        if candidate.problem is None:
            rejects.append(Reject(candidate.reason or "no_problem_extracted", candidate.detail,
                                  candidate))
        else:
            pending.append(candidate)
    if policy is None:
        unproven = [c for c in pending if not c.answer_proven]
        if unproven:
            raise ValueError(f"policy is None but {len(unproven)} candidates "
                             f"(synthesizer {unproven[0].synthesizer!r}) have unproven "
                             f"answers; pass a policy to measure their solve rate")
    if config.check_text and pending:
        verdicts = text_verdicts([c.problem for c in pending], corpus, config.text_checks,
                                 seed_texts=[c.seed.problem.text for c in pending],
                                 prompt_texts=[(c.seed.solution,) for c in pending])
        passed = []
        for candidate, verdict in zip(pending, verdicts, strict=True):
            if verdict.ok:
                passed.append(candidate)
            else:
                rejects.append(Reject(verdict.reason, verdict.detail, candidate))
        pending = passed
    if config.sympy_check and pending:
        from svs.verifiers.sympy_answers import sympy_verdict  # sympy: only when needed

        passed = []
        for candidate in pending:
            verdict = Verdict(True, "ok") if candidate.answer_proven else sympy_verdict(
                candidate.problem.text, candidate.problem.answer, candidate.seed.problem.text)
            if verdict.ok:
                passed.append(candidate)
            else:
                rejects.append(Reject(verdict.reason, verdict.detail, candidate))
        pending = passed
    if policy is None:
        return [c.problem for c in pending], rejects
    accepted = []
    all_records = solve_records([c.problem for c in pending], policy, config)
    for candidate, records in zip(pending, all_records, strict=True):
        n_correct, n = sum(r["counted"] for r in records), len(records)
        verdict = band_verdict(n_correct, n, config.band)
        rate = n_correct / n
        if verdict.ok:
            metadata = {**candidate.problem.metadata, "solve_rate": rate,
                        "solves": [dict(r) for r in records]}
            accepted.append(replace(candidate.problem, metadata=metadata))
        else:
            rejects.append(Reject(verdict.reason, verdict.detail + _solve_summary(records),
                                  candidate, rate))
    return accepted, rejects


def reject_counts(rejects: Sequence[Reject]) -> dict[str, int]:
    """Namespaced metrics: `verify/reject/<reason>` counts."""
    counts: dict[str, int] = {}
    for reject in rejects:
        key = f"verify/reject/{reject.reason}"
        counts[key] = counts.get(key, 0) + 1
    return counts
