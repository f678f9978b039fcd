"""``crossval.mode: external``: reading the user's own out-of-sample predictions (and
optionally embeddings) from files keyed by image path, checked against the manifest.
The stage that writes them where the crossval stage writes its own, so every later
stage and check uses them unchanged, is :mod:`dataqa.steps.crossval_external`.

Accepted files (``crossval.external``):

- ``.parquet`` / ``.csv``: a ``path`` column (``path_column``) holding the manifest's
  paths (posix, relative to the source root; absolute paths under the root and ``./``
  prefixes are accepted) plus, for ``pred_probs``, one column per class named as the
  labels (any order: columns are matched by name), for ``embeddings`` any number of
  numeric columns;
- ``.npy``: rows in the order of ``paths`` (a ``.txt`` file, one image path per line,
  UTF-8, a leading byte-order mark accepted as for a CSV source); for ``pred_probs`` the
  class of each column is given by ``classes``. The array is read by
  :func:`dataqa.io.load_npy` (header checked against the file size first); complex
  values are refused. Paths in messages go through :func:`dataqa.text.shown`, so an
  invisible character (a byte-order mark mid-file, a zero-width space) shows as
  ``\\ufeff``.

Checks, each a :class:`~dataqa.errors.PredictionsError` naming the file and the first
offending rows or columns (exit 2): unreadable file, missing ``path`` column, a path
listed twice, a path not in the manifest (extra rows), a decodable labelled image
without a row (missing rows), a class column missing or not a class of the manifest,
a non-numeric column, NaN/inf, a negative probability, a row not summing to 1 (within
:data:`~dataqa.labels.SUM_TOLERANCE`), an NPY whose shape disagrees with ``paths`` or
``classes``. Rows for undecodable or unlabelled images are accepted and ignored (NaN,
as the trained pass writes them). Nothing is repaired silently: rows within the
tolerance are renormalised to sum to exactly 1.

Without ``embeddings`` the embeddings file is all NaN (one column): the checks that use
embeddings (outlier, near_duplicate) then run on their other evidence.
"""

from __future__ import annotations

import logging
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import pandas as pd

from dataqa.errors import PredictionsError
from dataqa.io import load_npy
from dataqa.labels import SUM_TOLERANCE, require_real
from dataqa.params import ExternalPredictionsParams, Params
from dataqa.text import shown

log = logging.getLogger("dataqa.external")
SHOWN = 5  # offending rows/columns named in a message


class Keys:
    """Manifest rows by normalised path, and which rows need a prediction."""

    def __init__(self, manifest: pd.DataFrame, root: Path, required: np.ndarray) -> None:
        self.paths = manifest["path"].astype(str).to_numpy()
        self.row = {p: i for i, p in enumerate(self.paths)}
        self.root = root.resolve()
        self.required = required
        self.n = len(manifest)

    def normalise(self, value: Any) -> str:
        text = str(value).strip().replace("\\", "/")
        if (text and text[0] != "/" and text != "." and "//" not in text
                and "/./" not in text and not text.startswith("./")
                and not text.endswith(("/", "/."))):
            return text  # already normal: what PurePosixPath would give (no per-row object)
        p = PurePosixPath(text)
        if p.is_absolute():
            try:
                return Path(text).resolve().relative_to(self.root).as_posix()
            except (ValueError, OSError):
                return text
        return p.as_posix()

    def align(self, given: list[Any], where: str) -> np.ndarray:
        """Manifest row of each given path (G,), after the row checks."""
        norm = [self.normalise(v) for v in given]
        seen: dict[str, int] = {}
        dup = []
        for i, p in enumerate(norm):
            if p in seen:
                dup.append(f"'{shown(p)}' (rows {seen[p]} and {i})")
            seen.setdefault(p, i)
        if dup:
            raise PredictionsError(f"{where}: {len(dup)} path(s) listed twice: "
                                   f"{_few(dup)}")
        extra = [f"row {i} '{shown(p)}'" for i, p in enumerate(norm) if p not in self.row]
        if extra:
            raise PredictionsError(
                f"{where}: {len(extra)} path(s) not in the manifest (extra rows): "
                f"{_few(extra)}; paths must be as in the manifest, relative to the source "
                f"root {self.root}")
        rows = np.array([self.row[p] for p in norm], dtype=np.int64)
        covered = np.zeros(self.n, dtype=bool)
        covered[rows] = True
        missing = np.flatnonzero(self.required & ~covered)
        if len(missing):
            raise PredictionsError(
                f"{where}: {len(missing)} decodable, labelled image(s) have no row "
                f"(missing rows): {_few([repr(self.paths[i]) for i in missing])}")
        return rows


