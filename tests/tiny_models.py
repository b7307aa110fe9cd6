r"""A toy policy for synthesis and consistency tests: a tiny Llama trained in seconds.

It knows one seed problem ("Compute 3 + 4.", answer 7) and, from the short synthesis
template `TOY_TEMPLATE`, writes one of four outputs (three extractable problems and one
with no problem in it). Asked to solve those problems it answers:
- "What is 3 + 4?"                 always \boxed{7}      -> too_easy
- "Add 3 and 4."                   3 of 8 \boxed{7}      -> inside the [1/8, 5/8] band
- "What is the sum of 3 and 4?"    always \boxed{9}      -> unsolvable
"""

from __future__ import annotations

from pathlib import Path

from pipeline.policy.tiny import build_tiny_model, train_tiny_model
from pipeline.records import Problem
from synthesizers.registry import Seed
from verifiers.consistency import SOLVE_SUFFIX, solve_prompt

TOY_TEMPLATE = "Solution: {solution}\nWrite the problem.\n"
SEED_PROBLEM = Problem("Compute 3 + 4.", "7")
SEED_SOLUTION = "3 + 4 = 7, so the answer is \\boxed{7}."
EASY, BAND, UNSOLVABLE = "What is 3 + 4?", "Add 3 and 4.", "What is the sum of 3 and 4?"
SYNTHESIS_OUTPUTS = (
    f"```text\n{EASY}\n```",
    f"```text\n{BAND}\n```",
    f"Reconstructed Question: {UNSOLVABLE}",
    "I do not know.",
)
SOLVE_ANSWERS = {
    EASY: ["\\boxed{7}"] * 8,
    BAND: ["\\boxed{7}"] * 3 + ["\\boxed{8}"] * 5,
    UNSOLVABLE: ["\\boxed{9}"] * 8,
}


def toy_seed() -> Seed:
    return Seed(SEED_PROBLEM, SEED_SOLUTION, rollout_ref="step=0/sample=0")


def toy_examples() -> list[tuple[str, str]]:
    synthesis_prompt = TOY_TEMPLATE.replace("{solution}", SEED_SOLUTION)
    examples = [(synthesis_prompt, output) for output in SYNTHESIS_OUTPUTS] * 4
    for problem, answers in SOLVE_ANSWERS.items():
        examples += [(solve_prompt(problem), f"The answer is {a}.") for a in answers]
    return examples


def build_toy_policy_dir(folder: Path, steps: int = 300) -> Path:
    corpus = [TOY_TEMPLATE, SEED_SOLUTION, SOLVE_SUFFIX, *SYNTHESIS_OUTPUTS,
              *SOLVE_ANSWERS] * 4
    build_tiny_model(folder, corpus, vocab_size=400, hidden_size=64, num_layers=2,
                     num_heads=2, max_position_embeddings=256)
    return train_tiny_model(folder, toy_examples(), steps=steps, batch_size=24, lr=1e-2)
