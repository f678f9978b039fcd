"""Is the out-of-fold model strong enough to judge labels? (``audit.json: model``)

The label check trusts the out-of-fold model where it disagrees with a label: with a
weak model most disagreements are the model's errors, not label errors (issue 12:
a from-scratch net at 68-76 % on two balanced classes of photos flagged a fifth of the
images, mostly its own background shortcut). So before any verdict rests on the model,
it is judged against what a model that learnt nothing gets:

- **baseline**: the majority-class share (always predicting the largest class) and
  chance (1 / K); the baseline is the larger of the two;
- **accuracy** with its Wilson score interval at ``confidence`` (default 95 %);
- **skill** = (accuracy - baseline) / (1 - baseline): the share of the baseline's
  errors the model removes (1 perfect, 0 no better than the baseline; the same
  normalisation as Cohen's kappa against the majority predictor). Its lower bound uses
  the accuracy interval's lower bound;
- **calibration**: expected calibration error (ECE, equal-width bins of the max
  probability), reported; ``max_ece`` can make it part of the verdict.

The model is **reliable** when the lower bound of its skill is at least ``min_skill``
(``params.yaml: audit.model_strength``). Default 0.5, chosen by reasoning, not by tuning
to a dataset: below it the model errs on more than half of the images the trivial
baseline errs on (for two balanced classes: an error rate above 25 %), an order of
magnitude above the label-error rates an audit looks for (1-10 %), so cleanlab's
flags would be dominated by the model's own mistakes. A strong MNIST model (98 %, 10
classes) has skill ~0.98; the issue's ants/bees model (76 % of 400) ~0.43 at its
lower bound.

When it is not reliable, the checks in ``review_only_checks`` (those whose verdict
rests on the model's predictions: the label check) stay in the report as review-only:
the gate lists their rules as *not evaluated* with :func:`reason`, the filter does not
quarantine on their word, and the outlier check leaves out its embedding evidence
(the embeddings come from the same weak model). ``near_duplicate`` keeps using them:
there they only propose candidate pairs, each verified on the pixels. The report's
first lines say so, with the numbers and :data:`ADVICE`.
"""

from __future__ import annotations

import math
from statistics import NormalDist
from typing import Any

import numpy as np

from dataqa.params import ModelStrengthSettings  # declared with the audit section

# checks whose flags are the model's opinion (demoted to review when it is weak)
MODEL_CHECKS = ("label",)

