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
from svs.pipeline.matching import match
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


def _reward_server_proc():
    import importlib.util

    spec = importlib.util.spec_from_file_location("svs_reward_server_proc",
                                                  CHECKS / "reward_server_proc.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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
    import pandas as pd

    table = pd.read_parquet(completions[0])
    assert set(table["svs_reward"]) == {"math_reward"} and set(table["mode"]) == {"train"}
    groups = load_rollout_groups(completions)
    ids = {p.id for p in problems}
    assert {g.problem_id for g in groups} <= ids
    assert all(g.n == 4 for g in groups)  # num_generations rollouts per prompt and step
    graded = [r for g in groups for r in g.rollouts]
    answers = {p.id: p.answer for p in problems}
    assert all(r.answer == answers[r.problem_id] for r in graded)
    assert all(r.correct == (r.extracted == r.answer) for r in graded)


def _trl_args(out: Path, **overrides):
    from trl import GRPOConfig

    settings = dict(
        output_dir=str(out), max_steps=2, learning_rate=1e-3, per_device_train_batch_size=16,
        num_generations=4, max_completion_length=12, temperature=1.0, bf16=False, use_cpu=True,
        gradient_checkpointing=False, report_to="none", logging_steps=1, save_strategy="no",
        log_completions=True, seed=0, dataloader_num_workers=0)
    return GRPOConfig(**{**settings, **overrides})


def test_trl_with_a_format_and_an_accuracy_reward_is_diagnosed_by_accuracy(problems, tiny_model,
                                                                           tmp_path):
    """TRL's own `think_format_reward` and `accuracy_reward`, both 0/1: the diagnosis takes
    the accuracy reward's solve rates (by name), not the first 0/1 column's."""
    import pandas as pd
    from datasets import load_dataset
    from trl import GRPOTrainer
    from trl.rewards import accuracy_reward, think_format_reward
    from typer.testing import CliRunner

    from svs.flows.cli import app

    data = export_problems(problems, "trl", tmp_path / "train.parquet")
    dataset = load_dataset("parquet", data_files=str(data), split="train")
    trainer = GRPOTrainer(model=str(tiny_model), reward_funcs=[think_format_reward, accuracy_reward],
                          args=_trl_args(tmp_path / "run", max_steps=3), train_dataset=dataset)
    trainer.train()
    folder = tmp_path / "run" / "completions"
    table = pd.concat([pd.read_parquet(f) for f in sorted(folder.glob("*.parquet"))])
    assert {"think_format_reward", "accuracy_reward"} <= set(table.columns)
    assert set(table["think_format_reward"]) <= {0.0, 1.0} and set(table["accuracy_reward"]) <= {0.0, 1.0}

    result = CliRunner().invoke(app, ["diagnose", str(folder), "--out", str(tmp_path / "report")],
                                env={"SVS_NO_PREFECT": "1"})
    assert result.exit_code == 0, result.output
    assert "from reward 'accuracy_reward'" in result.output
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    rates = {(d["prompt"]): d["metrics"]["diversity/solve_rate"] for d in report["problems"]}
    table["text"] = [m[0]["content"] for m in table["prompt"]]
    latest = table[table["step"] == table.groupby("text")["step"].transform("max")]
    expected = latest.groupby("text")["accuracy_reward"].mean().to_dict()  # label: latest step
    assert rates.keys() == expected.keys() and rates == pytest.approx(expected)
    # the format reward (the first 0/1 column) is 0 everywhere; the accuracy reward is not
    assert set(table["think_format_reward"]) == {0.0} and table["accuracy_reward"].sum() > 0


def test_trl_grpo_trainer_picks_up_a_version_published_mid_run(problems, tiny_model, tmp_path):
    """A real `GRPOTrainer` on `trl_live_dataset`; the store publishes v2 after step 2; a
    reward function records the `version` column and the prompts it receives."""
    import networkx as nx
    from transformers import TrainerCallback
    from trl import GRPOTrainer

    from svs.pipeline.lineage import add_problems
    from svs.pipeline.store import NewVersion, PromptStore
    from svs.trainer_bridge.live_sets import trl_live_dataset
    from svs.trainer_bridge.rewards import async_math_reward

    store = PromptStore(tmp_path / "store")
    v1, v2 = problems[1:3], [problems[0], problems[3]]  # v2: an original and its variant
    graph = nx.DiGraph()
    add_problems(graph, v1, version=1)
    store.publish("demo", NewVersion(v1, graph), parent=None)
    seen: list[tuple[int, str, str]] = []  # (step, version, user text)

    def recording_reward(completions, version, prompts, trainer_state, **kwargs):
        seen.extend((trainer_state.global_step, v, p[-1]["content"])
                    for v, p in zip(version, prompts, strict=True))
        return [0.0] * len(completions)

    class PublishAfterStep2(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 2:
                graph = nx.DiGraph()
                add_problems(graph, v2, version=2)
                store.publish("demo", NewVersion(v2, graph), parent=1)

    trainer = GRPOTrainer(model=str(tiny_model), reward_funcs=[recording_reward, async_math_reward],
                          args=_trl_args(tmp_path / "run", max_steps=6, shuffle_dataset=False,
                                         log_completions=False),
                          train_dataset=trl_live_dataset(tmp_path / "store", "demo"),
                          callbacks=[PublishAfterStep2()])
    trainer.train()

    assert trainer.state.global_step == 6
    # TRL awaited svs's async reward too: logged every step, answered with rewards
    logged = [e for e in trainer.state.log_history if "rewards/async_math_reward/mean" in e]
    assert len(logged) == 6 and all(0 <= e["rewards/async_math_reward/mean"] <= 1 for e in logged)
    by_step = {}
    for step, version, text in seen:
        by_step.setdefault(step, set()).add((version, text))
    assert sorted(by_step) == list(range(6))  # one generation batch per step
    texts = {p.id: prompt_text(p, ExportConfig()) for p in problems}
    assert by_step[0] | by_step[1] | by_step[2] <= {("demo@v1", texts[p.id]) for p in v1}
    # accelerate reads one batch ahead: at most one batch of v1 after the publish
    assert by_step[4] | by_step[5] <= {("demo@v2", texts[p.id]) for p in v2}
    assert {text for _, text in by_step[4] | by_step[5]} == {texts[p.id] for p in v2}


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
    # `async def compute_score_async`, awaited by verl's reward manager, agrees
    assert report["async"]["is_async"] is True
    assert report["async"]["scores"] == report["scores"]
    assert [e["problem_id"] for e in report["async"]["extra"]] == report["extra"]["problem_id"]

    # the legacy trainer's dump carries our reward's keys: grouped by our ids, `acc`
    groups = load_rollout_groups(report["dump"])
    assert [g.problem_id for g in groups] == [p.id for p in problems]
    assert all(g.n == 2 and g.n_correct == 1 and g.step == 1 for g in groups)

    # verl 0.9.1's default V1 trainer dumps exactly these keys, no reward extras
    rows = [json.loads(line) for line in Path(report["v1_dump"]).read_text().splitlines()]
    assert all(set(row) == {"input", "output", "gts", "score", "step", "uid"} for row in rows)
    assert len(rows) == 2 * len(problems) and {row["step"] for row in rows} == {3}
    v1_groups = load_rollout_groups(report["v1_dump"])
    assert len(v1_groups) == len(problems)  # one per prompt uuid of verl's uid
    assert all(g.problem_id.startswith("p-") for g in v1_groups)  # no id in the dump
    assert all(g.n == 2 and g.n_correct == 1 for g in v1_groups)  # correctness from `score`
    # matched to the set by the problem text inside the decoded chat-templated input
    result = match(problems, v1_groups)
    assert sorted(g.problem_id for g in result.matched) == sorted(p.id for p in problems)
    assert result.rules == {"text in prompt": len(problems)}
    # the variant's text contains no original's, and the original's ("What is 3 + 4?") is
    # not in the variant's prompt: with the variant left out of the set its group is
    # reported, with an example, not silently dropped
    partial = match(problems[:-1], v1_groups)
    assert len(partial.matched) == 3 and len(partial.unmatched) == 1
    assert "Ann has 3 pens" in partial.unmatched_message("demo@v1")

    # `svs refresh` publishes the next version from either dump
    for dump in (report["v1_dump"], report["dump"]):
        store = tmp_path / f"store-{Path(dump).parent.name}"
        published = _refresh_from(data, dump, store, tmp_path)
        assert published.version == 2 and published.parent == 1
        diagnosed = {d["problem_id"] for d in published.diagnosis["problems"]}
        assert diagnosed == {p.id for p in problems}


def test_verl_dataset_class_follows_the_store(problems, tiny_model, tmp_path):
    """`data.custom_cls` = `VerlLiveDataset`, built by verl's `create_rl_dataset`; the
    store publishes while it is read (dataset level: a full verl trainer needs a GPU)."""
    import networkx as nx

    from svs.pipeline.lineage import add_problems
    from svs.pipeline.store import NewVersion, PromptStore

    python = _venv("verl")
    graph = nx.DiGraph()
    add_problems(graph, problems, version=1)
    PromptStore(tmp_path / "store").publish("demo", NewVersion(problems, graph), parent=None)
    report = _run_check(python, "check_verl_dataset.py", str(tmp_path / "store"), "demo",
                        str(tiny_model), str(tmp_path))

    assert report["dataset_class"] == "VerlLiveDataset"
    assert report["length"] == 6  # data.svs_length, fixed across versions
    v1_ids = [p.id for p in problems]
    # indices past the version's size map modulo its rows
    assert report["legacy_before"] == v1_ids + v1_ids[:2]
    assert set(report["legacy_after"]) == set(report["v2_ids"])  # on_batch_end reloaded
    assert {pid for batch in report["epoch_1"] for pid in batch} == set(report["v2_ids"])
    assert len(report["epoch_2"]) == 2
    assert {pid for batch in report["epoch_2"] for pid in batch} == set(report["v3_ids"])
    assert report["version"] == "demo@v3"
    assert {"raw_prompt", "reward_model", "extra_info"} <= set(report["item_keys"])


def _refresh_from(export: Path, dump: str, store: Path, work: Path):
    """`svs import` of our verl export (ids kept), then `svs refresh` from `dump`."""
    from typer.testing import CliRunner

    from svs.flows.cli import app
    from svs.pipeline.store import PromptStore

    config = work / "refresh.yaml"
    config.write_text("synthesizers: [symbolic]\n")
    runner, env = CliRunner(), {"SVS_NO_PREFECT": "1"}
    imported = runner.invoke(app, ["import", str(export), "--format", "verl", "--store", str(store),
                                      "--set", "demo"],
                             env=env)
    assert imported.exit_code == 0, imported.output
    refreshed = runner.invoke(app, ["refresh", "--store", str(store), "--set", "demo",
                                    "--rollouts", dump, "--config", str(config)], env=env)
    assert refreshed.exit_code == 0, refreshed.output
    assert "demo@v2: published" in refreshed.output
    return PromptStore(store).load("demo")


def test_openrlhf_prompt_dataset_reads_our_export_and_calls_our_reward(problems, tiny_model,
                                                                       tmp_path):
    from transformers import AutoTokenizer

    python = _venv("openrlhf")
    keys = {"input_key": "context", "label_key": "answer"}
    chat = export_problems(problems, "openrlhf", tmp_path / "chat.jsonl", ExportConfig(**keys))
    plain = export_problems(problems, "openrlhf", tmp_path / "plain.jsonl",
                            ExportConfig(conversational=False, **keys))
    assert import_problems(chat, **keys) == import_problems(plain, **keys) == problems
    with _reward_server_proc().reward_server("--workers", "2") as url:
        report = _run_check(python, "check_openrlhf.py", str(chat), str(plain), str(tiny_model),
                            keys["input_key"], keys["label_key"], f"{url}/get_reward")

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
    # `svs reward-server` through OpenRLHF's own HTTP client, one request per query
    assert report["http"]["scores"] == [[1.0], [0.0]] * len(problems)
    assert report["http"]["rewards"] == report["http"]["scores"]
    assert report["http"]["extra_logs"] == [{"verify/no_answer": [0.0]}] * (2 * len(problems))
