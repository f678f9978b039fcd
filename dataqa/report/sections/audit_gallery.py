"""Audit report: one gallery per check, free for every check.

The top ``report.gallery_size`` flagged images by score (lowest = most suspicious
first), each with its thumbnail, file name, label, split, score and the check's own
extra columns (e.g. ``integrity_reason``, ``label_suggested_label``): enough to decide
about each image from the page; the full list stays in ``issues.parquet``."""

from __future__ import annotations

from typing import Any

import numpy as np

from dataqa.report.audit_report import AuditData
from dataqa.report.page import Section, records, section


def top_flagged(data: AuditData, name: str, n: int, *, decided: bool | None = None
                ) -> list[int]:
    """Ids of the ``n`` flagged rows of check ``name`` with the lowest scores
    (ties by path, so the page is stable); ``decided``: only the flags a review
    decision covers (True) or only the others (False)."""
    issues = data.issues
    flagged = issues.loc[issues[f"is_{name}_issue"].to_numpy(dtype=bool),
                         ["id", "path", f"{name}_score"]]
    if decided is not None:
        keep = np.array([data.review.is_decided(i, name) == decided for i in flagged["id"]],
                        dtype=bool)
        flagged = flagged.loc[keep]
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
        extras = data.check_columns(name)
        extras = [c for c in extras if c != issue_col]
        # pending flags first; the decided ones apart, below
        pending, decided = (_items(data, name, top_flagged(data, name, size, decided=d),
                                   extras) for d in (False, True))
        n_flagged = int(data.issues[issue_col].sum())
        n_decided = sum(data.review.is_decided(i, name) for i in
                        data.issues.loc[data.issues[issue_col].to_numpy(dtype=bool), "id"])
        suspected = name in data.review.demoted
        model = data.metrics.get("model") or {}
        title = (f"Suspected by {name} (a weak model's opinion, not flags)" if suspected
                 else f"Flagged by {name}")
        out.append(Section(f"gallery-{name}", title, "gallery.html.j2", {
            "check": name, "items": pending, "decided": decided, "n_flagged": n_flagged,
            "n_decided": n_decided, "suspected": suspected,
            "reason": model.get("reason", ""), "advice": model.get("advice", ""),
            "issues_path": str(data.params.paths.issues), "issue_col": issue_col,
            "score_col": score_col,
        }, summary=(f"{n_flagged} suspected, not counted" if suspected else
                    f"{n_flagged - n_decided} pending, {n_decided} decided")))
    return out


def _items(data: AuditData, name: str, ids: list[int], extras: list[str]
           ) -> list[dict[str, Any]]:
    data.thumbs.want(ids)
    score_col = f"{name}_score"
    rows = records(data.issues.loc[ids, ["id", "path", "label", "split", score_col,
                                         *extras]])
    return [{"id": r["id"], "path": r["path"], "label": r["label"], "split": r["split"],
             "score": r[score_col],
             "extras": [(c[len(name) + 1:], r[c]) for c in extras if r[c] is not None]}
            for r in rows]
