"""Audit report, first lines: is the out-of-fold model strong enough to judge labels?
(``audit.json: model``, :mod:`dataqa.model_strength`). Shown only when it is
not: then the label flags are review-only and the reader must know before anything
else, with the numbers and what to do."""

from __future__ import annotations

from dataqa.model_strength import weak_model
from dataqa.report.audit_report import AuditData
from dataqa.report.page import Section, section


@section("audit", order=5)
def model_verdict(data: AuditData) -> Section | None:
    model = weak_model(data.metrics)
    if model is None:
        return None
    return Section("model_verdict", "The model is too weak to judge labels",
                   "verdict.html.j2",
                   {"reason": model.get("reason", ""), "advice": model.get("advice", ""),
                    "checks": model.get("review_only_checks") or [], "model": model},
                   summary="label flags are review-only")
