"""The lab study's statistics (flows/lab/stats.py) and decision rules (flows/lab/rules.py)."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest

from svs.flows.lab.rules import (
    DecisionRules,
    PairedControl,
    ShareBelowControl,
    analyse,
    evaluate_control,
    parse_rules,
)
from svs.flows.lab.stats import _flip_p, _subset_means, holm, paired_diffs, paired_t, sign_flip

# ---------------------------------------------------------------- statistics


def _t3_two_sided(t: float) -> float:
    """Two-sided p of Student t with 3 degrees of freedom, closed form."""
    x = abs(t) / math.sqrt(3)
    cdf = 0.5 + (x / (1 + x * x) + math.atan(x)) / math.pi
    return 2 * (1 - cdf)


def test_paired_t_matches_a_hand_computation():
    iv = paired_t([1.0, 2.0, 3.0, 4.0], 0.95)
    sd = math.sqrt(5 / 3)  # squared deviations 2.25 + 0.25 + 0.25 + 2.25 = 5, over n-1 = 3
    half = 3.182446305284263 * sd / 2  # t_{0.975, 3} from tables, se = sd / sqrt(4)
    assert (iv.mean, iv.n, iv.test) == (2.5, 4, "t")
    assert iv.sd == pytest.approx(sd)
    assert (iv.low, iv.high) == pytest.approx((2.5 - half, 2.5 + half))
    assert iv.p == pytest.approx(_t3_two_sided(2.5 / (sd / 2)), rel=1e-9)


def test_paired_t_with_equal_differences_collapses():
    iv = paired_t([0.25] * 4)
    assert (iv.low, iv.mean, iv.high, iv.p, iv.sd) == (0.25, 0.25, 0.25, 0.0, 0.0)
    assert paired_t([0.0, 0.0, 0.0]).p == 1.0


def test_t_interval_covers_the_true_mean_about_95_percent():
    draws = np.random.default_rng(20240601).normal(0.1, 0.2, size=(2000, 8))
    covered = 0
    for row in draws:
        iv = paired_t(row, 0.95)
        covered += iv.low <= 0.1 <= iv.high
    assert 0.93 <= covered / 2000 <= 0.97


@pytest.mark.parametrize("bad, message", [([1.0], "at least 2"), ([1.0, math.nan], "finite")])
def test_tests_refuse_too_few_or_non_finite_differences(bad, message):
    for test in (paired_t, sign_flip):
        with pytest.raises(ValueError, match=message):
            test(bad)
    with pytest.raises(ValueError, match="confidence"):
        paired_t([1.0, 2.0], confidence=95)


def test_sign_flip_p_for_five_positive_differences_is_two_in_32():
    iv = sign_flip([0.1, 0.2, 0.05, 0.3, 0.15])
    assert iv.p == 2 / 32 and iv.test == "signflip" and iv.n == 5
    assert sign_flip([0.1, 0.2, 0.05, 0.3, 0.15, 0.4]).p == 2 / 64
    assert sign_flip([0.0, 0.0, 0.0]).p == 1.0


@pytest.mark.parametrize("n", [2, 3, 4, 5])
def test_sign_flip_interval_is_the_data_range_up_to_five_pairs(n):
    rng = np.random.default_rng(n)
    for _ in range(5):
        d = rng.normal(0.1, 1.0, n)
        iv = sign_flip(d, 0.95)
        assert (iv.low, iv.high) == (pytest.approx(d.min()), pytest.approx(d.max()))


def test_sign_flip_interval_is_the_set_of_accepted_shifts():
    """Bisection must find the ends a brute-force scan of every candidate finds."""
    rng = np.random.default_rng(7)
    for n in (6, 7, 8, 10, 10):
        d = rng.normal(0.3, 1.0, n)
        iv = sign_flip(d, 0.95)
        accepted = [c for c in _subset_means(d) if _flip_p(d - c) >= 0.05]
        assert (iv.low, iv.high) == (pytest.approx(min(accepted)), pytest.approx(max(accepted)))
        if n == 6:  # at delta = min(d) one difference ties at 0: p = 4/64 >= 0.05, accepted
            assert (iv.low, iv.high) == (d.min(), d.max())
        else:
            assert d.min() < iv.low < iv.mean < iv.high < d.max()


def test_sign_flip_and_t_agree_roughly_on_normal_data():
    rng = np.random.default_rng(11)
    gaps = []
    for _ in range(20):
        d = rng.normal(0.3, 1.0, 12)
        flip, t = sign_flip(d), paired_t(d)
        gaps.append(abs(flip.p - t.p))
        assert abs(flip.low - t.low) < 0.25 and abs(flip.high - t.high) < 0.25
    assert max(gaps) < 0.06 and np.mean(gaps) < 0.02


def test_sign_flip_refuses_more_than_16_pairs():
    with pytest.raises(ValueError, match="t test"):
        sign_flip(np.ones(17))


def test_holm_matches_a_hand_example_and_caps_at_one():
    assert holm({"a": 0.01, "b": 0.04, "c": 0.03}) == pytest.approx(
        {"a": 0.03, "b": 0.06, "c": 0.06})
    assert holm({"a": 0.5, "b": 0.6}) == {"a": 1.0, "b": 1.0}
    assert holm({}) == {}
    with pytest.raises(ValueError, match="'x'"):
        holm({"x": 1.5})


def test_paired_diffs_use_the_common_seeds_only():
    per_seed = {"a": {0: {"k": 1.0, "j": 0.5}, 1: {"k": 2.0, "j": 0.5}, 2: {"k": 9.0}},
                "b": {0: {"k": 0.5}, 1: {"k": 1.0}, 5: {"k": 3.0}}}
    assert paired_diffs(per_seed, "a", "k", "b") == ([0.5, 1.0], [0, 1])
    one = {"a": {s: per_seed["a"][s] for s in (0, 1)}}
    assert paired_diffs(one, "a", "k", "a", "j") == ([0.5, 1.5], [0, 1])
    with pytest.raises(ValueError, match="share 1 seed"):
        paired_diffs({"a": per_seed["a"], "c": {2: {"k": 1.0}}}, "a", "k", "c")
    with pytest.raises(ValueError, match="'j' is missing for arm 'a' seed 2"):
        paired_diffs(per_seed, "a", "j", "a", "k")


# ---------------------------------------------------------------- decision rules

SEEDS = range(5)
JITTER = [0.004, -0.003, 0.001, -0.002, 0.0]  # small paired noise, mean 0


def _arm(gain=0.0, entropy=0.10, pass1=0.10, tokens=100.0, noise=1.0):
    """One arm's runs: pass@16 from 0.30 at step 0 to 0.30 + gain at step 120."""
    return {s: {"heldout/pass@16/step0": 0.30, "heldout/pass@16/step120":
                0.30 + gain + noise * JITTER[s],
                "heldout/method_entropy/step0": 0.40,
                "heldout/method_entropy/step120": entropy + JITTER[s] / 10,
                "heldout/pass@1/step120": pass1, "tokens": tokens} for s in SEEDS}


