"""The label verdict as a public function on plain arrays: ``dataqa.label_issues``.

    >>> import dataqa
    >>> frame = dataqa.label_issues(labels, pred_probs)          # numpy in, pandas out
    >>> frame[frame.is_label_issue].sort_values("label_score")   # worst first

``labels`` (N,) are integer class ids in [0, K); ``pred_probs`` (N, K) are
*out-of-sample* probabilities (each row predicted by a model that never trained on it:
K-fold, or a held-out model), rows summing to 1. The result has one row per input row:

- ``is_label_issue`` (bool): cleanlab's ``find_label_issues`` with ``filter_by``, widened
  by ``threshold`` on the score when set;
- ``label_score`` (float in [0, 1], low = probably mislabelled): cleanlab's
  ``get_label_quality_scores`` with ``score_method``; the ranking is cleanlab's;
- ``given_label``, ``suggested_label`` (the argmax class; class names when
  ``class_names`` is given, else ids) and ``suggested_confidence`` (its probability).

The ``label`` audit check calls this function (one implementation of the verdict).
Bad input is a :class:`~dataqa.errors.PredictionsError` (also a ``ValueError``) naming
the first offending row or column; nothing is repaired silently.

Default operating point (``DEFAULT_FILTER_BY``, ``DEFAULT_THRESHOLD``): chosen by the
noise-rate benchmark (benchmarks/bench_operating_point.py, table in
benchmarks/README.md, "label: operating point across noise rates").
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd

from dataqa.errors import PredictionsError

FilterBy = Literal["prune_by_noise_rate", "prune_by_class", "both", "confident_learning",
                   "predicted_neq_given", "low_normalized_margin", "low_self_confidence"]
FILTERS: tuple[str, ...] = ("prune_by_noise_rate", "prune_by_class", "both",
                            "confident_learning", "predicted_neq_given",
                            "low_normalized_margin", "low_self_confidence")
ScoreMethod = Literal["self_confidence", "normalized_margin"]

# The default rule (issue 24; benchmarks/README.md, "label: operating point from 0.1 % to
# 40 % noise"): cleanlab's `both` (prune_by_class and prune_by_noise_rate agree) on a
# confident joint counted from temperature-scaled probabilities with the per-class
# thresholds capped at 0.9, plus label_score < 0.005 on the probabilities as given.
# Measured on the 10,000 real MNIST test digits with 0.1-40 % planted flips (symmetric
# and class-pair), a strong model (99.2 %, the CPU crossval default) and a weak one
# (~90 %, retrained on each noisy labelling): the best worst-case F1 from 1 % noise up,
# 0.517 (the weak model at 1 %; previous default `both` + score < 0.02: 0.451), and
# below 1 % every planted flip found with
# the strong model while flagging <= 0.4 % of the images. Why each part:
# - the cap: a sharp model's per-class thresholds (the mean probability of each class's
#   own label) sit near 0.99, so almost none of its disagreements counts and cleanlab's
#   estimated number of errors collapses to ~0 on data with few errors (MNIST as it
#   comes: 0-3 flags); capped at 0.9, 14 flags (an estimated 0.17 % of wrong labels);
DEFAULT_FILTER_BY: FilterBy = "both"
DEFAULT_MAX_CLASS_THRESHOLD: float | None = 0.9
# - temperature scaling (one T fitted to the given labels by likelihood) before counting:
#   a weak model's over-confident mistakes count less (its worst case 0.488 -> 0.517);
#   T < 1 sharpens a sure model's probabilities at low noise;
DEFAULT_CALIBRATE = True
# - the score threshold: count-based pruning stops at its estimated number of errors per
#   class, which a small dataset underestimates; 0.005, the benchmark's best (0.02: the
#   weak model's false flags cost more than they gain; 0.01: worst case 0.500). On the
#   bundled sample one of its 12 planted flips scores 0.008 and waits in the report's
#   "next by score" band (a reviewer widens the net there in one step).
DEFAULT_THRESHOLD: float | None = 0.005
# fit_temperature uses at most this many rows (a fixed random sample beyond)
TEMPERATURE_ROWS = 100_000
# |row sum - 1| above this is an error: float32 softmax rows sum to 1 within ~1e-6, and a
# CSV written with 4 decimals per class within K * 5e-5.
SUM_TOLERANCE = 1e-3


def label_issues(labels: Any, pred_probs: Any, *, filter_by: FilterBy = DEFAULT_FILTER_BY,
                 threshold: float | None = DEFAULT_THRESHOLD,
                 max_class_threshold: float | None = DEFAULT_MAX_CLASS_THRESHOLD,
                 calibrate: bool = DEFAULT_CALIBRATE, frac_noise: float = 1.0,
                 min_examples_per_class: int = 1,
                 score_method: ScoreMethod = "self_confidence",
                 class_names: Sequence[str] | None = None) -> pd.DataFrame:
    """Label issues of ``labels`` (N,) given out-of-sample ``pred_probs`` (N, K).

    Settings: ``filter_by``, ``frac_noise``, ``min_examples_per_class`` are passed to
    ``cleanlab.filter.find_label_issues``; ``score_method`` to
    ``cleanlab.rank.get_label_quality_scores``; ``max_class_threshold`` (None: off)
    caps cleanlab's per-class confidence thresholds before its confident joint is
    counted (a sharp model's thresholds sit near 0.99, so a confident error of such a
    model would otherwise not count); ``calibrate`` rescales the probabilities by one
    temperature fitted to the labels first; ``threshold`` (None: off) also flags
    rows whose ``label_score`` is below it. cleanlab's warnings (e.g. a class with too
    few examples) are passed on as Python warnings.

    ``frame.attrs["operating_point"]`` holds what was decided and on what:
    ``noise_rate`` (cleanlab's estimate of the share of wrong labels, from the same
    confident joint), ``temperature`` (1.0 when not calibrated) and the per-class
    ``class_thresholds`` used.
    """
    y, p = validate(labels, pred_probs, class_names=class_names)
    _check_settings(filter_by, threshold, frac_noise, min_examples_per_class, score_method,
                    max_class_threshold)
    n, k = p.shape
    op: dict[str, Any] = {"noise_rate": 0.0, "temperature": 1.0, "class_thresholds": []}
    if n >= 2 and len(np.unique(y)) >= 2:
        counted = p
        if calibrate:
            op["temperature"] = fit_temperature(y, p)
            counted = apply_temperature(p, op["temperature"])
        flags, score, op = _verdict(y, p, counted, filter_by=filter_by, threshold=threshold,
                                    max_class_threshold=max_class_threshold,
                                    frac_noise=frac_noise,
                                    min_examples_per_class=min_examples_per_class,
                                    score_method=score_method, op=op)
    else:  # cleanlab needs two classes among the labels: nothing to compare against
        warnings.warn("label_issues: fewer than 2 rows or fewer than 2 distinct labels; "
                      "nothing flagged", stacklevel=2)
        score = np.ones(n)
        flags = np.zeros(n, dtype=bool)
    pred = p.argmax(axis=1)
    names = None if class_names is None else np.asarray(list(class_names), dtype=object)
    frame = pd.DataFrame({
        "is_label_issue": flags,
        "label_score": np.clip(score, 0.0, 1.0),
        "given_label": y if names is None else names[y],
        "suggested_label": pred if names is None else names[pred],
        "suggested_confidence": p[np.arange(n), pred] if n else np.zeros(0),
    })
    frame.attrs["operating_point"] = op
    return frame


def _verdict(y: np.ndarray, given_p: np.ndarray, p: np.ndarray, *, filter_by: str,
             threshold: float | None, max_class_threshold: float | None, frac_noise: float,
             min_examples_per_class: int, score_method: str, op: dict[str, Any]
             ) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Flags, scores and the operating point: ``label_score`` (and ``threshold``) on the
    model's probabilities as given (``given_p``); cleanlab's confident joint and filter
    on ``p`` (``given_p`` temperature-scaled when calibrating)."""
    from cleanlab.count import compute_confident_joint, estimate_joint, get_confident_thresholds
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    score = np.asarray(get_label_quality_scores(y, given_p, method=score_method),
                       dtype=float)
    thresholds = np.asarray(get_confident_thresholds(y, p), dtype=float)
    if max_class_threshold is not None:
        # classes absent from the labels keep cleanlab's "never" threshold (> 1)
        thresholds = np.where(thresholds <= 1.0, np.minimum(thresholds, max_class_threshold),
                              thresholds)
    joint = compute_confident_joint(y, p, thresholds=thresholds)
    # n_jobs=1: no process pool (inside a DVC stage); one pass is fast at 100k rows
    flags = np.asarray(find_label_issues(
        y, p, filter_by=filter_by, frac_noise=frac_noise,
        min_examples_per_class=min_examples_per_class, n_jobs=1,
        confident_joint=None if filter_by == "confident_learning" else joint), dtype=bool)
    if threshold is not None:
        flags |= score < threshold
    noise = 1.0 - float(np.trace(estimate_joint(y, p, confident_joint=joint)))
    op = {**op, "noise_rate": max(noise, 0.0),
          "class_thresholds": [float(t) for t in thresholds]}
    return flags, score, op


