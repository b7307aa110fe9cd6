"""Tiny on-disk inputs for the flow tests: a problems file and native rollouts."""

import json
import random

PROBLEMS = [(f"What is ${a} + {b}$?", str(a + b)) for a, b in
            [(3, 4), (12, 30), (7, 8), (21, 5), (9, 9), (14, 6)]]
CORRECT_OF_8 = [8, 2, 8, 1, 0, 3]  # memorized, seed, memorized, seed, unsolved, seed


def write_problems(path):
    with open(path, "w") as handle:
        for text, answer in PROBLEMS:
            handle.write(json.dumps({"problem": text, "answer": answer}) + "\n")
    return path


def write_rollouts(path, *, step=3, seed=0, problems=PROBLEMS, correct_of_8=CORRECT_OF_8):
    """Native rollouts, 8 per problem; fully solved problems repeat one solution
    (memorized), partly solved ones write different working each time (seeds)."""
    rng = random.Random(seed)
    with open(path, "w") as handle:
        for (text, answer), n_correct in zip(problems, correct_of_8, strict=True):
            for k in range(8):
                if k < n_correct and n_correct == 8:
                    completion = f"The sum is \\boxed{{{answer}}}."
                elif k < n_correct:
                    completion = (f"Step {k}: adding gives {rng.random():.4f} then "
                                  f"\\boxed{{{answer}}}.")
                else:
                    completion = f"I guess \\boxed{{{int(answer) + k + 1}}}."
                handle.write(json.dumps({"problem_id": f"p-{text}", "prompt": text,
                                         "answer": answer, "completion": completion,
                                         "correct": k < n_correct, "step": step}) + "\n")
    return path


# symbolic rewrites need no policy, so a refresh runs without a model
REFRESH_CONFIG = {"synthesizers": ["symbolic"], "refresh": {"memorized_action": "retire"},
                  "consistency": {"check_text": False}}
