"""The gate: thresholds from ``params.yaml: gate`` against a stage's metrics JSON.

Rules are table-driven: each :class:`RuleDef` says which ``GateParams`` field holds the
threshold, where the value sits in the metrics (a dotted path), and how they compare.
Adding a rule is one line in a table (``AUDIT_RULES``; the prepared-data gate adds its
own table and a :data:`GATES` entry). :func:`evaluate` is pure: the gate stage and the
HTML report both call it, so the report never recomputes anything.

Semantics, decided once here:

- a threshold set to ``null`` switches its rule off: the rule is not listed at all;
- a rule whose value is absent from the metrics (the check did not run, no check
  reports cross-split pairs, the value is null) is listed as *not evaluated*
  (``passed: null``, a ``<skipped>`` JUnit test case); it does not fail the gate,
  so one ``params.yaml`` can hold thresholds for optional checks;
- a rule of a check whose verdict rests on an out-of-fold model judged too weak
  (``audit.json: model``, :mod:`dataqa.model_strength`) is *not evaluated*,
  with the numbers as the reason (its value is still shown);
- thresholds are validated when params load (their ranges are declared in
  :class:`~dataqa.params.GateParams`; a check name that does not exist, such as
  ``gate.max_rates.lable``, is an error there);
- the per-check rates (``max_rates``) count the flags still pending review; flags a
  person decided (``dataqa review``, :mod:`dataqa.review`) are waived, and the rule's
  message says how many and by whom; cross-split pairs leave out the images a person
  excluded or kept for that check;
- the gate fails (exit code 1) when any evaluated rule fails.
"""

from __future__ import annotations

import dataclasses
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from dataqa.errors import StageInputError
from dataqa.params import GateParams
from dataqa.text import xml_text

Comparison = Literal["<=", ">="]


@dataclass(frozen=True)
class RuleDef:
    """One row of a rule table.

    ``per_check``: ``""`` one rule; ``"threshold"`` the threshold is a mapping
    ``{check: value}`` giving one rule per entry; ``"metric"`` one rule per check whose
    metrics hold the path (``{check}`` in ``metric`` is replaced by the check name).
    """

    key: str
    metric: str
    comparison: Comparison
    what: str
    per_check: Literal["", "threshold", "metric"] = ""
    fallback: str = ""  # metric path read when ``metric`` is absent (older metrics files)


@dataclass(frozen=True)
class Rule:
    """An evaluated rule. ``passed`` is None when it could not be evaluated."""

    name: str
    value: float | None
    threshold: float
    comparison: Comparison
    passed: bool | None
    message: str

    @property
    def evaluated(self) -> bool:
        return self.passed is not None

    @property
    def status(self) -> str:
        return {True: "pass", False: "FAIL", None: "not evaluated"}[self.passed]


# key in GateParams, dotted metric path, comparison that passes, words
AUDIT_RULES: list[RuleDef] = [
    RuleDef("max_undecodable_rate", "dataset.undecodable_rate", "<=",
            "share of undecodable files"),
    RuleDef("min_images_per_class", "balance.min_class_count", ">=",
            "decodable images in the smallest class"),
    # flags pending review only: decided ones are waived (listed in the message)
    RuleDef("max_rates", "checks.{check}.pending_rate", "<=",
            "share of images flagged by {check} and pending review",
            per_check="threshold", fallback="checks.{check}.rate"),
    RuleDef("max_cross_split_duplicates", "checks.{check}.pending_cross_split_pairs", "<=",
            "duplicate pairs across splits found by {check} (leakage) and pending review",
            per_check="metric", fallback="checks.{check}.cross_split_pairs"),
    RuleDef("max_imbalance_ratio", "balance.imbalance_ratio", "<=",
            "largest over smallest class count"),
]


@dataclass(frozen=True)
class GateSpec:
    """Which metrics a gate reads and where it writes (names of ``paths`` entries)."""

    metrics: str
    stage: str  # the stage that writes the metrics (for "run it first")
    json: str
    junit: str
    rules: Sequence[RuleDef]


# the prepared-data gate (after filter/augment/subsample), read from prepared.json
PREPARED_RULES: list[RuleDef] = [
    RuleDef("min_clean_per_class", "prepared.min_clean_per_class", ">=",
            "clean images in the smallest class"),
    RuleDef("max_quarantined_share", "prepared.quarantined_share", "<=",
            "share of the manifest quarantined"),
    RuleDef("max_balanced_imbalance_ratio", "prepared.balanced_imbalance_ratio", "<=",
            "largest over smallest training-pool class after balancing"),
]

GATES: dict[str, GateSpec] = {
    "audit": GateSpec("audit_metrics", "audit", "gate_json", "gate_junit", AUDIT_RULES),
    "prepared": GateSpec("prepared_metrics", "subsample", "prepare_gate_json",
                         "prepare_gate_junit", PREPARED_RULES),
}


