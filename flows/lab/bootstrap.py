"""The miniature self-play lab, part 1: bootstrap a tiny policy on the curriculum.

`bootstrap(config, out_dir)` builds a tiny Llama-format model with a locally trained
BPE tokenizer (`pipeline.policy.tiny`), supervises it on `pipeline.curriculum` (both
tasks: solving, and writing a problem from a solution with the SvS synthesis prompt),
measures it, and caches the result under `out_dir/<key>/`, where the key hashes the
lab config (curriculum, model, training, seed) with the curriculum and lab versions.
A second call with the same config returns the cached folder without training.

Measured on held-out curriculum items (greedy decoding, graded by the sandboxed
verifier): the solve rate (overall and per kind) against a majority-answer baseline;
for synthesis, how often the output extracts to a problem (`synthesizers.extract`),
how often that problem copies the original text, and how often the policy then solves
the extracted problem to the ORIGINAL answer (what SvS rewards).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from svs.flows.lab import curriculum
from svs.flows.lab.curriculum import CurriculumConfig, CurriculumItem

LAB_VERSION = 1  # bump when training or measuring changes: cached policies key on it
RESULT_FILE = "lab.json"
MODEL_FOLDER = "model"


@dataclass(frozen=True)
class LabConfig:
    """The bootstrap: which curriculum, which tiny model, how long it trains."""

    curriculum: CurriculumConfig = field(default_factory=CurriculumConfig, metadata={
        "help": "The curriculum the policy is supervised on (pipeline.curriculum)."})
    vocab_size: int = field(default=768, metadata={
        "help": "BPE vocabulary trained on the curriculum's text (>= 259)."})
    hidden_size: int = field(default=96, metadata={"help": "Model width."})
    num_layers: int = field(default=3, metadata={"help": "Transformer layers."})
    num_heads: int = field(default=3, metadata={
        "help": "Attention heads (head dim = hidden_size / num_heads; 32 suits vLLM's CPU "
                "attention)."})
    max_position_embeddings: int = field(default=512, metadata={
        "help": "Longest sequence; the SvS synthesis prompt alone is ~250 tokens."})
    solve_steps: int = field(default=1500, metadata={
        "help": "First phase: supervised steps on solving pairs only. They are short (~50 "
                "tokens against ~300 for a synthesis pair), so arithmetic is cheap to "
                "teach here; 0 skips the phase."})
    train_steps: int = field(default=300, metadata={
        "help": "Second phase: supervised steps on the curriculum's mix of solving and "
                "synthesis pairs (curriculum.synthesis_fraction)."})
    batch_size: int = field(default=16, metadata={"help": "Examples per step."})
    lr: float = field(default=3e-3, metadata={"help": "AdamW peak learning rate (linear decay)."})
    seed: int = field(default=0, metadata={"help": "Model initialisation and batch order."})
    n_eval: int | None = field(default=None, metadata={
        "help": "Held-out items measured (solve and synthesis); None: all of them."})
    solve_max_new_tokens: int = field(default=64, metadata={
        "help": "Token budget of a solution at evaluation."})
    synthesis_max_new_tokens: int = field(default=48, metadata={
        "help": "Token budget of a synthesis output at evaluation."})

    def __post_init__(self) -> None:
        if isinstance(self.curriculum, dict):
            object.__setattr__(self, "curriculum", CurriculumConfig(**self.curriculum))
        for name in ("hidden_size", "num_layers", "num_heads", "train_steps", "batch_size",
                     "solve_max_new_tokens", "synthesis_max_new_tokens"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.hidden_size % self.num_heads:
            raise ValueError(f"hidden_size ({self.hidden_size}) must be divisible by "
                             f"num_heads ({self.num_heads})")
        if self.solve_steps < 0:
            raise ValueError(f"solve_steps must be >= 0, got {self.solve_steps}")
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if self.n_eval is not None and not 1 <= self.n_eval <= self.curriculum.n_heldout:
            raise ValueError(f"n_eval must be in [1, curriculum.n_heldout="
                             f"{self.curriculum.n_heldout}] or None, got {self.n_eval}")

    def key(self) -> str:
        """Hash of everything that decides the bootstrapped policy."""
        payload = {"lab": dataclasses.asdict(self), "lab_version": LAB_VERSION,
                   "curriculum_version": curriculum.VERSION,
                   "synthesis_template": self.curriculum.synthesis_template()}
        blob = json.dumps(payload, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


@dataclass(frozen=True)
class BootstrapResult:
    """Where the bootstrapped policy lives and what it measured."""

    folder: Path
    metrics: dict[str, float]
    cached: bool
    build_seconds: float

    @property
    def model_dir(self) -> Path:
        return self.folder / MODEL_FOLDER

    @property
    def heldout_file(self) -> Path:
        return self.folder / "heldout.jsonl"

    @property
    def train_file(self) -> Path:
        return self.folder / "train.jsonl"


def _write_problems(path: Path, items: list[CurriculumItem]) -> None:
    with path.open("w", encoding="utf-8") as handle:
        for item in items:
            row = item.problem.to_row() | {"solution": item.solution}
            handle.write(json.dumps(row) + "\n")


def majority_baseline(train: list[CurriculumItem], heldout: list[CurriculumItem]) -> float:
    """Held-out solve rate of always answering the most common training answer."""
    if not heldout:
        return 0.0
    top = Counter(item.problem.answer for item in train).most_common(1)[0][0]
    return sum(item.problem.answer == top for item in heldout) / len(heldout)


def measure(policy: Any, config: LabConfig, train: list[CurriculumItem],
            heldout: list[CurriculumItem], *, progress: bool = False) -> dict[str, float]:
    """Greedy solve and synthesis metrics of `policy` on held-out items."""
    from svs.pipeline.policy.base import SamplingParams
    from svs.synthesizers.extract import extract_problem
    from svs.verifiers.grader import grade_batch

    cur = config.curriculum
    items = heldout[:config.n_eval] if config.n_eval else list(heldout)
    solve = SamplingParams(temperature=0.0, max_new_tokens=config.solve_max_new_tokens)
    prompts = [curriculum.solve_prompt(cur, item.problem.text) for item in items]
    outputs = [group[0].text for group in policy.generate(prompts, solve, progress=progress)]
    grades = grade_batch([(item.problem.answer, text) for item, text in
                          zip(items, outputs, strict=True)], progress=progress)
    metrics = {"lab/solve_rate_heldout": sum(g.correct for g in grades) / len(items),
               "lab/majority_baseline": majority_baseline(train, items),
               "lab/n_eval": float(len(items))}
    for kind in sorted({item.kind for item in items}):
        picked = [g.correct for item, g in zip(items, grades, strict=True) if item.kind == kind]
        metrics[f"lab/solve_rate_heldout/{kind}"] = sum(picked) / len(picked)

    synth = SamplingParams(temperature=0.0, max_new_tokens=config.synthesis_max_new_tokens)
    prompts = [curriculum.synthesis_prompt(cur, item) for item in items]
    outputs = [group[0].text for group in policy.generate(prompts, synth, progress=progress)]
    extracted = [extract_problem(text) for text in outputs]
    pairs = [(item, found.text) for item, found in zip(items, extracted, strict=True)
             if found.ok]
    metrics["lab/synthesis_extract_rate"] = len(pairs) / len(items)
    metrics["lab/synthesis_copy_rate"] = (
        sum(text == item.problem.text for item, text in pairs) / len(items))
    solved = 0
    if pairs:
        prompts = [curriculum.solve_prompt(cur, text) for _, text in pairs]
        outputs = [g[0].text for g in policy.generate(prompts, solve, progress=progress)]
        grades = grade_batch([(item.problem.answer, text) for (item, _), text in
                              zip(pairs, outputs, strict=True)], progress=progress)
        solved = sum(g.correct for g in grades)
    # SvS's synthetic stream: the synthesized problem, solved, gives the original answer
    metrics["lab/synthetic_solve_rate"] = solved / len(items)
    return metrics


def _build(config: LabConfig, folder: Path, progress: bool) -> dict[str, float]:
    import torch

    from svs.pipeline.policy.hf import HFPolicy
    from svs.pipeline.policy.tiny import build_tiny_model, train_tiny_model

    train, heldout = curriculum.split(config.curriculum)
    pairs = curriculum.training_pairs(config.curriculum, train)
    solve_pairs = curriculum.training_pairs(
        dataclasses.replace(config.curriculum, synthesis_fraction=0.0), train)
    model_dir = folder / MODEL_FOLDER
    build_tiny_model(model_dir, [prompt + completion for prompt, completion in pairs],
                     vocab_size=config.vocab_size, hidden_size=config.hidden_size,
                     num_layers=config.num_layers, num_heads=config.num_heads,
                     max_position_embeddings=config.max_position_embeddings,
                     seed=config.seed)
    started = time.perf_counter()
    if config.solve_steps:
        train_tiny_model(model_dir, solve_pairs, steps=config.solve_steps,
                         batch_size=config.batch_size, lr=config.lr, seed=config.seed,
                         num_threads=1, progress=progress)
    train_tiny_model(model_dir, pairs, steps=config.train_steps, batch_size=config.batch_size,
                     lr=config.lr, seed=config.seed + 1, num_threads=1, progress=progress)
    train_seconds = time.perf_counter() - started
    _write_problems(folder / "train.jsonl", train)
    _write_problems(folder / "heldout.jsonl", heldout)

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        policy = HFPolicy.from_pretrained(model_dir, device="cpu", dtype="float32")
        metrics = measure(policy, config, train, heldout, progress=progress)
    finally:
        torch.set_num_threads(threads)
    metrics["lab/train_seconds"] = train_seconds
    metrics["lab/parameters"] = float(sum(p.numel() for p in policy.model.parameters()))
    return metrics


def load_bootstrap(folder: str | Path) -> BootstrapResult:
    """A finished bootstrap folder (`policy-<key>`, with lab.json) as a result."""
    folder = Path(folder)
    result_path = folder / RESULT_FILE
    if not result_path.is_file():
        raise FileNotFoundError(f"{folder} is not a finished lab bootstrap (no {RESULT_FILE}); "
                                f"run `svs lab bootstrap` and pass the policy-<key> folder")
    saved = json.loads(result_path.read_text(encoding="utf-8"))
    return BootstrapResult(folder, saved["metrics"], True, saved["build_seconds"])


def bootstrap(config: LabConfig | None = None, out_dir: str | Path = "runs/lab", *,
              progress: bool = False) -> BootstrapResult:
    """The bootstrapped policy for `config` under `out_dir`, built unless cached."""
    config = config or LabConfig()
    started = time.perf_counter()
    folder = Path(out_dir) / f"policy-{config.key()}"
    if (folder / RESULT_FILE).is_file():
        return load_bootstrap(folder)
    if folder.exists():
        raise FileExistsError(f"{folder} exists without {RESULT_FILE} (an interrupted or "
                              f"foreign build); delete it and run again")
    staging = folder.with_name(f"{folder.name}.building-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        metrics = _build(config, staging, progress)
        seconds = time.perf_counter() - started
        record = {"key": config.key(), "config": dataclasses.asdict(config),
                  "lab_version": LAB_VERSION, "curriculum_version": curriculum.VERSION,
                  "metrics": metrics, "build_seconds": seconds}
        (staging / RESULT_FILE).write_text(json.dumps(record, indent=2) + "\n",
                                           encoding="utf-8")
        os.replace(staging, folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return BootstrapResult(folder, metrics, False, seconds)
