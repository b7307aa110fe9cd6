"""Run inside `.venv-verl`: our verl export and reward through verl's own code.

    python check_verl.py EXPORT.parquet TOKENIZER_DIR WORK_DIR

1. verl's `RLHFDataset` loads the parquet with the tiny tokenizer (overlong filter on,
   so a missing chat template would drop every row).
2. verl's `get_custom_reward_fn` loads `compute_score` from `pkg://trainer_bridge.rewards`
   (the documented config line), and verl's `NaiveRewardManager` scores a correct and a wrong response for every
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
from omegaconf import OmegaConf
from transformers import AutoTokenizer
from verl import DataProto
from verl.experimental.reward_loop.reward_manager.naive import NaiveRewardManager
from verl.trainer.ppo.reward import get_custom_reward_fn
from verl.utils.dataset.rl_dataset import RLHFDataset


def load_dataset(parquet: str, tokenizer, work: Path) -> RLHFDataset:
    config = OmegaConf.create({
        "prompt_key": "prompt", "max_prompt_length": 256, "filter_overlong_prompts": True,
        "truncation": "error", "return_raw_chat": True, "cache_dir": str(work / "cache"),
        "filter_overlong_prompts_workers": 1,
    })
    return RLHFDataset(data_files=[parquet], tokenizer=tokenizer, config=config)


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
    dataset = load_dataset(parquet, tokenizer, work)
    rows = [dataset[i] for i in range(len(dataset))]

    config = OmegaConf.create({"reward": {"custom_reward_function": {
        "path": "pkg://trainer_bridge.rewards", "name": "compute_score",
        "reward_kwargs": {"timeout_s": 5.0}}}})
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

    import verl

    print(json.dumps({
        "verl_version": verl.__version__,
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