def read_pred_probs(path: Path, ext: ExternalPredictionsParams, keys: Keys,
                    classes: list[str], params: Params) -> np.ndarray:
    """(N, K) float32 in the pipeline's class order, NaN where no row is needed."""
    where = str(path)
    if path.suffix.lower() == ".npy":
        values = _load_npy(path)
        given = _path_list(ext, params, where)
        if ext.classes is None:
            raise PredictionsError(f"{where}: an .npy file has no column names; list the "
                                   "class of each column in crossval.external.classes")
        columns = [str(c) for c in ext.classes]
        if values.ndim != 2 or values.shape != (len(given), len(columns)):
            raise PredictionsError(f"{where}: shape {values.shape}, expected ({len(given)}, "
                                   f"{len(columns)}): one row per listed path, one column "
                                   "per crossval.external.classes")
    else:
        frame = _load_table(path, ext.path_column)
        given = _path_column(frame, ext.path_column, where)
        columns = [str(c) for c in frame.columns if c != ext.path_column]
        values = _numeric(frame, columns, where)
    _check_classes(columns, classes, where)
    rows = keys.align(given, where)
    order = [columns.index(c) for c in classes]
    values = values[:, order].astype(np.float64)
    _check_probabilities(values, rows, keys, classes, where)
    out = np.full((keys.n, len(classes)), np.nan, dtype=np.float32)
    use = keys.required[rows]
    v = values[use]
    out[rows[use]] = v / v.sum(axis=1, keepdims=True)
    return out


def read_embeddings(path: Path, ext: ExternalPredictionsParams, keys: Keys,
                    params: Params) -> np.ndarray:
    """(N, D) float32 aligned with the manifest, NaN where no row is needed."""
    where = str(path)
    if path.suffix.lower() == ".npy":
        values = _load_npy(path)
        given = _path_list(ext, params, where)
        if values.ndim != 2 or len(values) != len(given) or values.shape[1] < 1:
            raise PredictionsError(f"{where}: shape {values.shape}, expected ({len(given)}, "
                                   "D): one row per listed path")
        try:
            values = values.astype(np.float64)
        except (TypeError, ValueError):
            raise PredictionsError(f"{where}: not a numeric array "
                                   f"(dtype {values.dtype})") from None
    else:
        frame = _load_table(path, ext.path_column)
        given = _path_column(frame, ext.path_column, where)
        columns = [str(c) for c in frame.columns if c != ext.path_column]
        if not columns:
            raise PredictionsError(f"{where}: no embedding columns besides "
                                   f"'{ext.path_column}'")
        values = _numeric(frame, columns, where)
    rows = keys.align(given, where)
    bad = np.flatnonzero(keys.required[rows] & ~np.isfinite(values).all(axis=1))
    if len(bad):
        raise PredictionsError(f"{where}: {len(bad)} row(s) with NaN or inf: "
                               f"{_few([f'{keys.paths[rows[i]]!r}' for i in bad])}")
    out = np.full((keys.n, values.shape[1]), np.nan, dtype=np.float32)
    use = keys.required[rows]
    out[rows[use]] = values[use]
    return out


# --------------------------------------------------------------------------- helpers
def _load_table(path: Path, path_column: str) -> pd.DataFrame:
    if not path.is_file():
        raise PredictionsError(f"{path}: not found (crossval.external)")
    suffix = path.suffix.lower()
    try:
        if suffix == ".parquet":
            return pd.read_parquet(path)
        if suffix == ".csv":
            return pd.read_csv(path, dtype={path_column: str})
    except Exception as exc:  # noqa: BLE001 - pyarrow/pandas raise many types
        raise PredictionsError(f"{path}: not a readable {suffix[1:]} file: "
                               f"{type(exc).__name__}: {str(exc)[:200]}") from None
    raise PredictionsError(f"{path}: unsupported file type '{suffix}'; use .parquet, .csv "
                           "or .npy (with crossval.external.paths)")


def _load_npy(path: Path) -> np.ndarray:
    """The user's array through the one checked reader (:func:`dataqa.io.load_npy`: the
    header's shape against the file's size before anything is allocated); real numbers
    only."""
    if not path.exists():
        raise PredictionsError(f"{path}: not found (crossval.external)")
    try:
        values = load_npy(path)
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise PredictionsError(f"{path}: not a readable .npy file ({reason})") from None
    require_real(values, str(path))
    return values