def fit_temperature(labels: np.ndarray, pred_probs: np.ndarray) -> float:
    """The temperature T minimising the mean negative log-likelihood of ``labels``
    under ``softmax(log(pred_probs) / T)`` (temperature scaling, Guo et al. 2017),
    searched in [0.05, 20], on at most :data:`TEMPERATURE_ROWS` rows. The probabilities
    are out-of-fold, i.e. held-out predictions of the models they come from: the fit
    needs no further split."""
    from scipy.optimize import minimize_scalar

    if len(labels) > TEMPERATURE_ROWS:  # one scalar: a fixed sample of rows is plenty
        pick = np.sort(np.random.default_rng(0).choice(len(labels), TEMPERATURE_ROWS,
                                                       replace=False))
        labels, pred_probs = labels[pick], pred_probs[pick]
    logp = np.log(np.clip(pred_probs, 1e-12, 1.0))
    rows = np.arange(len(labels))

    def nll(log_t: float) -> float:
        z = logp / np.exp(log_t)
        z = z - z.max(axis=1, keepdims=True)
        return float(-(z[rows, labels] - np.log(np.exp(z).sum(axis=1))).mean())

    best = minimize_scalar(nll, bounds=(np.log(0.05), np.log(20.0)), method="bounded")
    return float(np.exp(best.x))


