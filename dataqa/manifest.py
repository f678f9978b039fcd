"""The manifest: one row per file of the source, the table that flows through every stage.

Columns written by ``scan`` (see :data:`COLUMNS`); later stages add their own columns
to their own outputs and join on ``id``. ``id`` is the row's position in the manifest,
assigned after sorting by ``path``, so it is stable for an unchanged source.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from dataqa.errors import StageInputError

# name -> pandas dtype. Statistics are NaN for undecodable files.
COLUMNS: dict[str, str] = {
    "id": "int64",
    "path": "string",  # posix, relative to the source root
    "label": "string",
    "split": "string",
    "sha256": "string",  # of the file's bytes
    "bytes": "int64",
    "format": "string",  # real format from the content (PIL), null when unknown
    "ext_format": "string",  # format the file extension claims
    "mode": "string",  # PIL mode as stored (P, RGBA, I;16, CMYK, L, RGB, ...)
    "width": "Int64",  # after EXIF orientation
    "height": "Int64",
    "n_frames": "Int64",
    "exif_rotated": "boolean",
    "decode_error": "string",  # null when the file decoded fine
    "pixel_sha256": "string",  # of the decoded, oriented pixels (catches re-saved copies)
    "phash": "string",  # 64-bit perceptual hash, hex
    "dhash": "string",  # 64-bit difference hash, hex
    # image statistics, computed in the same decode pass on the 8-bit image; the
    # normalised ones on a copy whose longer side is 64 px (STAT_SIZE)
    "stat_mean": "float64",  # luminance mean in [0, 1]
    "stat_std": "float64",  # luminance standard deviation in [0, 1]
    "stat_p05": "float64",  # 5th percentile of luminance in [0, 1]
    "stat_p95": "float64",  # 95th percentile of luminance in [0, 1]
    "stat_entropy": "float64",  # luminance histogram entropy, bits (0..8)
    "stat_colorfulness": "float64",  # mean |channel - mean channel| / 255; 0 for grayscale
    "stat_blur": "float64",  # variance of the Laplacian at STAT_SIZE (low = blurry)
    "stat_gradient": "float64",  # mean gradient magnitude at STAT_SIZE
    "stat_bpp": "float64",  # PNG bits per pixel of the STAT_SIZE grayscale (complexity)
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
