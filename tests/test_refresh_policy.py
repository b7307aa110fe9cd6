import pytest

from svs.core.records import Problem
from svs.pipeline import lineage
from svs.pipeline.refresh import RefreshConfig, plan_refresh

ORIGINALS = [Problem(f"What is {i} + {i}?", str(2 * i)) for i in range(1, 7)]


def graph():
    return lineage.graph_for(ORIGINALS, 1)


def variants(parent, count, synthesizer="svs"):
    return [parent.variant(f"{parent.text} (variant {k})", synthesizer=synthesizer)
            for k in range(count)]


def reasons(plan):
    return [r["reason"] for r in plan.rejects]


def test_memorized_downweighted_then_retired_on_second_diagnosis():
    labels = {ORIGINALS[0].id: "memorized", ORIGINALS[1].id: "learning"}
    plan = plan_refresh(ORIGINALS, {}, graph(), [], labels, RefreshConfig(), 2)
    assert plan.downweighted == {ORIGINALS[0].id: 0.25}
    assert plan.weights[ORIGINALS[0].id] == 0.25 and plan.weights[ORIGINALS[1].id] == 1.0
    assert plan.retired == {}
    again = plan_refresh(plan.problems, plan.weights, plan.lineage, [], labels, RefreshConfig(), 3)
    assert again.retired == {ORIGINALS[0].id: "memorized"}
    assert ORIGINALS[0].id not in {p.id for p in again.problems}
    assert again.lineage.nodes[ORIGINALS[0].id]["retired_in"] == 3


@pytest.mark.parametrize("action,expected_size,retired", [("retire", 5, 1), ("keep", 6, 0)])
def test_memorized_actions(action, expected_size, retired):
    labels = {ORIGINALS[0].id: "memorized"}
    plan = plan_refresh(ORIGINALS, {}, graph(), [], labels,
                        RefreshConfig(memorized_action=action), 2)
    assert len(plan.problems) == expected_size and len(plan.retired) == retired
    assert plan.downweighted == {}


def test_variants_added_with_lineage_and_a_retired_parent_keeps_its_family():
    accepted = variants(ORIGINALS[0], 2)
    plan = plan_refresh(ORIGINALS, {}, graph(), accepted, {ORIGINALS[0].id: "memorized"},
                        RefreshConfig(memorized_action="retire"), 2)
    assert plan.added == tuple(p.id for p in accepted)
    assert plan.retired == {ORIGINALS[0].id: "memorized"}
    assert lineage.descendants(plan.lineage, ORIGINALS[0].id) == set(plan.added)
    assert plan.summary()["added"] == 2 and plan.summary()["size"] == 7


def test_family_cap_counts_existing_active_variants():
    config = RefreshConfig(max_variants_per_origin=3)
    first = plan_refresh(ORIGINALS, {}, graph(), variants(ORIGINALS[0], 2), {}, config, 2)
    more = [ORIGINALS[0].variant(f"Another {k}", synthesizer="svs") for k in range(3)]
    second = plan_refresh(first.problems, first.weights, first.lineage, more, {}, config, 3)
    assert len(second.added) == 1
    assert reasons(second) == ["family_cap", "family_cap"]


def test_depth_cap_duplicates_and_unknown_parents_each_have_a_reason():
    child = variants(ORIGINALS[1], 1)[0]
    grandchild = child.variant("deeper", synthesizer="svs")
    great = grandchild.variant("deepest", synthesizer="svs")
    same_text = ORIGINALS[2].variant(ORIGINALS[3].text, answer="999", synthesizer="svs")
    stranger = Problem("Who?", "1").variant("Who is it?", synthesizer="svs")
    accepted = [child, child, grandchild, great, same_text, stranger, ORIGINALS[4]]
    plan = plan_refresh(ORIGINALS, {}, graph(), accepted, {}, RefreshConfig(), 2)
    assert plan.added == (child.id, grandchild.id)
    assert reasons(plan) == ["duplicate", "depth_cap", "duplicate_text", "unknown_parent",
                             "unknown_parent"]
    assert all(r["stage"] == "refresh" and r["detail"] for r in plan.rejects)


def test_a_retired_problem_never_comes_back():
    child = variants(ORIGINALS[1], 1)[0]
    first = plan_refresh(ORIGINALS, {}, graph(), [child], {child.id: "memorized"},
                         RefreshConfig(), 2)
    retired = plan_refresh(first.problems, first.weights, first.lineage, [],
                           {child.id: "memorized"}, RefreshConfig(memorized_action="retire"), 3)
    back = plan_refresh(retired.problems, retired.weights, retired.lineage, [child], {},
                        RefreshConfig(), 4)
    assert back.added == () and reasons(back) == ["duplicate"]


def test_synthetic_share_is_capped():
    accepted = [v for parent in ORIGINALS for v in variants(parent, 3)]
    plan = plan_refresh(ORIGINALS, {}, graph(), accepted, {},
                        RefreshConfig(max_synthetic_fraction=0.25), 2)
    assert len(plan.added) == 2  # 2 / (2 + 6) = 0.25
    assert reasons(plan).count("mix_cap") == len(accepted) - 2


def test_target_size_refuses_additions_and_trims_lowest_weight_synthetic_first():
    accepted = variants(ORIGINALS[0], 2)
    plan = plan_refresh(ORIGINALS, {}, graph(), accepted, {}, RefreshConfig(target_size=7), 2)
    assert len(plan.problems) == 7 and reasons(plan) == ["target_size"]
    weights = dict(plan.weights)
    weights[ORIGINALS[5].id] = 0.5
    trimmed = plan_refresh(plan.problems, weights, plan.lineage, [], {},
                           RefreshConfig(target_size=5), 3)
    # lowest weight goes first, then synthetic before original
    assert set(trimmed.retired) == {ORIGINALS[5].id, accepted[0].id}
    assert set(trimmed.retired.values()) == {"target_size"}


def test_config_checks_say_what_to_fix():
    with pytest.raises(ValueError, match="memorized_action must be one of"):
        RefreshConfig(memorized_action="delete")
    with pytest.raises(ValueError, match="memorized_action='keep'"):
        RefreshConfig(memorized_weight=1.0)
    with pytest.raises(ValueError, match="max_generation must be >= 1"):
        RefreshConfig(max_generation=0)
    with pytest.raises(ValueError, match="unknown refresh setting"):
        RefreshConfig.from_dict({"max_size": 3})
    assert RefreshConfig.from_dict(RefreshConfig().to_dict()) == RefreshConfig()


def test_apply_weights_is_deterministic_and_matches_the_weights():
    from svs.pipeline.refresh import apply_weights

    problems = [Problem(f"Q{i}?", str(i)) for i in range(2000)]
    weights = {p.id: 0.25 for p in problems[:1000]} | {problems[-1].id: 2.0}
    kept = apply_weights(problems, weights, seed=1)
    assert kept == apply_weights(problems, weights, seed=1)
    down = sum(1 for p in kept if p.id in weights and weights[p.id] == 0.25)
    assert 200 < down < 300  # about a quarter of 1000
    assert kept.count(problems[-1]) == 2 and kept.count(problems[1500]) == 1
    assert apply_weights(problems, weights, seed=2) != kept
    assert apply_weights(problems, {}, seed=0) == problems
