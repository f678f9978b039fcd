"""Audit report: the gate's rules, as :func:`dataqa.gate.evaluate` sees them."""

from __future__ import annotations

from dataqa.report.audit_report import AuditData
from dataqa.report.page import Section, section


@section("audit", order=10)
def gate_summary(data: AuditData) -> Section:
    failed = [r for r in data.rules if r.passed is False]
    skipped = [r for r in data.rules if r.passed is None]
    status = "FAILED" if failed else "passed"
    return Section("gate", "Gate", "gate.html.j2",
                   {"rules": data.rules, "failed": len(failed), "skipped": len(skipped),
                    "passed": not failed},
                   summary=f"{status}: {len(failed)} of {len(data.rules)} rules failed")