def _path_list(ext: ExternalPredictionsParams, params: Params, where: str) -> list[str]:
    if not ext.paths:
        raise PredictionsError(f"{where}: an .npy file needs crossval.external.paths, a "
                               ".txt file with the image path of each row, one per line")
    path = params.resolve(ext.paths)
    if not path.is_file():
        raise PredictionsError(f"{path}: not found (crossval.external.paths)")
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()  # a leading BOM: as CSV
    except (OSError, UnicodeDecodeError) as exc:
        raise PredictionsError(f"{path}: not a readable UTF-8 text file ({exc})") from None
    while lines and not lines[-1].strip():
        lines.pop()
    empty = [i for i, line in enumerate(lines) if not line.strip()]
    if empty:
        raise PredictionsError(f"{path}: line {empty[0] + 1} is empty (one path per line)")
    return lines


def _path_column(frame: pd.DataFrame, column: str, where: str) -> list[str]:
    if column not in frame.columns:
        raise PredictionsError(f"{where}: no '{column}' column (columns: "
                               f"{_few([str(c) for c in frame.columns])})")
    values = frame[column]
    empty = np.flatnonzero(values.isna().to_numpy() | (values.astype(str).str.strip() == ""))
    if len(empty):
        raise PredictionsError(f"{where}: column '{column}' is empty at row {empty[0]}")
    return values.astype(str).tolist()


def _numeric(frame: pd.DataFrame, columns: list[str], where: str) -> np.ndarray:
    by_name = {str(c): c for c in frame.columns}
    bad = [c for c in columns if not pd.api.types.is_numeric_dtype(frame[by_name[c]])
           or pd.api.types.is_bool_dtype(frame[by_name[c]])
           or pd.api.types.is_complex_dtype(frame[by_name[c]])]
    if bad:
        raise PredictionsError(f"{where}: column(s) {_few([repr(c) for c in bad])} are not "
                               "numeric")
    return frame[[by_name[c] for c in columns]].to_numpy(dtype=np.float64)


def _check_classes(columns: list[str], classes: list[str], where: str) -> None:
    dup = sorted({c for c in columns if columns.count(c) > 1})
    if dup:
        raise PredictionsError(f"{where}: class column(s) listed twice: {_few(dup)}")
    missing = [c for c in classes if c not in columns]
    extra = [c for c in columns if c not in classes]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"no column for class(es) {_few([repr(c) for c in missing])}")
        if extra:
            parts.append(f"column(s) {_few([repr(c) for c in extra])} are not classes of "
                         "the manifest")
        raise PredictionsError(f"{where}: {'; '.join(parts)}; expected one column per "
                               f"class: {_few([repr(c) for c in classes], 20)}")


def _check_probabilities(values: np.ndarray, rows: np.ndarray, keys: Keys,
                         classes: list[str], where: str) -> None:
    use = keys.required[rows]

    def name(i: int) -> str:
        return f"row {i} ({keys.paths[rows[i]]!r})"

    bad = np.flatnonzero(use & ~np.isfinite(values).all(axis=1))
    if len(bad):
        col = classes[int(np.flatnonzero(~np.isfinite(values[bad[0]]))[0])]
        raise PredictionsError(f"{where}: {len(bad)} row(s) with NaN or inf; first: "
                               f"{name(bad[0])}, column {col!r}")
    neg = np.flatnonzero(use & (values < 0).any(axis=1))
    if len(neg):
        col = classes[int(np.argmin(values[neg[0]]))]
        raise PredictionsError(f"{where}: {len(neg)} row(s) with a negative probability; "
                               f"first: {name(neg[0])}, column {col!r} "
                               "(probabilities, not logits)")
    sums = values.sum(axis=1)
    off = np.flatnonzero(use & (np.abs(sums - 1.0) > SUM_TOLERANCE))
    if len(off):
        raise PredictionsError(f"{where}: {len(off)} row(s) do not sum to 1 (off by more "
                               f"than {SUM_TOLERANCE:g}); first: {name(off[0])} sums to "
                               f"{sums[off[0]]:.6g}")


def _few(items: list[str], n: int = SHOWN) -> str:
    return ", ".join(items[:n]) + (f", ... ({len(items)} in all)" if len(items) > n else "")
