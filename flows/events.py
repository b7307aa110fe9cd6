"""The Prefect event `svs.prompt_set.published`, emitted whenever a version becomes current.

`svs.pipeline.store` stays free of Prefect: it calls its on-publish hooks, and this
module registers one (`register()`, run on import; the refresh flow imports it). The
event, for a Prefect automation to restart or notify a trainer:

    event:    svs.prompt_set.published
    resource: {"prefect.resource.id": "svs.prompt-set.<set>", "prefect.resource.name": "<set>",
               "svs.set": "<set>", "svs.version": "<N>", "svs.store": "<store folder>"}
    payload:  {"set", "version", "parent", "label" ("<set>@v<N>"), "action" (publish/adopt),
               "store", "counts": {"problems", "rejects", "source", "synthesizer", "generation"}}

The event is sent where Prefect already has an API: inside a flow or task run (the
refresh flow's publish task; its server or Cloud), or with `PREFECT_API_URL` set. A plain
publish elsewhere (`svs refresh --no-prefect`, a script without a server) sends nothing:
left alone, `emit_event` would start an ephemeral Prefect server for one event.
"""

from __future__ import annotations

from typing import Any

from svs.pipeline.store import PublishEvent, on_publish

EVENT = "svs.prompt_set.published"


def event_fields(event: PublishEvent) -> dict[str, Any]:
    """The `emit_event` arguments for one publish."""
    label = f"{event.name}@v{event.version}"
    return {
        "event": EVENT,
        "resource": {"prefect.resource.id": f"svs.prompt-set.{event.name}",
                     "prefect.resource.name": event.name, "svs.set": event.name,
                     "svs.version": str(event.version), "svs.store": event.root},
        "payload": {"set": event.name, "version": event.version, "parent": event.parent,
                    "label": label, "action": event.action, "store": event.root,
                    "counts": dict(event.counts)},
    }


def prefect_is_listening() -> bool:
    from prefect.context import FlowRunContext, TaskRunContext
    from prefect.settings import PREFECT_API_URL

    return bool(FlowRunContext.get() or TaskRunContext.get() or PREFECT_API_URL.value())


def emit_published(event: PublishEvent) -> Any:
    """Emit `svs.prompt_set.published` for `event`; the Prefect Event, or None when
    Prefect has nowhere to send it (see the module doc)."""
    if not prefect_is_listening():
        return None
    from prefect.events import emit_event

    return emit_event(**event_fields(event))


def register() -> None:
    on_publish(emit_published)


register()
