"""Audit report: files that cannot be used as they are, with reasons.

Uses the ``integrity`` check's columns when it ran, else the manifest's
``decode_error`` (so the undecodable files are listed in every report)."""

from __future__ import annotations

import pandas as pd

from dataqa.report.audit_report import AuditData
from dataqa.report.page import Section, records, section


@section("audit", order=40)
def integrity_files(data: AuditData) -> Section:
    m, issues = data.manifest, data.issues
    if "is_integrity_issue" in issues:
        flagged = issues["is_integrity_issue"].to_numpy(dtype=bool)
        kind = issues["integrity_kind"] if "integrity_kind" in issues else None
        reason = issues["integrity_reason"] if "integrity_reason" in issues else m["decode_error"]
        by_kind = data.metrics.get("checks", {}).get("integrity", {}).get("by_kind", {})
        source = "integrity check"
    else:
        flagged = m["decode_error"].notna().to_numpy()
        kind, reason, by_kind = None, m["decode_error"], {}
        source = "scan (decode errors; add 'integrity' to audit.checks for more)"
    table = pd.DataFrame({
        "path": m["path"], "label": m["label"], "split": m["split"],
        "bytes": m["bytes"] if "bytes" in m else pd.NA,
        "format": m["format"] if "format" in m else pd.NA,
        "ext_format": m["ext_format"] if "ext_format" in m else pd.NA,
        "kind": kind if kind is not None else "undecodable",
        "reason": reason,
    }, index=m.index)[flagged].sort_values("path")
    limit = data.params.report.max_table_rows
    return Section("integrity", "Unreadable and mislabelled files", "integrity.html.j2", {
        "rows": records(table.head(limit)), "n": len(table), "limit": limit,
        "by_kind": {k: v for k, v in by_kind.items() if v},
        "source": source, "issues_path": str(data.params.paths.issues),
    }, summary=f"{len(table)} files")
