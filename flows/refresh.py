"""One refresh of a prompt set, in diagram order:

    load the set -> load rollouts (or generate them with the policy) -> diagnose
    -> synthesize -> verify -> plan the next version -> publish

`refresh` is a plain function: a short sequence of calls to the stages in
`flows/refresh_stages.py`, where all the logic lives. It holds the set's lock from start
to end, so a second refresh of the same set fails at once instead of computing a
version it could not publish. A run is identified by its inputs (`run_key`): re-running
after a crash either finds the version it already published (and, if the crash came
between writing the version and switching CURRENT, makes it current) or starts cleanly;
it never publishes the same run twice.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from flows import refresh_stages as stages
from flows.refresh_stages import RefreshRunConfig, RefreshSummary
from pipeline.importers import ColumnMap
from pipeline.store import PromptStore


@dataclass(frozen=True)
class RefreshRequest:
    """What `svs refresh` was asked to do."""

    store: Path
    name: str
    prompts: Path | None = None  # imported as v1 when the set does not exist yet
    rollouts: tuple[Path, ...] = ()  # empty: generate rollouts with the policy
    model: str | None = None  # local model folder for generation, synthesis, verification
    backend: str = "transformers"
    config: RefreshRunConfig = field(default_factory=RefreshRunConfig)
    columns: ColumnMap = field(default_factory=ColumnMap)


def refresh(request: RefreshRequest,
            say: Callable[[str], None] = lambda line: None) -> RefreshSummary:
    store, config = PromptStore(request.store), request.config
    key = stages.run_key(request.name, request.rollouts, request.model, config)
    with store.lock(request.name, purpose="refresh"):
        say("[1/7] prompt set")
        base, how = stages.load_base(store, request.name, request.prompts, request.columns)
        done = store.resume(request.name, key)
        if done is not None:
            return stages.summarize(store.load(request.name, done.parent), done)
        say(f"      {base.label} ({how}, {len(base.problems)} problems)")
        policy = stages.load_policy(request.model, request.backend,
                                    config.needs_policy(bool(request.rollouts)),
                                    "to generate rollouts or to synthesize/verify with it")
        say("[2/7] rollouts")
        groups, unmatched = stages.rollout_groups(base, request.rollouts, policy, config.generate)
        say("[3/7] diagnose")
        diagnosis = stages.diagnose(groups, config.diagnosis)
        say("[4/7] synthesize")
        seeds = stages.seeds_from(base, diagnosis, config)
        candidates = stages.synthesize(seeds, policy, config)
        say("[5/7] verify")
        accepted, rejects = stages.verify(candidates, policy, base, config)
        say("[6/7] plan the next version")
        plan = stages.plan(store, base, accepted, diagnosis, config.refresh)
        say("[7/7] publish")
        result = stages.publish(store, base, plan, diagnosis, rejects, config, key)
    return stages.summarize(base, result, diagnosis=diagnosis, seeds=seeds,
                            candidates=candidates, accepted=accepted, verify_rejects=rejects,
                            refresh_plan=plan, unmatched=unmatched)

