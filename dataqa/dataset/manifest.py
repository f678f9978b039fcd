"""The manifest: one row per file of the source, the table that flows through every stage.

Columns written by ``scan`` (see :data:`COLUMNS`); later stages add their own columns
to their own outputs and join on ``id``. ``id`` is the row's position in the manifest,
assigned after sorting by ``path``, so it is stable for an unchanged source.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from dataqa.dataset.crossval_metrics import crossval_classes
from dataqa.errors import StageInputError
from dataqa.params import Params

# name -> pandas dtype. Statistics and hashes are null/NaN for undecodable files.
# How each one is measured: dataqa/dataset/imagestats.py (module docstring).
COLUMNS: dict[str, str] = {
    "id": "int64",
    "path": "string",  # posix, relative to the source root
    "label": "string",
    "split": "string",
    "sha256": "string",  # of the file's bytes; null when the file could not be read
    "bytes": "int64",  # file size; -1 when not even its size could be read
    "format": "string",  # real format from the content (PIL: PNG, JPEG, MPO, ...), null when unknown
    "ext_format": "string",  # format the file extension claims (PIL's name), null when unknown
    "mode": "string",  # PIL mode as stored (P, RGBA, I;16, CMYK, L, RGB, ...)
    "width": "Int64",  # after EXIF orientation (header size when not decoded)
    "height": "Int64",
    "n_frames": "Int64",  # > 1: animated GIF/PNG/WebP, multi-page TIFF, MPO
    "exif_rotated": "boolean",  # an EXIF orientation (rotation or mirror) was applied
    "decode_error": "string",  # null when fine; "<kind>: detail", kinds in imageio.DECODE_ERROR_KINDS
    "pixel_sha256": "string",  # of the decoded upright pixels (catches re-saved copies); for
    #                            JPEGs of 128 px and more: of the coded stream minus metadata
    "phash": "string",  # 64-bit DCT perceptual hash, hex (imagehash's algorithm)
    "dhash": "string",  # 64-bit difference hash, hex (imagehash's algorithm)
    # image statistics, computed in the same decode pass on the 8-bit image: the level
    # ones on the analysis copy (the image, box-reduced to under 128 px when larger),
    # the normalised ones on a copy whose longer side is 64 px (STAT_SIZE)
    "stat_mean": "float64",  # luminance mean in [0, 1]
    "stat_std": "float64",  # luminance standard deviation in [0, 1]
    "stat_p05": "float64",  # 5th percentile of luminance in [0, 1] (nearest rank)
    "stat_p95": "float64",  # 95th percentile of luminance in [0, 1]
    "stat_entropy": "float64",  # luminance histogram entropy, bits (0..8)
    "stat_colorfulness": "float64",  # mean |channel - mean channel| / 255 at STAT_SIZE; 0 for grey
    "stat_blur": "float64",  # variance of the Laplacian at STAT_SIZE, [0, 1] units (low = blurry)
    "stat_gradient": "float64",  # root mean square gradient magnitude at STAT_SIZE
    "stat_bpp": "float64",  # bits/pixel of the PNG-style prediction residual at STAT_SIZE
    #                         (its entropy: lossless coding cost, the complexity measure)
}

STAT_SIZE = 64


def read_manifest(path: str | Path) -> pd.DataFrame:
    """Read a manifest written by ``scan``; a clear error when it is missing or not one."""
    path = Path(path)
    if not path.is_file():
        raise StageInputError(f"{path}: manifest not found; run the 'scan' stage first")
    frame = pd.read_parquet(path)
    missing = [c for c in ("id", "path", "label", "split", "decode_error") if c not in frame]
    if missing:
        raise StageInputError(f"{path}: not a dataqa manifest (missing columns {missing})")
    return frame


def decodable(frame: pd.DataFrame) -> pd.Series:
    """Boolean mask of rows whose image decoded."""
    return frame["decode_error"].isna()


def has_label(frame: pd.DataFrame) -> np.ndarray:
    """Boolean mask (N,) of rows with a non-blank label (null or whitespace: unlabelled)."""
    label = frame["label"].astype("string")
    return (label.notna() & (label.str.strip() != "")).fillna(False).to_numpy(dtype=bool)


def labelled_rows(frame: pd.DataFrame, decoded: np.ndarray | None = None
                  ) -> tuple[np.ndarray, list[str], np.ndarray]:
    """The one rule for what a model learns from: ``(rows, classes, ids)``.

    ``rows``: positions of the rows that decoded (``decoded``, default
    :func:`decodable`) and have a label (:func:`has_label`); ``classes``: their sorted
    label names, index = class id (the order crossval, the learning curve, the audit and
    the tuning run share); ``ids``: (len(rows),) int64 class id of each row."""
    ok = decodable(frame).to_numpy(dtype=bool) if decoded is None else decoded
    rows = np.flatnonzero(ok & has_label(frame))
    used = frame["label"].astype("string").to_numpy()[rows].astype(str)
    classes = sorted(set(used))
    return rows, classes, np.searchsorted(classes, used).astype(np.int64)


def load_classes(params: Params, manifest: pd.DataFrame) -> list[str]:
    """Class names, index = class id: ``classes`` of the crossval metrics when that file
    exists (:mod:`dataqa.dataset.crossval_metrics`, its one reader), else the sorted
    labels of the decodable rows."""
    classes = crossval_classes(params)
    return classes if classes is not None else labelled_rows(manifest)[1]