# --------------------------------------------------------------------------- evaluate
def evaluate(gate: GateParams, metrics: dict[str, Any], *,
             rules: Sequence[RuleDef] = AUDIT_RULES) -> list[Rule]:
    """Evaluate every switched-on rule of ``rules`` against ``metrics``, in table order."""
    from dataqa.model_strength import review_only

    demoted = review_only(metrics)  # checks resting on a model too weak to trust
    out: list[Rule] = []
    for rd in rules:
        threshold = getattr(gate, rd.key)
        if threshold is None:
            continue
        for name, check, thr in _expand(rd, threshold, metrics):
            path = rd.metric.format(check=check or "*")
            what = rd.what.format(check=check or "any check")
            if check in demoted:
                out.append(Rule(name, _lookup(metrics, path), thr, rd.comparison, None,
                                f"{what}: not evaluated (review-only: {demoted[check]})"))
                continue
            value = _lookup(metrics, path) if check or not rd.per_check else None
            if value is None and rd.fallback and check:
                value = _lookup(metrics, rd.fallback.format(check=check))
            if value is None:
                skipped = (metrics.get("not_evaluated") or {}).get(check or "")
                if skipped:
                    why = f"check '{check}' not evaluated: {skipped}"
                elif rd.per_check and check not in metrics.get("checks", {}):
                    why = f"check '{check}' did not run" if check else f"no check reports '{path}'"
                else:
                    why = f"no value at '{path}'"
                out.append(Rule(name, None, thr, rd.comparison, None,
                                f"{what}: not evaluated ({why})"))
                continue
            passed = value <= thr if rd.comparison == "<=" else value >= thr
            verb = "within" if passed else "violates"
            out.append(Rule(name, value, thr, rd.comparison, passed,
                            f"{what} = {value:.6g} {verb} {rd.comparison} {thr:.6g}"
                            + (waived_text(metrics, check) if rd.key == "max_rates" else "")))
    return out


def waived_text(metrics: dict[str, Any], check: str) -> str:
    """'' or ' (N waived by review: alice 2, bob 1)' for a check's decided flags."""
    info = metrics.get("checks", {}).get(check) if check else None
    if not isinstance(info, dict) or not info.get("waived"):
        return ""
    by = info.get("waived_by") or {}
    who = ", ".join(f"{k} {v}" for k, v in by.items())
    return f" ({info['waived']} waived by review{': ' + who if who else ''})"


def _expand(rd: RuleDef, threshold: Any, metrics: dict[str, Any]
            ) -> Iterator[tuple[str, str, float]]:
    """(rule name, check name or "", threshold) for each rule a table row gives."""
    if rd.per_check == "threshold":
        for check, thr in threshold.items():
            yield f"{rd.key}.{check}", check, thr
    elif rd.per_check == "metric":
        found = [c for c in metrics.get("checks", {})
                 if _lookup(metrics, rd.metric.format(check=c)) is not None
                 or (rd.fallback and _lookup(metrics, rd.fallback.format(check=c)) is not None)]
        for check in found:
            yield f"{rd.key}.{check}", check, threshold
        if not found:
            yield rd.key, "", threshold  # listed as not evaluated
    else:
        yield rd.key, "", threshold


def _lookup(metrics: dict[str, Any], path: str) -> float | None:
    """Numeric value at a dotted ``path``; None when absent or null."""
    node: Any = metrics
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    if node is None:
        return None
    if isinstance(node, bool) or not isinstance(node, int | float):
        raise StageInputError(f"metrics key '{path}' holds {node!r}, not a number; "
                              f"rerun the stage that writes it")
    return float(node)


# --------------------------------------------------------------------------- outputs
def to_json(rules: Sequence[Rule], *, on: str) -> dict[str, Any]:
    """The ``gate.json`` document."""
    return {
        "on": on,
        "passed": not any(r.passed is False for r in rules),
        "n_rules": len(rules),
        "n_failed": sum(r.passed is False for r in rules),
        "n_not_evaluated": sum(r.passed is None for r in rules),
        "rules": {r.name: {k: v for k, v in dataclasses.asdict(r).items() if k != "name"}
                  for r in rules},
    }


def to_junit(rules: Sequence[Rule], *, on: str,
             details: dict[str, str] | None = None) -> bytes:
    """JUnit XML: one ``testcase`` per rule; ``failure`` / ``skipped`` with the message.
    ``details`` (rule name -> text: the report and the first files behind a failed rule,
    :mod:`dataqa.evidence`) is appended to the failure message. Every attribute and text
    goes through :func:`dataqa.text.xml_text` (no character XML 1.0 forbids, so CI's
    JUnit readers can parse it), then ElementTree escapes markup."""
    details = details or {}
    suite_name = f"dataqa.gate.{on}"
    root = ET.Element("testsuites", name="dataqa gate")
    suite = ET.SubElement(root, "testsuite", name=suite_name, tests=str(len(rules)),
                          failures=str(sum(r.passed is False for r in rules)),
                          skipped=str(sum(r.passed is None for r in rules)), errors="0")
    for r in rules:
        case = ET.SubElement(suite, "testcase", classname=suite_name, name=r.name, time="0")
        if r.passed is False:
            message = f"{r.message} ({details[r.name]})" if r.name in details else r.message
            fail = ET.SubElement(case, "failure", message=message, type="threshold")
            fail.text = (f"value={_fmt(r.value)} threshold={_fmt(r.threshold)} "
                         f"(passes when value {r.comparison} threshold)")
        elif r.passed is None:
            ET.SubElement(case, "skipped", message=r.message)
    for node in root.iter():  # every attribute and text, whatever added it
        node.attrib = {k: xml_text(v) for k, v in node.attrib.items()}
        if node.text:
            node.text = xml_text(node.text)
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True) + b"\n"


def format_table(rules: Sequence[Rule]) -> str:
    """A short fixed-width table for the terminal."""
    lines = [f"{'rule':<44} {'value':>12} {'':>2} {'threshold':>10}  result"]
    for r in rules:
        lines.append(f"{r.name:<44} {_fmt(r.value):>12} {r.comparison:>2} "
                     f"{_fmt(r.threshold):>10}  {r.status}")
    return "\n".join(lines)


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.6g}"
