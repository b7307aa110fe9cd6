"""The stages of a refresh, one plain function each; `svs.flows.refresh_flow` calls them
in diagram order (as Prefect tasks, or plainly with `--no-prefect`). Each takes what the
previous one returned, so the flow wraps every stage as a task without changing it.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from svs.core.records import Problem, Rollout, RolloutGroup, normalize_text
from svs.pipeline.importers import ColumnMap
from svs.pipeline.matching import match
from svs.pipeline.refresh import RefreshConfig, RefreshPlan, plan_refresh
from svs.pipeline.refresh_config import GenerateConfig, RefreshRunConfig
from svs.pipeline.store import NewVersion, PromptSet, PromptStore, PublishResult
from svs.pipeline.store_files import sha256_file

logger = logging.getLogger(__name__)


def load_base(store: PromptStore, name: str, prompts: Path | None,
              columns: ColumnMap | None = None) -> tuple[PromptSet, str]:
    """The version to refresh: the set's current one, or `prompts` imported as v1 when
    the set does not exist yet. Returns the set and "stored" or "imported"."""
    if prompts is not None and store.current_or_none(name) is None:
        from svs.pipeline.store_import import import_table

        import_table(store, name, prompts, columns or ColumnMap(), add=False)
        return store.load(name), "imported"
    if prompts is not None:
        return store.load(name), f"stored; --prompts {prompts} ignored, the set exists"
    return store.load(name), "stored"


def run_key(name: str, rollouts: Sequence[Path], model: str | None,
            config: RefreshRunConfig) -> str:
    """Identifies a refresh by its inputs (set name, rollout file contents, model files,
    config and the files it names, such as a synthesis template). A second run with the same key is recognized: the version it published is
    reported (or, after a crash between the two renames, made current), never written
    twice. The base version is left out on purpose: a finished run moved CURRENT, and
    the same inputs must not refresh the new version again."""
    from svs.pipeline.rollouts import expand_paths

    settings = config.to_dict()
    files = {f"{section}.{key}": sha256_file(Path(value))  # e.g. svs.template_path
             for section, values in settings.items() if isinstance(values, dict)
             for key, value in values.items()
             if key.endswith("_path") and isinstance(value, str) and Path(value).is_file()}
    parts = {"name": name, "config": settings, "config_files": files,
             "rollouts": [sha256_file(p) for p in expand_paths(list(rollouts))] if rollouts else [],
             "model": _model_fingerprint(model)}
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def _model_fingerprint(model: str | None) -> Any:
    if model is None:
        return None
    path = Path(model)
    if not path.is_dir():
        return model
    return [(p.name, p.stat().st_size, int(p.stat().st_mtime)) for p in sorted(path.iterdir())
            if p.is_file()]


def rollout_groups(base: PromptSet, rollouts: Sequence[Path], policy: Any,
                   config: GenerateConfig) -> tuple[list[RolloutGroup], int]:
    """Rollout groups keyed by the set's problem ids, and how many groups matched no
    problem of the set (left out of the diagnosis and reported with an example). Read
    from files, or generated with the policy."""
    if rollouts:
        from svs.pipeline.rollouts import groups_from_rollouts, load_rollouts

        loaded = load_rollouts(list(rollouts), progress=True)
        for warning in loaded.warnings:
            logger.warning(warning)
        groups = groups_from_rollouts(loaded.rollouts)
    else:
        groups = generate_groups(base.problems, policy, config)
    result = match(base.problems, groups)
    if not result.matched:
        raise ValueError(f"none of the {len(groups)} rollout groups belongs to a problem of "
                         f"{base.label}: match them by problem_id (the set's ids) or by the "
                         f"problem text and answer. {result.unmatched_message(base.label)}")
    if result.unmatched:
        logger.warning(result.unmatched_message(base.label))
    return result.matched, len(result.unmatched)


def match_groups(problems: Sequence[Problem], groups: Sequence[RolloutGroup]
                 ) -> tuple[list[RolloutGroup], int]:
    """Re-key groups to the set's ids (`svs.pipeline.matching`: by id, by text, or by the
    problem text inside a chat-templated prompt with the same answer); also the number
    of groups that matched no problem."""
    result = match(problems, groups)
    return result.matched, len(result.unmatched)


def generate_groups(problems: Sequence[Problem], policy: Any,
                    config: GenerateConfig) -> list[RolloutGroup]:
    """Sample `config.n` solutions per problem and grade them (sandboxed verifier)."""
    from svs.pipeline.policy.base import SamplingParams
    from svs.verifiers.consistency import solve_prompt
    from svs.verifiers.grader import grade_batch

    params = SamplingParams(n=config.n, temperature=config.temperature,
                            max_new_tokens=config.max_new_tokens, seed=config.seed)
    prompts = [solve_prompt(p.text) for p in problems]
    outputs = policy.generate(prompts, params, progress=True)
    pairs = [(p.answer, g.text) for p, group in zip(problems, outputs, strict=True) for g in group]
    grades = iter(grade_batch(pairs, progress=True))
    groups = []
    for problem, prompt, group in zip(problems, prompts, outputs, strict=True):
        rollouts = []
        for generation in group:
            grade = next(grades)
            rollouts.append(Rollout(problem.id, prompt, problem.answer, generation.text,
                                    correct=grade.correct, extracted=grade.extracted,
                                    reason=grade.reason,
                                    token_logprobs=generation.token_logprobs,
                                    metadata={"finish_reason": generation.finish_reason}))
        groups.append(RolloutGroup.from_rollouts(rollouts))
    return groups


def rollout_files(rollouts: Sequence[str], skip_bad: bool, correct_column: str | None,
                  timeout_s: float | None) -> tuple[list[RolloutGroup], list[str], list]:
    """Groups from rollout files of any supported format, the reader's notes and the
    malformed rows skipped (`svs diagnose` and the diagnose flow)."""
    from svs.pipeline.rollouts import groups_from_rollouts, load_rollouts

    loaded = load_rollouts(list(rollouts), skip_bad=skip_bad, correct_column=correct_column,
                           timeout_s=timeout_s, progress=True)
    if not loaded.rollouts:
        raise ValueError(f"no rollouts found in {', '.join(map(str, rollouts))}")
    return groups_from_rollouts(loaded.rollouts), loaded.notes, loaded.skipped


def write_report(diagnosis: Any, out: str | Path) -> str:
    """report.json + report.html of a diagnosis in `out`; returns the folder."""
    from svs.pipeline.report import write_report as write

    json_path, _ = write(diagnosis, out)
    return str(json_path.parent)


def diagnose(groups: Sequence[RolloutGroup], config: Any) -> Any:
    from svs.pipeline.memorization import diagnose as run

    return run(groups, config, progress=True)


def seeds_from(base: PromptSet, diagnosis: Any,
               config: RefreshRunConfig | None = None) -> list[Any]:
    """Seeds of `synthesizers.svs.seeds_from_diagnosis` (the diagnosis's seed problems,
    plus `svs.seed_labels`, up to `svs.max_seeds_per_problem` solutions each), keeping
    one seed per distinct solution text: equal texts make equal synthesis prompts."""
    from svs.synthesizers.svs import seeds_from_diagnosis

    svs_config = config.synthesizer_configs.get("svs") if config is not None else None
    seeds, seen = [], set()
    for seed in seeds_from_diagnosis(diagnosis, base.problems, svs_config):
        key = (seed.problem.id, normalize_text(seed.solution))
        if key not in seen:
            seen.add(key)
            seeds.append(seed)
    return seeds


def synthesize(seeds: Sequence[Any], policy: Any, config: RefreshRunConfig) -> list[Any]:
    from svs.synthesizers import registry

    candidates = []
    for name in config.synthesizers:
        spec = registry.get(name)
        candidates.extend(registry.synthesize(name, seeds, policy if spec.needs_policy else None,
                                              config.synthesizer_configs.get(name)))
    return candidates


def verify(candidates: Sequence[Any], policy: Any, base: PromptSet,
           config: RefreshRunConfig) -> tuple[list[Problem], list[dict[str, Any]]]:
    from svs.verifiers.consistency import verify_candidates

    accepted, rejects = verify_candidates(candidates, policy, config.consistency,
                                          corpus=base.problems)
    return accepted, [{**r.to_row(), "stage": "verify"} for r in rejects]


def plan(store: PromptStore, base: PromptSet, accepted: Sequence[Problem], diagnosis: Any,
         config: RefreshConfig) -> RefreshPlan:
    labels = {d.problem_id: d.label for d in diagnosis.problems}
    return plan_refresh(base.problems, base.weights, base.lineage, accepted, labels, config,
                        store.next_version(base.name))


def publish(store: PromptStore, base: PromptSet, refresh_plan: RefreshPlan, diagnosis: Any,
            verify_rejects: Sequence[Mapping[str, Any]], config: RefreshRunConfig,
            key: str) -> PublishResult:
    new = NewVersion(refresh_plan.problems, refresh_plan.lineage, weights=refresh_plan.weights,
                     diagnosis=json.loads(diagnosis.to_json()),
                     rejects=[*verify_rejects, *refresh_plan.rejects], config=config.to_dict(),
                     summary=refresh_plan.summary(), note=f"refresh of {base.label}")
    return store.publish(base.name, new, parent=base.version, run_key=key)


@dataclass(frozen=True)
class RefreshSummary:
    name: str
    base_version: int
    version: int
    outcome: str  # published / adopted / already
    labels: Mapping[str, int] = field(default_factory=dict)
    seeds: int = 0
    candidates: int = 0
    accepted: int = 0
    rejects: Mapping[str, int] = field(default_factory=dict)  # "stage/reason" -> count
    added: int = 0
    retired: int = 0
    downweighted: int = 0
    unmatched_groups: int = 0
    generated_tokens: int = 0  # tokens the policy generated (rollouts, synthesis, verification)


def summarize(base: PromptSet, result: PublishResult, *, diagnosis: Any = None,
              seeds: Sequence[Any] = (), candidates: Sequence[Any] = (),
              accepted: Sequence[Problem] = (), verify_rejects: Sequence[Mapping] = (),
              refresh_plan: RefreshPlan | None = None, unmatched: int = 0,
              generated_tokens: int = 0) -> RefreshSummary:
    rejects = Counter(f"verify/{r['reason']}" for r in verify_rejects)
    if refresh_plan is not None:
        rejects.update(f"refresh/{r['reason']}" for r in refresh_plan.rejects)
    return RefreshSummary(
        name=base.name, base_version=base.version, version=result.version,
        outcome=result.outcome,
        labels=dict(Counter(d.label for d in diagnosis.problems)) if diagnosis else {},
        seeds=len(seeds), candidates=len(candidates), accepted=len(accepted),
        rejects=dict(sorted(rejects.items())),
        added=len(refresh_plan.added) if refresh_plan else 0,
        retired=len(refresh_plan.retired) if refresh_plan else 0,
        downweighted=len(refresh_plan.downweighted) if refresh_plan else 0,
        unmatched_groups=unmatched, generated_tokens=generated_tokens)
