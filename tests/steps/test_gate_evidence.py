"""A failing gate points to the evidence (the report and the first files behind each
failed rule, in the JUnit message and on the console); the headline metrics that DVC
displays stay small."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pandas as pd

from dataqa.headline import audit_headline, tune_headline
from dataqa.io import write_json, write_parquet
from dataqa.steps import gate

OFF = dict(max_undecodable_rate=None, min_images_per_class=None,
           max_cross_split_duplicates=None, max_imbalance_ratio=None)


def _audit(params_for, gate_settings, checks):
    params = params_for(gate=gate_settings)
    paths = [f"cat/{i:02d}.png" for i in range(8)] + ["dog/a.png", "dog/b.png"]
    flagged = [i % 2 == 1 for i in range(8)] + [False, True]
    write_parquet(params.path("issues"), pd.DataFrame({"path": paths,
                                                       "is_label_issue": flagged}))
    write_parquet(params.path("manifest"), pd.DataFrame({
        "path": paths, "decode_error": [None] * 9 + ["truncated: x"]}))
    metrics = {"dataset": {"undecodable_rate": 0.1, "n_files": 10, "n_decodable": 9,
                           "counts_per_split": {"train": 7, "val": 3}},
               "balance": {"min_class_count": 2, "imbalance_ratio": 4.0, "n_classes": 2,
                           "counts_per_class": {"cat": 8, "dog": 2}},
               "checks": checks, "summary": {"n_flagged_any": 5}}
    write_json(params.path("audit_metrics"), metrics)
    return params


def test_failed_rules_name_the_report_and_first_files(params_for, capsys):
    checks = {"label": {"count": 5, "rate": 0.5},
              "exact_duplicate": {"count": 1, "rate": 0.1, "cross_split_pairs": 1,
                                  "cross_split_examples": [{"group": 0, "paths": [
                                      "cat/00.png", "dog/a.png"], "splits": ["train", "val"]}]}}
    params = _audit(params_for, dict(OFF, max_rates={"label": 0.1}, max_undecodable_rate=0.05,
                                     max_cross_split_duplicates=0, min_images_per_class=5),
                    checks)
    assert gate.run_stage(params) == 1
    out = capsys.readouterr().out
    cases = {c.get("name"): c for c in ET.parse(params.path("gate_junit")).getroot().iter(
        "testcase")}
    label = cases["max_rates.label"].find("failure").get("message")
    assert "reports/audit.html" in label
    # the first five flagged files by path (of six), not the whole list
    assert "cat/01.png; cat/03.png; cat/05.png; cat/07.png; dog/b.png" in label
    undecodable = cases["max_undecodable_rate"].find("failure").get("message")
    assert "dog/b.png (truncated: x)" in undecodable
    leak = cases["max_cross_split_duplicates.exact_duplicate"].find("failure").get("message")
    assert "cat/00.png (train) <-> dog/a.png (val)" in leak
    small = cases["min_images_per_class"].find("failure").get("message")
    assert "class 'dog': 2 images" in small
    assert "FAILED max_rates.label: see reports/audit.html" in out  # the console too
    assert "cat/01.png" in out


def test_missing_issues_table_still_names_the_report(params_for):
    params = _audit(params_for, dict(OFF, max_rates={"label": 0.1}),
                    {"label": {"count": 5, "rate": 0.5}})
    params.path("issues").unlink()
    assert gate.run_stage(params) == 1
    case = next(c for c in ET.parse(params.path("gate_junit")).getroot().iter("testcase")
                if c.get("name") == "max_rates.label")
    assert case.find("failure").get("message").endswith("(see reports/audit.html)")


def _count(node) -> int:
    return sum(_count(v) for v in node.values()) if isinstance(node, dict) else 1


def test_headline_is_small(params_for):
    names = ["integrity", "exact_duplicate", "near_duplicate", "label", "outlier", "dark",
             "light", "blurry", "low_information", "grayscale", "odd_aspect_ratio",
             "odd_size", "complexity"]
    params = _audit(params_for, dict(OFF, max_rates={"label": 0.6}),
                    {n: {"count": 1, "rate": 0.1} for n in names})
    write_json(params.path("crossval_metrics"), {"oof_accuracy": 0.9,
                                                 "per_class_accuracy": {"cat": 1.0}})
    head = audit_headline(params)
    assert head["images"] == 10 and head["classes"] == 2 and head["splits"] == 2
    assert head["oof_accuracy"] == 0.9 and head["gate_passed"] is True
    assert head["checks"]["label"] == 1
    tune = tune_headline({"best_score": 0.8, "n_trials": 4,
                          "trials": {"complete": 3, "pruned": 1}})
    assert tune["best_val_accuracy"] == 0.8 and tune["trials_pruned"] == 1
    assert _count(head) + _count(tune) <= 30
