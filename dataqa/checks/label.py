"""``label``: images whose given label is probably wrong, from out-of-fold predicted
probabilities (cleanlab). The verdict is :func:`dataqa.labels.label_issues` (the
public ``dataqa.label_issues``): ``label_score`` is cleanlab's label-quality score;
``is_label_issue`` is cleanlab's ``find_label_issues`` with ``filter_by`` (default
chosen by measurement across noise rates, see benchmarks/README.md), optionally widened
by ``threshold`` on the score. The summary holds what the report shows about the model:
the most frequent (given -> suggested) pairs, per-class out-of-fold accuracy and the
confusion matrix.

Rows without a usable prediction (undecodable, unknown label, NaN) are never flagged.
"""

from __future__ import annotations

import warnings
from typing import Any, Literal

import numpy as np
from pydantic import Field

from dataqa.checks import register
from dataqa.checks.base import AuditContext, Check, CheckResult
from dataqa.errors import StageInputError
from dataqa.labels import (
    DEFAULT_CALIBRATE,
    DEFAULT_FILTER_BY,
    DEFAULT_MAX_CLASS_THRESHOLD,
    DEFAULT_THRESHOLD,
    FilterBy,
    label_issues,
    next_band,
)
from dataqa.params.base import BIG, Section

# Below this out-of-fold accuracy (against the given labels) the summary warns that the
# flags mostly reflect a weak model: cleanlab estimates the noise from the model's
# disagreements with the labels, which a weak model multiplies.
WEAK_MODEL_ACCURACY = 0.8


class LabelSettings(Section):
    """``audit.settings.label``."""

    filter_by: FilterBy = Field(DEFAULT_FILTER_BY, description="cleanlab.filter.find_label_issues method")
    frac_noise: float = Field(1.0, gt=0, le=1, description="cleanlab: share of the estimated label errors to return")
    min_examples_per_class: int = Field(1, ge=0, le=BIG, description="cleanlab: never flag a class below this count")
    score_method: Literal["self_confidence", "normalized_margin"] = Field(
        "self_confidence", description="self_confidence | normalized_margin")
    threshold: float | None = Field(DEFAULT_THRESHOLD, ge=0, le=1, description="also flag label_score below this; null: off")
    max_class_threshold: float | None = Field(
        DEFAULT_MAX_CLASS_THRESHOLD, gt=0, le=1,
        description="cap on cleanlab's per-class confidence thresholds; null: off")
    calibrate: bool = Field(DEFAULT_CALIBRATE,
                            description="temperature-scale the probabilities before counting")
    next_band: int = Field(50, ge=0, le=BIG,
                           description="the report says what the next this-many by score add")
    top_pairs: int = Field(10, ge=0, le=BIG, description="(given -> suggested) pairs listed in the summary")
    max_confusion_classes: int = Field(50, ge=0, le=BIG, description="larger K: no K x K matrix in audit.json")


@register
class LabelCheck(Check):
    name = "label"
    Settings = LabelSettings
    requires = frozenset({"pred_probs"})
    description = ("the out-of-fold model is confident the image belongs to another "
                   "class than its label (cleanlab)")

    def find(self, ctx: AuditContext) -> CheckResult:
        s: LabelSettings = self.settings
        n = len(ctx.manifest)
        probs, labels = _inputs(ctx)
        k = probs.shape[1]
        classes = list(ctx.classes) if ctx.classes else [str(c) for c in range(k)]
        valid = (ctx.decoded & (labels >= 0) & (labels < k)
                 & np.isfinite(probs).all(axis=1))
        rows = np.flatnonzero(valid)
        p = np.clip(probs[rows], 0.0, None)
        p = p / np.maximum(p.sum(axis=1, keepdims=True), 1e-12)
        y = labels[rows]

        score = np.full(n, np.nan)
        is_issue = np.zeros(n, dtype=bool)
        summary: dict[str, Any] = {"n_scored": int(len(rows)), "classes": classes}
        caught: list[warnings.WarningMessage] = []
        if len(rows) >= 2 and len(np.unique(y)) >= 2:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                verdict = label_issues(y, p, filter_by=s.filter_by, threshold=s.threshold,
                                       max_class_threshold=s.max_class_threshold,
                                       calibrate=s.calibrate, frac_noise=s.frac_noise,
                                       min_examples_per_class=s.min_examples_per_class,
                                       score_method=s.score_method)
            score[rows] = verdict["label_score"].to_numpy(float)
            is_issue[rows] = verdict["is_label_issue"].to_numpy(bool)
            summary["operating_point"] = operating_point(
                verdict.attrs["operating_point"], score[rows], is_issue[rows], s)
        else:
            summary["skipped"] = "fewer than 2 scored images or fewer than 2 classes"
        notes = sorted({str(w.message).strip()[:200] for w in caught})  # shown, not hidden
        pred = p.argmax(axis=1) if len(rows) else np.zeros(0, dtype=np.int64)
        accuracy = float((pred == y).mean()) if len(rows) else 1.0
        if accuracy < WEAK_MODEL_ACCURACY:
            notes.insert(0, f"out-of-fold accuracy {accuracy:.2f} is low: most flags may "
                            "be the model's errors, not label errors; train the crossval "
                            "model longer (crossval.epochs) before acting on them")
        if notes:
            summary["warnings"] = notes
        names = np.asarray(classes, dtype=object)
        given = np.full(n, None, dtype=object)
        suggested = np.full(n, None, dtype=object)
        confidence = np.full(n, np.nan)
        given[rows], suggested[rows] = names[y], names[pred]
        confidence[rows] = p.max(axis=1) if len(rows) else confidence[rows]
        summary.update(_model_summary(y, pred, p, is_issue[rows], classes, s))
        return self.result(ctx, is_issue, score, summary, given=given,
                           suggested=suggested, confidence=confidence)


