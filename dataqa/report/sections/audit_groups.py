"""Audit report: images that belong together or stand apart.

- 60 duplicates: the groups of ``exact_duplicate`` and ``near_duplicate``
  (``<check>_group`` in ``issues.parquet``) as rows of thumbnails, groups that span
  splits (leakage) first and highlighted, then the largest; the kept file (first by
  path) is marked, and a group whose members carry different labels says so;
- 65 outliers: the top flagged images by ``outlier_score`` with the check's reason;
- 70 complexity: the score's formula and rule from the check's summary, its
  distribution, the references per class, and the most complex images.

Read from the results files only; at most ``report.gallery_size`` groups/images each.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from dataqa.report import charts
from dataqa.report.audit_report import AuditData
from dataqa.report.page import Section, records, section
from dataqa.report.sections.audit_model import check_summary, flagged_items

DUPLICATE_CHECKS = ("exact_duplicate", "near_duplicate")
MAX_PER_GROUP = 8  # thumbnails per group row (the rest are counted)


def top_groups(issues: pd.DataFrame, name: str, n_groups: int, *,
               per_group: int = MAX_PER_GROUP) -> list[dict[str, Any]]:
    """The ``n_groups`` groups of check ``name`` to show: leaking (more than one split)
    first, then the largest, then by first path. Each: group id, size, splits, labels,
    leak / label-conflict flags and up to ``per_group`` members sorted by path (the
    kept file first), as dicts with id, path, label, split, kept, flagged."""
    col = f"{name}_group"
    groups = issues[col].to_numpy()
    member = np.flatnonzero(pd.notna(groups) & (pd.to_numeric(groups, errors="coerce") >= 0))
    if len(member) == 0:
        return []
    cols = ["id", "path", "label", "split", col, f"is_{name}_issue"]
    kept_col = f"{name}_kept_id"
    frame = issues.iloc[member][cols + ([kept_col] if kept_col in issues else [])].copy()
    frame["path"] = frame["path"].astype(str)
    frame = frame.sort_values([col, "path"], kind="stable")
    by = frame.groupby(col, sort=False)
    info = pd.DataFrame({
        "size": by.size(),
        "n_splits": by["split"].nunique(dropna=False),
        "n_labels": by["label"].nunique(dropna=False),
        "first": by["path"].first(),
    })
    info = info.sort_values(["n_splits", "size", "first"], ascending=[False, False, True],
                            kind="stable").head(n_groups)
    chosen = frame[frame[col].isin(info.index)]
    out = []
    for gid, rows in chosen.groupby(col, sort=False):
        g = info.loc[gid]
        shown = rows.head(per_group)
        members = []
        for r in records(shown):
            kept = (r[kept_col] == r["id"]) if kept_col in r else not r[f"is_{name}_issue"]
            members.append({"id": r["id"], "path": r["path"], "label": r["label"],
                            "split": r["split"], "kept": bool(kept),
                            "flagged": bool(r[f"is_{name}_issue"])})
        out.append({"group": int(gid), "size": int(g["size"]),
                    "splits": sorted({str(s) for s in rows["split"]}),
                    "labels": sorted({str(s) for s in rows["label"]}),
                    "leak": int(g["n_splits"]) > 1, "conflict": int(g["n_labels"]) > 1,
                    "members": members, "more": int(g["size"]) - len(members)})
    order = {gid: i for i, gid in enumerate(info.index)}
    out.sort(key=lambda d: order[d["group"]])
    return out


@section("audit", order=60)
def duplicates(data: AuditData) -> Section:
    n_groups = max(1, data.params.report.gallery_size // 2)
    parts: list[dict[str, Any]] = []
    for name in DUPLICATE_CHECKS:
        summary = check_summary(data, name)
        if summary is None or f"{name}_group" not in data.issues:
            continue
        groups = top_groups(data.issues, name, n_groups)
        for g in groups:
            data.thumbs.want(m["id"] for m in g["members"])
        parts.append({"check": name, "groups": groups,
                      "n_groups": summary.get("groups"),
                      "redundant": summary.get("redundant", summary.get("count")),
                      "cross": summary.get("cross_split_pairs"),
                      "pixel_only": summary.get("pixel_only")})
    if not parts:
        return Section("duplicates", "Duplicates and near-duplicates", "groups.html.j2",
                       {"part": "duplicates", "not_run": "Neither 'exact_duplicate' nor "
                        "'near_duplicate' is in audit.checks."}, summary="not run")
    leaks = sum(int(p["cross"] or 0) for p in parts)
    return Section("duplicates", "Duplicates and near-duplicates", "groups.html.j2", {
        "part": "duplicates", "not_run": "", "parts": parts, "shown": n_groups,
        "per_group": MAX_PER_GROUP, "issues_path": str(data.params.paths.issues),
    }, summary=f"{leaks} cross-split pairs" if leaks else
        f"{sum(int(p['redundant'] or 0) for p in parts)} redundant")


@section("audit", order=65)
def outliers(data: AuditData) -> Section:
    summary = check_summary(data, "outlier")
    if summary is None:
        return Section("outliers", "Outliers (irrelevant images)", "groups.html.j2",
                       {"part": "outliers", "not_run": "'outlier' is not in audit.checks."},
                       summary="not run")
    items = flagged_items(data, "outlier", data.params.report.gallery_size,
                          extras=("outlier_reason",))
    n_flagged = int(data.issues["is_outlier_issue"].sum())
    return Section("outliers", "Outliers (irrelevant images)", "groups.html.j2", {
        "part": "outliers", "not_run": "", "items": items, "n_flagged": n_flagged,
        "rate": summary.get("rate"), "by_evidence": summary.get("by_evidence") or {},
        "issues_path": str(data.params.paths.issues),
    }, summary=f"{n_flagged} flagged")


@section("audit", order=70)
def complexity(data: AuditData) -> Section:
    summary = check_summary(data, "complexity")
    if summary is None or "complexity_value" not in data.issues:
        return Section("complexity", "Overly complex images", "groups.html.j2",
                       {"part": "complexity", "not_run": "'complexity' is not in "
                        "audit.checks."}, summary="not run")
    issues = data.issues
    value = pd.to_numeric(issues["complexity_value"], errors="coerce").to_numpy(dtype=float)
    finite = np.isfinite(value)
    n = data.params.report.gallery_size
    # the most complex images: largest value first (argpartition: O(N) at 100k rows)
    rows = np.flatnonzero(finite)
    if len(rows) > n:
        rows = rows[np.argpartition(-value[rows], n - 1)[:n]]
    top = issues.iloc[rows].assign(_v=value[rows]).sort_values(["_v", "path"],
                                                              ascending=[False, True])
    cols = ["id", "path", "label", "split", "complexity_score", "is_complexity_issue",
            "_v"] + (["complexity_z"] if "complexity_z" in issues else [])
    items = []
    for r in records(top, cols):
        items.append({"id": r["id"], "path": r["path"], "label": r["label"],
                      "split": r["split"], "score": r["complexity_score"], "value": r["_v"],
                      "z": r.get("complexity_z"), "flagged": bool(r["is_complexity_issue"])})
    data.thumbs.want(it["id"] for it in items)
    ref = summary.get("reference") or {}
    hist = charts.histogram(value[finite], bins=40, log_x=True,
                            title="Complexity of every decodable image",
                            xlabel="complexity (log scale)")
    limit = data.params.report.max_table_rows
    class_refs = [{"label": str(k), **{f: v.get(f) for f in ("median", "above", "n",
                                                                "scale_is_floor")}}
                  for k, v in (summary.get("class_references") or {}).items()][:limit]
    n_flagged = int(issues["is_complexity_issue"].sum())
    return Section("complexity", "Overly complex images", "groups.html.j2", {
        "part": "complexity", "not_run": "", "items": items, "n_flagged": n_flagged,
        "formula": summary.get("formula") or "", "rule": summary.get("rule") or "",
        "ref": {f: ref.get(f) for f in ("median", "above", "n")}, "hist": hist,
        "class_refs": class_refs, "rate": summary.get("rate"),
    }, summary=f"{n_flagged} flagged")
