"""Write the refresh example: a prompt set and rollouts from two training steps.

    python examples/refresh/make_example.py      # rewrites problems.jsonl, rollouts.jsonl

Deterministic (one Random per problem and step). The rollouts are shaped like a run that
is collapsing: by step 20 some problems are solved every time with one memorized
trajectory (light rewording only), some are solved with genuinely different methods,
some are still being learned (1-4 of 8 right: the SvS seed band) and some are unsolved.
Answers are computed here from the template numbers, never read back from text.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

HERE = Path(__file__).parent
# (kind, correct rollouts of 8 at step 10, at step 20)
PLAN = [("memorized", 6, 8)] * 4 + [("diverse", 5, 8)] * 3 + [("learning", 1, 3)] * 4 \
    + [("unsolved", 0, 0)] * 1


def linear(r: random.Random) -> tuple[str, str, int, int, int]:
    a, x = r.randint(2, 9), r.randint(-9, 12)
    b = r.randint(1, 30)
    return f"Solve for $x$: ${a}x + {b} = {a * x + b}$.", str(x), a, b, a * x + b


def memorized_solution(a: int, b: int, c: int, x: int, r: random.Random) -> str:
    opener = r.choice(["", "Let's solve it. ", "We solve the equation. "])
    link = r.choice(["so", "hence", "thus"])
    return (f"{opener}Subtract {b} from both sides: ${a}x = {c - b}$, {link} dividing by {a} "
            f"gives $x = {x}$. The answer is $\\boxed{{{x}}}$.")


def diverse_solution(a: int, b: int, c: int, x: int, r: random.Random, k: int) -> str:
    methods = [
        f"Subtract {b} from both sides: ${a}x = {c - b}$, so $x = {x}$. \\boxed{{{x}}}",
        f"Divide everything by {a}: $x + \\frac{{{b}}}{{{a}}} = \\frac{{{c}}}{{{a}}}$, then "
        f"$x = \\frac{{{c - b}}}{{{a}}} = {x}$. \\boxed{{{x}}}",
        f"Try values: for $x = {x}$ the left side is ${a} \\cdot {x} + {b} = {c}$, which "
        f"matches, and the left side is increasing in $x$, so the root is unique: "
        f"\\boxed{{{x}}}",
        f"Move everything to one side: ${a}x + {b} - {c} = 0$, i.e. ${a}(x - {x}) = 0$, "
        f"giving \\boxed{{{x}}}",
    ]
    return methods[k % len(methods)]


def wrong_solution(a: int, b: int, c: int, x: int, r: random.Random) -> str:
    slip = r.choice([(c + b) / a, x + 1, -x, c - b])
    value = int(slip) if float(slip).is_integer() else round(slip, 2)
    return (f"Add {b} to both sides: ${a}x = {c + b}$... so $x = {value}$. "
            f"The answer is $\\boxed{{{value}}}$.")


def main() -> None:
    problems, rollouts = [], []
    for index, (kind, right_early, right_late) in enumerate(PLAN):
        text, answer, a, b, c = linear(random.Random(1000 + index))
        x = int(answer)
        problems.append({"problem": text, "answer": answer})
        for step, n_right in ((10, right_early), (20, right_late)):
            r = random.Random(index * 100 + step)
            for k in range(8):
                if k >= n_right:
                    completion = wrong_solution(a, b, c, x, r)
                elif kind == "memorized" or (kind == "learning" and k == 0):
                    completion = memorized_solution(a, b, c, x, r)
                else:
                    completion = diverse_solution(a, b, c, x, r, k)
                rollouts.append({"problem_id": f"example-{index:02d}", "prompt": text,
                                 "answer": answer, "completion": completion, "step": step})
    with open(HERE / "problems.jsonl", "w") as handle:
        handle.writelines(json.dumps(row) + "\n" for row in problems)
    with open(HERE / "rollouts.jsonl", "w") as handle:
        handle.writelines(json.dumps(row) + "\n" for row in rollouts)
    print(f"wrote {len(problems)} problems and {len(rollouts)} rollouts to {HERE}")


if __name__ == "__main__":
    main()