def operating_point(op: dict[str, Any], score: np.ndarray, flags: np.ndarray,
                    s: LabelSettings) -> dict[str, Any]:
    """What the report says about the verdict: the estimated noise rate, the rule and
    its settings, and the next ``s.next_band`` images by score with the
    ``audit.settings.label.threshold`` that would flag them too (no retraining: only
    the audit stage reads it)."""
    rule = (f"cleanlab find_label_issues, filter_by {s.filter_by}"
            + (f", per-class thresholds capped at {s.max_class_threshold:g}"
               if s.max_class_threshold is not None else "")
            + (f", confident joint counted on probabilities temperature-scaled by T = "
               f"{op['temperature']:.3g}"
               if s.calibrate else "")
            + (f", plus label_score < {s.threshold:g}" if s.threshold is not None else ""))
    return {"noise_rate": float(op["noise_rate"]),
            "noise_count": int(round(op["noise_rate"] * len(score))),
            "rule": rule, "temperature": float(op["temperature"]),
            "class_thresholds": op["class_thresholds"],
            "settings": {"filter_by": s.filter_by, "threshold": s.threshold,
                         "max_class_threshold": s.max_class_threshold,
                         "calibrate": s.calibrate},
            "next_band": next_band(score, flags, s.next_band)}


def _inputs(ctx: AuditContext) -> tuple[np.ndarray, np.ndarray]:
    n = len(ctx.manifest)
    if ctx.pred_probs is None or ctx.labels is None:
        raise StageInputError("label: needs pred_probs and labels; run the 'crossval' stage")
    probs = np.asarray(ctx.pred_probs, dtype=np.float64)
    labels = np.asarray(ctx.labels, dtype=np.int64)
    if probs.ndim != 2 or len(probs) != n or labels.shape != (n,):
        raise StageInputError(f"label: pred_probs {probs.shape} / labels {labels.shape} "
                              f"not aligned with the manifest's {n} rows")
    if ctx.classes and len(ctx.classes) != probs.shape[1]:
        raise StageInputError(f"label: pred_probs has {probs.shape[1]} columns but there "
                              f"are {len(ctx.classes)} classes")
    return probs, labels


def _model_summary(y: np.ndarray, pred: np.ndarray, probs: np.ndarray, flags: np.ndarray,
                   classes: list[str], s: LabelSettings) -> dict[str, Any]:
    """What the report shows about the out-of-fold model (compact: lists, not rows):
    accuracy overall and per class, the most frequent (given -> suggested) pairs among
    the flags and, for up to ``max_confusion_classes`` classes, the confusion matrix.
    (The max-probability histograms are dataset-level: ``confidence`` in audit.json,
    written by the audit stage from :mod:`dataqa.checks.confidence`.)"""
    k = len(classes)
    confusion = np.zeros((k, k), dtype=np.int64)
    np.add.at(confusion, (y, pred), 1)
    support = confusion.sum(axis=1)
    per_class = {c: (float(confusion[i, i] / support[i]) if support[i] else None)
                 for i, c in enumerate(classes)}
    pairs = np.zeros((k, k), dtype=np.int64)
    np.add.at(pairs, (y[flags], pred[flags]), 1)
    np.fill_diagonal(pairs, 0)  # a flag whose argmax is its label has no suggestion
    gi, si = np.nonzero(pairs)
    top = np.lexsort((si, gi, -pairs[gi, si]))[:s.top_pairs]  # most frequent first
    out: dict[str, Any] = {
        "oof_accuracy": float((pred == y).mean()) if len(y) else None,
        "per_class_accuracy": per_class,
        "top_pairs": [{"given": classes[gi[t]], "suggested": classes[si[t]],
                       "count": int(pairs[gi[t], si[t]])} for t in top],
    }
    if k <= s.max_confusion_classes:
        out["confusion"] = confusion.tolist()  # rows: given label, columns: predicted
    return out
