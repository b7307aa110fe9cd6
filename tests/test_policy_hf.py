"""The transformers backend on tiny Llama models built in the test session."""

from __future__ import annotations

import pytest
import torch
from tiny_models import BAND, EASY, TOY_SOLVE_SUFFIX, one_torch_thread

from svs.pipeline.policy import Generation, Policy, SamplingParams, encode_prompt
from svs.pipeline.policy.base import FINISH_LENGTH, FINISH_STOP
from svs.pipeline.policy.hf import HFPolicy
from svs.pipeline.policy.tiny import SIMPLE_CHAT_TEMPLATE, build_tiny_model
from svs.verifiers.consistency import solve_prompt as _solve_prompt


def solve_prompt(problem: str) -> str:
    return _solve_prompt(problem, TOY_SOLVE_SUFFIX)


@pytest.fixture(scope="module")
def policy(toy_policy_dir):
    with one_torch_thread():
        yield HFPolicy.from_pretrained(toy_policy_dir, device="cpu", batch_size=8)


def test_shapes_and_protocol(policy):
    prompts = [solve_prompt(EASY), solve_prompt(BAND), "unrelated text"]
    groups = policy.generate(prompts, SamplingParams(n=3, max_new_tokens=12, seed=0))
    assert isinstance(policy, Policy)
    assert len(groups) == 3 and all(len(g) == 3 for g in groups)
    for generation in (g for group in groups for g in group):
        assert isinstance(generation, Generation)
        assert 1 <= len(generation.token_ids) <= 12
        assert len(generation.token_logprobs) == len(generation.token_ids)
        assert all(lp <= 0 for lp in generation.token_logprobs)
        assert generation.finish_reason in (FINISH_STOP, FINISH_LENGTH)
    # The trained toy model answers its known problem and stops at end-of-sequence.
    assert groups[0][0].text == "The answer is \\boxed{7}."
    assert groups[0][0].finish_reason == FINISH_STOP
    assert groups[0][0].token_ids[-1] == policy.tokenizer.eos_token_id


@pytest.mark.parametrize("temperature, top_p", [(1.0, 1.0), (0.5, 0.9), (0.0, 1.0)])
def test_logprobs_match_a_teacher_forced_forward_pass(policy, temperature, top_p):
    # Raw model log-probabilities whatever the sampling temperature / top-p (vLLM's default).
    prompt = solve_prompt(BAND)
    params = SamplingParams(n=1, max_new_tokens=12, seed=3, temperature=temperature, top_p=top_p)
    generation = policy.generate([prompt], params)[0][0]
    prompt_ids = encode_prompt(policy.tokenizer, prompt)
    ids = torch.tensor([prompt_ids + list(generation.token_ids)])
    with torch.no_grad():
        logits = policy.model(ids).logits[0, len(prompt_ids) - 1:-1]  # (T_new, V)
    expected = torch.log_softmax(logits, -1).gather(1, ids[0, len(prompt_ids):, None])[:, 0]
    assert torch.allclose(torch.tensor(generation.token_logprobs), expected, atol=1e-4)


def test_seed_makes_sampling_reproducible_and_leaves_global_rng_alone(policy):
    params = SamplingParams(n=4, max_new_tokens=10, seed=11)
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    first = policy.generate([solve_prompt(BAND)], params)
    after = torch.rand(1)
    second = policy.generate([solve_prompt(BAND)], params)
    assert [g.token_ids for g in first[0]] == [g.token_ids for g in second[0]]
    assert torch.equal(before, after)  # the call forked the RNG instead of reseeding it


def test_greedy_n_copies_are_identical(policy):
    groups = policy.generate([solve_prompt(EASY)], SamplingParams(n=3, temperature=0,
                                                                  max_new_tokens=12))
    assert len({g.token_ids for g in groups[0]}) == 1


def test_stop_strings_cut_text_and_tokens(policy):
    params = SamplingParams(n=1, temperature=0, max_new_tokens=12, stop=("boxed",))
    generation = policy.generate([solve_prompt(EASY)], params)[0][0]
    assert generation.text == "The answer is \\"
    assert generation.finish_reason == FINISH_STOP
    decoded = policy.tokenizer.decode(list(generation.token_ids), skip_special_tokens=True)
    assert "boxed" in decoded  # the token that completed the stop string is kept
    assert "boxed" not in policy.tokenizer.decode(list(generation.token_ids[:-1]))


def test_length_finish_reason(policy):
    generation = policy.generate(["zzz"], SamplingParams(n=1, temperature=0,
                                                         max_new_tokens=2))[0][0]
    if generation.token_ids[-1] != policy.tokenizer.eos_token_id:
        assert generation.finish_reason == FINISH_LENGTH
    assert len(generation.token_ids) <= 2


def test_wraps_an_in_memory_model_in_training_mode(policy):
    policy.model.train()
    try:
        wrapped = HFPolicy(policy.model, policy.tokenizer)
        groups = wrapped.generate([solve_prompt(EASY)], SamplingParams(n=2, temperature=0,
                                                                       max_new_tokens=12))
        # eval mode while generating (no dropout), training mode restored afterwards
        assert groups[0][0].text == "The answer is \\boxed{7}."
        assert policy.model.training
    finally:
        policy.model.eval()


def test_chat_template_is_applied_when_the_tokenizer_has_one(tmp_path):
    folder = build_tiny_model(tmp_path / "chat", ["hello world", "user assistant"] * 5,
                              vocab_size=300, chat_template=SIMPLE_CHAT_TEMPLATE)
    chat = HFPolicy.from_pretrained(folder, device="cpu")
    ids = chat.encode("hello")
    text = chat.tokenizer.decode(ids)
    assert text.startswith("<s><|user|>\nhello\n<|assistant|>")
    assert ids.count(chat.tokenizer.bos_token_id) == 1  # not added twice
    plain = HFPolicy(chat.model, chat.tokenizer, use_chat_template=False)
    assert chat.tokenizer.decode(plain.encode("hello")) == "<s>hello"
    groups = chat.generate(["hello"], SamplingParams(n=2, max_new_tokens=4, seed=0))
    assert [len(g.token_ids) for g in groups[0]] == [len(g.token_logprobs) for g in groups[0]]


@pytest.mark.parametrize("kwargs, message", [
    ({"n": 0}, "n must be >= 1"),
    ({"temperature": -1}, "temperature"),
    ({"top_p": 0}, "top_p"),
    ({"max_new_tokens": 0}, "max_new_tokens"),
    ({"stop": ("",)}, "empty strings"),
])
def test_sampling_params_reject_bad_values(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SamplingParams(**kwargs)


def test_no_prompts_no_generations(policy):
    assert policy.generate([], SamplingParams(n=4)) == []


def test_a_single_string_is_refused(policy):
    with pytest.raises(TypeError, match="sequence of prompts"):
        policy.generate("one prompt", SamplingParams())
