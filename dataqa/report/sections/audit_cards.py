"""Audit report: one summary card per check (count, rate, threshold, pass/fail)."""

from __future__ import annotations

from typing import Any

from dataqa.errors import ParamsError
from dataqa.report.audit_report import AuditData
from dataqa.report.page import Section, section


def describe(name: str) -> str:
    """The check's one-sentence description, or "" when it is no longer registered."""
    from dataqa.checks import get_check

    try:
        return get_check(name).description
    except ParamsError:
        return ""


def summary_items(summary: dict[str, Any]) -> list[tuple[str, Any]]:
    """A check's own summary numbers, one level of nesting flattened
    (``by_kind.truncated``), non-numeric values left out (lists are counted)."""
    out: list[tuple[str, Any]] = []
    for key, value in summary.items():
        if key in ("count", "rate", "settings"):
            continue
        if isinstance(value, dict):
            out += [(f"{key}.{k}", v) for k, v in value.items()
                    if isinstance(v, int | float) and not isinstance(v, bool)]
        elif isinstance(value, int | float) and not isinstance(value, bool):
            out.append((key, value))
        elif isinstance(value, list):
            out.append((f"{key} (count)", len(value)))
    return out


@section("audit", order=20)
def check_cards(data: AuditData) -> Section | None:
    checks = data.metrics.get("checks", {})
    if not checks:
        return None
    cards = []
    for name in data.checks:
        summary = checks.get(name, {})
        cards.append({
            "name": name,
            "description": describe(name),
            "count": summary.get("count"),
            "rate": summary.get("rate"),
            "rule": data.rule(f"max_rates.{name}"),
            "numbers": summary_items(summary),
            "settings": ", ".join(f"{k}={v}" for k, v in (summary.get("settings") or {}).items()),
        })
    return Section("checks", "Checks", "check_cards.html.j2", {"cards": cards},
                   summary=f"{len(cards)} checks")
