"""verl's `data.custom_cls`: an `RLHFDataset` that follows a prompt set's current version.

Import this only where verl is installed (it subclasses verl's `RLHFDataset`). verl
builds it as `cls(data_files=, tokenizer=, processor=, config=, max_samples=)` from

    data.custom_cls.path=pkg://svs.trainer_bridge.verl_dataset
    data.custom_cls.name=VerlLiveDataset
    +data.svs_store=runs/store
    +data.svs_set=math
    +data.svs_length=4096        # optional: items per epoch (default: the first version's)

`data.train_files` is still required by verl's config; with `svs_store` set it is not
read (the rows come from the store). The current version is exported as verl parquet
(`svs export --format verl`, weights applied) to `<data.cache_dir>/svs-live/<set>/vN.parquet`
and read by `RLHFDataset` itself, so tokenizing, the overlong filter and item layout are
verl's own. The dataset reloads when the set's CURRENT moves:

- legacy trainer (`trainer.use_v1=false`): it calls `train_dataset.on_batch_end(batch)`
  after every step; use `data.dataloader_num_workers=0`, since worker processes hold
  copies of the dataset that this call does not reach;
- V1 trainer (the default; it never calls `on_batch_end`): every item read checks the
  set's CURRENT (one small file) first, so the next batch read, at the latest the next
  epoch, comes from the new version; dataloader workers each check for themselves.

The length verl sees stays fixed (its step count and sampler were computed from it):
item i is row i modulo the current version's length. Choose `svs_length` at least as
large as the sets you expect, or later versions' extra rows are not reached.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from verl.utils.dataset.rl_dataset import RLHFDataset

from svs.trainer_bridge.live_sets import LiveVersion


class VerlLiveDataset(RLHFDataset):
    """`RLHFDataset` over the current version of `data.svs_set` in `data.svs_store`."""

    def __init__(self, data_files: Any, tokenizer: Any, config: Any, processor: Any = None,
                 max_samples: int = -1) -> None:
        store, name = config.get("svs_store"), config.get("svs_set")
        if not store or not name:
            raise ValueError("VerlLiveDataset needs the prompt store and set: add "
                             "+data.svs_store=PATH +data.svs_set=NAME to the verl command")
        self.live = LiveVersion(store, name)
        self.live.changed()
        cache = Path(os.path.expanduser(config.get("cache_dir", "~/.cache/verl/rlhf")))
        self.export_dir = cache / "svs-live" / name
        super().__init__(data_files=[self._export()], tokenizer=tokenizer, config=config,
                         processor=processor, max_samples=max_samples)
        self.fixed_length = int(config.get("svs_length") or len(self.dataframe))

    def _export(self) -> str:
        from svs.trainer_bridge.exporters import export_problems
        from svs.trainer_bridge.formats import load_source

        path = self.export_dir / f"v{self.live.version}.parquet"
        if not path.exists():  # written by rename: another rank or worker may race us
            problems, _ = load_source(store=self.live.store.root, set_name=self.live.name,
                                      version=self.live.version)
            export_problems(problems, "verl", path)
        return str(path)

    @property
    def version_label(self) -> str:
        return self.live.label

    def reload_if_changed(self) -> bool:
        """Load the set's current version if it is not the one loaded; True if it was."""
        if not self.live.changed():
            return False
        self.data_files = [self._export()]
        self.original_data_files = list(self.data_files)  # what a checkpoint resume reads
        self._read_files_and_tokenize()
        if len(self.dataframe) == 0:
            raise ValueError(f"{self.live.label}: every row was filtered out (overlong prompts?)")
        return True

    def on_batch_end(self, batch: Any) -> None:
        """verl's legacy trainer calls this after every training step."""
        self.reload_if_changed()

    def __len__(self) -> int:
        return self.fixed_length

    def __getitem__(self, item: int) -> dict:
        self.reload_if_changed()
        return super().__getitem__(item % len(self.dataframe))