POSITIVE = ShareBelowControl(name="entropy_collapses", arm="fixed",
                             metric="heldout/method_entropy", description="fixed collapses")


def _study():
    return {"fixed": _arm(), "refresh": _arm(gain=0.10, entropy=0.25, tokens=120.0, noise=3),
            "online": _arm(gain=0.10, entropy=0.25, tokens=300.0, noise=-2),
            "worse": _arm(gain=-0.05, noise=4), "noisy": _arm(gain=0.06, entropy=0.25, noise=30),
            "flat_entropy": _arm(gain=0.10, entropy=0.15, noise=3),
            "pass1_drop": _arm(gain=0.10, entropy=0.25, pass1=0.05, noise=3)}


def test_each_verdict_from_a_constructed_study():
    result = analyse(_study(), DecisionRules(), [POSITIVE])
    verdicts = {arm: (row["comparison"] or {}).get("verdict")
                for arm, row in result["arms"].items()}
    assert verdicts == {"fixed": None, "refresh": "shown", "online": "shown, over budget",
                        "worse": "refuted", "noisy": "inconclusive",
                        "flat_entropy": "inconclusive", "pass1_drop": "inconclusive"}
    assert result["valid"] and result["invalid_because"] == []
    reasons = {arm: row["comparison"]["reasons"] for arm, row in result["arms"].items()
               if row["comparison"]}
    assert "entropy ratio 1.5 < 2: not met" in reasons["flat_entropy"]
    assert "gain +0.1 >= +0.05: met" in reasons["flat_entropy"]
    assert "pass@1 diff -0.05 < -0.02: not met" in reasons["pass1_drop"]
    assert "token ratio 3 > 1.5: not met" in reasons["online"]
    assert any(r.startswith("refutation: gain interval high") and r.endswith(": met")
               for r in reasons["worse"])
    refresh = result["arms"]["refresh"]["comparison"]
    assert refresh["gain"]["n"] == 5 and refresh["gain"]["test"] == "t"
    assert refresh["gain"]["mean"] == pytest.approx(0.10)
    assert refresh["entropy_ratio"] == pytest.approx(2.5) and refresh["token_ratio"] == 1.2
    assert refresh["pass1_diff"] == {"mean": 0.0, "low": 0.0, "high": 0.0, "n": 5}
    json.dumps(result)  # JSON-serialisable as it stands


