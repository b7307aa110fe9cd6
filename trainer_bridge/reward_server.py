"""`svs reward-server`: an HTTP reward server for OpenRLHF's `--reward.remote_url`.

OpenRLHF 0.11.2's client (`SingleTurnAgentExecutor._fetch_rewards_via_http`,
openrlhf/utils/agent.py) POSTs `{"query": [...], "prompts": [...], "labels": [...]}` as
JSON to the URL exactly as given, reads `scores` (else `rewards`) and `extra_logs` from
the answer, and retries any non-2xx answer five times before that rollout's reward
silently becomes None. So this server answers every POST path, grades with svs's
verifier (`rewards.grade_queries`: the response after the prompt, against the label,
in the process's verifier pool of `workers` sandbox processes), and gives a malformed
request a 4xx whose JSON `error` says what is wrong (it also lands in OpenRLHF's log),
never a dead server: grading errors are verdicts, not exceptions.

Requests are served concurrently: the ASGI app (Starlette on uvicorn) stays on its event
loop and runs each batch's grading in a worker thread, so the verifier pool's processes
work on several requests at once; `max_items` bounds one request.
"""

from __future__ import annotations

import json
import numbers
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from svs.core.config import field_help, option
from svs.trainer_bridge.rewards import DEFAULT_TIMEOUT_S, grade_queries


@dataclass(frozen=True)
class RewardServerConfig:
    """Settings of `svs reward-server` (each is a flag of the same name)."""

    host: str = option("127.0.0.1", "Interface to bind; 127.0.0.1 keeps the server on this machine.")
    port: int = option(5000, "TCP port (0: any free port).")
    workers: int = option(2, "Verifier sandbox processes grading answers (SVS_REWARD_WORKERS).")
    timeout_s: float = option(DEFAULT_TIMEOUT_S, "Seconds per answer check.")
    accept_guessed: bool = option(True,
                                  "Count an answer found only as the last number of the text.")
    max_items: int = option(4096, "Most queries one request may carry (larger requests get 413).")
    max_body_bytes: int = option(64 * 1024 * 1024,
                                 "Largest request body accepted (larger requests get 413).")

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port must be 0..65535, got {self.port}")
        for name in ("workers", "max_items", "max_body_bytes"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.timeout_s <= 0:
            raise ValueError(f"timeout_s must be > 0 seconds, got {self.timeout_s}")


class BadRequest(ValueError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def parse_request(body: bytes, max_items: int) -> tuple[list[str], list[str], list[Any]]:
    """(queries, prompts, labels) of an OpenRLHF reward request, or BadRequest saying why."""
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadRequest(400, f"the body is not JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise BadRequest(400, f"expected a JSON object with query, prompts and labels, got "
                              f"{type(data).__name__}")
    missing = [key for key in ("query", "prompts", "labels") if key not in data]
    if missing:
        raise BadRequest(422, f"missing key(s) {missing}: OpenRLHF sends query, prompts, labels")
    queries, prompts, labels = data["query"], data["prompts"], data["labels"]
    for key, values in (("query", queries), ("prompts", prompts), ("labels", labels)):
        if not isinstance(values, list):
            raise BadRequest(422, f"{key!r} must be a list, got {type(values).__name__}")
    if not len(queries) == len(prompts) == len(labels):
        raise BadRequest(422, f"got {len(queries)} queries, {len(prompts)} prompts and "
                              f"{len(labels)} labels; they must match one to one")
    if len(queries) > max_items:
        raise BadRequest(413, f"{len(queries)} queries in one request; this server takes at "
                              f"most {max_items} (--max-items)")
    for key, values in (("query", queries), ("prompts", prompts)):
        bad = next((i for i, v in enumerate(values) if not isinstance(v, str)), None)
        if bad is not None:
            raise BadRequest(422, f"{key}[{bad}] must be a string, got {type(values[bad]).__name__}")
    bad = next((i for i, v in enumerate(labels) if isinstance(v, bool) or
                not isinstance(v, str | numbers.Real)), None)
    if bad is not None:
        raise BadRequest(422, f"labels[{bad}] must be a string or a number (the reference "
                              f"answer), got {type(labels[bad]).__name__}")
    return queries, prompts, labels


def create_app(config: RewardServerConfig) -> Starlette:
    async def reward(request: Request) -> JSONResponse:
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > config.max_body_bytes:
            return JSONResponse({"error": f"body of {declared} bytes is over the limit of "
                                          f"{config.max_body_bytes} (--max-body-bytes)"}, 413)
        body = await request.body()
        if len(body) > config.max_body_bytes:
            return JSONResponse({"error": f"body over {config.max_body_bytes} bytes"}, 413)
        try:
            queries, prompts, labels = parse_request(body, config.max_items)
        except BadRequest as exc:
            return JSONResponse({"error": str(exc)}, exc.status)
        grades = await run_in_threadpool(grade_queries, queries, prompts, labels,
                                         config.timeout_s, config.accept_guessed)
        scores = [1.0 if g.correct else 0.0 for g in grades]
        return JSONResponse({"rewards": scores, "scores": scores,
                             "extra_logs": {"verify/no_answer": [float(g.reason == "no_answer")
                                                                 for g in grades]},
                             "reasons": [g.reason for g in grades]})

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"ok": True, "workers": config.workers})

    async def wrong_method(request: Request) -> JSONResponse:
        return JSONResponse({"error": "POST a JSON body {query, prompts, labels}; GET /health "
                                      "answers a health check"}, 405)

    return Starlette(routes=[
        Route("/health", health, methods=["GET"]),
        Route("/{path:path}", reward, methods=["POST"]),
        Route("/{path:path}", wrong_method, methods=["GET", "PUT", "DELETE", "PATCH"]),
    ])


def serve(config: RewardServerConfig) -> None:
    """Run the server until interrupted (Ctrl-C / SIGTERM stop it cleanly)."""
    import os

    import uvicorn

    os.environ["SVS_REWARD_WORKERS"] = str(config.workers)
    server = uvicorn.Server(uvicorn.Config(create_app(config), host=config.host,
                                           port=config.port, log_level="warning"))
    original_startup = server.startup

    async def startup(sockets=None) -> None:
        await original_startup(sockets)
        for listener in server.servers:
            for sock in listener.sockets:
                host, port = sock.getsockname()[:2]
                print(f"svs reward-server listening on http://{host}:{port}", flush=True)

    server.startup = startup
    server.run()


HELP = field_help(RewardServerConfig)
