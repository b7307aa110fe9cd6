"""The real trainers read our exports and call our rewards (slow: installs verl/OpenRLHF).

- TRL (main environment): `GRPOTrainer` trains on CPU with a tiny local model, our
  exported dataset and `math_reward`; its completions log is read back by svs's rollout
  reader and grouped by our problem ids.
- verl 0.9.1 (`.venv-verl/`): `RLHFDataset` loads our parquet with a tiny tokenizer;
  verl's own loader and `NaiveRewardManager` call our `compute_score`; verl's dump writer
  produces a `rollout_data_dir` file that svs's reader groups by problem id.
- OpenRLHF 0.11.2 (`.venv-openrlhf/`): `PromptDataset` reads our jsonl (chat messages
  and plain strings) and our `reward_func` scores what it yields.

The verl and OpenRLHF environments are built on first use (see
`tests/real_clients/venvs.py`) and reused after.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from svs.core.records import Problem
from svs.trainer_bridge.exporters import ExportConfig, export_problems, prompt_text
from svs.trainer_bridge.formats import import_problems

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
CHECKS = REPO / "tests" / "real_clients"


@pytest.fixture(scope="module")
def problems() -> list[Problem]:
    originals = [Problem(f"What is {a} + {b}?", str(a + b)) for a, b in ((3, 4), (2, 6), (5, 4))]
    variant = originals[0].variant("Ann has 3 pens and gets 4 more. How many pens now?",
                                   synthesizer="svs")
    return [*originals, variant]


@pytest.fixture(scope="module")
def tiny_model(problems, tmp_path_factory) -> Path:
    """A tiny chat model that answers `\\boxed{right}` or `\\boxed{wrong}` about half the
    time each, so GRPO groups have reward variance and a step changes the weights."""
    from svs.pipeline.policy.tiny import SIMPLE_CHAT_TEMPLATE, build_tiny_model, train_tiny_model

    config = ExportConfig()
    prompts = [prompt_text(p, config) for p in problems]
    examples = []
    for problem, prompt in zip(problems, prompts, strict=True):
        wrong = str(int(problem.answer) + 1)
        examples += [(prompt, f"\\boxed{{{problem.answer}}}"), (prompt, f"\\boxed{{{wrong}}}")]
    folder = build_tiny_model(tmp_path_factory.mktemp("tiny"),
                              prompts + [c for _, c in examples] * 4,
                              chat_template=SIMPLE_CHAT_TEMPLATE)
    return train_tiny_model(folder, examples, steps=80, batch_size=16)


def _run_check(python: Path, script: str, *args: str, timeout: int = 600) -> dict:
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false",
           "RAY_USAGE_STATS_ENABLED": "0"}
    result = subprocess.run([str(python), str(CHECKS / script), *args], env=env,
                            capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        raise AssertionError(f"{script} failed ({result.returncode}):\n"
                             f"{result.stdout[-4000:]}\n{result.stderr[-6000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def _venv(name: str) -> Path:
    import importlib.util

    spec = importlib.util.spec_from_file_location("svs_real_client_venvs", CHECKS / "venvs.py")
    venvs = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(venvs)
    python, seconds = venvs.ensure_venv(name)
    print(f".venv-{name}: " + (f"built in {seconds:.0f} s" if seconds else "reused"))
    return python


def test_trl_grpo_trainer_trains_on_our_export_and_reward(problems, tiny_model, tmp_path):
    import torch
    from datasets import load_dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    from svs.pipeline.rollouts import load_rollout_groups
    from svs.trainer_bridge.rewards import math_reward

    data = export_problems(problems, "trl", tmp_path / "train.parquet")
    assert import_problems(data) == problems
    dataset = load_dataset("parquet", data_files=str(data), split="train")
    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    args = GRPOConfig(
        output_dir=str(tmp_path / "run"), max_steps=2, learning_rate=1e-3,
        per_device_train_batch_size=16, num_generations=4, max_completion_length=12,
        temperature=1.0, bf16=False, use_cpu=True, gradient_checkpointing=False,
        report_to="none", logging_steps=1, save_strategy="no", log_completions=True,
        seed=0, dataloader_num_workers=0,
    )
    trainer = GRPOTrainer(model=model, reward_funcs=[math_reward], args=args,
                          train_dataset=dataset, processing_class=tokenizer)
    trainer.train()

    logs = [entry for entry in trainer.state.log_history if "rewards/math_reward/mean" in entry]
    assert len(logs) == 2
    assert any(0 < entry["rewards/math_reward/mean"] < 1 for entry in logs), logs
    assert "verify/no_answer" in logs[0]
    moved = [name for name, p in model.named_parameters()
             if not torch.equal(p.detach(), before[name])]
    assert moved, "one GRPO step with mixed rewards must change the weights"

    # TRL's completions log carries our problem ids and is grouped by svs's reader.
    completions = sorted((tmp_path / "run" / "completions").glob("completions_*.parquet"))
    assert completions
    groups = load_rollout_groups(completions)
    ids = {p.id for p in problems}
    assert {g.problem_id for g in groups} <= ids
    assert all(g.n == 4 for g in groups)  # num_generations rollouts per prompt and step
    graded = [r for g in groups for r in g.rollouts]
    answers = {p.id: p.answer for p in problems}
    assert all(r.answer == answers[r.problem_id] for r in graded)
    assert all(r.correct == (r.extracted == r.answer) for r in graded)


def test_verl_loads_our_parquet_and_scores_with_our_reward(problems, tiny_model, tmp_path):
    from svs.pipeline.rollouts import load_rollout_groups

    python = _venv("verl")
    data = export_problems(problems, "verl", tmp_path / "train.parquet")
    report = _run_check(python, "check_verl.py", str(data), str(tiny_model), str(tmp_path))

    assert report["verl_version"] == "0.9.1"
    # the configuration lines of docs/trainers.md, composed by Hydra into verl's config
    assert report["dataset_class"] == "RLHFDataset"
    assert report["reward_fn"] == ["svs.trainer_bridge.rewards", "compute_score", {"timeout_s": 5}]
    assert report["ray_env"]["SVS_REWARD_WORKERS"] == "2"
    assert report["rows"] == len(problems)  # the overlong filter kept every row
    assert {"raw_prompt", "data_source", "reward_model", "extra_info"} <= set(report["item_keys"])
    assert report["raw_prompt"] == [{"role": "user", "content": prompt_text(problems[0],
                                                                             ExportConfig())}]
    assert report["problem_ids"] == [p.id for p in problems]
    assert report["ground_truths"] == [p.answer for p in problems]
    # a right and a wrong response per row, scored by our compute_score inside verl
    assert report["scores"] == [1.0, 0.0] * len(problems)
    assert report["extra"]["problem_id"] == [p.id for p in problems for _ in range(2)]
    assert report["extra"]["reason"] == ["correct", "wrong"] * len(problems)

    # verl's own dump is grouped by our ids, correctness from our `acc`
    groups = load_rollout_groups(report["dump"])
    assert [g.problem_id for g in groups] == [p.id for p in problems]
    assert all(g.n == 2 and g.n_correct == 1 and g.step == 1 for g in groups)


def test_openrlhf_prompt_dataset_reads_our_export_and_calls_our_reward(problems, tiny_model,
                                                                       tmp_path):
    from transformers import AutoTokenizer

    python = _venv("openrlhf")
    keys = {"input_key": "context", "label_key": "answer"}
    chat = export_problems(problems, "openrlhf", tmp_path / "chat.jsonl", ExportConfig(**keys))
    plain = export_problems(problems, "openrlhf", tmp_path / "plain.jsonl",
                            ExportConfig(conversational=False, **keys))
    assert import_problems(chat, **keys) == import_problems(plain, **keys) == problems
    report = _run_check(python, "check_openrlhf.py", str(chat), str(plain), str(tiny_model),
                        keys["input_key"], keys["label_key"])

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    texts = [prompt_text(p, ExportConfig()) for p in problems]
    templated = [tokenizer.apply_chat_template([{"role": "user", "content": text}],
                                               tokenize=False, add_generation_prompt=True)
                 for text in texts]
    answers = [p.answer for p in problems]
    assert report["chat"] == {"prompts": templated, "labels": answers,
                              "datasources": ["svs"] * len(problems)}
    assert report["plain_raw"] == {"prompts": texts, "labels": answers}
    assert report["plain_chat"] == {"prompts": templated}
    # OpenRLHF's agent loaded rewards.py by path and called reward_func in threads
    assert report["rewards"] == [1.0, 0.0] * len(problems)
    assert report["scores"] == report["rewards"]
    assert report["extra_logs"] == ["verify/no_answer"]
    assert report["query_example"].startswith(templated[0])
