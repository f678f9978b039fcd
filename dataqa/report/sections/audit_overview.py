"""Audit report overview: counts per class and split (from ``audit.json``), image sizes
and aspect ratios, formats and modes (from the manifest's scan statistics)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from dataqa.report import charts
from dataqa.report.audit_report import AuditData
from dataqa.report.page import Section, records, section

MAX_BARS = 80  # more classes: the chart shows the largest and smallest half each


def class_count_table(balance: dict[str, Any]) -> pd.DataFrame:
    """(K, S + 1) decodable images per class: one column per split plus ``total``."""
    per_split = balance.get("counts_per_split") or {}
    totals = balance.get("counts_per_class") or {}
    table = pd.DataFrame(per_split).reindex(list(totals)).fillna(0).astype("int64")
    table["total"] = pd.Series(totals, dtype="int64")
    return table


def chart_classes(table: pd.DataFrame, limit: int = MAX_BARS) -> tuple[pd.DataFrame, str]:
    """Rows to draw (all, or the ``limit // 2`` largest and smallest) and a note."""
    if len(table) <= limit:
        return table, ""
    order = table.sort_values("total", ascending=False)
    half = limit // 2
    shown = pd.concat([order.head(half), order.tail(half)])
    return shown, (f"{len(table)} classes: the chart shows the {half} largest and the "
                   f"{half} smallest; the table below lists all")


@section("audit", order=30)
def overview(data: AuditData) -> Section:
    bal = data.metrics.get("balance", {})
    table = class_count_table(bal)
    shown, note = chart_classes(table)
    splits = [c for c in table.columns if c != "total"]
    bars = charts.bar_chart(list(shown.index), {s: shown[s].tolist() for s in splits},
                            title="Decodable images per class and split", ylabel="images")

    m = data.manifest
    ok = m["decode_error"].isna() & m["width"].notna() & m["height"].notna()
    w = m.loc[ok, "width"].to_numpy(dtype=float)
    h = m.loc[ok, "height"].to_numpy(dtype=float)
    sizes = charts.scatter(w, h, title="Image size (pixels)", xlabel="width", ylabel="height")
    aspect = charts.histogram(w / np.where(h > 0, h, np.nan), bins=30, log_x=True,
                              title="Aspect ratio (width / height)", xlabel="width / height")

    fmt = m["format"].astype("string").fillna("(unknown)").where(
        m["decode_error"].isna(), "(undecodable)")
    mode = m["mode"].astype("string").fillna("-").where(m["decode_error"].isna(), "-")
    formats = (pd.DataFrame({"format": fmt, "mode": mode}).value_counts()
               .rename("files").reset_index())
    formats["share"] = formats["files"] / max(len(m), 1)

    facts = [
        ("imbalance ratio (largest / smallest)", bal.get("imbalance_ratio")),
        ("normalized entropy (1 = balanced)", bal.get("normalized_entropy")),
        ("smallest class", bal.get("min_class_count")),
        ("largest class", bal.get("max_class_count")),
        (f"classes under {bal.get('min_per_class')} images", len(bal.get("classes_under_min", []))),
    ]
    size_facts = []
    if len(w):
        area = w * h
        lo, hi = int(np.argmin(area)), int(np.argmax(area))
        size_facts = [("median width x height", f"{np.median(w):.0f} x {np.median(h):.0f}"),
                      ("smallest (area)", f"{w[lo]:.0f} x {h[lo]:.0f}"),
                      ("largest (area)", f"{w[hi]:.0f} x {h[hi]:.0f}"),
                      ("distinct sizes", int(pd.MultiIndex.from_arrays([w, h]).nunique()))]
    class_rows = [{"label": str(k), "counts": [int(v) for v in row[splits]],
                   "total": int(row["total"])} for k, row in table.iterrows()]
    return Section("overview", "Overview", "overview.html.j2", {
        "bars": bars, "bars_note": note, "sizes": sizes, "aspect": aspect,
        "facts": facts, "size_facts": size_facts,
        "under_min": bal.get("classes_under_min", []),
        "splits": splits, "class_rows": class_rows,
        "formats": records(formats),
    }, summary=f"{len(table)} classes")
