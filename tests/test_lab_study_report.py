"""The study report: markdown tables, terminal lines, the figure and the HTML page, drawn
from a synthetic study.json dict (fast: no training, no statistics module)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from svs.flows.lab.study_figures import write_study_figure
from svs.flows.lab.study_report import (
    check_study,
    study_table_markdown,
    verdict_lines,
    write_study_report,
)

SEEDS = [0, 1, 2]
STEPS = [0, 40, 80, 120]
METHODS = ["direct", "split"]
VERDICTS = ["shown", "refuted", "inconclusive", "shown, over budget", "not read"]


def _per_seed(level: float, seed: int) -> dict[str, float]:
    row: dict[str, float] = {"tokens": 1000.0 + seed, "seconds": 12.5}
    for step in STEPS:
        grow = level * step / 120
        share = min(0.9, 0.5 + grow)
        row |= {f"heldout/pass@{k}/step{step}": min(1.0, 0.1 * k ** 0.5 + grow + 0.01 * seed)
                for k in (1, 2, 4, 8, 16)}
        row |= {f"heldout/method_entropy/step{step}": 0.69 - grow + 0.02 * seed,
                f"heldout/method_share/direct/step{step}": share,
                f"heldout/method_share/split/step{step}": 1 - share,
                f"heldout/distinct_correct_methods/step{step}": 2.0,
                f"train/pass@1/step{step}": 0.2 + 2 * grow,
                f"train/method_entropy/step{step}": 0.6,
                f"gap/step{step}": grow, f"canonical_entropy/step{step}": 1.1}
    return row


def _comparison(verdict: str, mean: float) -> dict:
    return {"gain": {"mean": mean, "low": mean - 0.041, "high": mean + 0.041, "p": 0.02,
                     "p_adjusted": 0.04, "n": 3, "test": "paired t"},
            "entropy_ratio": 0.9, "pass1_diff": {"mean": -0.004, "low": -0.02, "high": 0.012,
                                                 "n": 3},
            "token_ratio": 1.3, "verdict": verdict, "reasons": [f"because {verdict}"]}


def make_study(extra_verdicts: list[str] | None = None, valid: bool = True) -> dict:
    """3 arms (baseline, a data arm titled with `<`, a loss arm), 3 seeds, 2 methods and 4
    eval steps; `extra_verdicts` adds one data arm per verdict."""
    arms = [{"name": "fixed", "title": "GRPO on the fixed set", "side": "control"},
            {"name": "svs_refresh", "title": "SVS <refresh> & rewrite", "side": "data",
             "refresh_every": 40},
            {"name": "entropy_bonus", "title": "entropy bonus", "side": "loss", "beta": 0.01}]
    verdicts = {"svs_refresh": "shown", "entropy_bonus": "refuted"}
    for index, verdict in enumerate(extra_verdicts or []):
        arms.append({"name": f"extra{index}", "title": f"extra arm {index}", "side": "data"})
        verdicts[f"extra{index}"] = verdict
    gains = {"svs_refresh": 0.031, "entropy_bonus": -0.05}
    per_seed, analysis_arms = {}, {}
    for position, arm in enumerate(arms):
        name = arm["name"]
        level = 0.0 if name == "fixed" else gains.get(name, 0.01 * position)
        per_seed[name] = {str(seed): _per_seed(level, seed) for seed in SEEDS}
        analysis_arms[name] = {
            "seeds": SEEDS, "means": {"heldout/pass@16/step120": 0.4 + level},
            "sds": {"heldout/pass@16/step120": 0.01},
            "comparison": None if name == "fixed" else _comparison(verdicts[name], level)}
    controls = [{"name": "learns", "description": "train pass@1 rises", "kind": "rise",
                 "passed": valid, "status": "ok" if valid else "too flat", "estimate": 0.2,
                 "low": 0.1, "high": 0.3, "p": 0.01, "n": 3, "detail": "fixed arm"},
                {"name": "headroom", "description": "pass@16 below 1", "kind": "level",
                 "passed": None, "status": "not run", "estimate": None, "low": None,
                 "high": None, "p": None, "n": 0, "detail": ""}]
    analysis = {"valid": valid, "invalid_because": [] if valid else ["learns"],
                "controls": controls, "baseline": "fixed", "arms": analysis_arms,
                "recovery": {"fraction": 0.45, "reason": "of the entropy lost by fixed"},
                "rules": {"baseline": "fixed", "metric": "heldout/pass@16", "late_step": 120,
                          "start_step": 0, "min_gain": 0.02, "confidence": 0.95,
                          "entropy_ratio": 1.1, "pass1_tolerance": 0.02, "token_ratio": 1.5,
                          "refuted_below": 0.0, "test": "paired t", "correction": "holm"}}
    return {"name": "data-side", "description": "Does refreshing help?",
            "config_file": "examples/lab/study-data.yaml", "arms": arms, "seeds": SEEDS,
            "eval_steps": STEPS, "methods": METHODS, "per_seed": per_seed,
            "analysis": analysis, "timing": {"seconds": 1234.5, "runs": 9, "cached": 3}}


def test_markdown_has_every_arm_verdict_and_interval():
    text = study_table_markdown(make_study())
    for fragment in ("GRPO on the fixed set", "svs_refresh", "entropy_bonus", "shown",
                     "refuted", "baseline", "+0.031 [\u22120.010, +0.072]", "0.040",
                     "testbed valid", "recovery fraction: 0.450", "3 seeds (0, 1, 2)",
                     "paired t", "late step 120", "learns", "not run", "passed", "change 0→120",
                     "+0.200 [+0.100, +0.300]"):
        assert fragment in text, fragment
    assert "INVALID" not in text
    assert "SVS \\<refresh\\> & rewrite" in text  # GitHub would read <refresh> as a tag
    assert text.count("\n| ") == (1 + 2) + (1 + 3)  # header and rows of both tables


def test_markdown_invalid_variant_names_the_failed_control():
    text = study_table_markdown(make_study(valid=False))
    assert "testbed INVALID: learns failed — no arm is read" in text
    assert "failed" in text


def test_every_verdict_kind_is_rendered():
    study = make_study(extra_verdicts=VERDICTS)
    text = study_table_markdown(study)
    for verdict in VERDICTS:
        assert f"| {verdict} |" in text, verdict
    lines = verdict_lines(study)
    assert len(lines) == 1 + len(study["arms"])


def test_verdict_lines():
    lines = verdict_lines(make_study())
    assert lines[0] == "data-side study (3 seeds): testbed valid"
    assert "data-side study (3 seeds): svs_refresh — shown (gain +0.031 [\u22120.010, +0.072]" \
        in lines[2]
    assert "entropy_bonus — refuted (gain \u22120.050" in lines[3]
    assert lines[1].endswith("fixed — baseline (held-out pass@16 at step 120 = 0.400)")
    assert "INVALID" in verdict_lines(make_study(valid=False))[0]


def test_figure_is_a_png(tmp_path):
    path = write_study_figure(make_study(), tmp_path / "study.png")
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000


def test_figure_with_nine_arms_and_gaps(tmp_path):
    study = make_study(extra_verdicts=VERDICTS + ["shown"])
    del study["per_seed"]["extra0"]["1"]  # a missing seed
    study["analysis"]["arms"]["extra1"]["comparison"]["gain"]["low"] = None
    assert len(study["arms"]) == 9
    assert write_study_figure(study, tmp_path / "nine.png").stat().st_size > 20_000


def test_html_is_self_contained_and_escaped(tmp_path):
    path = write_study_report(make_study(), tmp_path / "study.html")
    page = path.read_text(encoding="utf-8")
    assert "SVS &lt;refresh&gt; &amp; rewrite" in page and "<refresh>" not in page
    assert page.count("data:image/png;base64,") == 2
    assert "<details>" in page and "heldout/pass@16/step120" in page
    assert "testbed valid" in page and "1,234" in page and "holm" in page
    invalid = write_study_report(make_study(valid=False), tmp_path / "bad.html")
    assert 'class="banner invalid"' in invalid.read_text(encoding="utf-8")


def test_round_trips_through_json(tmp_path):
    study = json.loads(json.dumps(make_study()))
    assert study_table_markdown(study) == study_table_markdown(make_study())


def _drop(study: dict, *path: str) -> dict:
    study = copy.deepcopy(study)
    part = study
    for key in path[:-1]:
        part = part[key]
    del part[path[-1]]
    return study


@pytest.mark.parametrize("path, message", [
    (("analysis",), "'analysis'"),
    (("per_seed",), "'per_seed'"),
    (("eval_steps",), "'eval_steps'"),
    (("analysis", "controls"), r"study\['analysis'\] lacks required key 'controls'"),
    (("analysis", "rules", "late_step"), "'late_step'"),
    (("analysis", "arms", "entropy_bonus"), "lacks arm 'entropy_bonus'"),
    (("per_seed", "svs_refresh"), r"study\['per_seed'\] lacks arm 'svs_refresh'"),
])
def test_missing_parts_name_the_key(path, message, tmp_path):
    study = _drop(make_study(), *path)
    for call in (study_table_markdown, verdict_lines, check_study):
        with pytest.raises(ValueError, match=message):
            call(study)
    with pytest.raises(ValueError, match=message):
        write_study_report(study, tmp_path / "x.html")
    with pytest.raises(ValueError, match=message):
        write_study_figure(study, tmp_path / "x.png")


def test_not_a_dict_and_unknown_baseline():
    with pytest.raises(ValueError, match="must be a dict"):
        check_study([])
    study = make_study()
    study["analysis"]["baseline"] = "nope"
    with pytest.raises(ValueError, match="baseline 'nope'"):
        check_study(study)


def test_null_start_step_and_no_control_run(tmp_path):
    study = make_study()
    study["analysis"]["rules"]["start_step"] = None
    study["analysis"] |= {"valid": False, "invalid_because": []}
    for control in study["analysis"]["controls"]:
        control["passed"] = None
    text = study_table_markdown(study)
    assert "held-out pass@16 gain at step 120 vs fixed" in text and "(start step –)" in text
    assert "testbed INVALID: no control was run — no arm is read" in text
    page = write_study_report(study, tmp_path / "null.html").read_text(encoding="utf-8")
    assert "at step 0 and\nstep 120" in page  # the shares panel's start: the first eval step
    assert "heldout/pass@16/step0" in page  # the earliest eval step stands in for the start


def test_rules_name_the_entropy_and_pass1_metrics():
    study = make_study()
    study["analysis"]["rules"] |= {"entropy_metric": "train/method_entropy",
                                   "pass1_metric": "train/pass@1"}
    text = study_table_markdown(study)
    assert "train/method_entropy/step120 (mean)" in text and "train/pass@1/step120 diff" in text
    assert "| 0.600 |" in text  # train/method_entropy from per_seed, not the held-out one


def test_a_control_failed_in_another_study_on_the_same_bootstrap_makes_every_arm_not_read(tmp_path):
    """The committed studies: the loss-side study ran no fresh-oracle arm and calls its
    own testbed valid, but the pilot (same bootstrap) failed oracle_beats_fixed, so the
    main job's lines read none of its arms; alone, its computed verdicts are shown."""
    import shutil

    from svs.flows.lab.main_job import RESULTS, committed_verdicts

    shutil.copy(RESULTS / "loss-side.json", tmp_path / "loss-side.json")
    alone = [line for line in committed_verdicts(tmp_path) if "mb4_sym" in line]
    assert "testbed valid" in committed_verdicts(tmp_path)[0]
    assert alone and "— refuted" in alone[0]
    shutil.copy(RESULTS / "pilot.json", tmp_path / "pilot.json")
    lines = [line for line in committed_verdicts(tmp_path) if line.startswith("loss-side")]
    assert "testbed INVALID: the pilot study's oracle_beats_fixed failed" in lines[0]
    arms = [line for line in lines[1:] if "baseline" not in line]
    assert len(arms) == 7 and all("— not read (computed: " in line for line in arms)
    other = tmp_path / "other"
    other.mkdir()
    moved = json.loads((tmp_path / "pilot.json").read_text())
    moved["bootstrap"]["folder"] = "runs/lab/policy-another"
    (other / "pilot.json").write_text(json.dumps(moved))
    shutil.copy(RESULTS / "loss-side.json", other / "loss-side.json")
    assert "testbed valid" in [x for x in committed_verdicts(other) if x.startswith("loss")][0]


def test_the_ledger_table_counts_the_seeds_leading_cause():
    from svs.flows.lab.study_report import ledger_table_markdown

    study = json.loads((Path(__file__).parents[1] / "flows" / "lab" / "results"
                        / "pilot.json").read_text())
    table = ledger_table_markdown(study)
    assert table.splitlines()[0] == "| arm | steps 1-40 | steps 41-80 | steps 81-120 |"
    assert len(table.splitlines()) == 2 + len(study["arms"])
    fixed = next(line for line in table.splitlines() if "(fixed)" in line)
    late = [w for rs in study["ledger"]["fixed"].values() for w in rs if w["first"] == 81]
    mean = sum(w["evidence"]["memorization"] for w in late) / len(late)
    assert f"memorized {mean:.3f}" in fixed.split(" | ")[-1]
    leading = {w["leading"] for w in late}
    assert all(f"{c} " in fixed.split(" | ")[-1] for c in leading)
    assert ledger_table_markdown({k: v for k, v in study.items() if k != "ledger"}) == ""
