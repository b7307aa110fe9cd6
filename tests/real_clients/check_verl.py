"""Run inside `.venv-verl`: our verl export and reward through verl's own code.

    python check_verl.py EXPORT.parquet TOKENIZER_DIR WORK_DIR

1. verl's `ppo_trainer` config is composed (Hydra) with the configuration lines of
   docs/trainers.md, and verl's `create_rl_dataset` builds the dataset (`RLHFDataset`)
   from it with the tiny tokenizer (overlong filter on, so a missing chat template would
   drop every row).
2. verl's `get_custom_reward_fn` loads `compute_score` from that config
   (`pkg://svs.trainer_bridge.rewards`, `reward_kwargs`), and verl's `NaiveRewardManager` scores a correct and a wrong response for every
   row, all requests at once on its event loop (so from several executor threads); the
   same with `compute_score_async`, which the manager awaits on its loop.
3. verl's trainers write those results as `rollout_data_dir` dumps, each with its own
   `_log_rollout_data` on its default path:
   - the V1 trainer (`trainer.use_v1: true`, verl 0.9.1's default): `PPOTrainerSync` built
     with `__new__` (no Ray workers), its dump thread started with `_init_dump_executor`;
     `_log_rollout_data` reads `uid, prompts, responses, rm_scores, reward_model` through
     `tq.kv_batch_get`, here answered by verl's own `list_of_dict_to_tensordict` over the
     per-sample fields (the only stand-in: a real TransferQueue starts Ray actors); rows
     are keyed `<prompt uuid>_<session>_0` as its agent loop keys them, rollout.n = 2;
   - the legacy trainer (`use_v1: false`): `RayPPOTrainer._log_rollout_data` with the
     batch and the reward's extra infos, as its fit loop calls it.

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


def verl_config(parquet: str, work: Path, reward_name: str = "compute_score"):
    """verl's own `ppo_trainer` config composed with the lines docs/trainers.md gives."""
    from hydra import compose, initialize_config_dir

    overrides = [
        f"data.train_files={parquet}",
        "data.prompt_key=prompt",
        "reward.custom_reward_function.path=pkg://svs.trainer_bridge.rewards",
        f"reward.custom_reward_function.name={reward_name}",
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


def write_v1_dump(tokenizer, items, results, folder: Path, step: int) -> str:
    """verl 0.9.1's V1 `_log_rollout_data`, fed through `tq.kv_batch_get`."""
    import uuid

    from transfer_queue import KVBatchMeta
    from verl.trainer.ppo.v1 import trainer_base
    from verl.trainer.ppo.v1.trainer_sync import PPOTrainerSync
    from verl.utils.tensordict_utils import list_of_dict_to_tensordict

    samples: dict[str, dict] = {}
    for index in range(0, len(items), 2):  # each row: a right and a wrong response
        prompt_uuid = str(uuid.uuid4())
        for session in (0, 1):
            item, result = items[index + session], results[index + session]
            responses = item.batch["responses"][0]
            rm_scores = torch.zeros(len(responses))
            rm_scores[-1] = result["reward_score"]  # verl puts the score on the last token
            samples[f"{prompt_uuid}_{session}_0"] = {
                "uid": prompt_uuid, "prompts": item.batch["prompts"][0], "responses": responses,
                "rm_scores": rm_scores, "reward_model": item.non_tensor_batch["reward_model"][0]}

    def kv_batch_get(keys, partition_id, select_fields):
        return list_of_dict_to_tensordict([{f: samples[k][f] for f in select_fields} for k in keys])

    keys = list(reversed(samples))  # TransferQueue order is not the dump order; verl sorts
    trainer = PPOTrainerSync.__new__(PPOTrainerSync)
    trainer.tokenizer, trainer.global_steps = tokenizer, step
    trainer._init_dump_executor()
    original, trainer_base.tq.kv_batch_get = trainer_base.tq.kv_batch_get, kv_batch_get
    try:
        trainer._log_rollout_data(KVBatchMeta(keys=keys, tags=[{} for _ in keys],
                                              partition_id="train"), {}, str(folder))
    finally:
        trainer_base.tq.kv_batch_get = original
    trainer._shutdown_dump_executor()  # the write runs on verl's dump thread
    return str(folder / f"{step}.jsonl")


def write_legacy_dump(tokenizer, items, results, folder: Path, step: int) -> str:
    """The legacy trainer's `_log_rollout_data` (it dumps the reward's extra keys)."""
    from verl.trainer.ppo.ray_trainer import RayPPOTrainer

    def padded(key: str, left: bool) -> torch.Tensor:  # (B, T), prompts padded on the left
        rows = [item.batch[key][0] for item in items]
        out = torch.full((len(rows), max(len(r) for r in rows)), tokenizer.pad_token_id)
        for i, r in enumerate(rows):
            if left:
                out[i, out.shape[1] - len(r):] = r
            else:
                out[i, :len(r)] = r
        return out

    responses = padded("responses", left=False)
    scores = torch.zeros(responses.shape, dtype=torch.float32)
    for i, (item, result) in enumerate(zip(items, results, strict=True)):
        scores[i, len(item.batch["responses"][0]) - 1] = result["reward_score"]
    batch = DataProto.from_dict(
        tensors={"prompts": padded("prompts", left=True), "responses": responses,
                 "token_level_scores": scores},
        non_tensors={"reward_model": np.array([i.non_tensor_batch["reward_model"][0]
                                               for i in items], dtype=object)})
    extra_keys = list(results[0]["reward_extra_info"])
    extra = {key: np.array([r["reward_extra_info"][key] for r in results], dtype=object)
             for key in extra_keys}
    trainer = RayPPOTrainer.__new__(RayPPOTrainer)
    trainer.tokenizer, trainer.global_steps = tokenizer, step
    trainer._init_dump_executor()
    trainer._log_rollout_data(batch, extra, {}, str(folder))
    trainer._shutdown_dump_executor()
    return str(folder / f"{step}.jsonl")


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

    # the coroutine version, bound by the same loader and awaited by the same manager
    async_fn = get_custom_reward_fn(verl_config(parquet, work, "compute_score_async"))
    async_manager = NaiveRewardManager(config, tokenizer, async_fn)
    async_results = async_manager.loop.run_until_complete(
        asyncio.gather(*(async_manager.run_single(item) for item in items)))

    extra = {key: [r["reward_extra_info"][key] for r in results]
             for key in results[0]["reward_extra_info"]}
    v1_dump = write_v1_dump(tokenizer, items, results, work / "rollout_v1", step=3)
    legacy_dump = write_legacy_dump(tokenizer, items, results, work / "rollout_legacy", step=1)

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
        "async": {"is_async": async_manager.is_async_reward_score,
                  "scores": [r["reward_score"] for r in async_results],
                  "extra": [r["reward_extra_info"] for r in async_results]},
        "extra": {key: [str(v) for v in values] for key, values in extra.items()},
        "dump": legacy_dump,
        "v1_dump": v1_dump,
    }, default=str))


if __name__ == "__main__":
    main(*sys.argv[1:])
