"""The lab curriculum: deterministic, provenance on every row, answers the verifier accepts."""

from __future__ import annotations

import pytest

from svs.flows.lab.curriculum import (
    KINDS,
    CurriculumConfig,
    make_item,
    split,
    synthesis_prompt,
    synthesis_target,
    training_pairs,
)
from svs.synthesizers.extract import extract_problem
from svs.verifiers.answers import extract_answer
from svs.verifiers.grader import grade_batch
from svs.verifiers.problems import ProblemCheckConfig, check_problem

SMALL = CurriculumConfig(n_train=150, n_heldout=50, seed=7)


def test_same_seed_same_items_and_any_item_regenerates_alone():
    train, heldout = split(SMALL)
    again_train, again_heldout = split(SMALL)
    assert train == again_train and heldout == again_heldout
    for item in train[::17] + heldout[::9]:
        assert make_item(SMALL, item.problem.metadata["curriculum_index"]) == item
    other, _ = split(CurriculumConfig(n_train=150, n_heldout=50, seed=8))
    assert [i.problem.text for i in other] != [i.problem.text for i in train]


def test_every_row_carries_provenance_and_all_kinds_occur():
    train, heldout = split(SMALL)
    for index, item in enumerate(train):
        meta = item.problem.metadata
        assert meta["curriculum_seed"] == 7 and meta["curriculum_index"] == index
        assert meta["kind"] in KINDS and item.problem.source == "curriculum"
        assert item.problem.to_row()["metadata"]["curriculum_index"] == index
    assert {item.kind for item in train} == set(KINDS)
    assert not {i.problem.text for i in heldout} & {i.problem.text for i in train}


def test_every_answer_is_verified_against_its_own_solution():
    train, heldout = split(SMALL)
    everything = train + heldout
    grades = grade_batch([(item.problem.answer, item.solution) for item in everything])
    failed = [(item.problem.text, grade.reason)
              for item, grade in zip(everything, grades, strict=True) if not grade.correct]
    assert not failed
    assert all(extract_answer(item.solution).method == "boxed" for item in everything)
    # and a wrong answer is caught: the check can fail
    wrong = grade_batch([(str(int(everything[0].problem.answer) + 1), everything[0].solution)])
    assert not wrong[0].correct


def test_linear_answers_solve_the_equation_text():
    config = CurriculumConfig(kinds=("linear",), n_train=40, n_heldout=0, max_value=9)
    train, _ = split(config)
    for item in train:
        left, right = item.problem.text.removeprefix("Solve for x: ").rstrip(".").split(" = ")
        coefficient, sign, constant = left.split(" ")
        x = int(item.problem.answer)
        offset = int(constant) if sign == "+" else -int(constant)
        assert int(coefficient.removesuffix("x")) * x + offset == int(right)


def test_synthesis_targets_extract_to_the_problem_and_prompts_use_the_svs_template():
    train, _ = split(SMALL)
    for item in train[:40]:
        extracted = extract_problem(synthesis_target(item))
        assert extracted.ok and extracted.method == "text_block"
        assert extracted.text == item.problem.text
        prompt = synthesis_prompt(SMALL, item)
        assert item.solution in prompt and item.problem.text not in prompt
        assert "fenced block tagged text" in prompt


def test_training_pairs_mix_both_tasks_in_the_configured_share():
    train, _ = split(SMALL)
    pairs = training_pairs(SMALL, train)
    synthesis = [p for p in pairs if p[1].startswith("```text")]
    assert len(synthesis) == len(train) and len(pairs) == 2 * len(train)
    solve_only = training_pairs(CurriculumConfig(n_train=150, synthesis_fraction=0), train)
    assert len(solve_only) == len(train)
    assert all(prompt.endswith("within \\boxed{}.") for prompt, _ in solve_only)


@pytest.mark.parametrize("kwargs, message", [
    ({"kinds": ("division",)}, "kinds"),
    ({"n_train": 0}, "n_train"),
    ({"max_value": 1}, "max_value"),
    ({"synthesis_fraction": 1.5}, "synthesis_fraction"),
    ({"solve_template": "no slot"}, "{problem}"),
    ({"synthesis_template_path": "/nonexistent/template.txt"}, "not a file"),
])
def test_bad_config_names_the_field(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("{", r"\{").replace("}", r"\}")):
        CurriculumConfig(**kwargs)


def test_too_few_distinct_problems_is_a_clear_error():
    with pytest.raises(ValueError, match="raise max_value"):
        split(CurriculumConfig(kinds=("add",), max_value=2, n_train=20, n_heldout=5))


def test_every_problem_passes_the_pipelines_problem_checks():
    """Online SvS rejects synthesized problems that fail these checks (too short, ...),
    so a policy that reproduces curriculum problems must write acceptable ones."""
    train, heldout = split(SMALL)
    checks = ProblemCheckConfig()
    verdicts = [(item.problem.text, check_problem(item.problem.text, item.problem.answer,
                                                  checks)) for item in train + heldout]
    assert not [(text, verdict.reason) for text, verdict in verdicts if not verdict.ok]
