r"""A toy policy for synthesis and consistency tests: a tiny Llama trained in seconds.

It knows one seed problem (SEED_PROBLEM, answer 7) and, from the short synthesis
template `TOY_TEMPLATE`, writes one of four outputs (three extractable problems and one
with no problem in it). Asked to solve those problems it answers:
- EASY        always \boxed{7}                  -> too_easy
- BAND        3 of 8 \boxed{7}, else \boxed{8}  -> inside the [1/8, 5/8] band
- UNSOLVABLE  always \boxed{9} (it changed the answer) -> unsolvable
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

from svs.core.records import Problem
from svs.pipeline.policy.tiny import build_tiny_model, train_tiny_model
from svs.synthesizers.registry import Seed
from svs.verifiers.consistency import ConsistencyConfig, solve_prompt

TOY_TEMPLATE = "Solution: {solution}\nWrite the problem.\n"
# A short solve suffix: with the method's long one a model this small needs several
# times more training steps to tell the three problems apart.
TOY_SOLVE_SUFFIX = "Box the answer."
SEED_PROBLEM = Problem("Compute the sum 3 + 4 for me.", "7")
SEED_SOLUTION = "3 + 4 = 7, so the answer is \\boxed{7}."
EASY = "What is the value of 3 + 4?"
BAND = "Add the numbers 3 and 4 together."
UNSOLVABLE = "What is the sum of 3 and 4 and 2?"
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
        examples += [(solve_prompt(problem, TOY_SOLVE_SUFFIX), f"The answer is {a}.")
                     for a in answers]
    return examples


def toy_consistency(**overrides) -> ConsistencyConfig:
    """A ConsistencyConfig with the toy solve prompt and short answers."""
    return ConsistencyConfig(**{"solve_suffix": TOY_SOLVE_SUFFIX, "max_new_tokens": 16,
                                "n_solves": 16, **overrides})


def build_toy_policy_dir(folder: Path, steps: int = 300) -> Path:
    corpus = [TOY_TEMPLATE, SEED_SOLUTION, TOY_SOLVE_SUFFIX, *SYNTHESIS_OUTPUTS,
              *SOLVE_ANSWERS] * 4
    build_tiny_model(folder, corpus, vocab_size=400, hidden_size=64, num_layers=2,
                     num_heads=2, max_position_embeddings=256)
    return train_tiny_model(folder, toy_examples(), steps=steps, batch_size=24, lr=1e-2)


@contextmanager
def one_torch_thread() -> Iterator[None]:
    """Tiny models run fastest on one thread; a second one spin-waits on shared cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
