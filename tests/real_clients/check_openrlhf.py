"""Run inside `.venv-openrlhf`: our OpenRLHF export and reward through OpenRLHF's code.

    python check_openrlhf.py CHAT.jsonl PLAIN.jsonl TOKENIZER_DIR INPUT_KEY LABEL_KEY SERVER_URL

1. OpenRLHF's `blending_datasets` loads each file and its `PromptDataset` preprocesses
   it: the chat export with `apply_chat_template`, the plain one both with and without.
2. OpenRLHF's single-turn agent loads `trainer_bridge/rewards.py` by file path (as
   `--reward.remote_url rewards.py` does) and calls our `reward_func` the way it does
   during rollouts: one query (prompt + response tokens, decoded with special tokens)
   per call, all calls at once in threads.
3. The same queries go to a running `svs reward-server` through OpenRLHF's own HTTP
   client (`_fetch_rewards_via_http`, as `--reward.remote_url http://...` uses it): one
   request per query, all at once, as its rollouts send them.

Prints one JSON object on the last line of stdout for the test to check.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from types import SimpleNamespace

from openrlhf.datasets import PromptDataset
from openrlhf.datasets.utils import blending_datasets
from openrlhf.utils.agent import SingleTurnAgentExecutor
from transformers import AutoTokenizer

REPO = Path(__file__).resolve().parents[2]


def strategy(input_key: str, label_key: str, chat: bool) -> SimpleNamespace:
    data = SimpleNamespace(input_key=input_key, label_key=label_key, apply_chat_template=chat)
    return SimpleNamespace(args=SimpleNamespace(data=data, use_ms=False),
                           is_rank_0=lambda: False, print=lambda *args: None)


def prompt_dataset(path: str, tokenizer, input_key: str, label_key: str,
                   chat: bool) -> PromptDataset:
    chosen = strategy(input_key, label_key, chat)
    return PromptDataset(blending_datasets(path, None, chosen), tokenizer, chosen)


def main(chat_file: str, plain_file: str, tokenizer_dir: str, input_key: str,
         label_key: str, server_url: str) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    chat = prompt_dataset(chat_file, tokenizer, input_key, label_key, chat=True)
    plain_raw = prompt_dataset(plain_file, tokenizer, input_key, label_key, chat=False)
    plain_chat = prompt_dataset(plain_file, tokenizer, input_key, label_key, chat=True)

    executor = SingleTurnAgentExecutor(remote_rm_url=str(REPO / "trainer_bridge" / "rewards.py"))
    queries, prompts, labels = [], [], []
    for _, prompt, label, _ in (chat[i] for i in range(len(chat))):
        for response in (f"So the answer is \\boxed{{{label}}}.", "Hmm, \\boxed{-999}."):
            ids = (tokenizer(prompt, add_special_tokens=False)["input_ids"]
                   + tokenizer(response, add_special_tokens=False)["input_ids"]
                   + [tokenizer.eos_token_id])
            queries.append(tokenizer.decode(ids, skip_special_tokens=False))
            prompts.append(prompt)
            labels.append(label)
    results = asyncio.run(executor._fetch_rewards_via_func(queries, prompts, labels))

    remote = SingleTurnAgentExecutor(remote_rm_url=server_url)

    async def one_request_per_query():
        return await asyncio.gather(*(remote._fetch_rewards_via_http([q], [p], [label])
                                      for q, p, label in zip(queries, prompts, labels,
                                                             strict=True)))

    answers = [reply[0] for reply in asyncio.run(one_request_per_query())]

    print(json.dumps({
        "chat": {"prompts": chat.prompts, "labels": chat.labels,
                 "datasources": chat.datasources},
        "plain_raw": {"prompts": plain_raw.prompts, "labels": plain_raw.labels},
        "plain_chat": {"prompts": plain_chat.prompts},
        "rewards": [float(r["rewards"].sum()) for r in results],
        "scores": [float(r["scores"].sum()) for r in results],
        "extra_logs": sorted(results[0]["extra_logs"]),
        "query_example": queries[0],
        "http": {"scores": [a["scores"] for a in answers],
                 "rewards": [a["rewards"] for a in answers],
                 "extra_logs": [a["extra_logs"] for a in answers]},
    }))


if __name__ == "__main__":
    main(*sys.argv[1:])
