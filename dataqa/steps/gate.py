"""DVC stages ``gate`` and ``gate_prepared``: evaluate one gate of :data:`dataqa.gate.GATES`
on its metrics file; write the JSON and JUnit results; exit code 1 when a rule fails."""

from __future__ import annotations

import json
from typing import Any

from dataqa.errors import ParamsError, StageInputError
from dataqa.evidence import failure_lines
from dataqa.gate import GATES, GateSpec, evaluate, format_table, to_json, to_junit
from dataqa.io import write_bytes, write_json
from dataqa.params import Params
from dataqa.text import say


def load_metrics(params: Params, spec: GateSpec) -> dict[str, Any]:
    path = params.path(spec.metrics)
    if not path.is_file():
        raise StageInputError(f"{path}: not found; run the '{spec.stage}' stage first")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise StageInputError(f"{path}: not valid JSON ({exc}); "
                              f"rerun the '{spec.stage}' stage") from None
    if not isinstance(data, dict):
        raise StageInputError(f"{path}: expected a JSON object; rerun the '{spec.stage}' stage")
    return data


def review_block(review: dict[str, Any]) -> dict[str, Any]:
    """``gate.json: review``: images pending, flags waived by review and by whom."""
    by: dict[str, int] = {}
    for info in review.get("checks", {}).values():
        for who, n in (info.get("waived_by") or {}).items():
            by[who] = by.get(who, 0) + int(n)
    return {"pending": review.get("n_pending"), "decided": review.get("n_decided"),
            "waived": sum(int(i.get("waived", 0)) for i in review.get("checks", {}).values()),
            "waived_by": dict(sorted(by.items())),
            "by_decision": review.get("by_decision", {})}


def run_stage(params: Params, on: str = "audit") -> int:
    """Evaluate the gate ``on`` (a :data:`GATES` key); exit code 1 when a rule fails."""
    if on not in GATES:
        raise ParamsError(f"unknown gate '{on}'; known: {', '.join(GATES)}")
    spec = GATES[on]
    metrics = load_metrics(params, spec)
    rules = evaluate(params.gate, metrics, rules=spec.rules)
    doc = to_json(rules, on=on)
    if on == "audit" and isinstance(metrics.get("review"), dict):
        doc["review"] = review_block(metrics["review"])
    details = failure_lines(params, on, [r.name for r in rules if r.passed is False], metrics)
    write_json(params.path(spec.json), doc)
    write_bytes(params.path(spec.junit), to_junit(rules, on=on, details=details))
    say(format_table(rules))
    for name, text in details.items():
        say(f"FAILED {name}: {text}")
    if doc.get("review"):
        r = doc["review"]
        say(f"review: {r['pending']} image(s) pending, {r['waived']} flag(s) waived by "
            f"review" + (f" ({', '.join(f'{k} {v}' for k, v in r['waived_by'].items())})"
                         if r["waived_by"] else ""))
    say(f"gate {on}: {'PASSED' if doc['passed'] else 'FAILED'} "
          f"({doc['n_failed']} failed, {doc['n_not_evaluated']} not evaluated, "
          f"{doc['n_rules']} rules)")
    return 0 if doc["passed"] else 1
