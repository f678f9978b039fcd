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

# `both` (prune_by_class and prune_by_noise_rate must agree): the best mean F1 and the
# best worst-case F1 over symmetric and class-pair noise at 2-40 % on MNIST, for a strong
# (99.1 %) and a weak (~90 %, retrained on each noisy labelling) model, and the fewest
# flags on the clean set (benchmarks/README.md, "label: operating point across noise
# rates"). prune_by_class is ahead at low noise with the strong model only.
DEFAULT_FILTER_BY: FilterBy = "both"
# Also flag label_score below this. cleanlab's count-based pruning stops at its
# estimated number of errors per class, which a small dataset underestimates: on the
# bundled sample it left 5 of 12 planted flips with scores < 0.02 unflagged. Across the
# noise-rate benchmark it moves the mean F1 of `both` by -0.001 (0.858 vs 0.859) and
# raises its worst case (0.615 vs 0.614), so it stays on.
DEFAULT_THRESHOLD: float | None = 0.02
# |row sum - 1| above this is an error: float32 softmax rows sum to 1 within ~1e-6, and a
# CSV written with 4 decimals per class within K * 5e-5.
SUM_TOLERANCE = 1e-3


def label_issues(labels: Any, pred_probs: Any, *, filter_by: FilterBy = DEFAULT_FILTER_BY,
                 threshold: float | None = DEFAULT_THRESHOLD, frac_noise: float = 1.0,
                 min_examples_per_class: int = 1,
                 score_method: ScoreMethod = "self_confidence",
                 class_names: Sequence[str] | None = None) -> pd.DataFrame:
    """Label issues of ``labels`` (N,) given out-of-sample ``pred_probs`` (N, K).

    Settings: ``filter_by``, ``frac_noise``, ``min_examples_per_class`` are passed to
    ``cleanlab.filter.find_label_issues``; ``score_method`` to
    ``cleanlab.rank.get_label_quality_scores``; ``threshold`` (None: off) also flags
    rows whose ``label_score`` is below it (cleanlab's count-based pruning stops at its
    estimated number of errors per class, which small datasets underestimate).
    cleanlab's warnings (e.g. a class with too few examples) are passed on as Python
    warnings.
    """
    y, p = validate(labels, pred_probs, class_names=class_names)
    _check_settings(filter_by, threshold, frac_noise, min_examples_per_class, score_method)
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    n, k = p.shape
    pred = p.argmax(axis=1)
    if n >= 2 and len(np.unique(y)) >= 2:
        score = np.asarray(get_label_quality_scores(y, p, method=score_method), dtype=float)
        # n_jobs=1: no process pool (inside a DVC stage); one pass is fast at 100k rows
        flags = np.asarray(find_label_issues(
            y, p, filter_by=filter_by, frac_noise=frac_noise,
            min_examples_per_class=min_examples_per_class, n_jobs=1), dtype=bool)
        if threshold is not None:
            flags |= score < threshold
    else:  # cleanlab needs two classes among the labels: nothing to compare against
        warnings.warn("label_issues: fewer than 2 rows or fewer than 2 distinct labels; "
                      "nothing flagged", stacklevel=2)
        score = np.ones(n)
        flags = np.zeros(n, dtype=bool)
    names = None if class_names is None else np.asarray(list(class_names), dtype=object)
    return pd.DataFrame({
        "is_label_issue": flags,
        "label_score": np.clip(score, 0.0, 1.0),
        "given_label": y if names is None else names[y],
        "suggested_label": pred if names is None else names[pred],
        "suggested_confidence": p[np.arange(n), pred] if n else np.zeros(0),
    })


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
                    min_examples_per_class: int, score_method: str) -> None:
    if filter_by not in FILTERS:
        raise PredictionsError(f"label_issues: filter_by {filter_by!r} is not one of "
                               f"{', '.join(FILTERS)}")
    if score_method not in ("self_confidence", "normalized_margin"):
        raise PredictionsError(f"label_issues: score_method {score_method!r} is not "
                               "'self_confidence' or 'normalized_margin'")
    if threshold is not None and not 0 <= threshold <= 1:
        raise PredictionsError(f"label_issues: threshold {threshold} is not in [0, 1]")
    if not 0 < frac_noise <= 1:
        raise PredictionsError(f"label_issues: frac_noise {frac_noise} is not in (0, 1]")
    if min_examples_per_class < 0:
        raise PredictionsError("label_issues: min_examples_per_class must be >= 0")
