"""Metrics of the GRPO learner: jsonl + TensorBoard, per-stream aggregation, progress bar.

Names are namespaced `train/<metric>/<stream>` (e.g. `train/entropy/original`),
`train/<metric>` for batch-wide numbers, `eval/pass@k` for held-out evaluation and
`entropy/...` for the entropy ledger (`ledger.py`).
Sums are NaN-safe: a stream with no tokens this step logs NaN, never a misleading 0.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any


class StreamTotals:
    """Running per-stream sums over the micro-batches of one step."""

    def __init__(self) -> None:
        self.sums: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))

    def add(self, stream: str, **values: float) -> None:
        for key, value in values.items():
            self.sums[stream][key] += float(value)

    def ratio(self, stream: str, numerator: str, denominator: str) -> float:
        total = self.sums[stream].get(denominator, 0.0)
        return self.sums[stream].get(numerator, 0.0) / total if total else math.nan


def mean_nll(samples: Sequence[Any]) -> float | None:
    """Mean negative log-likelihood of the sampled tokens over every sample (trained or
    dropped as zero-variance): a Monte Carlo estimate of the per-token entropy of the
    sampling distribution, free because the rollout already scored its tokens. None when
    no sample carries log-probs."""
    scored = [x for s in samples for x in s.logprobs]
    return -sum(scored) / len(scored) if scored else None


def sample_metrics(samples: Sequence[Any], zero_variance_groups: Mapping[str, set[str]]) -> dict[str, float]:
    """Rewards, lengths and group counts per stream, over ALL samples of the step."""
    by_stream: dict[str, list[Any]] = defaultdict(list)
    for sample in samples:
        by_stream[sample.stream].append(sample)
    metrics: dict[str, float] = {}
    for stream, rows in by_stream.items():
        lengths = [len(s.completion_ids) for s in rows]
        groups = {s.group for s in rows}
        key = "reward" if stream == "synthesis" else "solve_rate"
        metrics[f"train/{key}/{stream}"] = sum(s.reward for s in rows) / len(rows)
        metrics[f"train/completion_len_mean/{stream}"] = sum(lengths) / len(lengths)
        metrics[f"train/completion_len_max/{stream}"] = float(max(lengths))
        metrics[f"train/truncated_share/{stream}"] = sum(s.truncated for s in rows) / len(rows)
        metrics[f"train/samples/{stream}"] = float(len(rows))
        metrics[f"train/groups/{stream}"] = float(len(groups))
        metrics[f"train/zero_variance_share/{stream}"] = (
            len(zero_variance_groups.get(stream, set()) & groups) / len(groups))
        nll = mean_nll(rows)
        if nll is not None:
            metrics[f"train/nll/{stream}"] = nll
    metrics["train/generated_tokens"] = float(sum(len(s.completion_ids) for s in samples))
    return metrics


class MetricsLog:
    """Appends one json object per logged step; mirrors scalars to TensorBoard.

    On resume from step `start_step`, lines written after that step by the interrupted
    run are dropped, so the file reads like one uninterrupted run.
    """

    def __init__(self, output_dir: str | Path, *, tensorboard: bool, start_step: int = 0,
                 filename: str = "metrics.jsonl") -> None:
        self.path = Path(output_dir) / filename
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists():
            kept = [line for line in self.path.read_text(encoding="utf-8").splitlines()
                    if line.strip() and json.loads(line).get("step", 0) <= start_step]
            self.path.write_text("".join(line + "\n" for line in kept), encoding="utf-8")
        self.writer = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(Path(output_dir) / "tb"), purge_step=start_step + 1)

    def write(self, step: int, metrics: Mapping[str, Any]) -> None:
        row = {"step": step, **{k: _plain(v) for k, v in metrics.items()}}
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(row) + "\n")
        if self.writer is not None:
            for key, value in metrics.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    self.writer.add_scalar(key, value, step)
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def _plain(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON has no NaN; None reads as "no value this step"
    return value


class Progress:
    """A rich progress bar over steps showing the key metrics; a no-op when disabled."""

    KEYS = (("train/solve_rate/original", "solve"), ("train/entropy/original", "H"),
            ("train/reward/synthesis", "synth"), ("eval/pass@1", "eval@1"))

    def __init__(self, enabled: bool, total: int, start: int) -> None:
        self.bar = None
        if enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn
            from rich.progress import Progress as RichProgress

            self.bar = RichProgress(TextColumn("GRPO"), BarColumn(), MofNCompleteColumn(),
                                    TimeRemainingColumn(), TextColumn("{task.fields[info]}"))
            self.bar.start()
            self.task = self.bar.add_task("train", total=total, completed=start, info="")
        self.shown: dict[str, float] = {}

    def update(self, metrics: Mapping[str, Any]) -> None:
        if self.bar is None:
            return
        for key, label in self.KEYS:
            value = metrics.get(key)
            if isinstance(value, float) and math.isfinite(value):
                self.shown[label] = value
        info = " ".join(f"{label}={value:.3f}" for label, value in self.shown.items())
        self.bar.update(self.task, advance=1, info=info)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
