"""The synthesizer registry, and one test over all of it: whatever a synthesizer gets
accepted passes the verifiers against its own reference answer."""

from __future__ import annotations

import pytest
from tiny_models import TOY_TEMPLATE, one_torch_thread, toy_consistency, toy_seed

from svs.core.records import Problem
from svs.pipeline.policy.hf import HFPolicy
from svs.synthesizers import registry
from svs.synthesizers.registry import Seed, SynthesizerSpec, get, names, register, synthesize
from svs.synthesizers.svs import SvSConfig
from svs.synthesizers.symbolic import SymbolicConfig
from svs.verifiers.consistency import verify_candidates
from svs.verifiers.grader import grade_batch
from svs.verifiers.problems import check_problem
from svs.verifiers.sympy_answers import answer_text, find_math, seed_value

SYMBOLIC_SEEDS = [
    Seed(Problem("What is the value of $3 \\times 4 + 5$?", "17"), "12 + 5 = 17"),
    Seed(Problem("Solve for $x$: $3x + 5 = 20$.", "5"), "3x = 15 so x = 5"),
]


def test_builtin_names():
    assert names() == ["svs", "symbolic"]
    spec = get("svs")
    assert isinstance(spec, SynthesizerSpec) and spec.needs_policy and spec.config_cls is SvSConfig
    assert not get("symbolic").needs_policy


def test_unknown_name_lists_the_valid_ones():
    with pytest.raises(KeyError, match="valid names: svs, symbolic"):
        get("nope")


def test_duplicate_registration_raises():
    with pytest.raises(ValueError, match="already registered"):
        register("svs", config=SvSConfig, needs_policy=True)(lambda seeds, policy, config: [])


def test_registering_a_new_synthesizer(monkeypatch):
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))

    @register("echo", config=SymbolicConfig, needs_policy=False)
    def echo(seeds, policy, config):
        return [registry.Candidate(s, s.problem.variant(s.problem.text + " Again.",
                                                        synthesizer="echo"), "", "echo")
                for s in seeds]

    made = synthesize("echo", [toy_seed()])
    assert made[0].problem.synthesizer == "echo"


def test_config_type_is_checked():
    with pytest.raises(TypeError, match="takes a SymbolicConfig"):
        synthesize("symbolic", [], None, SvSConfig())


@pytest.fixture(scope="module")
def policy(toy_policy_dir):
    with one_torch_thread():
        yield HFPolicy.from_pretrained(toy_policy_dir, device="cpu", batch_size=48)


@pytest.fixture(scope="module")
def toy_template(tmp_path_factory):
    path = tmp_path_factory.mktemp("template") / "toy.txt"
    path.write_text(TOY_TEMPLATE)
    return str(path)


def _run(name: str, policy, toy_template):
    if name == "svs":
        seeds = [toy_seed()]
        config = SvSConfig(template_path=toy_template, n_samples=8, max_new_tokens=40)
    else:
        seeds, config = SYMBOLIC_SEEDS, SymbolicConfig(variants_per_seed=3)
    candidates = synthesize(name, seeds, policy if get(name).needs_policy else None, config)
    corpus = [s.problem for s in seeds]
    check = toy_consistency()
    # Symbolic answers are proven, so they are verified without a policy here.
    return verify_candidates(candidates, policy if get(name).needs_policy else None, check,
                             corpus=corpus)


@pytest.mark.parametrize("name", ["svs", "symbolic"])
def test_every_synthesizer_accepted_output_passes_the_verifiers(name, policy, toy_template):
    assert name in names()
    accepted, rejects = _run(name, policy, toy_template)
    assert accepted, f"{name} got nothing accepted: {[r.reason for r in rejects]}"
    golds = grade_batch([(p.answer, p.answer) for p in accepted], extract=False)
    assert all(g.correct for g in golds), golds  # every reference answer is a valid gold
    for problem in accepted:
        assert check_problem(problem.text, problem.answer).ok
        assert problem.synthesizer == name and problem.generation == 1
        assert problem.parent_id and problem.origin_id != problem.id
        if name == "symbolic":
            value = seed_value(find_math(problem.text))
            grade = grade_batch([(answer_text(value), problem.answer)], extract=False)[0]
            assert grade.correct, problem.text  # sympy recomputes the stated answer
        else:
            assert 1 / 8 <= problem.metadata["solve_rate"] <= 5 / 8
            solve = grade_batch([(problem.answer, "so \\boxed{7}")])[0]
            assert solve.correct  # the original's answer is still the reference
