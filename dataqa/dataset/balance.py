"""Dataset-level class balance and sufficiency, computed from the manifest.

Counts are of *decodable* images (the ones a model can learn from); a class whose
every file is broken still appears, with count 0, so ``min_images_per_class`` catches
it. The imbalance ratio is taken over classes with at least one image (a zero count
would make it infinite, which JSON cannot hold; the zero class is reported by
``classes_under_min`` and ``min_class_count`` instead).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from dataqa.dataset.manifest import decodable


def get_class_counts(manifest: pd.DataFrame, *, classes: list[str] | None = None) -> pd.Series:
    """Decodable images per class, shape (K,), indexed by class name in ``classes`` order
    (default: sorted labels of every manifest row, so all-broken classes show as 0)."""
    names = classes if classes is not None else sorted(manifest["label"].dropna().unique())
    ok = manifest.loc[decodable(manifest), "label"]
    return ok.value_counts().reindex(names, fill_value=0).astype("int64")


def get_class_split_counts(manifest: pd.DataFrame, *,
                           classes: list[str] | None = None) -> pd.DataFrame:
    """Decodable images per (class, split): a (K, S) frame, classes as rows."""
    names = classes if classes is not None else sorted(manifest["label"].dropna().unique())
    ok = manifest.loc[decodable(manifest), ["label", "split"]]
    table = pd.crosstab(ok["label"], ok["split"]) if len(ok) else pd.DataFrame()
    splits = sorted(manifest["split"].dropna().unique())
    return table.reindex(index=names, columns=splits, fill_value=0).fillna(0).astype("int64")


def class_counts(labels: pd.Series | Iterable[str], classes: Iterable[str] = ()
                 ) -> dict[str, int]:
    """Images per class, sorted by class name; ``classes`` listed with 0 when absent."""
    counts = pd.Series(list(labels), dtype="object").astype(str).value_counts()
    out = {str(c): 0 for c in classes}
    out.update({str(k): int(v) for k, v in counts.items()})
    return dict(sorted(out.items()))


def imbalance_ratio(counts: pd.Series | Mapping[str, int], *,
                    skip_empty: bool = True) -> float | None:
    """Largest over smallest class count: the one imbalance ratio of dataqa.

    ``skip_empty`` (the audit's reading): classes with no image are left out (they are
    reported by ``classes_under_min`` and ``min_class_count``); None when no class has
    images. ``skip_empty=False`` (the prepared data's reading: a class the filter or the
    split emptied must not pass a ratio gate): None when any class is empty or none
    exists. Never infinite: JSON has no infinity, and the gate reports a missing value
    as not evaluated."""
    values = [int(v) for v in (counts.values() if isinstance(counts, Mapping)
                               else counts.tolist())]
    if skip_empty:
        values = [v for v in values if v > 0]
    if not values or min(values) <= 0:
        return None
    return float(max(values) / min(values))


def normalized_entropy(counts: pd.Series) -> float:
    """Shannon entropy of the class distribution over log(K): 1 = perfectly balanced,
    towards 0 = one class dominates. K <= 1 (or no images) gives 1.0 by convention."""
    k = len(counts)
    total = float(counts.sum())
    if k <= 1 or total == 0:
        return 1.0
    p = counts.to_numpy(dtype=float) / total
    p = p[p > 0]
    return float(-(p * np.log(p)).sum() / np.log(k))


def class_balance(manifest: pd.DataFrame, *, min_per_class: int,
                  classes: list[str] | None = None) -> dict[str, Any]:
    """The ``balance`` block of ``audit.json`` (JSON-serialisable)."""
    counts = get_class_counts(manifest, classes=classes)
    per_split = get_class_split_counts(manifest, classes=list(counts.index))
    under = counts[counts < min_per_class]
    return {
        "n_classes": int(len(counts)),
        "counts_per_class": {str(k): int(v) for k, v in counts.items()},
        "counts_per_split": {str(s): {str(k): int(v) for k, v in per_split[s].items()}
                             for s in per_split.columns},
        "min_class_count": int(counts.min()) if len(counts) else 0,
        "max_class_count": int(counts.max()) if len(counts) else 0,
        "imbalance_ratio": imbalance_ratio(counts),
        "normalized_entropy": normalized_entropy(counts),
        "min_per_class": int(min_per_class),
        "classes_under_min": [str(k) for k in under.index],
        "n_classes_under_min": int(len(under)),  # numeric twin: DVC metrics skip lists
    }


def dataset_summary(manifest: pd.DataFrame) -> dict[str, Any]:
    """The ``dataset`` block of ``audit.json``: file counts and the undecodable share."""
    n = len(manifest)
    ok = int(decodable(manifest).sum())
    return {
        "n_files": n,
        "n_decodable": ok,
        "n_undecodable": n - ok,
        "undecodable_rate": (n - ok) / n if n else 0.0,
        "counts_per_split": {str(k): int(v) for k, v in
                             manifest["split"].value_counts().sort_index().items()},
    }
