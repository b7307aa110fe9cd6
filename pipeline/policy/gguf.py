"""GGUF model files (llama.cpp's format) as plain transformers folders, converted once.

transformers reads a GGUF file with `gguf_file=` and dequantizes its weights to floats,
but a model loaded that way refuses `save_pretrained` ("quantized with gguf and is not
serializable"), and dequantizing takes a while on every load. `dequantized_folder`
does it once: it loads the file, rebuilds the same architecture from the config as an
ordinary model, copies the dequantized weights over (logits are identical), saves model
and tokenizer into a cache folder named after the file's content, and returns that
folder. Later loads read the folder directly.

Needs the `gguf` package (transformers' GGUF reader); llama.cpp is not used.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

GGUF_SUFFIX = ".gguf"
DONE_MARKER = "svs-dequantized.txt"


def is_gguf(path: str | Path) -> bool:
    return str(path).lower().endswith(GGUF_SUFFIX) and Path(path).is_file()


def default_cache_dir() -> Path:
    """$SVS_MODEL_CACHE, else ~/.cache/svs/models."""
    configured = os.environ.get("SVS_MODEL_CACHE")
    return Path(configured) if configured else Path.home() / ".cache" / "svs" / "models"


def file_digest(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def dequantized_folder(gguf_path: str | Path, cache_dir: str | Path | None = None, *,
                       progress: bool = True) -> Path:
    """The cached transformers folder of `gguf_path`, converting it on first use."""
    source = Path(gguf_path).expanduser()
    if not is_gguf(source):
        raise FileNotFoundError(f"{source} is not a .gguf file")
    cache = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
    target = cache / f"{source.stem}-{file_digest(source)[:16]}"
    if (target / DONE_MARKER).is_file():
        return target
    _convert(source, target, progress)
    return target


def _convert(source: Path, target: Path, progress: bool) -> None:
    import torch
    from tqdm.auto import tqdm
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    steps = tqdm(total=4, desc=f"dequantizing {source.name} (once)", disable=not progress,
                 unit="step")
    steps.set_postfix_str("reading the GGUF file")
    loaded = AutoModelForCausalLM.from_pretrained(source.parent, gguf_file=source.name,
                                                  dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(source.parent, gguf_file=source.name)
    steps.update()
    steps.set_postfix_str("rebuilding the model")
    config = AutoConfig.from_pretrained(source.parent, gguf_file=source.name)
    for attribute in ("quantization_config",):
        if hasattr(config, attribute):
            delattr(config, attribute)
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = plain.load_state_dict(loaded.state_dict(), strict=False)
    # tied output embeddings are absent from one side; anything else is a real mismatch
    missing = [k for k in missing if k != "lm_head.weight"]
    if missing or unexpected:
        raise RuntimeError(f"dequantized weights do not fit the rebuilt model: missing "
                           f"{missing[:3]}, unexpected {unexpected[:3]}")
    plain.generation_config = loaded.generation_config
    steps.update()
    steps.set_postfix_str("saving")
    partial = target.with_name(target.name + ".partial")
    partial.mkdir(parents=True, exist_ok=True)
    plain.save_pretrained(partial)
    tokenizer.save_pretrained(partial)
    steps.update()
    (partial / DONE_MARKER).write_text(f"dequantized from {source}\n", encoding="utf-8")
    if target.exists():  # a concurrent conversion finished first
        import shutil

        shutil.rmtree(partial, ignore_errors=True)
    else:
        partial.rename(target)
    steps.update()
    steps.close()
