"""How sure the model is: histograms of the out-of-fold max softmax probability.

For each image, ``max_k pred_probs[i, k]`` is the model's confidence in its own
answer. Mass near 1 means the classes are learnable and the labels consistent; mass in
the middle (near 1/K .. 0.5) means the model or the data need work. Computed overall,
per class (of the given label), and split by whether the out-of-fold prediction agrees
with the given label (confident disagreements are the label-issue candidates).
For the audit report; the numbers are JSON-ready.
"""

from __future__ import annotations

from typing import Any

import numpy as np

DEFAULT_BINS = 20  # 0.05 wide on [0, 1]
LOW = 0.5  # under this, no class has the majority of the probability


def get_max_probs(pred_probs: np.ndarray) -> np.ndarray:
    """(N, K) probabilities -> (N,) max probability; NaN for rows without predictions."""
    p = np.asarray(pred_probs, dtype=np.float64)
    ok = np.isfinite(p).all(axis=1)
    out = np.full(len(p), np.nan)
    if ok.any():
        out[ok] = p[ok].max(axis=1)
    return out


def get_confidence_histogram(pred_probs: np.ndarray, labels: np.ndarray | None = None, *,
                             classes: list[str] | None = None, bins: int = DEFAULT_BINS,
                             low: float = LOW) -> dict[str, Any]:
    """Histogram data of the max softmax probability.

    Args:
        pred_probs: (N, K) out-of-fold probabilities; rows with NaN (undecodable,
            unlabelled) are left out.
        labels: (N,) given class ids, -1 for unknown; enables ``per_class`` and the
            ``agree``/``disagree`` split.
        classes: K class names (default ``"0".."K-1"``).
        bins: equal-width bins on [0, 1].
        low: the "unsure" line for ``share_low``.

    Returns::

        {"bin_edges": [bins + 1 floats], "low": low,
         "overall": {"counts": [...], "n", "mean", "median", "share_low"},
         "agree": {...same...}, "disagree": {...same...},     # with labels
         "per_class": {name: {...same...}}}                   # with labels
    """
    if bins < 1:
        raise ValueError(f"bins must be >= 1, got {bins}")
    p = np.asarray(pred_probs)
    if p.ndim != 2:
        raise ValueError(f"pred_probs must be (N, K), got shape {p.shape}")
    k = p.shape[1]
    names = classes if classes is not None else [str(i) for i in range(k)]
    if len(names) != k:
        raise ValueError(f"{len(names)} class names for {k} columns of pred_probs")
    conf = get_max_probs(p)
    edges = np.linspace(0.0, 1.0, bins + 1)
    ok = np.isfinite(conf)
    out: dict[str, Any] = {"bin_edges": edges.tolist(), "low": low,
                           "overall": _summary(conf[ok], edges, low)}
    if labels is None:
        return out
    y = np.asarray(labels)
    if y.shape != (len(p),):
        raise ValueError(f"labels must have shape ({len(p)},), got {y.shape}")
    known = ok & (y >= 0)
    pred = np.where(ok, np.nan_to_num(p, nan=-1.0).argmax(axis=1), -1)
    agree = known & (pred == y)
    out["agree"] = _summary(conf[agree], edges, low)
    out["disagree"] = _summary(conf[known & ~agree], edges, low)
    out["per_class"] = {name: _summary(conf[known & (y == i)], edges, low)
                        for i, name in enumerate(names)}
    return out


def _summary(conf: np.ndarray, edges: np.ndarray, low: float) -> dict[str, Any]:
    counts, _ = np.histogram(conf, bins=edges)
    n = int(conf.size)
    return {"counts": counts.astype(int).tolist(), "n": n,
            "mean": float(conf.mean()) if n else None,
            "median": float(np.median(conf)) if n else None,
            "share_low": float((conf < low).mean()) if n else None}
