"""Planted rollout sets with known labels, and the precision/recall of `memorized` on them.

    python benchmarks/planted.py [--problems 800] [--rollouts 16] [--seed 0]

Every problem is generated from its own `Random(seed * 1_000_003 + index)`, so any one
can be regenerated alone. Four planted kinds:

- memorized:      one trajectory, every rollout a light rewording of it (word swaps,
                  dropped or added filler sentences); 0-2 slips (a wrong final answer).
- solved_diverse: 3-5 genuinely different methods (a shared set-up of 100-300
                  characters, then different sentences, same final answer), each
                  rollout a light rewording of one.
- learning:       2-12 of 16 correct, every rollout its own attempt.
- unsolved:       no correct rollout.

Solutions share the restated problem and the closing line, like real ones do, so two
different methods still overlap a little (word-3-gram Jaccard ~0.05-0.15).
"""

from __future__ import annotations

import argparse
import random
import time
from typing import Any

from svs.core.records import problem_id  # noqa: E402

KINDS = ("memorized", "solved_diverse", "learning", "unsolved")
_WORDS = (
    "we the a of to is and let then so thus since by this that it be are from with for on "
    "as at which equation sum product term terms value values number numbers integer root "
    "roots factor factors divide divides divisible remainder modulo prime square cube "
    "triangle angle side sides area circle radius length point points line slope function "
    "derivative series sequence ratio common difference probability count ways choose "
    "arrange solve substitute simplify expand compute check note observe consider case "
    "cases both each every first second last next total left right equal equals gives "
    "get obtain yields implies hence therefore because where when while only also now "
    "minimum maximum least greatest positive negative even odd digit digits base power "
    "exponent logarithm polynomial coefficient variable constant inequality bound"
).split()
_SWAPS = {"so": "thus", "thus": "so", "we": "one", "get": "obtain", "obtain": "get",
          "gives": "yields", "yields": "gives", "hence": "therefore", "therefore": "hence",
          "compute": "calculate", "note": "observe", "observe": "note", "then": "next",
          "equals": "is", "the": "this", "value": "number"}
_FILLERS = ("Let me double-check this step.", "Wait, let me verify.", "This looks right.",
            "Okay.", "Let us continue.", "Good, that is consistent.")


def _sentence(rng: random.Random, numbers: list[int]) -> list[str]:
    words = [rng.choice(_WORDS) for _ in range(rng.randint(8, 16))]
    for _ in range(rng.randint(1, 3)):
        words.insert(rng.randrange(len(words) + 1), str(rng.choice(numbers)))
    return words


def _trajectory(rng: random.Random, numbers: list[int], target_chars: int) -> list[list[str]]:
    sentences: list[list[str]] = []
    size = 0
    while size < target_chars:
        sentence = _sentence(rng, numbers)
        sentences.append(sentence)
        size += sum(len(w) + 1 for w in sentence) + 1
    return sentences


def _reword(rng: random.Random, sentences: list[list[str]], swap_rate: float) -> list[list[str]]:
    """A light rewording: some words swapped for synonyms, filler sentences in or out."""
    out: list[list[str]] = []
    for sentence in sentences:
        if rng.random() < 0.04:
            continue
        out.append([_SWAPS.get(w, w) if rng.random() < swap_rate * 3 and w in _SWAPS
                    else (rng.choice(_WORDS) if rng.random() < swap_rate / 3 else w)
                    for w in sentence])
        if rng.random() < 0.08:
            out.append(rng.choice(_FILLERS).split())
    return out


def _render(statement: str, sentences: list[list[str]], answer: str) -> str:
    body = " ".join(" ".join(s).capitalize() + "." for s in sentences)
    return f"We need to solve: {statement}\n\n{body}\n\nTherefore the answer is $\\boxed{{{answer}}}$."


