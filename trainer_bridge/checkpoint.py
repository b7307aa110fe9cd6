"""Checkpoints of the GRPO learner: everything needed to continue bit for bit.

A checkpoint is a folder `output_dir/checkpoints/step-000012/` holding the model
(`save_pretrained`: config + safetensors weights, loadable by vLLM and transformers),
the tokenizer, `optimizer.pt` (AdamW and scheduler state), `rng.pt` (Python, torch CPU
and CUDA generator states) and `state.json` (step, prompt-set version, config). It is
written under a temporary name and renamed when complete, so a crash mid-save leaves
the previous checkpoint as the newest one.
"""

from __future__ import annotations

import json
import random
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

PREFIX = "step-"
STATE = "state.json"


@dataclass(frozen=True)
class TrainingState:
    """What a resumed run needs besides the weights."""

    step: int  # steps completed
    prompt_version: str
    extra: dict[str, Any]


def checkpoint_dir(output_dir: str | Path) -> Path:
    return Path(output_dir) / "checkpoints"


def latest_checkpoint(output_dir: str | Path) -> Path | None:
    """The newest complete checkpoint folder, or None."""
    root = checkpoint_dir(output_dir)
    if not root.is_dir():
        return None
    done = sorted(p for p in root.glob(PREFIX + "*") if (p / STATE).is_file())
    return done[-1] if done else None


def rng_states() -> dict[str, Any]:
    states: dict[str, Any] = {"python": random.getstate(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_rng(states: dict[str, Any]) -> None:
    random.setstate(states["python"])
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def save_checkpoint(output_dir: str | Path, *, model: Any, tokenizer: Any, optimizer: Any,
                    scheduler: Any, state: TrainingState, keep: int = 2) -> Path:
    """Write checkpoint `state.step` and remove all but the newest `keep`."""
    root = checkpoint_dir(output_dir)
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"{PREFIX}{state.step:06d}"
    partial = root / f".partial-{final.name}"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir()
    model.save_pretrained(partial, safe_serialization=True)
    if tokenizer is not None:
        tokenizer.save_pretrained(partial)
    torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()},
               partial / "optimizer.pt")
    torch.save(rng_states(), partial / "rng.pt")
    (partial / STATE).write_text(json.dumps(
        {"step": state.step, "prompt_version": state.prompt_version, **state.extra},
        indent=2, default=str), encoding="utf-8")
    shutil.rmtree(final, ignore_errors=True)
    partial.rename(final)
    done = sorted(p for p in root.glob(PREFIX + "*") if (p / STATE).is_file())
    for old in done[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def load_checkpoint(folder: str | Path, *, model: Any, optimizer: Any,
                    scheduler: Any) -> TrainingState:
    """Load weights, optimizer, scheduler and RNG states in place; return the state."""
    from safetensors.torch import load_file

    folder = Path(folder)
    weights = sorted(folder.glob("*.safetensors"))
    if not weights:
        raise FileNotFoundError(f"checkpoint {folder} has no *.safetensors weights; it is "
                                f"incomplete, delete it to resume from the one before")
    device = next(model.parameters()).device
    state_dict: dict[str, torch.Tensor] = {}
    for file in weights:
        state_dict.update(load_file(file, device=str(device)))
    missing, unexpected = model.load_state_dict(state_dict, strict=False)
    tied = bool(getattr(getattr(model, "config", None), "tie_word_embeddings", False))
    missing = [k for k in missing if not (tied and k.endswith("lm_head.weight"))]
    if missing or unexpected:
        raise RuntimeError(f"checkpoint {folder} does not fit the model: missing {missing[:5]}, "
                           f"unexpected {unexpected[:5]}")
    saved = torch.load(folder / "optimizer.pt", map_location=device, weights_only=False)
    optimizer.load_state_dict(saved["optimizer"])
    scheduler.load_state_dict(saved["scheduler"])
    restore_rng(torch.load(folder / "rng.pt", weights_only=False))
    data = json.loads((folder / STATE).read_text(encoding="utf-8"))
    step, version = int(data.pop("step")), str(data.pop("prompt_version"))
    return TrainingState(step=step, prompt_version=version, extra=data)
