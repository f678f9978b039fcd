"""The validation split, defined once (``params.yaml: split``) for every stage that
holds images out: the learning curve, augment (which never copies a validation image)
and subsample (which writes ``val.parquet``).

- **Validation**: per class, ``round(val_fraction * n)`` rows of the ``train_splits``
  (at least one, and one left for training, when a class has two or more), drawn once
  with ``seed`` (:func:`per_class_holdout`); or, with ``val_split``, the rows of that
  manifest split as given.
- **Training rows**: rows of ``train_splits`` outside validation.

:func:`check_splits` is said once, as soon as the listing is known (the ``fingerprint``
stage, first on every ``dvc repro``, and the scan): no row in ``train_splits`` is a
ParamsError naming ``split.train_splits`` and the splits found (else eight stages ran
before augment found an empty pool); rows of a split that is neither a training nor the
validation split (``holdout``, ``test``) are audited but never trained or validated on:
a warning the report shows.
"""

from __future__ import annotations

import zlib

import numpy as np
import pandas as pd

from dataqa.errors import ParamsError
from dataqa.params import SplitParams
from dataqa.text import shown

_WHERE = "params.yaml: split"


def check_splits(splits: pd.Series, *, params: SplitParams) -> list[str]:
    """Warnings about the listing's ``split`` column (N,); ParamsError when no row is in
    ``train_splits`` (see the module doc)."""
    counts = splits.astype("string").fillna("").value_counts()
    found = {str(s): int(n) for s, n in counts.items()}
    if not any(s in found for s in params.train_splits):
        raise ParamsError(f"{_WHERE}.train_splits: {params.train_splits} names no split of "
                          f"the source, so nothing can be trained on; its splits: "
                          f"{_counted(found)}. Set split.train_splits to the training "
                          f"split(s)")
    used = set(params.train_splits) | ({params.val_split} if params.val_split else set())
    other = {s: n for s, n in found.items() if s not in used}
    if not other:
        return []
    return [f"{sum(other.values())} row(s) of split(s) {_counted(other)} are neither in "
            f"split.train_splits {params.train_splits} nor split.val_split "
            f"({params.val_split}): they are audited but left out of training and "
            f"validation; add the split to one of them to use it"]


def _counted(found: dict[str, int]) -> str:
    return ", ".join(f"'{shown(s)}' ({n})" for s, n in sorted(found.items()))


def class_rng(seed: int, label: str) -> np.random.Generator:
    """A generator per (seed, class): adding or removing a class leaves the draws of the
    others unchanged."""
    return np.random.default_rng([seed, zlib.crc32(str(label).encode("utf-8"))])


def find_training_rows(clean: pd.DataFrame, *, params: SplitParams) -> np.ndarray:
    """Mask (N,) of clean rows whose split is one of ``train_splits``."""
    split = clean["split"].astype("string")
    return split.isin(params.train_splits).fillna(False).to_numpy(dtype=bool, copy=True)


def find_validation(clean: pd.DataFrame, *, params: SplitParams) -> np.ndarray:
    """Mask (N,) of the clean rows that form the validation split (see module doc)."""
    split = clean["split"].astype("string")
    if params.val_split is not None:
        val = (split == params.val_split).fillna(False).to_numpy(dtype=bool, copy=True)
        if not val.any():
            raise ParamsError(f"{_WHERE}.val_split: no clean row has split "
                              f"'{params.val_split}'; splits: "
                              f"{sorted(split.dropna().unique().tolist())}")
        return val
    train = find_training_rows(clean, params=params)
    labels = clean["label"].astype(str).to_numpy()
    ids = clean["id"].to_numpy(dtype=np.int64)
    return per_class_holdout(labels, ids, fraction=params.val_fraction, seed=params.seed,
                             among=train)


def per_class_holdout(labels: np.ndarray, ids: np.ndarray, *, fraction: float, seed: int,
                      among: np.ndarray | None = None) -> np.ndarray:
    """The one per-class holdout: mask (N,) of the rows held out for validation.

    Per class (``labels``, names) of the rows ``among`` (default: all): the rows in
    ``ids`` order, ``round(fraction * n)`` of them drawn by :func:`class_rng` (at least
    one, and one left for training, when a class has two or more; a lone image trains).
    Fixed by ``seed`` and the ids alone, so the learning curve, augment and subsample
    draw the same rows from the same rows."""
    among = np.ones(len(labels), dtype=bool) if among is None else among
    val = np.zeros(len(labels), dtype=bool)
    for label in sorted(set(labels[among])):
        rows = np.flatnonzero(among & (labels == label))
        rows = rows[np.argsort(ids[rows], kind="stable")]
        k = round_half_up(fraction * len(rows))
        if len(rows) >= 2:
            k = min(max(k, 1), len(rows) - 1)
        else:
            k = 0  # a lone image trains; the class gets no validation image
        val[rows[class_rng(seed, label).permutation(len(rows))[:k]]] = True
    return val


def round_half_up(x: float) -> int:
    return int(np.floor(x + 0.5))  # half up, not to even: the same count for the same x
