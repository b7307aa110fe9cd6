"""Tiny Llama-format models with a locally trained BPE tokenizer, for tests and labs.

`build_tiny_model` writes a folder that `AutoModelForCausalLM` / `AutoTokenizer` and
vLLM load like any hub checkpoint, with no network: a byte-level BPE tokenizer trained
with `tokenizers` on the corpus you give, and a randomly initialised `LlamaForCausalLM`.
`train_tiny_model` then teaches it (prompt -> completion) pairs with a few hundred
steps of plain next-token training, enough for a model that answers in a chosen format.

The Llama format matters: for Qwen2-format folders AutoTokenizer and vLLM swap in a
byte-level tokenizer of their own and the ids change.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from pathlib import Path

PAD, BOS, EOS = "<pad>", "<s>", "</s>"
BYTE_ALPHABET_SIZE = 256

# A minimal chat format (one user turn, then the assistant's turn), for tests of the
# chat-template path; any Jinja template a tokenizer accepts works.
SIMPLE_CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "<|{{ message['role'] }}|>\n{{ message['content'] }}\n"
    "{% endfor %}{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


def train_tokenizer(corpus: Iterable[str], vocab_size: int = 512,
                    chat_template: str | None = None, *, digits: bool = False,
                    added_tokens: Sequence[str] = ()):
    """A byte-level BPE `PreTrainedTokenizerFast` trained on `corpus` (any text encodes).

    It prepends `<s>` to every encoding and has `</s>` as end-of-sequence and `<pad>`
    as padding. `digits=True` splits every digit into its own token before BPE (the
    usual choice for arithmetic: 282 is 2, 8, 2); `added_tokens` become single,
    non-special tokens (kept when decoding), e.g. the lab's method tags.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    minimum = BYTE_ALPHABET_SIZE + 3
    if vocab_size < minimum:
        raise ValueError(f"vocab_size must be >= {minimum} (256 byte tokens + 3 specials), "
                         f"got {vocab_size}")
    tokenizer = Tokenizer(models.BPE())
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.pre_tokenizer = (pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), byte_level]) if digits else byte_level)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=[PAD, BOS, EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tokenizer.train_from_iterator(corpus, trainer=trainer)
    bos_id = tokenizer.token_to_id(BOS)
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A $B", special_tokens=[(BOS, bos_id)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token=BOS, eos_token=EOS,
                                   pad_token=PAD)
    if added_tokens:
        fast.add_tokens(list(added_tokens))
    if chat_template is not None:
        fast.chat_template = chat_template
    return fast


def build_tiny_model(out_dir: str | Path, corpus: Iterable[str], *, vocab_size: int = 512,
                     hidden_size: int = 64, num_layers: int = 2, num_heads: int = 2,
                     intermediate_size: int | None = None, max_position_embeddings: int = 1024,
                     chat_template: str | None = None, seed: int = 0,
                     digits: bool = False, added_tokens: Sequence[str] = ()) -> Path:
    """Write a tiny Llama-format model + tokenizer folder to `out_dir` and return it.

    Defaults give ~100k parameters: hidden 64, 2 layers, 2 heads (head dim 32, a size
    vLLM's CPU attention supports), vocab ~512. Weights are random (seeded); call
    `train_tiny_model` to teach it something.
    """
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    if hidden_size % num_heads:
        raise ValueError(f"hidden_size ({hidden_size}) must be divisible by num_heads "
                         f"({num_heads})")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = train_tokenizer(corpus, vocab_size=vocab_size, chat_template=chat_template,
                                digits=digits, added_tokens=added_tokens)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=intermediate_size or 2 * hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_heads,
        max_position_embeddings=max_position_embeddings,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def train_tiny_model(model_dir: str | Path, examples: Sequence[tuple[str, str]], *,
                     steps: int = 300, batch_size: int = 16, lr: float = 3e-3, seed: int = 0,
                     num_threads: int | None = 1, progress: bool = False) -> Path:
    """Teach the model in `model_dir` to continue each prompt with its completion.

    `examples` are (prompt, completion) pairs; prompts are encoded exactly as the policy
    backends encode them (chat template when the tokenizer has one), the loss covers
    the completion and its end-of-sequence token only. Saves the model back in place.

    `num_threads` torch threads are used while training (restored afterwards; None
    keeps the current setting). One is fastest for models this small: measured 3 s for
    60 steps on one thread against 67 s on two when the 2 cores were shared with
    other jobs (the second thread spin-waits).
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from svs.pipeline.policy.base import encode_prompt

    if not examples:
        raise ValueError("train_tiny_model needs at least one (prompt, completion) example")
    if steps < 1 or batch_size < 1:
        raise ValueError(f"steps and batch_size must be >= 1, got {steps}, {batch_size}")
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    limit = model.config.max_position_embeddings
    encoded = []
    for prompt, completion in examples:
        prompt_ids = encode_prompt(tokenizer, prompt)
        completion_ids = tokenizer(completion, add_special_tokens=False)["input_ids"]
        ids = prompt_ids + completion_ids + [tokenizer.eos_token_id]
        if len(ids) > limit:
            raise ValueError(f"an example is {len(ids)} tokens, over the model's "
                             f"max_position_embeddings={limit}; shorten it or build a "
                             f"larger model")
        labels = [-100] * len(prompt_ids) + ids[len(prompt_ids):]
        encoded.append((ids, labels))

    threads_before = torch.get_num_threads()
    if num_threads is not None:
        torch.set_num_threads(num_threads)
    try:
        _train(model, tokenizer, encoded, steps, batch_size, lr, seed, progress)
    finally:
        torch.set_num_threads(threads_before)
    model.save_pretrained(model_dir)
    return Path(model_dir)


def _train(model, tokenizer, encoded, steps: int, batch_size: int, lr: float, seed: int,
           progress: bool) -> None:
    import torch
    from tqdm.auto import tqdm

    rng = random.Random(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1 - s / steps)
    model.train()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for _ in tqdm(range(steps), desc="training tiny model", disable=not progress):
            batch = [encoded[rng.randrange(len(encoded))] for _ in range(batch_size)]
            width = max(len(ids) for ids, _ in batch)
            input_ids = torch.full((batch_size, width), tokenizer.pad_token_id)  # (B, T)
            labels = torch.full((batch_size, width), -100)  # (B, T)
            attention = torch.zeros((batch_size, width), dtype=torch.long)  # (B, T)
            for row, (ids, target) in enumerate(batch):
                input_ids[row, :len(ids)] = torch.tensor(ids)
                labels[row, :len(ids)] = torch.tensor(target)
                attention[row, :len(ids)] = 1
            loss = model(input_ids=input_ids, attention_mask=attention, labels=labels).loss
            loss.backward()
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad()
    model.eval()
