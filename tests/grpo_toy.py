"""A toy task for the GRPO learner tests: one-digit addition ("3+4=" -> "7").

A tiny Llama is taught the format with a short supervised warm-up, so it answers with a
number but is right only part of the time: reward is reachable and there is room to
rise. With `synthesis=True` the warm-up also teaches the SvS format: given a solution
("Solution: 7 ..."), write a problem in a fenced `text` block ("```text\\n3+4=\\n```")
whose sum is that solution's.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from svs.pipeline.policy.tiny import build_tiny_model, train_tiny_model

SYNTHESIS_TEMPLATE = "Solution: {solution}\nWrite the problem.\n"
PAIRS = [(a, b) for a in range(10) for b in range(10)]


def examples() -> list[tuple[str, str]]:
    return [(f"{a}+{b}=", str(a + b)) for a, b in PAIRS]


def synthesis_examples() -> list[tuple[str, str]]:
    out = []
    for total in range(19):
        prompt = SYNTHESIS_TEMPLATE.replace("{solution}", str(total))
        out += [(prompt, f"```text\n{a}+{b}=\n```") for a, b in PAIRS if a + b == total]
    return out


def build_addition_model(folder: Path, *, warmup_steps: int, synthesis: bool = False) -> Path:
    pairs = examples() + (synthesis_examples() if synthesis else [])
    corpus = [p + c for p, c in pairs] * 3
    build_tiny_model(folder, corpus, vocab_size=300, hidden_size=64, num_layers=2,
                     max_position_embeddings=128)
    return train_tiny_model(folder, pairs, steps=warmup_steps, batch_size=16, lr=3e-3)


def write_problems(path: Path, count: int | None = None) -> Path:
    rows = examples()[:count] if count else examples()
    path.write_text("".join(json.dumps({"text": p, "answer": a}) + "\n" for p, a in rows),
                    encoding="utf-8")
    return path


def write_template(path: Path) -> Path:
    path.write_text(SYNTHESIS_TEMPLATE, encoding="utf-8")
    return path


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """Tiny models run several times faster on one thread when the cores are shared."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
