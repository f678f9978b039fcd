"""Helpers shared by the preparation stages: reading their inputs, class counts, and
building an output directory atomically."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

import pandas as pd

from dataqa.errors import StageInputError


def read_table(path: Path, *, stage: str, required: Iterable[str] = ()) -> pd.DataFrame:
    """Read a Parquet output of an earlier ``stage``; a clear error when missing or old."""
    if not path.is_file():
        raise StageInputError(f"{path}: not found; run the '{stage}' stage first")
    frame = pd.read_parquet(path)
    missing = [c for c in required if c not in frame]
    if missing:
        raise StageInputError(f"{path}: missing columns {missing}; rerun the '{stage}' stage")
    return frame


@contextlib.contextmanager
def atomic_dir(target: Path) -> Iterator[Path]:
    """Yield an empty temporary directory next to ``target``; on success it replaces
    ``target`` (rename the old one aside, rename the new one in, delete the old one).

    An interrupted build leaves the previous ``target`` untouched; only the instant
    between the two renames has no ``target`` (POSIX has no portable directory swap).
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(tmp, 0o777 & ~mask)  # mkdtemp makes 0700; an output folder gets the usual mode
    try:
        yield tmp
        old = None
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old",
                                        dir=target.parent))
            os.rmdir(old)
            os.replace(target, old)
        os.replace(tmp, target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def inside(path: Path, folder: Path) -> Path | None:
    """``path`` relative to ``folder`` when it lies inside it, else None."""
    try:
        return Path(path).resolve().relative_to(Path(folder).resolve())
    except ValueError:
        return None
