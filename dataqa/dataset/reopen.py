"""The one way an image is read again after the scan: checked against the manifest.

Every stage after ``scan`` that opens a source image (tensors, report thumbnails,
augment, the tuning report's before/after thumbnails) goes through :func:`reopen`,
which refuses, naming the file and saying it "changed since the scan":

- a path that no longer resolves (missing, a symlink loop) or resolves outside the
  source root (a file swapped for a link to ``/etc/...``);
- anything but a regular file (a FIFO that would block forever, ``/dev/zero`` that
  would fill memory): opened non-blocking, checked on the open descriptor;
- a size other than the manifest's ``bytes`` (never more than ``scan.max_bytes`` is
  read) or a SHA-256 other than its ``sha256`` (a replaced image would be trained on
  while the manifest keeps the old hashes).

The decode then runs under the same pixel limit and time budget as the scan
(:func:`dataqa.dataset.imageio.decode_image`). :func:`source_root` (in
:mod:`dataqa.dataset.sources`) is the one resolved root that every stage uses.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from PIL import Image

from dataqa.dataset.imageio import TooLarge, decode_image, read_regular
from dataqa.errors import StageInputError
from dataqa.params import ScanParams


class ChangedSinceScan(StageInputError):
    """The file is not the one the scan read; the message names it and says how."""


@dataclass(frozen=True)
class Limits:
    """What every read of a source image is held to (from ``params.scan``)."""

    max_pixels: int
    max_bytes: int | None = None
    budget: float | None = None  # seconds per decode

    @classmethod
    def of(cls, scan: ScanParams) -> Limits:
        return cls(scan.max_pixels, scan.max_bytes, scan.decode_timeout)


def reopen_bytes(root: Path, rel: str, *, size: int | None, sha256: str | None,
                 max_bytes: int | None, real_dirs: dict[str, str] | None = None) -> bytes:
    """The bytes of ``root/rel`` if it is still the file the scan read; else
    :class:`ChangedSinceScan`. ``root`` must be resolved (:func:`source_root`).
    ``real_dirs``: a cache of resolved folders for a batch of files read together (the
    tensors stage's chunks): each file then costs one ``lstat`` instead of one per
    component of its path; a file that is itself a link is still resolved in full."""
    path = root / rel

    def changed(why: str) -> ChangedSinceScan:
        return ChangedSinceScan(f"{path}: changed since the scan ({why}); rerun 'scan' "
                                f"(dvc repro reruns it when the source fingerprint changes)")

    try:
        real = _real_path(os.path.join(root, rel), real_dirs)
    except (OSError, RuntimeError) as exc:
        loop = isinstance(exc, RuntimeError) or getattr(exc, "errno", None) == errno.ELOOP
        reason = "a symlink loop" if loop else (getattr(exc, "strerror", None) or str(exc))
        raise changed(f"cannot be resolved: {reason}") from None
    if not real.startswith(os.path.join(root, "")):
        raise changed(f"it now resolves to {real}, outside the source root {root}")
    limit = max_bytes if size is None or size < 0 else min(size, max_bytes or size)
    try:
        data = read_regular(real, limit)
    except TooLarge as exc:
        raise changed(f"{exc.size} bytes, the scan read {size}") from None
    except OSError as exc:
        raise changed(exc.strerror or str(exc)) from None
    if size is not None and size >= 0 and len(data) != size:
        raise changed(f"{len(data)} bytes, the scan read {size}")
    if sha256 is not None and hashlib.sha256(data).hexdigest() != sha256:
        raise changed("its content hash differs from the manifest's")
    return data


def _real_path(path: str, real_dirs: dict[str, str] | None) -> str:
    """``path`` with every symlink resolved (strict: it must exist)."""
    if real_dirs is None:
        return os.path.realpath(path, strict=True)
    folder, name = os.path.split(path)
    real_dir = real_dirs.get(folder)
    if real_dir is None:
        real_dir = real_dirs[folder] = os.path.realpath(folder, strict=True)
    full = os.path.join(real_dir, name)
    if stat.S_ISLNK(os.lstat(full).st_mode):
        return os.path.realpath(full, strict=True)
    return full


def reopen(root: Path, rel: str, *, size: int | None, sha256: str | None, limits: Limits,
           draft_side: int | None = None, real_dirs: dict[str, str] | None = None
           ) -> Image.Image:
    """:func:`reopen_bytes`, decoded to an upright 8-bit ``L``/``RGB`` image. A decode
    failure (e.g. over the time budget on a busier machine) is a StageInputError naming
    the file: the scan decoded it, so the rows would no longer match the manifest."""
    data = reopen_bytes(root, rel, size=size, sha256=sha256, max_bytes=limits.max_bytes,
                        real_dirs=real_dirs)
    decoded = decode_image(data, limits.max_pixels, draft_side=draft_side, budget=limits.budget)
    if decoded.image is None:
        raise StageInputError(f"{root / rel}: decoded during 'scan' but not now "
                              f"({decoded.error}); raise scan.decode_timeout if the machine "
                              f"is busier, or rerun 'scan'")
    return decoded.image


def optional(value: object) -> str | None:
    """A manifest cell as ``str``, or None for a null (None, NaN, pandas NA)."""
    return None if pd.isna(value) else str(value)  # type: ignore[call-overload]


def optional_int(value: object) -> int | None:
    text = optional(value)
    return None if text is None else int(float(text))