def apply_temperature(pred_probs: np.ndarray, temperature: float) -> np.ndarray:
    """``softmax(log(pred_probs) / temperature)``, row by row."""
    z = np.log(np.clip(pred_probs, 1e-12, 1.0)) / temperature
    z = np.exp(z - z.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def next_band(score: np.ndarray, flags: np.ndarray, size: int = 50) -> dict[str, Any]:
    """The ``size`` unflagged rows with the lowest ``label_score`` (the next rank band
    a reviewer would look at): how many there are, their score range, and the
    ``threshold`` setting that flags exactly them in addition (``score < threshold``;
    fewer when scores tie across the band's edge). Rows with a NaN score are ignored."""
    score = np.asarray(score, dtype=float)
    rest = np.sort(score[~np.asarray(flags, dtype=bool) & np.isfinite(score)])
    band = rest[:size]
    if not len(band):
        return {"size": 0, "score_from": None, "score_to": None, "threshold": None}
    top = float(band[-1])
    after = float(rest[len(band)]) if len(rest) > len(band) else min(1.0, top + 1e-3)
    threshold = _short_between(top, after)
    return {"size": int((rest < threshold).sum()), "score_from": float(band[0]),
            "score_to": top, "threshold": threshold}


def _short_between(low: float, high: float) -> float:
    """The number with fewest significant digits in (low, high] (low itself when the two
    are equal: a tie), at most 1."""
    if high <= low:
        return min(1.0, float(np.nextafter(low, np.inf)))
    for digits in range(1, 17):
        t = float(f"{high:.{digits}g}")
        if low < t <= high:
            return min(1.0, t)
    return min(1.0, high)


def validate(labels: Any, pred_probs: Any, *, class_names: Sequence[str] | None = None,
             where: str = "label_issues") -> tuple[np.ndarray, np.ndarray]:
    """``labels`` as int64 (N,) and ``pred_probs`` as float64 (N, K), or a
    :class:`PredictionsError` naming what is wrong (shape, NaN/inf, negative values,
    a row not summing to 1, a label out of range)."""
    require_real(pred_probs, f"{where}: pred_probs")
    try:
        p = np.asarray(pred_probs, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise PredictionsError(f"{where}: pred_probs is not a numeric array ({exc})") from None
    if p.ndim != 2:
        raise PredictionsError(f"{where}: pred_probs must be 2-D (rows, classes), got shape "
                               f"{p.shape}")
    n, k = p.shape
    if k < 2:
        raise PredictionsError(f"{where}: pred_probs has {k} column(s); need one per class, "
                               "at least 2")
    if class_names is not None and len(class_names) != k:
        raise PredictionsError(f"{where}: {len(class_names)} class names but pred_probs has "
                               f"{k} columns")
    raw = np.asarray(labels)
    if raw.ndim != 1 or len(raw) != n:
        raise PredictionsError(f"{where}: labels must have shape ({n},) to match pred_probs "
                               f"{p.shape}, got {raw.shape}")
    if n and not (np.issubdtype(raw.dtype, np.integer) or
                  (np.issubdtype(raw.dtype, np.floating) and np.all(raw == np.round(raw)))):
        raise PredictionsError(f"{where}: labels must be integer class ids in [0, {k}), got "
                               f"dtype {raw.dtype}")
    y = raw.astype(np.int64)
    bad = np.flatnonzero((y < 0) | (y >= k))
    if len(bad):
        raise PredictionsError(f"{where}: label {y[bad[0]]} at row {bad[0]} is out of range "
                               f"[0, {k}) ({len(bad)} row(s) out of range)")
    nonfinite = np.flatnonzero(~np.isfinite(p).all(axis=1))
    if len(nonfinite):
        r = nonfinite[0]
        col = int(np.flatnonzero(~np.isfinite(p[r]))[0])
        raise PredictionsError(f"{where}: pred_probs row {r} column {col} is {p[r, col]} "
                               f"({len(nonfinite)} row(s) with NaN or inf)")
    negative = np.flatnonzero((p < 0).any(axis=1))
    if len(negative):
        r = negative[0]
        raise PredictionsError(f"{where}: pred_probs row {r} has a negative probability "
                               f"({p[r].min():.4g}); pass probabilities, not logits")
    sums = p.sum(axis=1)
    off = np.flatnonzero(np.abs(sums - 1.0) > SUM_TOLERANCE)
    if len(off):
        r = off[0]
        raise PredictionsError(f"{where}: pred_probs row {r} sums to {sums[r]:.6g}, not 1 "
                               f"({len(off)} row(s) off by more than {SUM_TOLERANCE:g}); pass "
                               "softmax probabilities")
    return y, p / sums[:, None] if n else p


def require_real(values: Any, where: str) -> None:
    """A :class:`PredictionsError` when ``values`` holds complex numbers: casting them to
    float silently drops the imaginary part (numpy only warns), so a complex array from
    an FFT or a bad export would pass as probabilities."""
    if np.iscomplexobj(values) or (
            isinstance(values, np.ndarray) and values.dtype == object
            and any(isinstance(v, complex) for v in values.ravel()[:1000])):
        raise PredictionsError(f"{where}: holds complex numbers (dtype "
                               f"{getattr(values, 'dtype', type(values).__name__)}); "
                               "predictions must be real")


def _check_settings(filter_by: str, threshold: float | None, frac_noise: float,
                    min_examples_per_class: int, score_method: str,
                    max_class_threshold: float | None) -> None:
    if filter_by not in FILTERS:
        raise PredictionsError(f"label_issues: filter_by {filter_by!r} is not one of "
                               f"{', '.join(FILTERS)}")
    if score_method not in ("self_confidence", "normalized_margin"):
        raise PredictionsError(f"label_issues: score_method {score_method!r} is not "
                               "'self_confidence' or 'normalized_margin'")
    if threshold is not None and not 0 <= threshold <= 1:
        raise PredictionsError(f"label_issues: threshold {threshold} is not in [0, 1]")
    if max_class_threshold is not None and not 0 < max_class_threshold <= 1:
        raise PredictionsError(f"label_issues: max_class_threshold {max_class_threshold} is "
                               "not in (0, 1]")
    if not 0 < frac_noise <= 1:
        raise PredictionsError(f"label_issues: frac_noise {frac_noise} is not in (0, 1]")
    if min_examples_per_class < 0:
        raise PredictionsError("label_issues: min_examples_per_class must be >= 0")