def test_gain_is_adjusted_by_holm_over_the_compared_arms():
    result = analyse(_study(), DecisionRules(), [POSITIVE])
    arms = [a for a in result["arms"] if a != "fixed"]
    raw = {a: result["arms"][a]["comparison"]["gain"]["p"] for a in arms}
    for arm, p in holm(raw).items():
        assert result["arms"][arm]["comparison"]["gain"]["p_adjusted"] == p
    plain = analyse(_study(), DecisionRules(correction="none"), [POSITIVE])
    assert plain["arms"]["noisy"]["comparison"]["gain"]["p_adjusted"] == raw["noisy"]


def test_gain_is_a_difference_in_improvement_from_the_start_step():
    study = _study()
    for s in SEEDS:  # the refresh arm starts 0.02 higher and ends 0.10 higher
        study["refresh"][s]["heldout/pass@16/step0"] += 0.02
    gain = analyse(study, DecisionRules(), [POSITIVE])["arms"]["refresh"]["comparison"]["gain"]
    with pytest.raises(ValueError, match="needs of_step"):
        analyse(study, DecisionRules(start_step=None), [POSITIVE])
    late = analyse(study, DecisionRules(start_step=None), [dataclasses.replace(POSITIVE,
                                                                                of_step=0)])
    assert gain["mean"] == pytest.approx(0.08)
    assert late["arms"]["refresh"]["comparison"]["gain"]["mean"] == pytest.approx(0.10)


def test_a_failed_control_leaves_every_verdict_not_read_with_the_numbers():
    failing = ShareBelowControl(name="too_strict", arm="fixed", metric="heldout/method_entropy",
                                factor=0.1)
    result = analyse(_study(), DecisionRules(), [POSITIVE, failing])
    assert not result["valid"] and result["invalid_because"] == ["too_strict"]
    for arm, row in result["arms"].items():
        if arm != "fixed":
            assert row["comparison"]["verdict"] == "not read"
            assert row["comparison"]["reasons"][0] == \
                "not read: positive control(s) failed: too_strict"
    assert result["arms"]["refresh"]["comparison"]["gain"]["mean"] == pytest.approx(0.10)
    nothing_ran = analyse(_study(), DecisionRules(), [])
    assert not nothing_ran["valid"] and nothing_ran["invalid_because"] == []
    assert nothing_ran["arms"]["refresh"]["comparison"]["reasons"][0] == \
        "not read: no control was run in this study"


def test_output_schema():
    result = analyse(_study(), DecisionRules(), [POSITIVE], titles={"fixed": "GRPO fixed"})
    assert set(result) == {"valid", "invalid_because", "controls", "baseline", "arms",
                           "recovery", "rules"}
    assert set(result["controls"][0]) == {"name", "description", "kind", "passed", "status",
                                          "estimate", "low", "high", "p", "n", "detail"}
    assert "GRPO fixed (fixed)" in result["controls"][0]["detail"]
    fixed, refresh = result["arms"]["fixed"], result["arms"]["refresh"]
    assert set(fixed) == {"seeds", "means", "sds", "comparison"} and fixed["comparison"] is None
    assert fixed["seeds"] == [0, 1, 2, 3, 4] and fixed["means"]["tokens"] == 100.0
    assert fixed["sds"]["tokens"] == 0.0
    assert set(refresh["comparison"]) == {"gain", "entropy_ratio", "pass1_diff", "token_ratio",
                                          "verdict", "reasons"}
    assert set(refresh["comparison"]["gain"]) == {"mean", "low", "high", "p", "p_adjusted",
                                                  "n", "test"}
    assert result["rules"]["min_gain"] == 0.05 and result["recovery"] is None
    one_seed = analyse({"fixed": {0: {"tokens": 1.0}}}, DecisionRules(), [])
    assert one_seed["arms"]["fixed"]["sds"] == {"tokens": None}


def test_sign_flip_rules_cannot_show_anything_at_five_seeds():
    study = {arm: _study()[arm] for arm in ("fixed", "refresh")}
    result = analyse(study, DecisionRules(test="signflip"), [POSITIVE])
    gain = result["arms"]["refresh"]["comparison"]["gain"]
    assert gain["test"] == "signflip" and gain["p"] == 2 / 32 and gain["low"] > 0
    assert result["arms"]["refresh"]["comparison"]["verdict"] == "inconclusive"


def test_recovery_fraction_reported_or_none_with_a_reason():
    study = _study() | {"oracle": _arm(gain=0.20, entropy=0.25)}
    recovery = {"arm": "refresh", "oracle": "oracle"}
    result = analyse(study, DecisionRules(recovery=recovery), [POSITIVE])
    assert result["recovery"]["fraction"] == pytest.approx(0.5)
    study["oracle"] = _arm(gain=0.01)
    weak = analyse(study, DecisionRules(recovery=recovery), [POSITIVE])["recovery"]
    assert weak["fraction"] is None and "min_oracle_gain" in weak["reason"]
    del study["oracle"]
    absent = analyse(study, DecisionRules(recovery=recovery), [POSITIVE])["recovery"]
    assert absent["fraction"] is None and "not run" in absent["reason"]


