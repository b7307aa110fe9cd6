"""The SvS synthesizer: prompts, caps, extraction reasons, lineage, seeds from a diagnosis."""

from __future__ import annotations

import pytest
from tiny_models import (
    BAND,
    EASY,
    SEED_PROBLEM,
    TOY_TEMPLATE,
    UNSOLVABLE,
    one_torch_thread,
    toy_seed,
)

from svs.core.records import Problem, Rollout, RolloutGroup
from svs.pipeline.memorization import DiagnosisConfig, diagnose
from svs.pipeline.policy.hf import HFPolicy
from svs.synthesizers.registry import Seed, synthesize
from svs.synthesizers.svs import (
    SvSConfig,
    candidates_from_outputs,
    cap_seeds,
    render_prompt,
    seeds_from_diagnosis,
)


@pytest.fixture(scope="module")
def toy_template(tmp_path_factory):
    path = tmp_path_factory.mktemp("template") / "toy.txt"
    path.write_text(TOY_TEMPLATE)
    return str(path)


def test_default_prompt_shows_the_solution_only():
    seed = Seed(Problem("Secret original wording about 17 cows.", "17"), "So 10 + 7 = 17.")
    prompt = render_prompt(SvSConfig().template(), seed, include_problem=False)
    assert "So 10 + 7 = 17." in prompt and "cows" not in prompt
    assert "```text" in prompt and "{solution}" not in prompt
    with_problem = SvSConfig(include_problem=True)
    prompt = render_prompt(with_problem.template(), seed, include_problem=True)
    assert "Secret original wording about 17 cows." in prompt and "{problem}" not in prompt


def test_braces_in_solutions_survive_rendering():
    seed = Seed(SEED_PROBLEM, "We get \\frac{1}{2} and {x} = \\boxed{7}.")
    assert "\\frac{1}{2} and {x} = \\boxed{7}." in render_prompt("{solution}", seed, False)


@pytest.mark.parametrize("kwargs, message", [
    ({"n_samples": 0}, "n_samples"),
    ({"max_seeds_per_problem": 0}, "max_seeds_per_problem"),
    ({"template_path": "/nonexistent/template.txt"}, "not a file"),
    ({"temperature": -0.5}, "temperature"),
])
def test_config_checks(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SvSConfig(**kwargs)


def test_template_needs_its_slots(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("no slot here")
    with pytest.raises(ValueError, match="no \\{solution\\} slot"):
        SvSConfig(template_path=str(path))
    path.write_text("{solution} only")
    with pytest.raises(ValueError, match="\\{problem\\}"):
        SvSConfig(template_path=str(path), include_problem=True)


def test_outputs_become_candidates_with_reasons_and_lineage():
    seed = toy_seed()
    outputs = ["```text\nA problem about seven apples.\n```",
               "no block at all",
               "```text\nA  problem about seven apples.\n```",  # same after normalizing
               "```text\nAnother problem about seven pears.\n```",
               "```text\nA third problem about seven plums.\n```"]
    candidates = candidates_from_outputs(seed, outputs, SvSConfig(max_candidates_per_seed=2))
    assert [c.reason for c in candidates] == [None, "no_problem_extracted", "duplicate_sample",
                                              None, "seed_cap"]
    variant = candidates[0].problem
    assert variant.answer == SEED_PROBLEM.answer  # the original's answer
    assert (variant.parent_id, variant.origin_id) == (SEED_PROBLEM.id, SEED_PROBLEM.origin_id)
    assert variant.generation == 1 and variant.synthesizer == "svs"
    assert variant.metadata["seed_rollout"] == "step=0/sample=0"
    assert variant.metadata["extraction"] == "text_block"
    assert candidates[1].raw_output == "no block at all"


def test_seed_cap_per_problem():
    other = Problem("Another problem entirely here.", "3")
    seeds = [Seed(SEED_PROBLEM, f"s{i}") for i in range(5)] + [Seed(other, "t")]
    kept = cap_seeds(seeds, 2)
    assert [s.solution for s in kept] == ["s0", "s1", "t"]
    assert cap_seeds(seeds, None) == seeds


def test_svs_with_the_toy_policy(toy_policy_dir, toy_template):
    policy = HFPolicy.from_pretrained(toy_policy_dir, device="cpu")
    config = SvSConfig(template_path=toy_template, n_samples=8, max_new_tokens=40, seed=0)
    with one_torch_thread():
        candidates = synthesize("svs", [toy_seed()], policy, config)
    assert len(candidates) == 8
    texts = {c.problem.text for c in candidates if c.problem is not None}
    assert texts and texts <= {EASY, BAND, UNSOLVABLE}
    reasons = {c.reason for c in candidates if c.problem is None}
    assert reasons <= {"no_problem_extracted", "duplicate_sample"}


def test_svs_needs_a_policy():
    with pytest.raises(ValueError, match="needs a policy"):
        synthesize("svs", [toy_seed()], None)


def _group(problem: Problem, n_correct: int, n: int = 8) -> RolloutGroup:
    rollouts = [Rollout(problem.id, problem.text, problem.answer,
                        completion=f"{'right' if i < n_correct else 'wrong'} way {i}: \\boxed{{1}}",
                        correct=i < n_correct) for i in range(n)]
    return RolloutGroup.from_rollouts(rollouts)


def test_seeds_from_diagnosis():
    learning = SEED_PROBLEM
    solved = Problem("An easy problem the policy always solves.", "1")
    diagnosis = diagnose([_group(learning, 3), _group(solved, 8)], DiagnosisConfig())
    seeds = seeds_from_diagnosis(diagnosis, [learning, solved], SvSConfig(max_seeds_per_problem=2))
    assert [s.problem for s in seeds] == [learning, learning]
    assert [s.solution for s in seeds] == ["right way 0: \\boxed{1}", "right way 1: \\boxed{1}"]
    assert seeds[0].rollout_ref == f"{learning.id}/correct=0"


def test_seeds_from_memorized_problems_need_all_solutions_kept():
    memorized = Problem("A problem answered the same way every time.", "4")
    group = RolloutGroup.from_rollouts([Rollout(memorized.id, memorized.text, "4",
                                                completion="same words \\boxed{4}",
                                                correct=True)] * 8)
    with pytest.raises(ValueError, match="keep_solutions='all'"):
        seeds_from_diagnosis(diagnose([group]), [memorized], SvSConfig(seed_labels=("memorized",)))
    diagnosis = diagnose([group], DiagnosisConfig(keep_solutions="all"))
    seeds = seeds_from_diagnosis(diagnosis, [memorized], SvSConfig(seed_labels=("memorized",)))
    assert diagnosis.problems[0].label == "memorized"
    assert [s.solution for s in seeds] == ["same words \\boxed{4}"] * 4  # capped per problem
