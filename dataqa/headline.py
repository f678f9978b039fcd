"""The headline numbers: what ``dvc metrics show``, ``dvc metrics diff`` and
``dvc exp show`` display.

The detailed JSONs (``audit.json`` with per-class counts and histograms, ``crossval.json``
with per-class accuracy, ``tuning.json``) hold hundreds of keys; declared as DVC metrics
they made ``dvc metrics show`` one 200 KB line and ``dvc exp show`` collapse. They stay
outputs; the DVC metrics are two small files derived from them, at most ~30 numbers in all:

- ``paths.headline`` (written by the ``report`` stage, before the gate, so a failing gate
  still leaves it): images, decodable, classes, splits, imbalance ratio, out-of-fold
  accuracy, images flagged by any check (a weak model's label suspicions not counted),
  images pending review and decided, one count per check, gate passed / rules failed;
- ``paths.tune_headline`` (written by the ``tune`` stage): best tuned accuracy, trials,
  subsample fidelity, the cleaning comparison.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dataqa.dataset.crossval_metrics import read_crossval_metrics
from dataqa.io import write_json
from dataqa.params import Params


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def audit_headline(params: Params) -> dict[str, Any]:
    """The audit's headline from ``audit.json`` and ``crossval.json`` (+ the gate)."""
    from dataqa.gate import evaluate

    audit = _read(params.path("audit_metrics"))
    crossval = read_crossval_metrics(params, strict=False) or {}
    ds, bal = audit.get("dataset", {}), audit.get("balance", {})
    out: dict[str, Any] = {
        "images": ds.get("n_files"),
        "decodable": ds.get("n_decodable"),
        "classes": bal.get("n_classes"),
        "splits": len(ds.get("counts_per_split", {})),
        "imbalance_ratio": bal.get("imbalance_ratio"),
        "oof_accuracy": crossval.get("oof_accuracy"),
        "flagged_any": audit.get("summary", {}).get("n_flagged_any"),
        # review progress (issue 22): images with a flag pending review, and decided
        "review_pending": audit.get("review", {}).get("n_pending"),
        "review_decided": audit.get("review", {}).get("n_decided"),
        "checks": {name: s.get("count") for name, s in audit.get("checks", {}).items()},
    }
    if audit:
        rules = evaluate(params.gate, audit)
        out["gate_passed"] = not any(r.passed is False for r in rules)
        out["gate_failed_rules"] = sum(r.passed is False for r in rules)
    return out


def tune_headline(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """The tuning run's headline from its ``tuning.json`` document."""
    trials = metrics.get("trials", {})
    fid = metrics.get("fidelity") or {}
    cl = metrics.get("cleaning") or {}
    return {
        "best_val_accuracy": metrics.get("best_score"),
        "trials": metrics.get("n_trials"),
        "trials_complete": trials.get("complete", 0),
        "trials_pruned": trials.get("pruned", 0),
        "fidelity_spearman": fid.get("spearman"),
        "cleaning_gain": cl.get("difference"),
    }


def write_audit_headline(params: Params) -> None:
    write_json(params.path("headline"), audit_headline(params))


def write_tune_headline(params: Params, metrics: Mapping[str, Any]) -> None:
    write_json(params.path("tune_headline"), tune_headline(metrics))
