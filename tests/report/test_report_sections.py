"""Audit-report sections on the model, balance and groups: planted results files in,
exact facts out; a short 'not run' note without inputs; user names escaped."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pandas as pd
import pytest

from dataqa.report import page
from dataqa.report.audit_report import AuditData
from dataqa.report.review import ReviewView
from dataqa.report.sections import audit_balance, audit_groups, audit_model
from dataqa.report.thumbs import Thumbnailer

EVIL = "<b>x</b>"  # a hostile class name
EVIL_FILE = "a/<img src=x onerror=alert(1)>.png"


def make_data(params_for, *, labels: list[str], paths: list[str] | None = None,
              splits: list[str] | None = None, columns: dict[str, Any] | None = None,
              metrics: dict[str, Any] | None = None, report: dict[str, Any] | None = None
              ) -> AuditData:
    """AuditData over planted rows; files are 'undecodable' so thumbnails are
    placeholders (nothing is read from disk)."""
    n = len(labels)
    paths = paths or [f"{lab}/{i:03d}.png" for i, lab in enumerate(labels)]
    manifest = pd.DataFrame({"id": np.arange(n), "path": paths, "label": labels,
                             "split": splits or ["train"] * n,
                             "decode_error": ["planted: no file"] * n}).set_index("id",
                                                                                   drop=False)
    issues = manifest[["id", "path", "label", "split"]].copy()
    for k, v in (columns or {}).items():
        issues[k] = v
    metrics = metrics or {}
    params = params_for(report=report or {})
    thumbs = Thumbnailer(manifest, params.root, size=32, max_pixels=4096, limit=100)
    checks = [c[3:-6] for c in issues.columns if c.startswith("is_") and c.endswith("_issue")]
    review = ReviewView(manifest, issues, checks, [], sorted(set(labels)))
    return AuditData(params, manifest, issues, metrics, [], thumbs, review)


def render(data: AuditData, builder) -> str:
    built = builder(data)
    secs = [built] if isinstance(built, page.Section) else list(built)
    data.thumbs.load()
    html = page.render_page(title="t", facts=[], sections=secs,
                            globals_={"thumbs": data.thumbs, "review": data.review,
                                      "thumb_size": 32})
    return html.split("<main>")[1].split("</main>")[0]


def items(html: str) -> list[str]:
    return re.findall(r'<div class="item[^"]*"[^>]* data-path="([^"]+)"', html)


# --------------------------------------------------------------------------- not run
@pytest.mark.parametrize("builder", [
    audit_model.label_issues,  # no label check in audit.json / issues
    audit_model.per_class_accuracy,  # no label summary and no crossval.json
    audit_model.confidence,  # no confidence block
    audit_balance.balance,  # no balance block and no learning curve
    audit_groups.duplicates,  # neither duplicate check ran
    audit_groups.outliers,  # outlier check did not run
    audit_groups.complexity,  # complexity check did not run
])
def test_sections_say_not_run_without_inputs(params_for, builder):
    html = render(make_data(params_for, labels=["a", "b"]), builder)
    assert "Not run." in html
    assert "<svg" not in html and 'class="item"' not in html


# --------------------------------------------------------------------------- model
def label_data(params_for, **report: Any) -> AuditData:
    labels = ["a", "a", "a", "b", "b", EVIL]
    is_issue = [True, True, False, True, False, True]
    score = [0.10, 0.05, 0.9, 0.20, 0.8, 0.01]
    suggested = ["b", "b", "a", "a", "b", "a"]
    confusion = [[5, 7, 0], [1, 9, 0], [2, 0, 3]]
    metrics = {"checks": {"label": {
        "count": 4, "rate": 4 / 6, "n_scored": 6, "classes": ["a", "b", EVIL],
        "oof_accuracy": 17 / 27,
        "per_class_accuracy": {"a": 5 / 12, "b": 0.9, EVIL: 0.6},
        "top_pairs": [{"given": "a", "suggested": "b", "count": 2},
                      {"given": "b", "suggested": "a", "count": 1},
                      {"given": EVIL, "suggested": "a", "count": 1}],
        "confusion": confusion}},
        "confidence": {
            "bin_edges": [0.0, 0.25, 0.5, 0.75, 1.0], "low": 0.5,
            "overall": {"counts": [0, 1, 2, 3], "n": 6, "mean": 0.7, "median": 0.75,
                        "share_low": 1 / 6},
            "agree": {"counts": [0, 0, 1, 1], "n": 2, "mean": 0.8, "median": 0.8,
                      "share_low": 0.0},
            "disagree": {"counts": [0, 1, 1, 2], "n": 4, "mean": 0.6, "median": 0.7,
                         "share_low": 0.25},
            "per_class": {"a": {"counts": [0, 0, 1, 2], "n": 3, "mean": 0.8, "median": 0.8,
                                "share_low": 0.0},
                          "b": {"counts": [0, 1, 1, 0], "n": 2, "mean": 0.5, "median": 0.5,
                                "share_low": 0.5},
                          EVIL: {"counts": [0, 0, 0, 1], "n": 1, "mean": 0.9,
                                 "median": 0.9, "share_low": 0.0}}}}
    return make_data(params_for, labels=labels,
                     paths=["a/1.png", "a/2.png", "a/3.png", "b/4.png", "b/5.png", EVIL_FILE],
                     columns={"is_label_issue": is_issue, "label_score": score,
                              "label_given": labels, "label_suggested": suggested,
                              "label_confidence": [0.9, 0.95, 0.9, 0.8, 0.7, 0.99]},
                     metrics=metrics, report=report)


def test_label_gallery_sorted_by_score_with_given_and_suggested(params_for):
    html = render(label_data(params_for), audit_model.label_issues)
    # flagged only, lowest score first; the hostile file name escaped
    assert items(html) == ["a/&lt;img src=x onerror=alert(1)&gt;.png", "a/2.png", "a/1.png",
                           "b/4.png"]
    assert "given <b>&lt;b&gt;x&lt;/b&gt;</b> &rarr; suggested <b>a</b>" in html
    assert "given <b>b</b> &rarr; suggested <b>a</b>" in html
    assert "model 99% sure" in html


def test_label_gallery_capped_by_gallery_size(params_for):
    html = render(label_data(params_for, gallery_size=2), audit_model.label_issues)
    assert len(items(html)) == 2  # top 2 of the 4 flagged
    assert "4 flagged; showing the 2 with the lowest" in html


def test_label_operating_point_and_next_band(params_for):
    """The label section states the noise estimate, the rule, why, and the setting that
    flags the next rank band without retraining."""
    data = label_data(params_for)
    data.metrics["checks"]["label"]["operating_point"] = {
        "noise_rate": 0.0042, "noise_count": 42, "rule": "cleanlab find_label_issues, "
        "filter_by both", "settings": {"filter_by": "prune_by_class"},
        "next_band": {"size": 50, "score_from": 0.031, "score_to": 0.2, "threshold": 0.21}}
    html = render(data, audit_model.label_issues)
    op = html.split('id="label-operating-point"')[1].split("</p>")[0]
    assert "<b>0.42%</b>" in op and "about 42 images" in op and "filter_by both" in op
    assert "set in params.yaml: audit.settings.label" in op  # not the default: said so
    band = html.split('id="label-next-band"')[1].split("</p>")[0]
    assert "next <b>50</b> images" in band
    assert "<code>audit.settings.label.threshold: 0.21</code>" in band
    # the default settings: the reason is the benchmark's
    from dataqa.checks.label import LabelSettings
    default = LabelSettings()
    data.metrics["checks"]["label"]["operating_point"]["settings"] = {
        k: getattr(default, k) for k in ("filter_by", "threshold", "max_class_threshold",
                                         "calibrate")}
    html = render(data, audit_model.label_issues)
    assert "default: on real digits" in html.split('id="label-operating-point"')[1]
    # without it (an audit.json written before): no operating-point block
    assert "label-operating-point" not in render(label_data(params_for),
                                                 audit_model.label_issues)


def test_top_pairs_table(params_for):
    html = render(label_data(params_for), audit_model.label_issues)
    table = html.split('id="label-pairs"')[1].split("</table>")[0]
    rows = re.findall(r"<tr><td>(.*?)</td><td>(.*?)</td><td class=\"num\">(\d+)</td>", table)
    # most frequent first, as audit.json lists them; the hostile class escaped
    assert rows == [("a", "b", "2"), ("b", "a", "1"), ("&lt;b&gt;x&lt;/b&gt;", "a", "1")]


def test_confusion_matrix_and_accuracy(params_for):
    html = render(label_data(params_for), audit_model.per_class_accuracy)
    assert "<title>a -> b: 7 (58.3%)</title>" in html  # the planted off-diagonal cell
    conf = html.split('id="confusions"')[1].split("</table>")[0]
    first = re.search(r"<tr><td>(.*?)</td><td>(.*?)</td><td class=\"num\">(\d+)</td>", conf)
    assert first is not None and first.groups() == ("a", "b", "7")  # largest confusion
    table = html.split('id="accuracy-table"')[1]
    order = re.findall(r'<tr data-search="[^"]*"><td>(.*?)</td>', table)
    assert order == ["a", "&lt;b&gt;x&lt;/b&gt;", "b"]  # weakest class first
    assert "41.7%" in table and ">7</td>" in table  # 'a': 5/12 right, 7 errors
    assert EVIL not in html


def test_accuracy_falls_back_to_crossval_json(params_for):
    data = make_data(params_for, labels=["a", "b"])
    path = data.params.path("crossval_metrics")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text('{"oof_accuracy": 0.75, "per_class_accuracy": {"a": 0.5, "b": 1.0}}')
    html = render(data, audit_model.per_class_accuracy)
    assert "75.00%" in html and "crossval.json" in html
    assert "Confusion matrix" not in html  # no matrix without the label check


def test_confidence_histogram_and_reading(params_for):
    html = render(label_data(params_for), audit_model.confidence)
    assert "<title>0.75-1.00 / disagrees: 2</title>" in html  # stacked bins
    assert "near 0.5 and below) means the model or the data need work" in html
    table = html.split('id="confidence-table"')[1]
    order = re.findall(r'<tr data-search="[^"]*"><td>(.*?)</td>', table)
    assert order == ["b", "a", "&lt;b&gt;x&lt;/b&gt;"]  # least sure class first
    assert EVIL not in html


# --------------------------------------------------------------------------- balance
BALANCE = {"n_classes": 3, "counts_per_class": {"a": 60, "b": 30, EVIL: 5},
           "counts_per_split": {"train": {"a": 50, "b": 25, EVIL: 5},
                                "test": {"a": 10, "b": 5, EVIL: 0}},
           "min_class_count": 5, "max_class_count": 60, "imbalance_ratio": 12.0,
           "normalized_entropy": 0.7, "min_per_class": 10, "classes_under_min": [EVIL],
           "n_classes_under_min": 1}
CURVE = {"points": [{"fraction": f, "n_train": int(80 * f), "val_accuracy": a,
                     "train_accuracy": 1.0} for f, a in ((0.25, 0.6), (0.5, 0.7), (1.0, 0.8))],
         "n_val": 20, "slope": {"per_log_fraction": 0.144, "gain_per_doubling": 0.1,
                                "gain_se": 0.02},
         "recommendation": {"actions": ["augment_minority", "collect_more"],
                            "text": "Classes 'x' have fewer than 10 images: augment them."}}


@pytest.mark.parametrize("metrics, expect, absent", [
    # balance and curve: facts, per-split table, heatmap, slope and advice in words
    ({"balance": BALANCE, "learning_curve": CURVE},
     ["12</td>", "0.7</td>", "<code>&lt;b&gt;x&lt;/b&gt;</code>", "+10.00%</b> validation",
      "augment the minority classes, collect more data", "fewer than 10 images: augment",
      "<td>test</td><td class=\"num\">15</td><td class=\"num\">2</td>",
      "<title>train -> &lt;b&gt;x&lt;/b&gt;: 5 (", "80.00%"], ["Not run."]),
    # balance without a learning curve: the curve part says it did not run
    ({"balance": BALANCE}, ["12</td>", "Not run. The learning curve needs"],
     ["Recommendation"]),
])
def test_balance_section(params_for, metrics, expect, absent):
    html = render(make_data(params_for, labels=["a"], metrics=metrics), audit_balance.balance)
    for needle in expect:
        assert needle in html, needle
    for needle in absent:
        assert needle not in html, needle
    assert EVIL not in html


# --------------------------------------------------------------------------- groups
def group_data(params_for, **report: Any) -> AuditData:
    # group 0: 3 copies across train/test (leak) with a conflicting label; group 1: a pair
    paths = ["d/1.png", "d/2.png", "d/3.png", "e/1.png", "e/2.png", "f/1.png", EVIL_FILE]
    labels = ["d", "d", EVIL, "e", "e", "f", "f"]
    splits = ["train", "train", "test", "train", "train", "train", "train"]
    group = [0, 0, 0, 1, 1, -1, -1]
    cols = {"exact_duplicate_group": group,
            "is_exact_duplicate_issue": [False, True, True, False, True, False, False],
            "exact_duplicate_score": [1.0, 0.0, 0.0, 1.0, 0.0, 1.0, 1.0],
            "exact_duplicate_kept_id": [0, 0, 0, 3, 3, -1, -1],
            "is_outlier_issue": [False, False, False, False, False, True, True],
            "outlier_score": [1, 1, 1, 1, 1, 0.3, 0.1],
            "outlier_reason": [None] * 5 + ["far from its 10 nearest images", "<i>odd</i>"],
            "is_complexity_issue": [False] * 6 + [True],
            "complexity_score": [1, 1, 1, 1, 1, 1, 0.2],
            "complexity_value": [1.0, 1.1, np.nan, 2.0, 2.5, 3.0, 9.0],
            "complexity_z": [0, 0.1, np.nan, 1, 1.5, 2, 6.0]}
    metrics = {"checks": {
        "exact_duplicate": {"count": 3, "rate": 3 / 7, "groups": 2, "redundant": 3,
                            "largest_group": 3, "cross_split_pairs": 2, "pixel_only": 1},
        "outlier": {"count": 2, "rate": 2 / 7, "by_evidence": {"embedding": 2}},
        "complexity": {"count": 1, "rate": 1 / 7, "formula": "complexity = bpp^0.5 x g^0.3",
                       "rule": "flagged when log(complexity) lies more than 3.5 robust "
                               "standard deviations above the median",
                       "reference": {"median": 2.0, "above": 8.0, "n": 6},
                       "class_references": {EVIL: {"median": 1.5, "above": 7.0, "n": 30}}}}}
    return make_data(params_for, labels=labels, paths=paths, splits=splits, columns=cols,
                     metrics=metrics, report=report)


def test_duplicate_groups_as_rows_with_leakage_first(params_for):
    html = render(group_data(params_for), audit_groups.duplicates)
    groups = re.split(r'<div class="grp(?=[ "])', html)[1:]
    assert len(groups) == 2
    # the leaking group of 3 first, outlined, its label conflict said, kept file marked
    assert groups[0].startswith(' leak"') and "LEAKAGE across splits" in groups[0]
    assert items(groups[0]) == ["d/1.png", "d/2.png", "d/3.png"]
    assert groups[0].count("kept (first by path)") == 1 and groups[0].count(">copy<") == 2
    assert "labels differ: &lt;b&gt;x&lt;/b&gt;, d" in groups[0]
    assert groups[1].startswith('"') and items(groups[1]) == ["e/1.png", "e/2.png"]
    assert "2 cross-split pairs (leakage)" in html and "1 same pixels" in html
    assert EVIL not in html


def test_duplicate_groups_capped(params_for):
    html = render(group_data(params_for, gallery_size=2), audit_groups.duplicates)
    assert len(re.findall(r'<div class="grp[ "]', html)) == 1  # gallery_size // 2 groups
    assert "Showing 1 of 2 groups" in html


def test_outliers_with_reason(params_for):
    html = render(group_data(params_for), audit_groups.outliers)
    assert items(html) == ["a/&lt;img src=x onerror=alert(1)&gt;.png", "f/1.png"]
    assert "why: &lt;i&gt;odd&lt;/i&gt;" in html and "why: far from its 10" in html
    assert "<code>embedding</code> 2" in html


def test_complexity_formula_and_most_complex(params_for):
    html = render(group_data(params_for, gallery_size=3), audit_groups.complexity)
    assert "complexity = bpp^0.5 x g^0.3" in html and "3.5 robust" in html
    assert "median 2, flagged above 8 (6 images)" in html
    assert items(html) == ["a/&lt;img src=x onerror=alert(1)&gt;.png", "f/1.png", "e/2.png"]
    assert "complexity 9 (z=6.0)" in html and "FLAGGED, score 0.200" in html
    assert "<td>&lt;b&gt;x&lt;/b&gt;</td><td class=\"num\">1.5</td>" in html
    assert EVIL not in html and "<svg" in html
