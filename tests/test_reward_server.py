"""`svs reward-server` started for real on 127.0.0.1 and called with a plain HTTP client
(OpenRLHF's own client calls it in tests/test_real_clients.py)."""

import importlib.util
import json
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from svs.trainer_bridge.reward_server import BadRequest, RewardServerConfig, parse_request

HERE = Path(__file__).resolve().parent
_spec = importlib.util.spec_from_file_location("svs_reward_server_proc",
                                               HERE / "real_clients" / "reward_server_proc.py")
_proc = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_proc)

PROMPT = "<|user|>\nWhat is 2 + 3? Put the answer in \\boxed{}.\n<|assistant|>\n"


def post(url: str, body: bytes | dict | list, method: str = "POST") -> tuple[int, dict]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data if method == "POST" else None, method=method,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@pytest.fixture(scope="module")
def server():
    with _proc.reward_server("--workers", "2", "--max-items", "16", "--timeout", "5") as url:
        yield url


def test_scores_follow_openrlhfs_shape(server):
    queries = [PROMPT + "so \\boxed{5}</s>", PROMPT + "hmm \\boxed{6}</s>", PROMPT + "no idea"]
    status, answer = post(f"{server}/get_reward", {"query": queries, "prompts": [PROMPT] * 3,
                                                   "labels": ["5", 5, "5"]})
    assert status == 200
    assert answer["scores"] == answer["rewards"] == [1.0, 0.0, 0.0]
    assert answer["extra_logs"] == {"verify/no_answer": [0.0, 0.0, 1.0]}
    assert answer["reasons"][:2] == ["correct", "wrong"]
    # the prompt's own \boxed{} is not graded: only the response after it
    status, answer = post(server, {"query": [PROMPT], "prompts": [PROMPT], "labels": [""]})
    assert status == 200 and answer["scores"] == [0.0]


@pytest.mark.parametrize("body, status, reason", [
    (b"{not json", 400, "not JSON"),
    ([1, 2], 400, "expected a JSON object"),
    ({"query": ["a"], "prompts": ["a"]}, 422, "missing key(s) ['labels']"),
    ({"query": "a", "prompts": ["a"], "labels": ["1"]}, 422, "'query' must be a list"),
    ({"query": ["a", "b"], "prompts": ["a"], "labels": ["1"]}, 422, "must match one to one"),
    ({"query": [1], "prompts": ["a"], "labels": ["1"]}, 422, "query[0] must be a string"),
    ({"query": ["a"], "prompts": ["a"], "labels": [{"x": 1}]}, 422, "labels[0] must be"),
    ({"query": ["a"] * 17, "prompts": ["a"] * 17, "labels": ["1"] * 17}, 413, "at most 16"),
])
def test_malformed_requests_get_a_4xx_with_the_reason_and_the_server_lives(server, body, status,
                                                                          reason):
    got, answer = post(server, body)
    assert got == status and reason in answer["error"]
    ok, _ = post(server, {"query": [PROMPT + "\\boxed{5}"], "prompts": [PROMPT], "labels": ["5"]})
    assert ok == 200


def test_wrong_method_and_health(server):
    status, answer = post(server, b"", method="GET")
    assert status == 405 and "POST" in answer["error"]
    with urllib.request.urlopen(f"{server}/health", timeout=10) as reply:
        assert json.loads(reply.read()) == {"ok": True, "workers": 2}


def test_concurrent_requests_are_all_answered(server):
    def one(i: int) -> list[float]:
        queries = [PROMPT + f"try {i}: \\boxed{{{5 if k % 2 else 7}}}" for k in range(8)]
        status, answer = post(server, {"query": queries, "prompts": [PROMPT] * 8,
                                       "labels": ["5"] * 8})
        assert status == 200
        return answer["scores"]

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(one, range(16)))
    assert results == [[0.0, 1.0] * 4] * 16


def test_guessed_answers_follow_the_flag(server):
    guessed = {"query": [PROMPT + "Adding gives 4 then 10"], "prompts": [PROMPT], "labels": ["10"]}
    assert post(server, guessed)[1]["scores"] == [1.0]
    with _proc.reward_server("--no-accept-guessed", "--workers", "1") as strict:
        status, answer = post(strict, guessed)
    assert status == 200 and answer["scores"] == [0.0] and answer["reasons"] == ["guessed"]


def test_settings_are_checked():
    with pytest.raises(ValueError, match="port"):
        RewardServerConfig(port=70000)
    with pytest.raises(ValueError, match="timeout_s"):
        RewardServerConfig(timeout_s=0)
    with pytest.raises(BadRequest, match="not JSON"):
        parse_request(b"\xff", 4)
