"""Audit report: class balance and sufficiency (slot 35).

From ``audit.json``: ``balance`` (counts per class and split, imbalance ratio,
normalised entropy, classes under ``audit.min_per_class``) and ``learning_curve``
(validation accuracy at growing fractions of the data, its slope per doubling and the
recommendation in words, :mod:`dataqa.engine.learning_curve`). The per-split imbalance ratio
and entropy are the same :mod:`dataqa.dataset.balance` functions applied to the stored
per-split counts (a display of audit.json, not a new check).
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from dataqa.dataset import balance as bal_fns
from dataqa.report import charts
from dataqa.report.audit_report import AuditData
from dataqa.report.page import Section, section

MAX_HEATMAP_CLASSES = 60  # classes drawn in the per-split share chart at most

ACTIONS = {
    "augment_minority": "augment the minority classes",
    "collect_more": "collect more data",
    "class_weights": "train with class weights",
    "weak_model": "the model is too weak to judge (pretrained backbone, more epochs)",
    "fine": "fine as it is",
}


def split_rows(per_split: dict[str, dict[str, int]]) -> list[dict[str, Any]]:
    """One row per split: images, classes present, imbalance ratio, normalised entropy."""
    rows = []
    for split, counts in per_split.items():
        s = pd.Series(counts, dtype="int64")
        rows.append({"split": str(split), "n": int(s.sum()), "classes": int((s > 0).sum()),
                     "imbalance_ratio": bal_fns.imbalance_ratio(s),
                     "normalized_entropy": bal_fns.normalized_entropy(s) if len(s) else None,
                     "smallest": str(s.idxmin()) if len(s) else ""})
    return rows


def curve_chart(lc: dict[str, Any]) -> Any:
    points = lc.get("points") or []
    f = [p.get("fraction") for p in points]
    series = {"validation accuracy": (f, [p.get("val_accuracy") for p in points])}
    if any(p.get("train_accuracy") is not None for p in points):
        series["training accuracy"] = (f, [p.get("train_accuracy") for p in points])
    return charts.line_chart(series, title="Learning curve", xlabel="share of the training "
                             "pool (log scale)", ylabel="accuracy", log_x=True)


@section("audit", order=35)
def balance(data: AuditData) -> Section:
    bal = data.metrics.get("balance") or {}
    lc = data.metrics.get("learning_curve")  # the audit stage copies it (its one reader)
    if not bal and not lc:
        return Section("balance", "Class balance and sufficiency", "balance.html.j2",
                       {"not_run": "No balance block in audit.json: run the 'audit' "
                        "stage."}, summary="not run")
    per_split = bal.get("counts_per_split") or {}
    classes = list(bal.get("counts_per_class") or {})
    heat, heat_note = None, ""
    if len(per_split) > 1 and classes:  # one split: the overview's bars say it all
        shown = classes
        if len(classes) > MAX_HEATMAP_CLASSES:
            totals = bal["counts_per_class"]
            shown = sorted(classes, key=lambda c: (totals[c], c))[:MAX_HEATMAP_CLASSES]
            heat_note = (f"{len(classes)} classes: the chart shows the "
                         f"{MAX_HEATMAP_CLASSES} smallest")
        matrix = [[int(per_split[s].get(c, 0)) for c in shown] for s in per_split]
        heat = charts.heatmap(matrix, list(per_split), shown,
                              title="Share of each class within each split",
                              xlabel="class", ylabel="split")
    facts = [
        ("classes", bal.get("n_classes")),
        ("imbalance ratio (largest / smallest)", bal.get("imbalance_ratio")),
        ("normalised entropy (1 = balanced)", bal.get("normalized_entropy")),
        ("smallest class (images)", bal.get("min_class_count")),
        ("largest class (images)", bal.get("max_class_count")),
        (f"classes under {bal.get('min_per_class', '-')} images",
         bal.get("n_classes_under_min", len(bal.get("classes_under_min") or []))),
    ] if bal else []
    ctx: dict[str, Any] = {
        "not_run": "", "heatmap": heat, "heat_note": heat_note, "facts": facts,
        "splits": split_rows(per_split), "under_min": bal.get("classes_under_min") or [],
        "min_per_class": bal.get("min_per_class"), "lc": None, "lc_not_evaluated": "",
    }
    if lc and lc.get("evaluated") is False:
        ctx["lc_not_evaluated"] = str(lc.get("not_evaluated_reason") or "")
        lc = None
    summary = "" if bal.get("imbalance_ratio") is None else \
        f"imbalance {bal['imbalance_ratio']:.1f}x"
    if lc:
        slope = lc.get("slope") or {}
        rec = lc.get("recommendation") or {}
        ctx["lc"] = {
            "chart": curve_chart(lc),
            "points": [{k: p.get(k) for k in ("fraction", "n_train", "val_accuracy",
                                              "train_accuracy")}
                       for p in lc.get("points") or []],
            "gain": slope.get("gain_per_doubling"), "se": slope.get("gain_se"),
            "text": rec.get("text") or "",
            "actions": [ACTIONS.get(a, a) for a in rec.get("actions") or []],
            "n_val": lc.get("n_val"), "n_pool": lc.get("n_pool"),
            "device": lc.get("device"),
        }
        if rec.get("actions"):
            summary = ", ".join(ctx["lc"]["actions"])
    return Section("balance", "Class balance and sufficiency", "balance.html.j2", ctx,
                   summary=summary)
