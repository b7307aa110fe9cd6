"""`svs reward-server`: the HTTP reward server for OpenRLHF (`--reward.remote_url`)."""

from __future__ import annotations

import typer

from svs.trainer_bridge.reward_server import HELP, RewardServerConfig

DEFAULTS = RewardServerConfig()


def reward_server(
    host: str = typer.Option(DEFAULTS.host, "--host", help=HELP["host"]),
    port: int = typer.Option(DEFAULTS.port, "--port", help=HELP["port"]),
    workers: int = typer.Option(DEFAULTS.workers, "--workers", help=HELP["workers"]),
    timeout: float = typer.Option(DEFAULTS.timeout_s, "--timeout", help=HELP["timeout_s"]),
    accept_guessed: bool = typer.Option(DEFAULTS.accept_guessed,
                                        "--accept-guessed/--no-accept-guessed",
                                        help=HELP["accept_guessed"]),
    max_items: int = typer.Option(DEFAULTS.max_items, "--max-items", help=HELP["max_items"]),
    max_body_bytes: int = typer.Option(DEFAULTS.max_body_bytes, "--max-body-bytes",
                                       help=HELP["max_body_bytes"]),
) -> None:
    """Serve svs's verifier as OpenRLHF's remote reward: POST {query, prompts, labels}."""
    from svs.flows.cli_common import fail
    from svs.trainer_bridge.reward_server import serve

    try:
        config = RewardServerConfig(host=host, port=port, workers=workers, timeout_s=timeout,
                                    accept_guessed=accept_guessed, max_items=max_items,
                                    max_body_bytes=max_body_bytes)
    except ValueError as exc:
        fail(exc)
    serve(config)
