"""The ``subsample`` stage: one fixed validation split and the named training subsets.

- **Validation** (``val.parquet``): the clean rows that ``params.yaml: split`` holds out
  (:mod:`dataqa.dataset.splits`, the rule the learning curve and augment use too).
  Shared by every subset; never holds augmented copies.
- **Training pool**: clean rows of ``train_splits`` not in validation, plus (with
  ``use_augmented``) the augmented copies whose source is in the pool; copies of a
  validation image are dropped (the augment stage draws no such sources, so none should
  exist; they are counted in the metrics when they do).
- **Fraction subsets** (``fractions: {name: f}``): per class ``round(f * pool)`` images,
  at least ``min_per_class`` (capped at the pool), so every count is within half an
  image of the exact proportion unless the minimum lifts it. Original images come before
  copies, and each class's order is fixed, so smaller fractions are nested in larger.
- **Class subsets** (``class_subsets: {name: {classes: [...]} | {largest: k}}``): the
  listed classes, or the ``k`` largest by pool count, at ``fraction`` of each.

Outputs, under ``subsets_dir`` (built atomically as a whole): ``val.parquet`` and one
``<name>.parquet`` per subset, columns ``id`` (manifest id, or augmented id when
``augmented``), ``augmented`` (bool), ``source_id`` (manifest id of the image or of the
copy's source), ``label``, ``path``; and the ``prepared_metrics`` JSON: the class-count
table of every subset plus the prepared-data gate figures.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pandas as pd

from dataqa.dataset.balance import class_counts
from dataqa.dataset.splits import class_rng, find_training_rows, find_validation, round_half_up
from dataqa.errors import ParamsError, StageInputError
from dataqa.params import ClassSubset, SplitParams, SubsampleParams

VAL = "val"
COLUMNS = ["id", "augmented", "source_id", "label", "path"]
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_WHERE = "params.yaml: subsample"


# --------------------------------------------------------------------------- subsets
def pool_frame(clean: pd.DataFrame, augmented: pd.DataFrame | None, *,
               params: SubsampleParams, split: SplitParams
               ) -> tuple[pd.DataFrame, pd.DataFrame, int]:
    """(validation rows, training pool, copies dropped because their source is in
    validation or outside the pool), in the output columns."""
    val_mask = find_validation(clean, params=split)
    train_mask = find_training_rows(clean, params=split) & ~val_mask
    originals = _as_rows(clean, augmented=False)
    val = originals[val_mask].reset_index(drop=True)
    pool = originals[train_mask]
    dropped = 0
    if augmented is not None and len(augmented) and params.use_augmented:
        copies = _as_rows(augmented, augmented=True)
        ok = copies["source_id"].isin(pool["id"])
        dropped = int((~ok).sum())
        pool = pd.concat([pool, copies[ok]], ignore_index=True)
    return val, pool.reset_index(drop=True), dropped


def _as_rows(frame: pd.DataFrame, *, augmented: bool) -> pd.DataFrame:
    ids = frame["id"].to_numpy(dtype=np.int64)
    src = frame["source_id"].to_numpy(dtype=np.int64) if augmented else ids
    return pd.DataFrame({"id": ids, "augmented": augmented, "source_id": src,
                         "label": frame["label"].astype("string").to_numpy(),
                         "path": frame["path"].astype("string").to_numpy()})


def order_pool(pool: pd.DataFrame, *, seed: int) -> dict[str, np.ndarray]:
    """Per class, the pool's row indices in the fixed order subsets take prefixes of:
    originals first (shuffled), then copies (shuffled)."""
    out = {}
    labels = pool["label"].astype(str).to_numpy()
    aug = pool["augmented"].to_numpy(dtype=bool)
    keys = pool["id"].to_numpy(dtype=np.int64)
    for label in sorted(set(labels)):
        rng = class_rng(seed + 1, label)  # not the validation draw's stream
        parts = []
        for is_copy in (False, True):
            rows = np.flatnonzero((labels == label) & (aug == is_copy))
            rows = rows[np.argsort(keys[rows], kind="stable")]
            parts.append(rows[rng.permutation(len(rows))])
        out[label] = np.concatenate(parts)
    return out


def subset_counts(pool_counts: dict[str, int], *, fraction: float, min_per_class: int
                  ) -> dict[str, int]:
    """Per class ``round(fraction * n)``, at least ``min(min_per_class, n)``, at most n."""
    return {c: min(n, max(round_half_up(fraction * n), min(min_per_class, n)))
            for c, n in pool_counts.items()}


def choose_classes(spec: ClassSubset, pool_counts: dict[str, int], *, name: str) -> list[str]:
    """The classes of a class subset: listed (each must exist in the pool) or the
    ``largest`` k by pool count (ties by name)."""
    where = f"{_WHERE}.class_subsets.{name}"
    if spec.classes:
        unknown = [c for c in spec.classes if c not in pool_counts]
        if unknown:
            raise ParamsError(f"{where}.classes: {unknown} not in the training pool; "
                              f"classes: {', '.join(pool_counts)}")
        return sorted(set(spec.classes))
    k = int(spec.largest or 0)
    if not 1 <= k <= len(pool_counts):
        raise ParamsError(f"{where}.largest: {k} is outside [1, {len(pool_counts)}] "
                          "(classes in the training pool)")
    ranked = sorted(pool_counts, key=lambda c: (-pool_counts[c], c))
    return sorted(ranked[:k])


def make_subsets(clean: pd.DataFrame, augmented: pd.DataFrame | None, *,
                 params: SubsampleParams, split: SplitParams
                 ) -> tuple[dict[str, pd.DataFrame], dict[str, Any]]:
    """All tables (``val`` and each named subset) and the class-count table."""
    val, pool, dropped = pool_frame(clean, augmented, params=params, split=split)
    if pool.empty:
        raise StageInputError("subsample: the training pool is empty (no clean rows of "
                              f"split.train_splits {split.train_splits} outside validation)")
    order = order_pool(pool, seed=params.seed)
    pool_counts = {c: len(rows) for c, rows in order.items()}
    plans: dict[str, tuple[str, float, dict[str, int]]] = {}
    for name, f in params.fractions.items():
        plans[name] = ("fraction", f, subset_counts(pool_counts, fraction=f,
                                                     min_per_class=params.min_per_class))
    for name, spec in params.class_subsets.items():
        chosen = choose_classes(spec, pool_counts, name=name)
        counts = subset_counts({c: pool_counts[c] for c in chosen}, fraction=spec.fraction,
                               min_per_class=params.min_per_class)
        plans[name] = ("classes", spec.fraction, counts)
    tables = {VAL: val}
    table: dict[str, Any] = {}
    for name, (kind, f, counts) in plans.items():
        rows = np.concatenate([order[c][:k] for c, k in counts.items()])
        tables[name] = pool.iloc[np.sort(rows)].reset_index(drop=True)
        table[name] = {"kind": kind, "fraction": f, "classes": sorted(counts),
                       "counts": class_counts(tables[name]["label"], counts),
                       "n": int(len(rows)),
                       "n_augmented": int(tables[name]["augmented"].sum())}
    classes = sorted(set(clean["label"].astype(str)))
    summary = {
        "classes": classes,
        "val": {"n": len(val), "counts": class_counts(val["label"], classes)},
        "pool": {"n": len(pool), "counts": class_counts(pool["label"], classes),
                 "n_augmented": int(pool["augmented"].sum())},
        "subsets": table,
        "dropped_copies": dropped,
        "seed": params.seed,
    }
    return tables, summary
