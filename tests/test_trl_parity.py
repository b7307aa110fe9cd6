"""Our GRPO loss and gradients equal TRL's GRPOTrainer loss on one identical batch.

Same tiny model (two copies of the same weights), same prompt and completion ids, same
advantages, same old and reference log-probabilities; TRL's `_compute_loss` against
`trainer_bridge.grpo.micro_batch_loss`. TRL's loss types map onto our aggregations:
`bnpo` = token-mean, `grpo` = seq-mean-token-mean, `dr_grpo` = seq-mean-token-sum
divided by max_completion_length. TRL's two-sided `delta` clamp equals dual-clip with
c = delta whenever delta > 1 + epsilon_high (both cap the loss of a negative-advantage
token at delta * |A| and give it no gradient). The KL term is the plain k3 estimator, so
TRL's importance-ratio correction of it (`use_bias_correction_kl`) is switched off.
"""

from __future__ import annotations

import copy

import pytest
import torch

trl = pytest.importorskip("trl")
transformers = pytest.importorskip("transformers")

from svs.trainer_bridge.grpo import MicroBatch, micro_batch_loss  # noqa: E402
from svs.trainer_bridge.grpo_config import GRPOConfig  # noqa: E402
from svs.trainer_bridge.losses import AGGREGATIONS, masked_mean  # noqa: E402

B, P, C, VOCAB = 6, 5, 7, 50


def _tiny_model():
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=VOCAB, hidden_size=32, intermediate_size=64,
                         num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2,
                         max_position_embeddings=64, pad_token_id=0, bos_token_id=1,
                         eos_token_id=2, tie_word_embeddings=False)
    torch.manual_seed(0)
    return LlamaForCausalLM(config)


def _tokenizer():
    from svs.pipeline.policy.tiny import train_tokenizer

    return train_tokenizer(["0 1 2 3 4 5 6 7 8 9 + ="] * 4, vocab_size=260)


@pytest.fixture(scope="module")
def batch():
    generator = torch.Generator().manual_seed(1)
    prompt_ids = torch.randint(3, VOCAB, (B, P), generator=generator)
    completion_ids = torch.randint(3, VOCAB, (B, C), generator=generator)
    lengths = torch.tensor([7, 3, 5, 1, 7, 6])
    completion_mask = (torch.arange(C)[None, :] < lengths[:, None]).long()
    completion_ids = completion_ids.masked_fill(completion_mask == 0, 0)
    advantages = torch.tensor([1.2, -0.7, 0.4, -1.5, 0.9, -0.3])
    return prompt_ids, completion_ids, completion_mask, advantages


def _trainer(model, tmp_path, loss_type, beta, delta):
    from datasets import Dataset
    from trl import GRPOConfig as TRLConfig
    from trl import GRPOTrainer

    args = TRLConfig(output_dir=str(tmp_path), loss_type=loss_type, beta=beta, epsilon=0.2,
                     epsilon_high=0.28, delta=delta, num_generations=B,
                     per_device_train_batch_size=B, max_completion_length=C, temperature=1.0,
                     bf16=False, use_cpu=True, report_to="none", gradient_checkpointing=False,
                     logging_steps=1, use_bias_correction_kl=False)
    tokenizer = _tokenizer()
    # A folder, not a module: with beta > 0 TRL loads its reference model from it.
    model.save_pretrained(tmp_path / "model")
    return GRPOTrainer(model=str(tmp_path / "model"), reward_funcs=lambda completions, **kw: [0.0] * len(completions),
                       args=args, train_dataset=Dataset.from_dict({"prompt": ["1+2="] * B}),
                       processing_class=tokenizer)


CASES = [("bnpo", "token-mean", 0.0, None), ("grpo", "seq-mean-token-mean", 0.0, None),
         ("dr_grpo", "seq-mean-token-sum", 0.0, None), ("bnpo", "token-mean", 0.05, 3.0),
         ("grpo", "seq-mean-token-mean", 0.1, 3.0)]


@pytest.mark.parametrize(("trl_loss", "aggregation", "beta", "dual_clip"), CASES)
def test_loss_and_gradients_match_trl(tmp_path, batch, trl_loss, aggregation, beta, dual_clip):
    prompt_ids, completion_ids, completion_mask, advantages = batch
    ours = _tiny_model()
    trainer = _trainer(copy.deepcopy(ours), tmp_path, trl_loss, beta, dual_clip)
    trainer.current_gradient_accumulation_steps = 1
    trl_model = trainer.model
    trl_model.train()
    ours.train()

    generator = torch.Generator().manual_seed(2)
    input_ids = torch.cat([prompt_ids, completion_ids], dim=1)
    attention = torch.cat([torch.ones_like(prompt_ids), completion_mask], dim=1)
    with torch.no_grad():
        logits = ours(input_ids=input_ids, attention_mask=attention).logits[:, P - 1:-1]
        current = torch.log_softmax(logits, -1).gather(-1, completion_ids[..., None])[..., 0]
    # Old log-probs off by up to +-0.6 so that low, high and dual clipping all happen.
    old = current + (torch.rand(B, C, generator=generator) - 0.5) * 1.2
    ref = current + (torch.rand(B, C, generator=generator) - 0.5) * 0.5

    inputs = {"prompt_ids": prompt_ids, "prompt_mask": torch.ones_like(prompt_ids),
              "completion_ids": completion_ids, "completion_mask": completion_mask,
              "advantages": advantages, "old_per_token_logps": old,
              "num_items_in_batch": completion_mask.sum()}
    if beta:
        inputs["ref_per_token_logps"] = ref
    trl_loss_value = trainer._compute_loss(trl_model, inputs)
    trl_loss_value.backward()

    config = GRPOConfig(model="unused", prompts_file="unused.jsonl", loss_aggregation=aggregation,
                        clip_low=0.2, clip_high=0.28, dual_clip=dual_clip, kl_coef=beta)
    micro = MicroBatch(input_ids=input_ids, attention_mask=attention,
                       mask=completion_mask.float(), start=P - 1, advantages=advantages,
                       streams=("original",) * B)
    units = AGGREGATIONS[aggregation].units(micro.mask)
    if trl_loss == "dr_grpo":
        units = units * C  # TRL divides by batch size x max_completion_length
    loss, stats = micro_batch_loss(ours, micro, config, units=units, old_logprobs=old,
                                   ref_logprobs=ref if beta else None)
    loss.backward()

    assert float(loss.detach()) == pytest.approx(float(trl_loss_value.detach()), abs=1e-5)
    theirs_grads = dict(trl_model.named_parameters())
    compared = 0
    for name, parameter in ours.named_parameters():
        other = theirs_grads[name].grad
        torch.testing.assert_close(parameter.grad, other, atol=1e-5, rtol=1e-4, msg=name)
        compared += 1
    assert compared == len(list(ours.parameters()))
    assert any(p.grad.abs().sum() > 0 for p in ours.parameters())

    mask = micro.mask
    metrics = trainer._metrics["train"]
    assert masked_mean(stats["entropy"], mask) == pytest.approx(metrics["entropy"][-1], abs=1e-5)
    assert masked_mean(stats["clip_low"], mask) == pytest.approx(metrics["clip_ratio/low_mean"][-1])
    assert masked_mean(stats["clip_high"], mask) == pytest.approx(
        metrics["clip_ratio/high_mean"][-1])
    assert metrics["clip_ratio/low_mean"][-1] > 0 and metrics["clip_ratio/high_mean"][-1] > 0
    if beta:
        assert masked_mean(stats["kl"], mask) == pytest.approx(metrics["kl"][-1], abs=1e-6)
