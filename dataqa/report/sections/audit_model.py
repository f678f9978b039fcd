"""Audit report: what the out-of-fold model says about the labels.

- 50 label issues: the top ``report.gallery_size`` flagged images by ``label_score``
  (lowest first), each with its given -> suggested label, and the most frequent
  (given -> suggested) pairs (``checks.label.top_pairs`` in ``audit.json``);
- 52 per-class out-of-fold accuracy and the confusion matrix (``checks.label``, else
  ``reports/metrics/crossval.json`` for the accuracies): the model's weaknesses, to
  look at before changing anything;
- 54 confidence: histograms of the out-of-fold max softmax probability, overall
  (agreeing / disagreeing with the label) and per class (``confidence`` in
  ``audit.json``).

Everything is read from the results files; nothing is recomputed. Each section says
"not run" when its inputs are absent (e.g. an audit without crossval).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dataqa.checks.label import LabelSettings
from dataqa.dataset.crossval_metrics import not_evaluated_reason, read_crossval_metrics
from dataqa.report import charts
from dataqa.report.audit_report import AuditData
from dataqa.report.page import Section, records, section

MAX_BARS = 80  # per-class bars drawn at most (the weakest classes when there are more)
MAX_HEATMAP_CLASSES = 40  # per-class confidence rows drawn at most (least sure first)

NOT_RUN_LABEL = ("The label check did not run: it needs the out-of-fold predictions of "
                 "the 'crossval' stage and 'label' in audit.checks.")


def flagged_items(data: AuditData, name: str, n: int, *,
                  extras: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """The ``n`` flagged rows of check ``name`` with the lowest scores (ties by path),
    as template dicts: id, path, label, split, score and the ``extras`` columns that
    exist (by their full column name). Asks the thumbnailer for their images."""
    issues = data.issues
    flag, score = f"is_{name}_issue", f"{name}_score"
    cols = ["id", "path", "label", "split", score, *[c for c in extras if c in issues]]
    flagged = issues.loc[issues[flag].to_numpy(dtype=bool), cols]
    top = flagged.sort_values([score, "path"], kind="stable").head(n)
    data.thumbs.want(top["id"].tolist())
    rows = records(top)
    for r in rows:
        r["score"] = r.pop(score)
        for c in extras:
            r.setdefault(c, None)
    return rows


def check_summary(data: AuditData, name: str) -> dict[str, Any] | None:
    """``checks.<name>`` of audit.json when the check ran and wrote its columns."""
    summary = data.metrics.get("checks", {}).get(name)
    if summary is None or f"is_{name}_issue" not in data.issues:
        return None
    return dict(summary)


@section("audit", order=50)
def label_issues(data: AuditData) -> Section:
    summary = check_summary(data, "label")
    skipped = (data.metrics.get("not_evaluated") or {}).get("label")
    if summary is None and skipped:
        return Section("labels", "Label issues", "model.html.j2",
                       {"part": "labels", "not_run": f"The label check was not evaluated: "
                        f"{skipped}."}, summary="not evaluated")
    if summary is None:
        return Section("labels", "Label issues", "model.html.j2",
                       {"part": "labels", "not_run": NOT_RUN_LABEL}, summary="not run")
    size = data.params.report.gallery_size
    items = flagged_items(data, "label", size,
                          extras=("label_given", "label_suggested", "label_confidence"))
    n_flagged = int(data.issues["is_label_issue"].sum())
    flagged_given = data.issues.loc[data.issues["is_label_issue"].to_numpy(dtype=bool),
                                    "label"].astype(str)
    per_given = flagged_given.value_counts()
    pairs = [{"given": str(p["given"]), "suggested": str(p["suggested"]),
              "count": int(p["count"]),
              "share": (int(p["count"]) / n_flagged) if n_flagged else None,
              "of_given": int(per_given.get(str(p["given"]), 0))}
             for p in summary.get("top_pairs") or []]
    return Section("labels", "Label issues", "model.html.j2", {
        "part": "labels", "not_run": "", "items": items, "n_flagged": n_flagged,
        "rate": summary.get("rate"), "n_scored": summary.get("n_scored"),
        "oof_accuracy": summary.get("oof_accuracy"), "pairs": pairs,
        "warnings": [str(w) for w in summary.get("warnings") or []],
        "skipped": summary.get("skipped") or "",
        "issues_path": str(data.params.paths.issues),
        "op": operating_point(summary.get("operating_point")),
        "suspected": "label" in data.review.demoted,
    }, summary=f"{n_flagged} suspected, not flags" if "label" in data.review.demoted
        else f"{n_flagged} flagged")


def operating_point(op: dict[str, Any] | None) -> dict[str, Any] | None:
    """The label verdict's operating point for the template (None when the audit.json
    predates it): noise estimate, rule, why, and the next rank band with the setting
    that widens the net to it."""
    if not op:
        return None
    band = op.get("next_band") or {}
    settings = op.get("settings") or {}
    fields = LabelSettings.model_fields
    defaults = {k: fields[k].default for k in settings if k in fields}
    why = ("dataqa's default: on real digits with 0.1 % to 40 % wrong labels it had a "
           "worst-case F1 from 1 % up within 0.02 of the best rule's and, below 1 %, found "
           "every planted error with a "
           "strong model while flagging under 0.4 % of the images; the capped thresholds "
           "let a sure model's confident disagreements count when errors are rare, the "
           "temperature keeps a weak model's over-confident mistakes from counting "
           "(benchmarks/README.md, \"label: operating point from 0.1 % to 40 % noise\")"
           if settings == defaults else
           "set in params.yaml: audit.settings.label (dataqa's default differs: "
           + ", ".join(f"{k} {v}" for k, v in defaults.items() if settings.get(k) != v) + ")")
    return {"noise_rate": op.get("noise_rate"), "noise_count": op.get("noise_count"),
            "rule": op.get("rule", ""), "why": why, "band": band}


def accuracy_rows(per_class: dict[str, Any], support: dict[str, int]) -> list[dict[str, Any]]:
    """Per-class rows (class order kept): accuracy (None when the class has no scored
    image), support and errors."""
    rows = []
    for cls, acc in per_class.items():
        n = support.get(cls)
        errors = None if acc is None or n is None else int(round(n * (1.0 - float(acc))))
        rows.append({"label": str(cls), "accuracy": None if acc is None else float(acc),
                     "n": n, "errors": errors})
    return rows


def top_confusions(confusion: np.ndarray, classes: list[str], n: int) -> list[dict[str, Any]]:
    """The ``n`` largest off-diagonal cells of a (K, K) confusion matrix (rows = given,
    columns = predicted), largest first, with the share of the given class."""
    m = np.asarray(confusion, dtype=np.int64).copy()
    support = m.sum(axis=1)
    np.fill_diagonal(m, 0)
    gi, pi = np.nonzero(m)
    order = np.lexsort((pi, gi, -m[gi, pi]))[:n]
    return [{"given": classes[gi[t]], "predicted": classes[pi[t]], "count": int(m[gi[t], pi[t]]),
             "share": float(m[gi[t], pi[t]] / support[gi[t]])} for t in order]


@section("audit", order=52)
def per_class_accuracy(data: AuditData) -> Section:
    summary = check_summary(data, "label") or {}
    crossval = read_crossval_metrics(data.params) or {}
    per_class = summary.get("per_class_accuracy") or crossval.get("per_class_accuracy")
    if not per_class and (reason := not_evaluated_reason(crossval)):
        return Section("accuracy", "Out-of-fold accuracy per class", "model.html.j2",
                       {"part": "accuracy", "not_run": "Not evaluated: no model could be "
                        f"trained ({reason})."},
                       summary="not evaluated")
    if not per_class:
        return Section("accuracy", "Out-of-fold accuracy per class", "model.html.j2",
                       {"part": "accuracy", "not_run": "No out-of-fold predictions: run the "
                        "'crossval' stage (and the 'label' check for the confusion "
                        "matrix)."}, summary="not run")
    classes = [str(c) for c in summary.get("classes") or list(per_class)]
    confusion = summary.get("confusion")
    if confusion is not None:
        cm = np.asarray(confusion, dtype=np.int64)
        support = {c: int(s) for c, s in zip(classes, cm.sum(axis=1))}
    else:
        cm = None
        support = {str(k): int(v) for k, v in
                   (data.metrics.get("balance", {}).get("counts_per_class") or {}).items()}
    rows = accuracy_rows(per_class, support)
    known = [r for r in rows if r["accuracy"] is not None]
    note = ""
    shown = known
    if len(known) > MAX_BARS:
        shown = sorted(known, key=lambda r: (r["accuracy"], r["label"]))[:MAX_BARS]
        note = f"{len(known)} classes: the chart shows the {MAX_BARS} weakest; the table lists all"
    bars = charts.bar_chart([r["label"] for r in shown],
                            {"accuracy": [r["accuracy"] for r in shown]},
                            title="Out-of-fold accuracy per class (given label)",
                            ylabel="accuracy")
    heat = confusions = None
    if cm is not None:
        heat = charts.heatmap(cm, classes, classes, title="Confusion matrix (out-of-fold)",
                              xlabel="predicted", ylabel="given")
        confusions = top_confusions(cm, classes, 10)
    overall = summary.get("oof_accuracy", crossval.get("oof_accuracy"))
    limit = data.params.report.max_table_rows
    return Section("accuracy", "Out-of-fold accuracy per class", "model.html.j2", {
        "part": "accuracy", "not_run": "", "bars": bars, "bars_note": note,
        "heatmap": heat, "confusions": confusions, "overall": overall,
        "rows": sorted(rows, key=lambda r: (r["accuracy"] is None, r["accuracy"] or 0.0,
                                            r["label"]))[:limit],
        "n_rows": len(rows), "limit": limit,
        "no_matrix_note": "" if cm is not None else (
            "The confusion matrix is in audit.json only for up to "
            "audit.settings.label.max_confusion_classes classes (or the label check did "
            "not run)."),
        "source": "label check" if summary.get("per_class_accuracy") else "crossval.json",
    }, summary="" if overall is None else f"{100 * float(overall):.1f}% overall")


def bin_labels(edges: list[float]) -> list[str]:
    return [f"{a:.2f}-{b:.2f}" for a, b in zip(edges[:-1], edges[1:])]


@section("audit", order=54)
def confidence(data: AuditData) -> Section:
    conf = data.metrics.get("confidence")
    if not conf or not conf.get("overall"):
        return Section("confidence", "Model confidence", "model.html.j2",
                       {"part": "confidence", "not_run": "No out-of-fold predictions: run "
                        "the 'crossval' stage before the audit."}, summary="not run")
    edges = [float(e) for e in conf["bin_edges"]]
    labels = bin_labels(edges)
    overall = conf["overall"]
    if conf.get("agree") and conf.get("disagree"):
        series = {"agrees with label": conf["agree"]["counts"],
                  "disagrees": conf["disagree"]["counts"]}
    else:
        series = {"images": overall["counts"]}
    hist = charts.bar_chart(labels, series, title="Max softmax probability (out-of-fold)",
                            ylabel="images")
    per_class = conf.get("per_class") or {}
    rows = [{"label": str(k), "n": v.get("n"), "mean": v.get("mean"),
             "median": v.get("median"), "share_low": v.get("share_low")}
            for k, v in per_class.items()]
    # least sure classes first: the ones that need work
    rows.sort(key=lambda r: (-(r["share_low"] or 0.0), r["mean"] if r["mean"] is not None
                             else 2.0, r["label"]))
    heat, heat_note = None, ""
    drawn = [r["label"] for r in rows if r["n"]][:MAX_HEATMAP_CLASSES]
    if drawn:
        matrix = np.array([per_class[c]["counts"] for c in drawn], dtype=float)
        heat = charts.heatmap(matrix, drawn, labels, title="Max probability per class "
                              "(row share)", xlabel="max softmax probability", ylabel="given")
        if len([r for r in rows if r["n"]]) > len(drawn):
            heat_note = (f"{len(rows)} classes: the chart shows the {len(drawn)} with the "
                         "largest share under the line; the table lists all")
    limit = data.params.report.max_table_rows
    return Section("confidence", "Model confidence", "model.html.j2", {
        "part": "confidence", "not_run": "", "hist": hist, "heatmap": heat,
        "heat_note": heat_note, "low": conf.get("low", 0.5), "overall": overall,
        "agree": conf.get("agree"), "disagree": conf.get("disagree"),
        "rows": rows[:limit], "n_rows": len(rows), "limit": limit,
    }, summary="" if overall.get("median") is None else f"median {overall['median']:.2f}")