ADVICE = ("use a pretrained backbone (engine.arch: resnet18, engine.weights: DEFAULT, "
          "crossval.mode: linear_probe; README 'Photos'), train longer "
          "(crossval.epochs), or collect more images, then rerun the audit")


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion (good at small n and near 0/1)."""
    if n <= 0:
        return 0.0, 1.0
    z = NormalDist().inv_cdf(0.5 + confidence / 2)  # stdlib: scipy.stats costs ~0.5 s to import
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, bins: int = 15) -> float:
    """ECE: sum over equal-width bins of the max probability of
    ``share of rows in bin * |accuracy - mean confidence|``."""
    if len(labels) == 0:
        return 0.0
    conf = probs.max(axis=1)
    right = (probs.argmax(axis=1) == labels).astype(float)
    which = np.minimum((conf * bins).astype(int), bins - 1)
    total = 0.0
    for b in range(bins):
        sel = which == b
        if sel.any():
            total += sel.mean() * abs(right[sel].mean() - conf[sel].mean())
    return float(total)


def judge_model(probs: np.ndarray, labels: np.ndarray,
                settings: ModelStrengthSettings | None = None) -> dict[str, Any]:
    """The ``model`` block of ``audit.json`` from out-of-fold ``probs`` (N, K) and the
    given ``labels`` (N,) (-1 or non-finite rows are ignored)."""
    s = settings or ModelStrengthSettings()
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    k = probs.shape[1] if probs.ndim == 2 else 0
    ok = (labels >= 0) & (labels < k) & np.isfinite(probs).all(axis=1)
    p, y = probs[ok], labels[ok]
    n = int(len(y))
    out: dict[str, Any] = {"n": n, "n_classes": k, "min_skill": s.min_skill,
                           "confidence": s.confidence, "max_ece": s.max_ece}
    if n == 0 or k < 2:
        out.update(reliable=False, accuracy=None, review_only_checks=list(MODEL_CHECKS),
                   reason="no out-of-fold predictions to judge the model by")
        return out
    right = int((p.argmax(axis=1) == y).sum())
    ece = expected_calibration_error(p, y, s.ece_bins)
    out.update(judge_counts(right, n, np.bincount(y, minlength=k), s, ece=ece))
    return out


def judge_counts(right: int, n: int, class_counts: np.ndarray,
                 settings: ModelStrengthSettings | None = None, *,
                 ece: float | None = None) -> dict[str, Any]:
    """The verdict from ``right`` correct predictions of ``n`` whose true classes have
    ``class_counts`` (K,), and the calibration error when known (see module doc)."""
    s = settings or ModelStrengthSettings()
    counts = np.asarray(class_counts, dtype=np.int64)
    k = len(counts)
    out: dict[str, Any] = {"n": int(n), "n_classes": k, "min_skill": s.min_skill,
                           "confidence": s.confidence, "max_ece": s.max_ece}
    acc = right / n
    lo, hi = wilson_interval(right, n, s.confidence)
    majority = float(counts.max() / n)
    chance = 1.0 / k
    baseline = max(majority, chance)
    room = max(1.0 - baseline, 1e-12)
    skill, skill_lo = (acc - baseline) / room, (lo - baseline) / room
    reliable = skill_lo >= s.min_skill and (s.max_ece is None or ece is None
                                            or ece <= s.max_ece)
    out.update(accuracy=acc, accuracy_ci=[lo, hi], majority_baseline=majority,
               majority_class=int(counts.argmax()), chance=chance, baseline=baseline,
               skill=skill, skill_lower=skill_lo, ece=ece, reliable=bool(reliable),
               review_only_checks=[] if reliable else list(MODEL_CHECKS))
    out["reason"] = reason(out)
    if not reliable:
        out["advice"] = ADVICE
    return out


def reason(model: dict[str, Any]) -> str:
    """One sentence with the numbers: why the model is (not) trusted."""
    if model.get("accuracy") is None:
        return str(model.get("reason") or "the out-of-fold model was not judged")
    lo, hi = model["accuracy_ci"]
    pct = int(round(model["confidence"] * 100))
    nums = (f"out-of-fold accuracy {model['accuracy']:.1%} ({pct}% CI {lo:.1%}-{hi:.1%}, "
            f"{model['n']} images) against a majority-class baseline of "
            f"{model['majority_baseline']:.1%} and chance {model['chance']:.1%}: skill "
            f"{model['skill']:.2f} (lower bound {model['skill_lower']:.2f}, needed "
            f"{model['min_skill']:.2f})"
            + ("" if model.get("ece") is None
               else f", calibration error (ECE) {model['ece']:.3f}"))
    if model["reliable"]:
        return f"the model is strong enough to judge labels: {nums}"
    if model.get("max_ece") is not None and model["skill_lower"] >= model["min_skill"] \
            and model.get("ece") is not None:
        return (f"the model is too poorly calibrated to judge labels (ECE {model['ece']:.3f}"
                f" > {model['max_ece']:.3f}): {nums}")
    return f"the model is too weak to judge labels: {nums}"


def weak_model(metrics: dict[str, Any]) -> dict[str, Any] | None:
    """The ``model`` block of ``audit.json`` (``metrics``) when it says the model is not
    reliable, else None (a reliable model, or no block: no crossval ran). The one reader
    of that block: the gate, the filter and the report's verdict go through it."""
    model = metrics.get("model")
    if not isinstance(model, dict) or model.get("reliable", True):
        return None
    return model


def review_only(metrics: dict[str, Any]) -> dict[str, str]:
    """check -> reason, for the checks ``audit.json`` marks review-only (none when the
    audit has no model block, e.g. no crossval ran)."""
    model = weak_model(metrics)
    if model is None:
        return {}
    why = str(model.get("reason") or "the out-of-fold model is too weak")
    return {str(c): why for c in model.get("review_only_checks") or []}
