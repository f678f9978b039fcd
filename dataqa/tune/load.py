"""Read the preparation stages' outputs into :class:`dataqa.tune.data.TuneData`.

Inputs (all named in ``paths``):

- ``subsets_dir/<name>.parquet`` and ``subsets_dir/val.parquet`` (the ``subsample``
  stage): one row per image with ``id``, ``augmented`` and ``label``; the ``id`` of an
  augmented copy is the augmented manifest's.
- ``tensors`` (M, H, W, C) uint8, row i = the image whose manifest ``id`` is row i of
  ``tensor_index``;
- ``augmented_manifest`` and ``augmented_tensors``: the copy with augmented ``id`` k is
  row ``row`` of the tensors (the manifest's ``row`` column; its position when absent);
- ``manifest``: the unfiltered set for the cleaning comparison.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from dataqa.dataset.manifest import labelled_rows, read_manifest
from dataqa.dataset.tensors import open_tensors, read_tensor_index
from dataqa.errors import StageInputError
from dataqa.params import Params
from dataqa.tune.data import VAL_NAME, TuneData, assemble, available_subsets, read_subset


def load_tune_data(params: Params, names: Iterable[str], *, device: torch.device,
                   with_raw: bool = False) -> TuneData:
    """Every subset in ``names`` plus ``val`` (and, ``with_raw``, the unfiltered training
    set: decodable, labelled manifest rows of the splits the subsets use, minus the
    validation images and exact copies of them), resident on ``device``."""
    sdir = params.path("subsets_dir")
    wanted = sorted(set(names))
    missing = [n for n in wanted if not (sdir / f"{n}.parquet").is_file()]
    if missing:
        have = available_subsets(sdir) if sdir.is_dir() else []
        raise StageInputError(
            f"{sdir}: subset(s) {missing} not found (named by tune.rounds.*.subset or "
            f"tune.cleaning.subset); available: {', '.join(have) or 'none: run subsample'}")
    raw_frames = {VAL_NAME: read_subset(sdir / f"{VAL_NAME}.parquet")}
    raw_frames.update({n: read_subset(sdir / f"{n}.parquet") for n in wanted})
    tensors = _load_npy(params.path("tensors"), "tensors")
    id_row = _id_to_row(params.path("tensor_index"), len(tensors))
    aug_path = params.path("augmented_tensors")
    any_aug = any(_aug_mask(f).any() for f in raw_frames.values())
    aug_tensors = _load_npy(aug_path, "augmented tensors") if any_aug else None
    aug_row = _aug_id_to_row(params.path("augmented_manifest")) if any_aug else {}
    frames = {n: _normalise(f, id_row, aug_row, where=str(sdir / f"{n}.parquet"))
              for n, f in raw_frames.items()}
    raw = None
    if with_raw:
        manifest = read_manifest(params.path("manifest"))
        raw = _unfiltered(manifest, raw_frames, id_row)
    return assemble(tensors=tensors, aug_tensors=aug_tensors, frames=frames, device=device,
                    raw=raw)


def _load_npy(path: Path, what: str) -> np.ndarray:
    stage = "augment" if what.startswith("augmented") else "tensors"
    return open_tensors(path, what=what, stage=stage)  # the one tensor-file reader


def _id_to_row(index_path: Path, n: int) -> dict[int, int]:
    """manifest id -> tensor row (the index's row i describes tensor row i)."""
    ids = read_tensor_index(index_path)["id"].astype(int).tolist()
    if len(ids) != n:
        raise StageInputError(f"{index_path}: {len(ids)} rows but the tensors have {n}; "
                              "rerun the 'tensors' stage")
    return {k: i for i, k in enumerate(ids)}


def _aug_id_to_row(path: Path) -> dict[int, int]:
    if not path.is_file():
        raise StageInputError(f"{path}: augmented manifest not found; run 'augment'")
    man = pd.read_parquet(path)
    rows = next((man[c] for c in ("tensor_row", "row") if c in man), None)
    rows = np.arange(len(man)) if rows is None else rows.to_numpy()
    return dict(zip(man["id"].astype(int), rows.astype(int)))


def _aug_mask(frame: pd.DataFrame) -> np.ndarray:
    if "augmented" in frame:
        return frame["augmented"].fillna(False).to_numpy(dtype=bool)
    return np.zeros(len(frame), dtype=bool)


def _normalise(frame: pd.DataFrame, id_row: dict[int, int] | None,
               aug_row: dict[int, int], *, where: str) -> pd.DataFrame:
    for col in ("id", "label"):
        if col not in frame:
            raise StageInputError(f"{where}: no '{col}' column; re-run 'subsample'")
    if frame["label"].isna().any():
        raise StageInputError(f"{where}: {int(frame['label'].isna().sum())} row(s) have no label")
    aug = _aug_mask(frame)
    ids = frame["id"].to_numpy(dtype=np.int64)
    rows = np.empty(len(frame), dtype=np.int64)
    for i, (a, k) in enumerate(zip(aug, ids)):
        table = aug_row if a else id_row
        if table is None:
            rows[i] = k
        elif k in table:
            rows[i] = table[k]
        else:
            kind = "augmented manifest" if a else "tensor index"
            raise StageInputError(f"{where}: id {k} is not in the {kind}; re-run the "
                                  "stages before 'tune'")
    return pd.DataFrame({"row": rows, "augmented": aug,
                         "label": frame["label"].astype(str).to_numpy()})


def _unfiltered(manifest: pd.DataFrame, frames: dict[str, pd.DataFrame],
                id_row: dict[int, int] | None) -> pd.DataFrame:
    """Decodable, labelled manifest rows of the splits the clean subsets come from,
    without the validation images or byte-identical copies of them (those would leak
    the validation set into training and flatter the unfiltered arm)."""
    val = frames[VAL_NAME]
    val_ids = set(val.loc[~_aug_mask(val), "id"].astype(int))
    used_ids = {int(i) for f in frames.values() for i in f.loc[~_aug_mask(f), "id"]}
    m = manifest.iloc[labelled_rows(manifest)[0]]
    splits = set(manifest.loc[manifest["id"].isin(used_ids), "split"].dropna())
    if splits:
        m = m[m["split"].isin(splits)]
    val_sha = set(manifest.loc[manifest["id"].isin(val_ids), "sha256"].dropna())
    m = m[~m["id"].isin(val_ids) & ~m["sha256"].isin(val_sha)]
    ids = m["id"].to_numpy(dtype=np.int64)
    rows = ids if id_row is None else np.array([id_row.get(int(k), -1) for k in ids],
                                               dtype=np.int64)
    keep = rows >= 0
    return pd.DataFrame({"row": rows[keep], "augmented": False,
                         "label": m["label"].astype(str).to_numpy()[keep]})
