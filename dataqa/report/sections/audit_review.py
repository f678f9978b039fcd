"""Audit report, top: how many flags are pending review, per check, and the controls
to save the decisions made on the page (issue 22; :mod:`dataqa.report.review`).

The counts come from ``audit.json: review`` (the audit applied the decisions file);
the page's script updates them as a person decides. The section also carries the data
island the script reads (every flagged or decided image), in a ``data-`` attribute:
JSON escaped for HTML, never a script.
"""

from __future__ import annotations

from dataqa.report.audit_report import AuditData
from dataqa.report.page import Section, section


@section("audit", order=7)
def review_summary(data: AuditData) -> Section | None:
    review = data.metrics.get("review")
    if not isinstance(review, dict):
        return None
    checks = [{"name": c, **info} for c, info in review.get("checks", {}).items()
              if info.get("flagged")]
    quiet = [c for c, info in review.get("checks", {}).items() if not info.get("flagged")]
    suspicions = {c: n for c, n in (review.get("suspicions") or {}).items() if n}
    return Section("review", "Review", "review.html.j2", {
        "checks": checks, "quiet": quiet, "review": review, "suspicions": suspicions,
        # named by the audit (its one reader): the report does not depend on the file
        "reviews_path": str(review.get("file") or "reviews.csv"), "data": data.review.data(),
    }, summary=f"{review.get('n_pending', 0)} pending")
