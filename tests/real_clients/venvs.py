"""Separate virtual environments for the real-client tests (verl, OpenRLHF).

verl and OpenRLHF pin transformers versions that clash with each other and with the main
environment, so each gets its own venv in the repo root (`.venv-verl/`,
`.venv-openrlhf/`, gitignored). A venv is reused when its marker file records the same
install recipe; otherwise it is rebuilt from scratch. torch is installed first, pinned
to the CPU build already on the machine, and kept by a constraints file so that no later
step pulls a CUDA build.

Run `python tests/real_clients/venvs.py verl` to build one by hand (it prints the time).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TORCH = "torch==2.13.0"

# Each recipe is a list of pip steps; "--no-deps" steps install the client itself
# without its GPU extras (flash-attn, vllm, ...). Versions are pinned: the checks
# exercise these exact releases.
RECIPES: dict[str, list[list[str]]] = {
    "verl": [
        [TORCH],
        ["--no-deps", "verl==0.9.1"],
        # RLHFDataset needs the first line; verl's reward loop and its trainer module
        # (for the rollout dump writer) also import the second.
        ["ray", "tensordict>=0.8,<=0.10.0,!=0.9.0", "omegaconf", "hydra-core",
         "transformers>=5.5.3,<5.11,!=5.6.0", "datasets", "pillow", "numpy", "packaging",
         "pandas", "aiohttp", "codetiming", "torchdata", "peft", "cachetools", "uvicorn",
         "fastapi", "math-verify==0.9.0"],
        # verl 0.9.1's V1 trainer module (the default `trainer.use_v1: true`, whose
        # `_log_rollout_data` writes the dumps) imports transfer_queue at module level;
        # 0.1.11 pins tensordict to exactly 0.10.0, inside verl's range.
        ["TransferQueue==0.1.11"],
        # svs itself, from this checkout, without its dependencies (no PYTHONPATH).
        ["--no-deps", "-e", str(REPO)],
    ],
    "openrlhf": [
        [TORCH],
        ["--no-deps", "openrlhf==0.11.2"],
        # PromptDataset needs the first four; the agent that loads reward_func, aiohttp.
        ["tqdm", "datasets", "pylatexenc", "transformers==5.15.0", "aiohttp",
         "math-verify==0.9.0"],
        ["--no-deps", "-e", str(REPO)],
    ],
}
MARKER = ".svs-recipe.json"


def venv_dir(name: str) -> Path:
    return REPO / f".venv-{name}"


def venv_python(name: str) -> Path:
    return venv_dir(name) / "bin" / "python"


def is_ready(name: str) -> bool:
    marker = venv_dir(name) / MARKER
    if not marker.exists() or not venv_python(name).exists():
        return False
    try:
        return json.loads(marker.read_text()) == RECIPES[name]
    except (OSError, json.JSONDecodeError):
        return False


def ensure_venv(name: str, log=print) -> tuple[Path, float]:
    """The venv's python, built if missing or stale; also the seconds spent building."""
    if name not in RECIPES:
        raise ValueError(f"no recipe for {name!r}; known: {', '.join(RECIPES)}")
    if is_ready(name):
        return venv_python(name), 0.0
    start = time.monotonic()
    target = venv_dir(name)
    if target.exists():
        shutil.rmtree(target)
    subprocess.run([sys.executable, "-m", "venv", str(target)], check=True)
    constraints = target / "constraints.txt"
    constraints.write_text(TORCH + "\n")
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    for step in RECIPES[name]:
        log(f"[{name}] pip install {' '.join(step)}")
        result = subprocess.run(
            [str(venv_python(name)), "-m", "pip", "install", "-q", "-c", str(constraints), *step],
            env=env, capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"building .venv-{name} failed at `pip install {' '.join(step)}`:"
                               f"\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    (target / MARKER).write_text(json.dumps(RECIPES[name]))
    return venv_python(name), time.monotonic() - start


if __name__ == "__main__":
    for requested in sys.argv[1:] or list(RECIPES):
        python, seconds = ensure_venv(requested)
        print(f"{requested}: {python} ready after {seconds:.0f} s")
