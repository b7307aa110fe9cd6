"""Run inside `.venv-verl`: our verl export and reward through verl's own code.

    python check_verl.py EXPORT.parquet TOKENIZER_DIR WORK_DIR

1. verl's `ppo_trainer` config is composed (Hydra) with the configuration lines of
   docs/trainers.md, and verl's `create_rl_dataset` builds the dataset (`RLHFDataset`)
   from it with the tiny tokenizer (overlong filter on, so a missing chat template would
   drop every row).
2. verl's `get_custom_reward_fn` loads `compute_score` from that config
   (`pkg://svs.trainer_bridge.rewards`, `reward_kwargs`), and verl's `NaiveRewardManager` scores a correct and a wrong response for every
   row, all requests at once on its event loop (so from several executor threads).
3. verl's trainer writes those results as a `rollout_data_dir` dump.

Prints one JSON object on the last line of stdout for the test to check.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import numpy as np
import torch
import verl
from transformers import AutoTokenizer
from verl import DataProto
from verl.experimental.reward_loop.reward_manager.naive import NaiveRewardManager
from verl.trainer.ppo.reward import get_custom_reward_fn
from verl.trainer.ppo.utils import create_rl_dataset


def verl_config(parquet: str, work: Path):
    """verl's own `ppo_trainer` config composed with the lines docs/trainers.md gives."""
    from hydra import compose, initialize_config_dir

    overrides = [
        f"data.train_files={parquet}",
        "data.prompt_key=prompt",
        "reward.custom_reward_function.path=pkg://svs.trainer_bridge.rewards",
        "reward.custom_reward_function.name=compute_score",
        "+reward.custom_reward_function.reward_kwargs.timeout_s=5",
        # quoted: Ray wants string env vars, Hydra would make 2 an int
        '+ray_kwargs.ray_init.runtime_env.env_vars.SVS_REWARD_WORKERS="2"',
        # test-only: the overlong filter on (common in verl recipes; a tokenizer without a
        # chat template would drop every row), a short limit, a cache in the test folder
        "data.filter_overlong_prompts=True",
        "data.max_prompt_length=256",
        f"+data.cache_dir={work / 'cache'}",
        "data.filter_overlong_prompts_workers=1",
    ]
    config_dir = Path(verl.__file__).parent / "trainer" / "config"
    with initialize_config_dir(config_dir=str(config_dir), version_base=None):
        return compose(config_name="ppo_trainer", overrides=overrides)


def one_item(tokenizer, row: dict, response: str) -> DataProto:
    prompt_ids = tokenizer.apply_chat_template(row["raw_prompt"], add_generation_prompt=True,
                                               tokenize=True, return_dict=False)
    response_ids = tokenizer(response, add_special_tokens=False)["input_ids"]
    tensors = {
        "prompts": torch.tensor([prompt_ids]),
        "responses": torch.tensor([response_ids]),
        "attention_mask": torch.ones(1, len(prompt_ids) + len(response_ids), dtype=torch.long),
    }
    non_tensors = {key: np.array([row[key]], dtype=object)
                   for key in ("data_source", "reward_model", "extra_info")}
    return DataProto.from_dict(tensors=tensors, non_tensors=non_tensors)


def main(parquet: str, tokenizer_dir: str, work_dir: str) -> None:
    work = Path(work_dir)
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    config = verl_config(parquet, work)
    dataset = create_rl_dataset(config.data.train_files, config.data, tokenizer, None)
    rows = [dataset[i] for i in range(len(dataset))]

    compute_score = get_custom_reward_fn(config)
    manager = NaiveRewardManager(config, tokenizer, compute_score)
    responses, items = [], []
    for row in rows:
        answer = row["reward_model"]["ground_truth"]
        for response in (f"Step by step ... so the answer is \\boxed{{{answer}}}.",
                         "I think it is \\boxed{-12345}."):
            responses.append((row, response))
            items.append(one_item(tokenizer, row, response))
    results = manager.loop.run_until_complete(
        asyncio.gather(*(manager.run_single(item) for item in items)))

    # The trainer's own dump writer, as `trainer.rollout_data_dir` uses it.
    from verl.trainer.ppo.ray_trainer import RayPPOTrainer

    extra_keys = list(results[0]["reward_extra_info"])
    extra = {key: [r["reward_extra_info"][key] for r in results] for key in extra_keys}
    dump_dir = work / "rollout_data"
    RayPPOTrainer._write_generations(
        inputs=[tokenizer.decode(item.batch["prompts"][0], skip_special_tokens=True)
                for item in items],
        outputs=[response for _, response in responses],
        gts=[row["reward_model"]["ground_truth"] for row, _ in responses],
        scores=[r["reward_score"] for r in results],
        reward_extra_infos_dict=extra, dump_path=str(dump_dir), global_steps=1)

    print(json.dumps({
        "verl_version": verl.__version__,
        "dataset_class": type(dataset).__name__,
        # what verl's loader bound to our function, and the env vars Ray workers get
        "reward_fn": [compute_score.args[0].__module__, compute_score.args[0].__name__,
                      dict(compute_score.args[1])],
        "ray_env": dict(config.ray_kwargs.ray_init.runtime_env.env_vars),
        "rows": len(dataset),
        "item_keys": sorted(rows[0]),
        "raw_prompt": rows[0]["raw_prompt"] if isinstance(rows[0]["raw_prompt"], list)
        else list(rows[0]["raw_prompt"]),
        "problem_ids": [row["extra_info"]["problem_id"] for row in rows],
        "ground_truths": [row["reward_model"]["ground_truth"] for row in rows],
        "scores": [r["reward_score"] for r in results],
        "extra": {key: [str(v) for v in values] for key, values in extra.items()},
        "dump": str(dump_dir / "1.jsonl"),
    }, default=str))


if __name__ == "__main__":
    main(*sys.argv[1:])
