"""Run inside `.venv-verl`: `VerlLiveDataset` built by verl's own dataset factory follows
the prompt store while a "trainer" reads it (dataset level; a full verl trainer needs a GPU).

    python check_verl_dataset.py STORE SET TOKENIZER_DIR WORK_DIR

1. verl's `ppo_trainer` config is composed with the `data.custom_cls` lines of
   docs/trainers.md, and verl's `create_rl_dataset` builds the dataset from it.
2. Legacy trainer path: rows are read, v2 is published, `on_batch_end(batch)` (what the
   legacy trainer calls after each step) reloads; the next rows are v2's.
3. V1 trainer path (never calls `on_batch_end`): a torchdata `StatefulDataLoader` with
   verl's `collate_fn`, as the V1 trainer builds it, reads one epoch; v3 is published
   between epochs; the next epoch's batches are v3's.

Prints one JSON object on the last line of stdout for the test to check.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import verl
from torchdata.stateful_dataloader import StatefulDataLoader
from transformers import AutoTokenizer
from verl.trainer.ppo.utils import create_rl_dataset
from verl.utils.dataset.rl_dataset import collate_fn

from svs.core.records import Problem
from svs.pipeline.lineage import add_problems
from svs.pipeline.store import NewVersion, PromptStore


def verl_config(store: str, name: str, work: Path):
    from hydra import compose, initialize_config_dir

    overrides = [
        f"data.train_files={work / 'unused.parquet'}",  # required by verl, not read
        "data.custom_cls.path=pkg://svs.trainer_bridge.verl_dataset",
        "data.custom_cls.name=VerlLiveDataset",
        f"+data.svs_store={store}",
        f"+data.svs_set={name}",
        "+data.svs_length=6",
        "data.dataloader_num_workers=0",
        "data.filter_overlong_prompts=True",
        "data.max_prompt_length=256",
        f"+data.cache_dir={work / 'cache'}",
        "data.filter_overlong_prompts_workers=1",
    ]
    config_dir = Path(verl.__file__).parent / "trainer" / "config"
    with initialize_config_dir(config_dir=str(config_dir), version_base=None):
        return compose(config_name="ppo_trainer", overrides=overrides)


def publish(store: PromptStore, name: str, problems: list[Problem]) -> int:
    import networkx as nx

    parent = store.current_or_none(name)
    graph = nx.DiGraph()
    add_problems(graph, problems, version=(parent or 0) + 1)
    return store.publish(name, NewVersion(problems, graph), parent=parent).version


def ids(items) -> list[str]:
    return [item["extra_info"]["problem_id"] for item in items]


def main(store_dir: str, name: str, tokenizer_dir: str, work_dir: str) -> None:
    work = Path(work_dir)
    store = PromptStore(store_dir)
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    config = verl_config(store_dir, name, work)
    dataset = create_rl_dataset(config.data.train_files, config.data, tokenizer, None)

    legacy_before = ids(dataset[i] for i in range(len(dataset)))
    v2 = [Problem(f"What is {a} times {b}?", str(a * b)) for a, b in ((2, 3), (4, 5), (6, 7))]
    publish(store, name, v2)
    dataset.on_batch_end(batch=None)  # the legacy trainer's call after a step
    legacy_after = ids(dataset[i] for i in range(len(dataset)))

    loader = StatefulDataLoader(dataset, batch_size=3, num_workers=0, shuffle=True,
                                collate_fn=collate_fn, drop_last=True)
    epoch_1 = [list(batch["extra_info"]) for batch in loader]
    v3 = [Problem(f"What is {a} minus {b}?", str(a - b)) for a, b in ((9, 3), (8, 5))]
    publish(store, name, v3)
    epoch_2 = [list(batch["extra_info"]) for batch in loader]

    print(json.dumps({
        "dataset_class": type(dataset).__name__,
        "length": len(dataset),
        "legacy_before": legacy_before, "legacy_after": legacy_after,
        "v2_ids": [p.id for p in v2], "v3_ids": [p.id for p in v3],
        "epoch_1": [[info["problem_id"] for info in batch] for batch in epoch_1],
        "epoch_2": [[info["problem_id"] for info in batch] for batch in epoch_2],
        "version": dataset.version_label,
        "item_keys": sorted(dataset[0]),
    }))


if __name__ == "__main__":
    main(*sys.argv[1:])
