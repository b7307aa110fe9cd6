"""Synthesizers by name, all with one signature.

    @register("svs", config=SvSConfig, needs_policy=True)
    def synthesize_svs(seeds: Sequence[Seed], policy: Policy | None,
                       config: SvSConfig) -> list[Candidate]: ...

    candidates = synthesize("svs", seeds, policy)          # default config
    candidates = synthesize("symbolic", seeds, None, SymbolicConfig(variants_per_seed=2))

A synthesizer turns seeds into candidates and never judges them: that is
`verifiers.consistency.verify_candidates`. Registering a name twice raises; asking for
an unknown name lists the valid ones.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from svs.core.records import Candidate, Seed

__all__ = ["Candidate", "Seed", "SynthesizerSpec", "get", "names", "register", "synthesize"]


SynthesizeFn = Callable[[Sequence[Seed], Any, Any], list[Candidate]]


@dataclass(frozen=True)
class SynthesizerSpec:
    name: str
    fn: SynthesizeFn
    config_cls: type
    needs_policy: bool


_REGISTRY: dict[str, SynthesizerSpec] = {}


def register(name: str, *, config: type, needs_policy: bool) -> Callable[[SynthesizeFn],
                                                                         SynthesizeFn]:
    """Register `fn(seeds, policy, config) -> list[Candidate]` under `name`."""

    def decorator(fn: SynthesizeFn) -> SynthesizeFn:
        if name in _REGISTRY:
            raise ValueError(f"synthesizer {name!r} is already registered "
                             f"(by {_REGISTRY[name].fn.__module__})")
        _REGISTRY[name] = SynthesizerSpec(name, fn, config, needs_policy)
        return fn

    return decorator


def _load_builtins() -> None:
    # Importing the modules runs their @register decorators.
    import svs.synthesizers.svs  # noqa: F401
    import svs.synthesizers.symbolic  # noqa: F401


def names() -> list[str]:
    _load_builtins()
    return sorted(_REGISTRY)


def get(name: str) -> SynthesizerSpec:
    _load_builtins()
    if name not in _REGISTRY:
        raise KeyError(f"unknown synthesizer {name!r}; valid names: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def synthesize(name: str, seeds: Sequence[Seed], policy: Any = None,
               config: Any = None) -> list[Candidate]:
    """Run the synthesizer `name` (its default config when `config` is None)."""
    spec = get(name)
    if config is None:
        config = spec.config_cls()
    elif not isinstance(config, spec.config_cls):
        raise TypeError(f"synthesizer {name!r} takes a {spec.config_cls.__name__}, "
                        f"got {type(config).__name__}")
    if spec.needs_policy and policy is None:
        raise ValueError(f"synthesizer {name!r} needs a policy (see pipeline.policy."
                         f"load_policy)")
    return spec.fn(seeds, policy, config)
