"""A prompt set that follows the store's current version, for a trainer that is running.

A refresh publishes `name@v(N+1)` by renaming files (`svs.pipeline.store`), so a reader
never sees half a version; what a running trainer needs is to *ask* again. Two shapes:

- TRL: `trl_live_dataset(store, name)` is a `datasets.IterableDataset` for
  `GRPOTrainer(train_dataset=...)`. Its generator never ends: before every row it reads
  the set's CURRENT pointer (one small file), and when the version changed it switches
  to the new version's rows at once. Each pass over a version is a fresh weighted draw
  (`pipeline.refresh.apply_weights`, seeded by version and pass) in a shuffled order, so
  per-problem weights hold over time. Facts from TRL 1.16 this shape follows: an
  iterable dataset needs `max_steps`; the default `shuffle_dataset=True` would put the
  stream through a 1,000-row shuffle buffer and deliver a new version hundreds of steps
  late, so the shuffling happens here and the trainer needs `shuffle_dataset=False`;
  accelerate reads one batch ahead,
  so the switch lands one generation batch after the publish. An empty version stops
  the run with an error naming the version, never silently.
- verl: `svs.trainer_bridge.verl_dataset.VerlLiveDataset` (imports verl; used inside a
  verl environment) reloads through `LiveVersion` too.

Every row carries a `version` column (`name@vN`): TRL hands it to reward functions, and
a reward that records it shows which version each step trained on.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from svs.core.records import Problem
from svs.trainer_bridge.exporters import ExportConfig, trl_rows

VERSION_COLUMN = "version"


class LiveVersion:
    """The current version of one prompt set, re-read when CURRENT moves."""

    def __init__(self, store: str | Path, name: str) -> None:
        from svs.pipeline.store import PromptStore

        self.store = PromptStore(store)
        self.name = name
        if self.store.current_or_none(name) is None:
            known = ", ".join(self.store.names()) or "none"
            raise ValueError(f"prompt store {store} has no published set {name!r} (sets: {known})")
        self.version = 0
        self.problems: list[Problem] = []
        self.weights: dict[str, float] = {}

    @property
    def label(self) -> str:
        return f"{self.name}@v{self.version}"

    def changed(self) -> bool:
        """True when a version other than the loaded one is current (then it is loaded)."""
        current = self.store.current(self.name)
        if current == self.version:
            return False
        loaded = self.store.load(self.name, current)
        if not loaded.problems:
            raise ValueError(f"{loaded.label} has no problems: a running trainer cannot train on "
                             "an empty set; roll back (`svs rollback`) or publish problems")
        self.version, self.problems, self.weights = current, list(loaded.problems), dict(loaded.weights)
        return True

    def draw(self, pass_index: int, seed: int = 0) -> list[Problem]:
        """One pass: the weighted copies (`apply_weights`) in a shuffled order."""
        from svs.pipeline.refresh import apply_weights

        draw_seed = (seed * 100_003 + self.version) * 100_003 + pass_index
        problems = apply_weights(self.problems, self.weights, seed=draw_seed)
        if not problems:
            raise ValueError(f"{self.label}: every problem has weight 0 in pass {pass_index}")
        random.Random(draw_seed).shuffle(problems)
        return problems


def live_trl_rows(store: str, name: str, config: ExportConfig | None = None,
                  seed: int = 0) -> Iterator[dict[str, Any]]:
    """TRL rows (`exporters.trl_rows` plus `version`) of the current version, forever."""
    live = LiveVersion(store, name)
    live.changed()
    pass_index = 0
    while True:
        for problem in live.draw(pass_index, seed):
            if live.changed():
                pass_index = 0
                break  # the new version's own draw, from its first row
            (row,) = trl_rows([problem], config)
            yield {**row, VERSION_COLUMN: live.label}
        else:
            pass_index += 1


def trl_live_dataset(store: str | Path, name: str, config: ExportConfig | None = None,
                     seed: int = 0):
    """A `datasets.IterableDataset` following `name`'s current version in `store`.

    Use with `GRPOConfig(max_steps=..., shuffle_dataset=False)` (see the module doc)."""
    from datasets import IterableDataset

    LiveVersion(store, name)  # fail here, not inside the trainer, on a missing set
    return IterableDataset.from_generator(
        live_trl_rows, gen_kwargs={"store": str(store), "name": name, "config": config,
                                   "seed": seed})
