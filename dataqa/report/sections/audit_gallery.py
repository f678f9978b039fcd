"""Audit report: one gallery per check, free for every check.

The top ``report.gallery_size`` flagged images by score (lowest = most suspicious
first), each with its thumbnail, file name, label, split, score and the check's own
extra columns (e.g. ``integrity_reason``, ``label_suggested_label``): enough to decide
about each image from the page; the full list stays in ``issues.parquet``."""

from __future__ import annotations

from dataqa.report.audit_report import AuditData
from dataqa.report.page import Section, records, section


def top_flagged(data: AuditData, name: str, n: int) -> list[int]:
    """Ids of the ``n`` flagged rows of check ``name`` with the lowest scores
    (ties by path, so the page is stable)."""
    issues = data.issues
    flagged = issues.loc[issues[f"is_{name}_issue"].to_numpy(dtype=bool),
                         ["id", "path", f"{name}_score"]]
    top = flagged.sort_values([f"{name}_score", "path"], kind="stable").head(n)
    return [int(i) for i in top["id"]]


@section("audit", order=90)
def galleries(data: AuditData) -> list[Section]:
    out = []
    size = data.params.report.gallery_size
    for name in data.checks:
        issue_col, score_col = f"is_{name}_issue", f"{name}_score"
        if issue_col not in data.issues:
            continue
        ids = top_flagged(data, name, size)
        data.thumbs.want(ids)
        extras = data.check_columns(name)
        extras = [c for c in extras if c != issue_col]
        rows = records(data.issues.loc[ids, ["id", "path", "label", "split", score_col,
                                             *extras]])
        items = [{"id": r["id"], "path": r["path"], "label": r["label"], "split": r["split"],
                  "score": r[score_col],
                  "extras": [(c[len(name) + 1:], r[c]) for c in extras if r[c] is not None]}
                 for r in rows]
        n_flagged = int(data.issues[issue_col].sum())
        out.append(Section(f"gallery-{name}", f"Flagged by {name}", "gallery.html.j2", {
            "check": name, "items": items, "n_flagged": n_flagged,
            "issues_path": str(data.params.paths.issues), "issue_col": issue_col,
            "score_col": score_col,
        }, summary=f"{n_flagged} flagged"))
    return out
