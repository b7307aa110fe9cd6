"""A study's pre-registered decision rules and positive controls, applied to
per_seed[arm][seed][metric_key]. Pure: numbers in, a JSON-serialisable dict out.

Every arm but the baseline is compared with the baseline on the seeds both ran (paired):
- gain, per seed s: (arm@late - baseline@late) - (arm@start - baseline@start) of
  `metric` (a difference in improvement; with start_step None: arm@late - baseline@late),
  with its interval and p from `test` and p adjusted by Holm over all compared arms;
- entropy ratio = mean_s arm entropy@late / mean_s baseline entropy@late (each arm's own
  seeds; None when the baseline's mean is <= 0 or the key was not recorded);
- pass@1 diff = paired arm@late - baseline@late of `pass1_metric`, with its interval;
- token ratio = mean arm tokens / mean baseline tokens ("tokens"; None if not recorded).

Verdict: "shown" when gain mean >= min_gain, gain low > 0, adjusted p < 1 - confidence,
entropy ratio >= entropy_ratio and pass@1 diff mean >= -pass1_tolerance; "shown, over
budget" when shown but token ratio > token_ratio; "refuted" when gain high < refuted_below;
else "inconclusive". The study is valid iff at least one control ran and none failed;
otherwise every verdict is "not read" (all numbers are still reported).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from svs.core.config import from_mapping, option
from svs.flows.lab import stats
from svs.flows.lab.stats import PerSeed, arm_summary, interval, metric_value, paired_diffs, step_key

CORRECTIONS = ("holm", "none")
DIRECTIONS = ("above", "below")
TOKENS = "tokens"  # per-run metric key of total generated tokens
NOT_RUN = "not run in this study"
_EDGE = 1e-12  # float slack for share thresholds (4/5 must meet 0.8)


def _required(help: str) -> Any:  # noqa: A002 - same word as option()
    return dataclasses.field(metadata={"help": help})


def _finite_number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class DecisionRules:
    """How a study's numbers become verdicts, fixed before it runs."""

    baseline: str = option("fixed", "Arm every other arm is compared with.")
    metric: str = option("heldout/pass@16", "Gain metric, without the /step<N> suffix.")
    late_step: int = option(120, "Step whose evaluation is read (the end of training).")
    start_step: int | None = option(
        0, "Step the gain is measured from: gain = paired difference of (late - start) "
           "between arm and baseline. None: the late values alone.")
    min_gain: float = option(0.05, "Shown needs a mean gain of at least this.")
    confidence: float = option(0.95, "Confidence of every interval; alpha = 1 - this.")
    entropy_metric: str = option("heldout/method_entropy",
                                 "Entropy metric, read at late_step, without suffix.")
    entropy_ratio: float = option(
        2.0, "Shown needs mean late entropy >= this x the baseline's mean late entropy.")
    pass1_metric: str = option("heldout/pass@1", "Metric that must not get worse.")
    pass1_tolerance: float = option(
        0.02, "Shown needs a mean paired late pass1_metric difference >= -this.")
    token_ratio: float = option(
        1.5, "Shown becomes 'shown, over budget' when mean tokens / baseline's > this.")
    refuted_below: float = option(0.02, "Refuted when the gain interval's high end < this.")
    test: str = option("t", "Paired test: t (Student) or signflip (exact, n <= 16).")
    correction: str = option("holm", "Multiplicity correction over the compared arms' "
                                     "gain p-values: holm or none.")
    recovery: dict | None = option(
        None, "{arm, oracle, min_oracle_gain (default 0.03)}: report (arm - baseline) / "
              "(oracle - baseline) of mean late metric when oracle - baseline >= "
              "min_oracle_gain. None: not reported.")

    def __post_init__(self) -> None:
        for name in ("baseline", "metric", "entropy_metric", "pass1_metric"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise ValueError(f"rules.{name} must be a non-empty string, got "
                                 f"{getattr(self, name)!r}")
        for name in ("late_step", "start_step"):
            value = getattr(self, name)
            if (value is not None or name == "late_step") and (
                    isinstance(value, bool) or not isinstance(value, int) or value < 0):
                raise ValueError(f"rules.{name} must be an int >= 0, got {value!r}")
        if self.start_step == self.late_step:
            raise ValueError(f"rules.start_step equals late_step ({self.late_step}): the gain "
                             f"would be 0; set start_step to the first evaluation or null")
        for name in ("min_gain", "entropy_ratio", "pass1_tolerance", "token_ratio",
                     "refuted_below", "confidence"):
            _finite_number(f"rules.{name}", getattr(self, name))
        if not 0 < self.confidence < 1:
            raise ValueError(f"rules.confidence must be in (0, 1), e.g. 0.95, got "
                             f"{self.confidence}")
        if any(getattr(self, n) < 0 for n in ("entropy_ratio", "pass1_tolerance", "token_ratio")):
            raise ValueError("rules entropy_ratio, pass1_tolerance and token_ratio must be >= 0")
        if self.test not in stats.TESTS:
            raise ValueError(f"rules.test must be one of {', '.join(stats.TESTS)}, got "
                             f"{self.test!r}")
        if self.correction not in CORRECTIONS:
            raise ValueError(f"rules.correction must be one of {', '.join(CORRECTIONS)}, "
                             f"got {self.correction!r}")
        if self.recovery is not None:
            object.__setattr__(self, "recovery", self._recovery(self.recovery))

    def _recovery(self, value: Any) -> dict:
        if not isinstance(value, Mapping):
            raise ValueError(f"rules.recovery must be a mapping {{arm, oracle, "
                             f"min_oracle_gain}} or null, got {value!r}")
        unknown = sorted(set(value) - {"arm", "oracle", "min_oracle_gain"})
        missing = [k for k in ("arm", "oracle") if k not in value]
        if unknown or missing:
            raise ValueError(f"rules.recovery: unknown key(s) {unknown}, missing {missing}; "
                             f"valid: arm, oracle, min_oracle_gain")
        out = {"arm": value["arm"], "oracle": value["oracle"],
               "min_oracle_gain": value.get("min_oracle_gain", 0.03)}
        if len({out["arm"], out["oracle"], self.baseline}) < 3:
            raise ValueError(f"rules.recovery: arm ({out['arm']!r}), oracle "
                             f"({out['oracle']!r}) and baseline ({self.baseline!r}) must "
                             f"be three different arms")
        if _finite_number("rules.recovery.min_oracle_gain", out["min_oracle_gain"]) <= 0:
            raise ValueError(f"rules.recovery.min_oracle_gain must be > 0, got "
                             f"{out['min_oracle_gain']}")
        return out


@dataclass(frozen=True)
class ShareBelowControl:
    """Passes when value@step <= factor * value@of_step in >= min_share of arm's seeds."""

    kind: ClassVar[str] = "share_below"
    name: str = _required("Name the study reports the control under.")
    arm: str = _required("Arm whose seeds are checked.")
    metric: str = _required("Metric without step suffix, e.g. heldout/method_entropy.")
    description: str = option("", "What the control shows when it passes.")
    step: int | None = option(None, "Late step; None: rules.late_step.")
    of_step: int | None = option(None, "Reference step; None: rules.start_step.")
    factor: float = option(0.5, "value@step must be <= factor x value@of_step.")
    min_share: float = option(0.8, "Share of seeds (in (0, 1]) that must satisfy it.")

    def __post_init__(self) -> None:
        if not 0 < _finite_number(f"control {self.name!r}: min_share", self.min_share) <= 1:
            raise ValueError(f"control {self.name!r}: min_share must be in (0, 1], got "
                             f"{self.min_share}")
        if _finite_number(f"control {self.name!r}: factor", self.factor) < 0:
            raise ValueError(f"control {self.name!r}: factor must be >= 0, got {self.factor}")


@dataclass(frozen=True)
class PairedControl:
    """Passes when the paired interval of arm.key - other_arm.other_key lies entirely
    above 0 (direction above) or below 0 (direction below), by the rules' test."""

    kind: ClassVar[str] = "paired"
    name: str = _required("Name the study reports the control under.")
    arm: str = _required("Arm whose key is read.")
    key: str = _required("Full metric key, e.g. heldout/pass@16/step120.")
    description: str = option("", "What the control shows when it passes.")
    other_arm: str | None = option(None, "Arm subtracted; None: the same arm.")
    other_key: str | None = option(None, "Key subtracted; None: the same key.")
    direction: str = option("above", "above (interval > 0) or below (interval < 0).")

    def __post_init__(self) -> None:
        if self.direction not in DIRECTIONS:
            raise ValueError(f"control {self.name!r}: direction must be one of "
                             f"{', '.join(DIRECTIONS)}, got {self.direction!r}")
        if (self.other_arm or self.arm) == self.arm and (self.other_key or self.key) == self.key:
            raise ValueError(f"control {self.name!r} compares {self.arm}.{self.key} with "
                             f"itself: set other_arm or other_key")


Control = ShareBelowControl | PairedControl
CONTROL_KINDS: dict[str, type] = {"share_below": ShareBelowControl, "paired": PairedControl}


def parse_control(data: Any, index: int = 0) -> Control:
    """One `controls` entry: {kind, name, ...fields of that kind}, strict keys."""
    if not isinstance(data, Mapping):
        raise ValueError(f"controls[{index}] must be a mapping with kind and name, got "
                         f"{data!r}")
    name = data.get("name", f"controls[{index}]")
    kind = data.get("kind")
    if not isinstance(kind, str) or kind not in CONTROL_KINDS:
        raise ValueError(f"control {name!r}: unknown kind {kind!r}; valid kinds: "
                         f"{', '.join(CONTROL_KINDS)}")
    cls = CONTROL_KINDS[kind]
    fields = {key: value for key, value in data.items() if key != "kind"}
    required = [f.name for f in dataclasses.fields(cls)
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    missing = [key for key in required if key not in fields]
    if missing:
        raise ValueError(f"control {name!r} (kind {kind}) is missing {', '.join(missing)}; "
                         f"required: {', '.join(required)}")
    return from_mapping(cls, fields, "control field", f" in control {name!r} (kind {kind})")


def parse_rules(mapping: Mapping[str, Any]) -> tuple[DecisionRules, list[Control]]:
    """(DecisionRules, controls) from a study mapping's `rules` and `controls` sections
    (other sections are left to their readers; a missing section takes the defaults)."""
    if not isinstance(mapping, Mapping):
        raise ValueError(f"a study must be a mapping with rules and controls sections, got "
                         f"{type(mapping).__name__}")
    rules = from_mapping(DecisionRules, mapping.get("rules"), "rule", " in rules")
    entries = mapping.get("controls") or []
    if not isinstance(entries, list):
        raise ValueError(f"controls must be a list of controls, got {type(entries).__name__}")
    controls = [parse_control(entry, i) for i, entry in enumerate(entries)]
    names = [c.name for c in controls]
    if twice := sorted({n for n in names if names.count(n) > 1}):
        raise ValueError(f"control names must be unique; repeated: {twice}")
    return rules, controls


def _num(x: float | None, signed: bool = True) -> str:
    return "n/a" if x is None else (f"{x:+.4g}" if signed else f"{x:.4g}")


def _label(arm: str, titles: Mapping[str, str]) -> str:
    return f"{titles[arm]} ({arm})" if arm in titles else repr(arm)


def evaluate_control(control: Control, per_seed: PerSeed, rules: DecisionRules,
                     titles: Mapping[str, str] | None = None) -> dict[str, Any]:
    """One control's row of the study: passed True/False, or None when its arms did not run."""
    titles = titles or {}
    row: dict[str, Any] = {"name": control.name, "description": control.description,
                           "kind": control.kind, "passed": None, "status": NOT_RUN,
                           "estimate": None, "low": None, "high": None, "p": None, "n": 0,
                           "detail": ""}
    arms = [control.arm] + [getattr(control, "other_arm", None) or control.arm]
    missing = sorted({arm for arm in arms if arm not in per_seed})
    if missing:
        row["detail"] = f"arm(s) {missing} not in this study's runs"
        return row
    if isinstance(control, ShareBelowControl):
        step = rules.late_step if control.step is None else control.step
        of_step = rules.start_step if control.of_step is None else control.of_step
        if of_step is None:
            raise ValueError(f"control {control.name!r} needs of_step (rules.start_step is "
                             f"null)")
        seeds = sorted(per_seed[control.arm])
        late, ref = step_key(control.metric, step), step_key(control.metric, of_step)
        below = sum(metric_value(per_seed, control.arm, s, late)
                    <= control.factor * metric_value(per_seed, control.arm, s, ref)
                    for s in seeds)
        share = below / len(seeds)
        passed = share >= control.min_share - _EDGE
        row.update(estimate=share, n=len(seeds), detail=(
            f"{below}/{len(seeds)} seeds of {_label(control.arm, titles)} have {late} <= "
            f"{control.factor:g} x {ref} ({share:.0%}; needs >= {control.min_share:.0%})"))
    else:
        other_arm, other_key = control.other_arm or control.arm, control.other_key or control.key
        diffs, seeds = paired_diffs(per_seed, control.arm, control.key, other_arm, other_key)
        iv = interval(diffs, rules.confidence, rules.test)
        passed = iv.low > 0 if control.direction == "above" else iv.high < 0
        row.update(estimate=iv.mean, low=iv.low, high=iv.high, p=iv.p, n=iv.n, detail=(
            f"{_label(control.arm, titles)} {control.key} minus {_label(other_arm, titles)} "
            f"{other_key}: {_num(iv.mean)} [{_num(iv.low)}, {_num(iv.high)}] "
            f"({rules.test}, {rules.confidence:.0%}, n={iv.n}); needs the interval "
            f"{control.direction} 0"))
    row.update(passed=bool(passed), status="passed" if passed else "failed")
    return row


def _ratio(means: Mapping[str, float], base: Mapping[str, float], key: str) -> float | None:
    if key not in means or key not in base or base[key] <= 0:
        return None
    return means[key] / base[key]


def _compare(per_seed: PerSeed, rules: DecisionRules, arm: str,
             summaries: Mapping[str, dict]) -> dict[str, Any]:
    """The comparison of `arm` with the baseline, before correction and verdict."""
    base = rules.baseline
    late = step_key(rules.metric, rules.late_step)
    gains, _ = paired_diffs(per_seed, arm, late, base)
    if rules.start_step is not None:
        start, _ = paired_diffs(per_seed, arm, step_key(rules.metric, rules.start_step), base)
        gains = [g - s for g, s in zip(gains, start, strict=True)]
    gain = interval(gains, rules.confidence, rules.test)
    pass1_key = step_key(rules.pass1_metric, rules.late_step)
    pass1 = None
    if all(pass1_key in summaries[a]["means"] for a in (arm, base)):
        iv = interval(paired_diffs(per_seed, arm, pass1_key, base)[0], rules.confidence,
                      rules.test)
        pass1 = {"mean": iv.mean, "low": iv.low, "high": iv.high, "n": iv.n}
    means, base_means = summaries[arm]["means"], summaries[base]["means"]
    return {"gain": {"mean": gain.mean, "low": gain.low, "high": gain.high, "p": gain.p,
                     "p_adjusted": gain.p, "n": gain.n, "test": gain.test},
            "entropy_ratio": _ratio(means, base_means,
                                    step_key(rules.entropy_metric, rules.late_step)),
            "pass1_diff": pass1, "token_ratio": _ratio(means, base_means, TOKENS),
            "verdict": "inconclusive", "reasons": []}


def _check(reasons: list[str], ok: bool, text: str) -> bool:
    reasons.append(f"{text}: {'met' if ok else 'not met'}")
    return ok


def verdict(comparison: Mapping[str, Any], rules: DecisionRules,
            not_read: str | None = None) -> tuple[str, list[str]]:
    """(verdict, reasons) of one comparison; `not_read` (why the study is invalid) turns
    every verdict into "not read" while the reasons still list each criterion."""
    g, alpha = comparison["gain"], round(1 - rules.confidence, 12)  # 0.05, not 0.05000..04
    reasons: list[str] = [f"not read: {not_read}"] if not_read else []
    ok = [_check(reasons, g["mean"] >= rules.min_gain, f"gain {_num(g['mean'])} "
                 f"{'>=' if g['mean'] >= rules.min_gain else '<'} {_num(rules.min_gain)}"),
          _check(reasons, g["low"] > 0, f"gain interval low {_num(g['low'])} "
                 f"{'>' if g['low'] > 0 else '<='} 0"),
          _check(reasons, g["p_adjusted"] < alpha, f"p_adjusted ({rules.correction}) "
                 f"{g['p_adjusted']:.3g} {'<' if g['p_adjusted'] < alpha else '>='} "
                 f"{alpha:.3g}")]
    ratio = comparison["entropy_ratio"]
    if ratio is None:
        ok.append(_check(reasons, False, "entropy ratio unavailable (entropy not recorded "
                                         "or baseline entropy <= 0)"))
    else:
        ok.append(_check(reasons, ratio >= rules.entropy_ratio, f"entropy ratio "
                         f"{_num(ratio, False)} {'>=' if ratio >= rules.entropy_ratio else '<'}"
                         f" {_num(rules.entropy_ratio, False)}"))
    pass1 = comparison["pass1_diff"]
    if pass1 is None:
        ok.append(_check(reasons, False, "pass@1 diff unavailable (pass1_metric not recorded)"))
    else:
        held = pass1["mean"] >= -rules.pass1_tolerance
        ok.append(_check(reasons, held, f"pass@1 diff {_num(pass1['mean'])} "
                         f"{'>=' if held else '<'} {_num(-rules.pass1_tolerance)}"))
    tokens = comparison["token_ratio"]
    over = tokens is not None and tokens > rules.token_ratio
    if tokens is None:
        reasons.append("token ratio unavailable (tokens not recorded): budget not checked")
    else:
        _check(reasons, not over, f"token ratio {_num(tokens, False)} "
                                  f"{'>' if over else '<='} {_num(rules.token_ratio, False)}")
    refuted = _check(reasons, g["high"] < rules.refuted_below, f"refutation: gain interval "
                     f"high {_num(g['high'])} {'<' if g['high'] < rules.refuted_below else '>='}"
                     f" {_num(rules.refuted_below)}")
    if not_read:
        return "not read", reasons
    if all(ok):
        return ("shown, over budget" if over else "shown"), reasons
    return ("refuted" if refuted else "inconclusive"), reasons


def _recovery(rules: DecisionRules, summaries: Mapping[str, dict]) -> dict | None:
    if rules.recovery is None:
        return None
    arm, oracle, floor = (rules.recovery[k] for k in ("arm", "oracle", "min_oracle_gain"))
    key = step_key(rules.metric, rules.late_step)
    absent = [a for a in (arm, oracle) if a not in summaries]
    if absent:
        return {"fraction": None, "reason": f"arm(s) {absent} {NOT_RUN}"}
    value = {a: summaries[a]["means"].get(key) for a in (arm, oracle, rules.baseline)}
    if None in value.values():
        return {"fraction": None, "reason": f"{key} not recorded for every arm"}
    headroom = value[oracle] - value[rules.baseline]
    if headroom < floor:
        return {"fraction": None, "reason": f"oracle - baseline {_num(headroom)} < "
                f"min_oracle_gain {_num(floor)}: too little to recover from"}
    fraction = (value[arm] - value[rules.baseline]) / headroom
    return {"fraction": fraction, "reason": f"({arm} - {rules.baseline}) / ({oracle} - "
            f"{rules.baseline}) of mean {key}: {_num(value[arm] - value[rules.baseline])} / "
            f"{_num(headroom)}"}


def analyse(per_seed: PerSeed, rules: DecisionRules, controls: list[Control],
            titles: dict[str, str] | None = None) -> dict[str, Any]:
    """The study's reading: controls, per-arm numbers and verdicts, recovery, the rules.
    `titles` ({arm: display name}) only labels the control details."""
    stats.check_per_seed(per_seed)
    if rules.baseline not in per_seed:
        raise ValueError(f"baseline arm {rules.baseline!r} is not in this study's runs; "
                         f"arms: {', '.join(sorted(per_seed))} (set rules.baseline)")
    rows = [evaluate_control(c, per_seed, rules, titles) for c in controls]
    failed = [row["name"] for row in rows if row["passed"] is False]
    ran = [row for row in rows if row["passed"] is not None]
    not_read = (f"positive control(s) failed: {', '.join(failed)}" if failed else
                None if ran else "no control was run in this study")
    summaries = {arm: arm_summary(per_seed, arm) | {"comparison": None}
                 for arm in sorted(per_seed)}
    compared = [arm for arm in summaries if arm != rules.baseline]
    for arm in compared:
        summaries[arm]["comparison"] = _compare(per_seed, rules, arm, summaries)
    if rules.correction == "holm":
        adjusted = stats.holm({arm: summaries[arm]["comparison"]["gain"]["p"] for arm in compared})
        for arm in compared:
            summaries[arm]["comparison"]["gain"]["p_adjusted"] = adjusted[arm]
    for arm in compared:
        comparison = summaries[arm]["comparison"]
        comparison["verdict"], comparison["reasons"] = verdict(comparison, rules, not_read)
    return {"valid": not_read is None, "invalid_because": failed, "controls": rows,
            "baseline": rules.baseline, "arms": summaries,
            "recovery": _recovery(rules, summaries), "rules": dataclasses.asdict(rules)}