def test_controls_pass_fail_and_not_run():
    study, rules = _study(), DecisionRules()
    share = evaluate_control(POSITIVE, study, rules)
    assert share["passed"] is True and share["status"] == "passed" and share["estimate"] == 1.0
    study["fixed"][0]["heldout/method_entropy/step120"] = 0.3  # 4/5 seeds: still 80%
    assert evaluate_control(POSITIVE, study, rules)["estimate"] == 0.8
    assert evaluate_control(POSITIVE, study, rules)["passed"] is True
    study["fixed"][1]["heldout/method_entropy/step120"] = 0.3  # 3/5
    assert evaluate_control(POSITIVE, study, rules)["status"] == "failed"
    above = PairedControl(name="beats", arm="refresh", key="heldout/pass@16/step120",
                          other_arm="fixed")
    row = evaluate_control(above, study, rules)
    assert row["passed"] is True and row["n"] == 5 and row["low"] > 0
    assert row["estimate"] == pytest.approx(0.10)
    below = PairedControl(name="b", arm="refresh", key="heldout/pass@16/step120",
                          other_key="heldout/pass@16/step0", direction="below")
    assert evaluate_control(below, study, rules)["passed"] is False
    ghost = PairedControl(name="g", arm="ghost", key="k", other_arm="fixed")
    row = evaluate_control(ghost, study, rules)
    assert (row["passed"], row["status"], row["n"]) == (None, "not run in this study", 0)
    result = analyse(_study(), rules, [POSITIVE, ghost])
    assert result["valid"] and result["controls"][1]["status"] == "not run in this study"


def test_parse_rules_reads_both_sections_strictly():
    rules, controls = parse_rules({"arms": ["ignored"], "rules": {"min_gain": 0.1, "test":
                                   "signflip"}, "controls": [
        {"kind": "share_below", "name": "c1", "arm": "fixed",
         "metric": "heldout/method_entropy", "factor": 0.4},
        {"kind": "paired", "name": "c2", "arm": "oracle", "key": "heldout/pass@16/step120",
         "other_arm": "fixed"}]})
    assert rules.min_gain == 0.1 and rules.test == "signflip" and rules.baseline == "fixed"
    assert [type(c) for c in controls] == [ShareBelowControl, PairedControl]
    assert controls[0].factor == 0.4 and controls[1].direction == "above"
    assert parse_rules({}) == (DecisionRules(), [])


@pytest.mark.parametrize("study, message", [
    ({"rules": {"min_gian": 0.1}}, r"unknown rule\(s\) \['min_gian'\] in rules; valid:"),
    ({"rules": {"test": "wilcoxon"}}, "rules.test must be one of t, signflip"),
    ({"rules": {"correction": "bonferroni"}}, "holm, none"),
    ({"rules": {"confidence": 1.5}}, "confidence"),
    ({"rules": {"recovery": {"arm": "a"}}}, r"missing \['oracle'\]"),
    ({"controls": [{"kind": "range", "name": "x"}]}, "valid kinds: share_below, paired"),
    ({"controls": [{"kind": "paired", "name": "x", "key": "k"}]}, "'x' .* is missing arm"),
    ({"controls": [{"kind": "share_below", "name": "x", "arm": "a", "metric": "m",
                    "fator": 0.5}]}, r"unknown control field\(s\) \['fator'\]"),
    ({"controls": [{"kind": "paired", "name": "x", "arm": "a", "key": "k"}]}, "itself"),
    ({"controls": [{"kind": "paired", "name": "x", "arm": "a", "key": "k",
                    "other_arm": "b", "direction": "up"}]}, "above, below"),
    ({"controls": [{"kind": "share_below", "name": "x", "arm": "a", "metric": "m"}] * 2},
     "unique"),
])
def test_parse_errors_say_what_to_fix(study, message):
    with pytest.raises(ValueError, match=message):
        parse_rules(study)


@pytest.mark.parametrize("value", [math.nan, None, math.inf])
def test_a_non_finite_metric_names_arm_seed_and_key(value):
    study = _study()
    study["noisy"][3]["heldout/pass@1/step120"] = value
    with pytest.raises(ValueError, match=r"'heldout/pass@1/step120' of arm 'noisy' seed 3"):
        analyse(study, DecisionRules(), [POSITIVE])


def test_analyse_needs_the_baseline_arm():
    with pytest.raises(ValueError, match="baseline arm 'fixed' is not in this study"):
        analyse({"refresh": _arm()}, DecisionRules(), [])
