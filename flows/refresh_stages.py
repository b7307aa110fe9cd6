"""The stages of a refresh, one plain function each; `flows/refresh_flow.refresh_steps`
calls them in diagram order. Each takes what the previous one returned, so a Prefect flow can wrap
every stage as a task without changing what it does.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import Any

from svs.core.constants import SOLVE_INSTRUCTION
from svs.core.records import Problem, Rollout, RolloutGroup, normalize_text, problem_id
from svs.pipeline.importers import ColumnMap
from svs.pipeline.refresh import RefreshConfig, RefreshPlan, plan_refresh
from svs.pipeline.store import NewVersion, PromptSet, PromptStore, PublishResult
from svs.pipeline.store_files import sha256_file


def _section(cls: type, data: Any, name: str) -> Any:
    if data is None:
        return cls()
    if not isinstance(data, Mapping):
        raise ValueError(f"config section {name!r} must be a mapping, got {type(data).__name__}")
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"unknown key(s) {unknown} in config section {name!r}; valid: "
                         f"{sorted(known)}")
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


@dataclass(frozen=True)
class GenerateConfig:
    """How rollouts are sampled when no rollout files are given."""

    n: int = field(default=8, metadata={"help": "Rollouts per problem (SvS uses 8)."})
    temperature: float = field(default=1.0, metadata={"help": "Sampling temperature."})
    max_new_tokens: int = field(default=1024, metadata={"help": "Token budget per rollout."})
    seed: int = field(default=0, metadata={"help": "Sampling seed."})

    def __post_init__(self) -> None:
        if self.n < 2:
            raise ValueError(f"generate.n must be >= 2 (a diagnosis needs a spread of "
                             f"rollouts per problem), got {self.n}")
        if self.temperature < 0 or self.max_new_tokens < 1:
            raise ValueError(f"generate needs temperature >= 0 and max_new_tokens >= 1, got "
                             f"{self.temperature} and {self.max_new_tokens}")


@dataclass(frozen=True)
class RefreshRunConfig:
    """Everything a refresh reads from its config file (YAML or JSON), section by section."""

    refresh: RefreshConfig = field(default_factory=RefreshConfig, metadata={
        "help": "How version N+1 is formed (pipeline.refresh.RefreshConfig)."})
    diagnosis: Any = field(default=None, metadata={
        "help": "pipeline.memorization.DiagnosisConfig; None: its defaults."})
    synthesizers: tuple[str, ...] = field(default=("svs",), metadata={
        "help": "Synthesizers run on the seeds, in order (synthesizers.registry names)."})
    synthesizer_configs: Mapping[str, Any] = field(default_factory=dict, metadata={
        "help": "Config per synthesizer name (the `svs:` / `symbolic:` sections); a "
                "synthesizer without one runs with its defaults."})
    consistency: Any = field(default=None, metadata={
        "help": "verifiers.consistency.ConsistencyConfig; None: its defaults."})
    generate: GenerateConfig = field(default_factory=GenerateConfig, metadata={
        "help": "Rollout sampling when no rollout files are given."})

    def __post_init__(self) -> None:
        from svs.pipeline.memorization import DiagnosisConfig
        from svs.synthesizers import registry
        from svs.verifiers.consistency import ConsistencyConfig

        if self.diagnosis is None:
            object.__setattr__(self, "diagnosis", DiagnosisConfig())
        if self.consistency is None:
            object.__setattr__(self, "consistency", ConsistencyConfig())
        object.__setattr__(self, "synthesizers", tuple(self.synthesizers))
        if not self.synthesizers:
            raise ValueError("synthesizers must name at least one (valid: "
                             f"{', '.join(registry.names())})")
        for name in self.synthesizers:
            registry.get(name)  # KeyError listing the valid names

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RefreshRunConfig:
        from svs.pipeline.memorization import DiagnosisConfig
        from svs.synthesizers import registry
        from svs.verifiers.consistency import ConsistencyConfig

        known = {"refresh", "diagnosis", "synthesizers", "consistency", "generate",
                 *registry.names()}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown config section(s) {unknown}; valid: {sorted(known)}")
        names = data.get("synthesizers") or ["svs"]
        names = [names] if isinstance(names, str) else list(names)
        configs = {name: _section(registry.get(name).config_cls, data.get(name), name)
                   for name in registry.names() if name in data or name in names}
        return cls(refresh=_section(RefreshConfig, data.get("refresh"), "refresh"),
                   diagnosis=_section(DiagnosisConfig, data.get("diagnosis"), "diagnosis"),
                   synthesizers=tuple(names), synthesizer_configs=configs,
                   consistency=_section(ConsistencyConfig, data.get("consistency"), "consistency"),
                   generate=_section(GenerateConfig, data.get("generate"), "generate"))

    @classmethod
    def from_file(cls, path: Path | str | None) -> RefreshRunConfig:
        if path is None:
            return cls()
        import yaml

        try:
            data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ValueError(f"cannot read config file {path}: {exc}") from exc
        if not isinstance(data, Mapping):
            raise ValueError(f"config file {path} must hold a mapping of sections")
        try:
            return cls.from_dict(data)
        except (TypeError, ValueError, KeyError) as exc:
            raise ValueError(f"config file {path}: {exc}") from exc

    def to_dict(self) -> dict[str, Any]:
        out = {"refresh": asdict(self.refresh), "diagnosis": asdict(self.diagnosis),
               "synthesizers": list(self.synthesizers), "consistency": asdict(self.consistency),
               "generate": asdict(self.generate)}
        for name, config in self.synthesizer_configs.items():
            out[name] = asdict(config) if is_dataclass(config) else config
        return out

    def needs_policy(self, have_rollouts: bool) -> bool:
        from svs.synthesizers import registry

        return not have_rollouts or any(registry.get(n).needs_policy for n in self.synthesizers)


# ------------------------------------------------------------------------------ stages
def load_base(store: PromptStore, name: str, prompts: Path | None,
              columns: ColumnMap | None = None) -> tuple[PromptSet, str]:
    """The version to refresh: the set's current one, or `prompts` imported as v1 when
    the set does not exist yet. Returns the set and "stored" or "imported"."""
    if prompts is not None and store.current_or_none(name) is None:
        from svs.flows.store_commands import import_into_store

        import_into_store(store, name, prompts, "table", columns or ColumnMap(), add=False)
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


def load_policy(model: str | None, backend: str, needed: bool, why: str) -> Any:
    if model is None:
        if needed:
            raise ValueError(f"this refresh needs a policy ({why}); pass --model PATH")
        return None
    from svs.pipeline.policy.base import CountingPolicy
    from svs.pipeline.policy.loading import load_policy as load

    return CountingPolicy(load(model, backend=backend))


def rollout_groups(base: PromptSet, rollouts: Sequence[Path], policy: Any,
                   config: GenerateConfig) -> tuple[list[RolloutGroup], int]:
    """Rollout groups keyed by the set's problem ids, and how many groups matched no
    problem of the set (ignored). Read from files, or generated with the policy."""
    if rollouts:
        from svs.pipeline.rollouts import load_rollout_groups

        groups = load_rollout_groups(list(rollouts), progress=True)
    else:
        groups = generate_groups(base.problems, policy, config)
    matched, unmatched = match_groups(base.problems, groups)
    if not matched:
        raise ValueError(f"none of the {len(groups)} rollout groups belongs to a problem of "
                         f"{base.label}: match them by problem_id (the set's ids) or by the "
                         f"problem text and answer")
    return matched, unmatched


def match_groups(problems: Sequence[Problem], groups: Sequence[RolloutGroup]
                 ) -> tuple[list[RolloutGroup], int]:
    """Re-key groups to the set's ids: by id, then by (text, answer), then by text alone
    after dropping the solve instruction a trainer appended."""

    by_id = {p.id: p.id for p in problems}
    by_text = {normalize_text(p.text): p.id for p in problems}
    suffix = normalize_text(SOLVE_INSTRUCTION)
    matched, unmatched = [], 0
    for group in groups:
        prompt = normalize_text(group.prompt)
        if prompt.endswith(suffix):
            prompt = prompt[: -len(suffix)].strip()
        pid = (by_id.get(group.problem_id) or by_id.get(problem_id(group.prompt, group.answer))
               or by_text.get(prompt))
        if pid is None:
            unmatched += 1
        else:
            matched.append(replace(group, problem_id=pid))
    return matched, unmatched


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
                                    token_logprobs=generation.token_logprobs))
        groups.append(RolloutGroup.from_rollouts(rollouts))
    return groups


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