def planted_problem(index: int, kind: str, *, seed: int = 0, n_rollouts: int = 16,
                    target_chars: int = 1400, step: int | None = None) -> list[dict[str, Any]]:
    """Native rollout rows (graded: `correct`, `extracted`) of one planted problem."""
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; valid: {KINDS}")
    rng = random.Random(seed * 1_000_003 + index)
    numbers = [rng.randint(2, 999) for _ in range(4)]
    answer = str(rng.randint(1, 9999))
    statement = (f"Find the {rng.choice(_WORDS)} {rng.choice(_WORDS)} of {numbers[0]} and "
                 f"{numbers[1]} such that {numbers[2]} {rng.choice(_WORDS)} {numbers[3]}.")
    prompt = f"Problem {index}: {statement}"
    target = target_chars - len(statement) - 60
    swap_rate = rng.uniform(0.02, 0.12)
    if kind == "memorized":
        n_correct = n_rollouts - rng.choice((0, 0, 1, 1, 2))
        bases = [_trajectory(rng, numbers, target)]
    elif kind == "solved_diverse":
        n_correct = n_rollouts
        # different methods often share their set-up: a common opening, then they diverge
        setup = _trajectory(rng, numbers, rng.randint(100, 300))
        bases = [setup + _trajectory(rng, numbers, target - 200) for _ in range(rng.randint(3, 5))]
    elif kind == "learning":
        n_correct = rng.randint(max(1, n_rollouts // 8), max(1, (3 * n_rollouts) // 4))
        bases = []
    else:
        n_correct = 0
        bases = []
    correct_flags = [True] * n_correct + [False] * (n_rollouts - n_correct)
    rng.shuffle(correct_flags)
    rows = []
    for rollout_index, correct in enumerate(correct_flags):
        if bases:
            base = bases[rollout_index % len(bases)]
            sentences = _reword(rng, base, swap_rate)
        else:
            sentences = _trajectory(rng, numbers, target)
        given = answer if correct else str(int(answer) + rng.randint(1, 50))
        rows.append({"problem_id": problem_id(prompt, answer), "prompt": prompt,
                     "answer": answer, "completion": _render(statement, sentences, given),
                     "correct": correct, "extracted": given, "step": step,
                     "planted": kind})
    return rows


def planted_rows(n_problems: int, *, n_rollouts: int = 16, seed: int = 0,
                 mix: tuple[float, float, float, float] = (0.25, 0.15, 0.35, 0.25),
                 target_chars: int = 1400) -> list[dict[str, Any]]:
    """Rows of `n_problems` planted problems, kinds drawn with probabilities `mix`."""
    chooser = random.Random(seed)
    rows: list[dict[str, Any]] = []
    for index in range(n_problems):
        kind = chooser.choices(KINDS, weights=mix)[0]
        rows.extend(planted_problem(index, kind, seed=seed, n_rollouts=n_rollouts,
                                    target_chars=target_chars))
    return rows


def score(rows: list[dict[str, Any]], diagnosis) -> dict[str, Any]:
    """Precision and recall of `memorized` plus the full confusion counts."""
    truth = {row["problem_id"]: row["planted"] for row in rows}
    confusion: dict[tuple[str, str], int] = {}
    for problem in diagnosis.problems:
        key = (truth[problem.problem_id], problem.label)
        confusion[key] = confusion.get(key, 0) + 1
    true_pos = confusion.get(("memorized", "memorized"), 0)
    predicted = sum(v for (_, label), v in confusion.items() if label == "memorized")
    actual = sum(v for (kind, _), v in confusion.items() if kind == "memorized")
    return {"precision": true_pos / predicted if predicted else float("nan"),
            "recall": true_pos / actual if actual else float("nan"),
            "confusion": confusion}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", type=int, default=800)
    parser.add_argument("--rollouts", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from svs.pipeline.memorization import diagnose
    from svs.pipeline.rollouts import groups_from_rollouts, rollout_from_row

    rows = planted_rows(args.problems, n_rollouts=args.rollouts, seed=args.seed)
    groups = groups_from_rollouts([rollout_from_row(row) for row in rows])
    started = time.perf_counter()
    diagnosis = diagnose(groups)
    elapsed = time.perf_counter() - started
    result = score(rows, diagnosis)
    print(f"planted set: {args.problems} problems x {args.rollouts} rollouts, seed {args.seed}; "
          f"diagnosed in {elapsed:.1f} s")
    print("confusion (planted -> label):")
    for kind in KINDS:
        cells = "  ".join(f"{label}={result['confusion'].get((kind, label), 0)}"
                          for label in ("memorized", "solved_diverse", "learning", "unsolved"))
        print(f"  {kind:15s} {cells}")
    print(f"memorized precision {result['precision']:.3f}  recall {result['recall']:.3f}  "
          f"(target >= 0.95 each)")
    if not (result["precision"] >= 0.95 and result["recall"] >= 0.95):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
