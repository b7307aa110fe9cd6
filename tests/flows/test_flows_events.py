"""The Prefect event `svs.prompt_set.published`, sent to a real (test) Prefect server."""

import os
import subprocess
import sys
import time

import networkx as nx

from svs.core.records import Problem
from svs.pipeline.lineage import add_problems
from svs.pipeline.store import NewVersion, PromptStore, on_publish

PROBLEMS = [Problem(f"What is {i} + 2?", str(i + 2)) for i in range(3)]


def publish(root, problems, parent=None):
    graph = nx.DiGraph()
    add_problems(graph, problems, version=(parent or 0) + 1)
    return PromptStore(root).publish("demo", NewVersion(problems, graph), parent=parent)


def read_published(store, name: str, version: int, deadline_s: float = 30.0):
    """Events of the test server for `name@v{version}` of `store` (bounded wait)."""
    import asyncio

    from prefect.client.orchestration import get_client
    from prefect.events.filters import EventFilter, EventNameFilter, EventResourceFilter
    from prefect.events.worker import EventsWorker

    from svs.flows.events import EVENT

    EventsWorker.drain_all()

    async def read():
        async with get_client() as client:
            page = await client.read_events(EventFilter(
                event=EventNameFilter(name=[EVENT]),
                resource=EventResourceFilter(id=[f"svs.prompt-set.{name}"])), limit=50)
            return [e for e in page.events if e.payload.get("version") == version
                    and e.resource.get("svs.store") == str(store)]

    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        found = asyncio.run(read())
        if found:
            return found
        time.sleep(0.5)
    return []


def test_a_publish_emits_the_event_with_set_version_and_counts(prefect_harness, tmp_path):
    import svs.flows.events  # noqa: F401 - registers the hook, as the refresh flow does

    publish(tmp_path / "store", PROBLEMS)
    publish(tmp_path / "store", PROBLEMS[:2], parent=1)
    (event,) = read_published(tmp_path / "store", "demo", 2)
    assert event.event == "svs.prompt_set.published"
    assert event.resource["svs.set"] == "demo" and event.resource["svs.version"] == "2"
    assert event.payload["label"] == "demo@v2" and event.payload["parent"] == 1
    assert event.payload["action"] == "publish"
    assert event.payload["counts"]["problems"] == 2
    assert event.payload["counts"]["source"] == {"original": 2}


def test_without_a_prefect_api_nothing_is_sent_and_no_server_starts(tmp_path):
    code = ("import svs.flows.events as e; from svs.pipeline.store import PublishEvent; "
            "print(e.emit_published(PublishEvent('s', 'demo', 1, None, 'publish', {})))")
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env={**env, "PREFECT_HOME": str(tmp_path)}, timeout=60)
    assert out.stdout.strip() == "None"


def test_a_failing_hook_never_fails_the_publish(tmp_path, caplog):
    def broken(event):
        raise RuntimeError("listener down")

    remove = on_publish(broken)
    try:
        result = publish(tmp_path / "store", PROBLEMS)
    finally:
        remove()
    assert result.outcome == "published" and PromptStore(tmp_path / "store").current("demo") == 1
    assert "listener down" in caplog.text


def test_the_store_imports_without_prefect():
    code = "import sys, svs.pipeline.store; print('prefect' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_the_docs_automation_is_accepted_by_the_server(prefect_harness):
    """docs/trainers.md's automation, created on the test server (its action is not run)."""
    import uuid

    from prefect.automations import Automation
    from prefect.events.actions import RunDeployment
    from prefect.events.schemas.automations import EventTrigger

    created = Automation(
        name=f"restart trainer on a new math version {uuid.uuid4().hex[:6]}",
        trigger=EventTrigger(
            expect={"svs.prompt_set.published"},
            match={"prefect.resource.id": "svs.prompt-set.math"},
            posture="Reactive", threshold=1),
        actions=[RunDeployment(source="selected", deployment_id=uuid.uuid4(),
                               parameters={"version": "{{ event.payload.version }}"})],
    ).create()
    read = Automation.read(id=created.id)
    assert read.trigger.expect == {"svs.prompt_set.published"}
