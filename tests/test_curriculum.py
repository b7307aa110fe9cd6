"""The lab's curriculum: kinds with three methods, sympy answers, the split, variants."""

from __future__ import annotations

import random

import pytest

from svs.flows.lab import curriculum as cur
from svs.flows.lab.methods import entropy, faithful, mean_shares, parse_problem

SMALL = cur.CurriculumConfig(n_heldout=60, n_pool=90, n_bootstrap=300)


@pytest.fixture(scope="module")
def parts():
    return cur.split(SMALL)


def test_draws_are_deterministic_and_item_local():
    assert cur.draw(SMALL, 17) == cur.draw(SMALL, 17)
    assert cur.draw(SMALL, 17) != cur.draw(SMALL, 18)
    other_seed = cur.CurriculumConfig(seed=1, n_heldout=60, n_pool=90, n_bootstrap=300)
    assert [cur.draw(other_seed, i).problem.text for i in range(20)] != [
        cur.draw(SMALL, i).problem.text for i in range(20)]


def test_split_parts_are_disjoint_and_the_probe_and_pool_distinct(parts):
    texts = [{i.problem.text for i in part} for part in (parts.heldout, parts.pool, parts.bootstrap)]
    assert len(parts.heldout) == 60 and len(texts[0]) == 60
    assert len(parts.pool) == 90 and len(texts[1]) == 90
    assert len(parts.bootstrap) == 300
    assert not texts[0] & texts[1] and not texts[0] & texts[2] and not texts[1] & texts[2]
    assert {i.kind for i in parts.heldout} == set(cur.KINDS)


def test_every_method_of_every_kind_is_graded_correct_and_opens_with_its_tag(parts):
    from svs.verifiers.grader import grade_batch

    pairs, expected = [], []
    for item in parts.heldout[:30]:
        for method in cur.METHODS[item.kind]:
            solution = cur.solution_of(item.spec, method, random.Random(0))
            assert cur.method_of(solution) == method
            pairs.append((item.problem.answer, solution))
            expected.append(True)
            wrong = solution.replace(f"\\boxed{{{item.problem.answer}}}",
                                     f"\\boxed{{{int(item.problem.answer) + 1}}}")
            pairs.append((item.problem.answer, wrong))
            expected.append(False)
    assert [g.correct for g in grade_batch(pairs)] == expected
    assert cur.method_of("no tag here") is None


def test_methods_differ_by_construction():
    spec = cur.Spec("mul", (7, 8), 0)
    steps = {m: cur.steps_of(spec, m, random.Random(0)) for m in cur.METHODS["mul"]}
    assert steps["direct"] == ["7 * 8 = 56."]
    assert steps["split"] == ["7 = 3 + 4.", "3 * 8 = 24.", "4 * 8 = 32.", "24 + 32 = 56."]
    assert steps["round"] == ["7 = 10 - 3.", "10 * 8 = 80.", "3 * 8 = 24.", "80 - 24 = 56."]
    guess = cur.steps_of(cur.Spec("linear", (3, 4, 2), 0), "guess", random.Random(0))
    assert guess[1] == "Try x = 4: 3 * 4 + 2 = 14, correct." and guess[-1] == "x = 4."
    assert cur.steps_of(cur.Spec("sum", (4, 8, 7), 0), "right", random.Random(0)) == [
        "8 + 7 = 15.", "4 + 15 = 19."]
    with pytest.raises(ValueError, match="methods"):
        cur.steps_of(spec, "isolate", random.Random(0))


def test_every_phrasing_parses_back_to_its_spec(parts):
    for item in parts.heldout + parts.pool:
        assert parse_problem(item.problem.text) == item.spec
    assert parse_problem("Solve for x: 3x + 2 = 12.") is None  # no integer root
    assert parse_problem("What is 7 times 8? " + "9" * 300) is None
    assert parse_problem("__import__('os').system('x')") is None
    assert faithful("What is 8 times 7?", "56") and not faithful("What is 8 times 7?", "57")


def test_variants_have_the_same_answer_by_sympy_and_another_text(parts):
    found = 0
    for index, item in enumerate(parts.pool):
        other = cur.variant(item, random.Random(index), SMALL)
        if other is None:
            continue
        found += 1
        assert other.problem.text != item.problem.text
        assert cur.answer_of(other.spec) == cur.answer_of(item.spec)
        assert other.spec.numbers != item.spec.numbers
        assert cur.in_ranges(other.spec)
    assert found >= 0.7 * len(parts.pool)


def test_synthesis_pairs_target_a_variant_never_the_original(parts):
    solve, synthesis = cur.training_pairs(SMALL, parts.bootstrap)
    assert len(solve) == len(parts.bootstrap)
    assert len(synthesis) == round(len(parts.bootstrap) * 0.3 / 0.7)
    originals = {i.problem.text for i in parts.bootstrap}
    for prompt, target in synthesis:
        text = target.removeprefix("```text\n").removesuffix("\n```")
        assert "{solution}" not in prompt and "\\boxed{" in prompt
        assert parse_problem(text) is not None
        assert text not in prompt
    assert sum(t.removeprefix("```text\n").removesuffix("\n```") in originals
               for _, t in synthesis) < len(synthesis)  # a variant may equal another item


def test_method_statistics():
    assert entropy({"a": 1 / 3, "b": 1 / 3, "c": 1 / 3}) == pytest.approx(1.0986, abs=1e-4)
    assert entropy({"a": 1.0, "b": 0.0}) == 0
    shares = mean_shares([{"a": 1.0, "b": 0.0}, {"a": 0.0, "c": 1.0}])
    assert shares == {"a": 0.5, "b": 0.0, "c": 0.5}


def test_config_errors_say_what_to_fix():
    with pytest.raises(ValueError, match="kinds"):
        cur.CurriculumConfig(kinds=("nope",))
    with pytest.raises(ValueError, match="n_pool"):
        cur.CurriculumConfig(n_pool=0)
    with pytest.raises(ValueError, match="synthesis_fraction"):
        cur.CurriculumConfig(synthesis_fraction=1.0)
    with pytest.raises(ValueError, match="problems found"):
        cur.split(cur.CurriculumConfig(kinds=("mul",), n_heldout=500, n_pool=1, n_bootstrap=1))


def test_the_lab_tokenizer_splits_digits_and_keeps_tags_whole():
    from svs.pipeline.policy.tiny import train_tokenizer

    tok = train_tokenizer(["What is 123 times 45? [split] 3 = 1 + 2."] * 20, vocab_size=300,
                          digits=True, added_tokens=cur.TAGS)
    for tag in cur.TAGS:
        assert len(tok(tag, add_special_tokens=False)["input_ids"]) == 1
    pieces = tok.tokenize("123")
    assert [p.replace("Ġ", "") for p in pieces] == ["1", "2", "3"]
    ids = tok("[split] 3 * 8 = 24.", add_special_tokens=False)["input_ids"]
    assert tok.decode(ids) == "[split] 3 * 8 = 24."
