"""The tuning run's data: every image any round needs, once, resident on the device.

The subsets (``<subsets_dir>/<name>.parquet``) and the shared validation split
(``<subsets_dir>/val.parquet``) name rows of the manifest (their tensors are rows of
``paths.tensors``) or augmented copies (rows of ``paths.augmented_tensors``). All
rows used by the run are gathered into one uint8 array on the device; a subset is then
an index array into it (no copy per trial).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from dataqa.engine.data import DeviceData
from dataqa.errors import StageInputError

VAL_NAME = "val"


@dataclass
class TuneData:
    """``data`` rows are the union of every subset's and the validation rows.

    subsets: name -> (n_train,) int64 rows of ``data``; val: (n_val,) rows;
    raw: (n_raw,) rows of the unfiltered training set (cleaning comparison) or None;
    augmented: (N,) bool, row is an augmented copy.
    """

    data: DeviceData
    classes: list[str]
    val: np.ndarray
    subsets: dict[str, np.ndarray]
    augmented: np.ndarray
    raw: np.ndarray | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def train_idx(self, name: str) -> np.ndarray:
        if name not in self.subsets:
            raise StageInputError(f"tune: subset '{name}' not loaded; known: "
                                  f"{', '.join(sorted(self.subsets))}")
        return self.subsets[name]

    def val_for(self, name: str) -> np.ndarray:
        """Validation rows of the classes present in subset ``name`` (all of them for a
        fraction subset; only its classes for a class subset)."""
        labels = self.data.labels.cpu().numpy()
        present = np.unique(labels[self.train_idx(name)])
        keep = np.isin(labels[self.val], present)
        return self.val if keep.all() else self.val[keep]

    def class_counts(self, rows: np.ndarray) -> dict[str, int]:
        labels = self.data.labels.cpu().numpy()[rows]
        counts = np.bincount(labels, minlength=len(self.classes))
        return {c: int(n) for c, n in zip(self.classes, counts) if n}


def assemble(*, tensors: np.ndarray, aug_tensors: np.ndarray | None,
             frames: Mapping[str, pd.DataFrame], device: torch.device,
             raw: pd.DataFrame | None = None) -> TuneData:
    """Build :class:`TuneData` from tensor arrays and row tables.

    ``tensors`` (M, H, W, C) and ``aug_tensors`` (A, H, W, C) uint8, memory-mapped is fine;
    ``frames``: name -> table with columns ``row`` (int, tensor row), ``augmented``
    (bool: row of ``aug_tensors``) and ``label`` (class name); must contain ``val``.
    ``raw`` has the same columns (manifest rows only).
    Only the rows used are read from the (possibly memory-mapped) arrays.
    """
    if VAL_NAME not in frames:
        raise StageInputError("tune: no validation split ('val') among the subsets")
    tables = dict(frames)
    if raw is not None:
        tables["__raw__"] = raw
    classes = sorted({str(c) for f in tables.values() for c in f["label"].unique()})
    code = {c: i for i, c in enumerate(classes)}
    # an image is one row per label it carries: relabelled in the clean subsets, it keeps
    # its original label in the unfiltered arm
    keyed = {name: list(zip(f["augmented"].astype(bool), f["row"].astype(np.int64),
                            (code[str(c)] for c in f["label"])))
             for name, f in tables.items()}
    unique = sorted({k for rows in keyed.values() for k in rows})
    position = {k: i for i, k in enumerate(unique)}
    man_rows = np.array([r for a, r, _ in unique if not a], dtype=np.int64)
    aug_rows = np.array([r for a, r, _ in unique if a], dtype=np.int64)
    _check_rows(man_rows, len(tensors), "tensors")
    parts = []
    if len(man_rows):
        take, back = np.unique(man_rows, return_inverse=True)  # read each image once
        parts.append(np.asarray(tensors[take])[back])
    if len(aug_rows):
        if aug_tensors is None:
            raise StageInputError("tune: subsets reference augmented images but the "
                                  "augmented tensors are missing; run the 'augment' stage")
        _check_rows(aug_rows, len(aug_tensors), "augmented tensors")
        take, back = np.unique(aug_rows, return_inverse=True)
        parts.append(np.asarray(aug_tensors[take])[back])
    # ``unique`` is sorted (originals before copies, then by row): the order of ``parts``
    images = np.concatenate(parts) if len(parts) > 1 else parts[0]
    labels = np.array([lab for _, _, lab in unique], dtype=np.int64)
    data = DeviceData.from_arrays(images, labels, device=device, num_classes=len(classes))
    idx = {name: np.fromiter((position[k] for k in rows), dtype=np.int64, count=len(rows))
           for name, rows in keyed.items()}
    augmented = np.array([a for a, _, _ in unique], dtype=bool)
    val = idx.pop(VAL_NAME)
    raw_idx = idx.pop("__raw__", None)
    val_images = {k[:2] for k in keyed[VAL_NAME]}
    overlap = {n for n in idx if any(k[:2] in val_images for k in keyed[n])}
    if overlap:
        raise StageInputError(f"tune: subset(s) {sorted(overlap)} share images with the "
                              "validation split; re-run the 'subsample' stage")
    if raw_idx is not None:
        keep = np.array([k[:2] not in val_images for k in keyed["__raw__"]], dtype=bool)
        raw_idx = raw_idx[keep] if len(raw_idx) else raw_idx
    return TuneData(data, classes, val, idx, augmented, raw_idx)


def _check_rows(rows: np.ndarray, n: int, what: str) -> None:
    if len(rows) and (rows.min() < 0 or rows.max() >= n):
        raise StageInputError(f"tune: subsets reference {what} row {int(rows.max())} but "
                              f"there are only {n}; re-run the stages before 'tune'")


def read_subset(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise StageInputError(f"{path}: subset not found; run the 'subsample' stage (or fix "
                              "tune.rounds.*.subset / tune.cleaning.subset)")
    return pd.read_parquet(path)


def available_subsets(subsets_dir: Path) -> list[str]:
    return sorted(p.stem for p in subsets_dir.glob("*.parquet") if p.stem != VAL_NAME)


def needed_subsets(names: Iterable[str]) -> list[str]:
    return sorted(set(names))
