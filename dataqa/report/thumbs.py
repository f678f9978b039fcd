"""Inline thumbnails for the reports: data: URIs, decoded only for images shown.

Sections ask for thumbnails while they are built (:meth:`Thumbnailer.want`); the page
then decodes all of them at once in a few threads (Pillow releases the GIL while it
decodes) and templates read them with :meth:`Thumbnailer.get`. Each image is decoded
at most once per report even when several galleries show it, and never more than
``limit`` images per report: a 100,000-image dataset costs the same as a small one.

Files are read through :func:`dataqa.dataset.reopen.reopen_bytes` (a regular file
inside the source root, with the manifest's size and hash): a file that changed since
the scan gets no thumbnail but a note saying so, and the report is still written.
"""

from __future__ import annotations

import base64
import io
import os
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from PIL import Image

from dataqa.dataset.imageio import decode_image, read_regular
from dataqa.dataset.reopen import ChangedSinceScan, optional, optional_int, reopen_bytes


@dataclass(frozen=True)
class Thumb:
    """A thumbnail (``uri`` set) or the reason there is none (``note``)."""

    uri: str | None
    note: str | None
    width: int = 0  # of the encoded thumbnail, pixels
    height: int = 0


def make_thumbnail(path: str | Path, *, size: int, max_pixels: int,
                   data: bytes | None = None, budget: float | None = None) -> Thumb:
    """Decode ``path`` (or ``data``, its bytes; EXIF-oriented, 8-bit) and shrink its
    longest side to ``size`` (never enlarged: the page scales tiny images up with crisp
    pixels). Encoded as PNG or JPEG, whichever is smaller (PNG wins for digits and flat
    art, JPEG for photos)."""
    try:
        if data is None:
            data = read_regular(path)
        decoded = decode_image(data, max_pixels, budget=budget)
    except FileNotFoundError:
        return Thumb(None, "file missing (moved since the scan?)")
    except OSError as exc:
        return Thumb(None, str(exc))
    if decoded.image is None:
        return Thumb(None, str(decoded.error))
    im = decoded.image
    best, mime, width, height = encode_thumbnail(im, size)
    uri = f"data:image/{mime};base64,{base64.b64encode(best).decode('ascii')}"
    return Thumb(uri, None, width, height)


_SAVE_OPTIONS: dict[str, dict[str, Any]] = {"PNG": {"optimize": True}, "JPEG": {"quality": 82}}


def encode_thumbnail(im: Image.Image, size: int, *, enlarge: bool = False,
                     formats: tuple[str, ...] = ("PNG", "JPEG")
                     ) -> tuple[bytes, str, int, int]:
    """The one thumbnail encoder of the reports: ``(bytes, mime subtype, width, height)``.

    The longest side is shrunk to ``size`` (LANCZOS); a smaller image stays as it is
    (the page scales it up with crisp pixels), or with ``enlarge`` is scaled up by a
    whole factor with visible pixels (NEAREST, never blurred: training-size copies).
    Encoded in whichever of ``formats`` is smallest (PNG wins for digits and flat art,
    JPEG for photos)."""
    im = im.copy()
    if max(im.size) > size:
        im.thumbnail((size, size), Image.Resampling.LANCZOS, reducing_gap=2.0)
    elif enlarge:
        k = max(1, size // max(im.size))
        im = im.resize((im.width * k, im.height * k), Image.Resampling.NEAREST)
    best = b""
    mime = ""
    for fmt in formats:
        buf = io.BytesIO()
        im.save(buf, fmt, **_SAVE_OPTIONS.get(fmt, {}))
        if not best or buf.tell() < len(best):
            best, mime = buf.getvalue(), fmt.lower()
    return best, mime, im.width, im.height


class Thumbnailer:
    """Collects wanted manifest ids, decodes them once, serves :class:`Thumb` objects.

    ``manifest`` is indexed by ``id`` and has ``path`` and ``decode_error``.
    """

    def __init__(self, manifest: pd.DataFrame, root: Path, *, size: int, max_pixels: int,
                 limit: int, workers: int = 2, max_bytes: int | None = None,
                 budget: float | None = None) -> None:
        self.manifest = manifest
        self.root = root.resolve()
        self.max_bytes = max_bytes
        self.budget = budget
        self.size = size
        self.max_pixels = max_pixels
        self.limit = limit
        self.workers = workers
        self._wanted: dict[int, None] = {}  # ordered set
        self._thumbs: dict[int, Thumb] = {}

    def want(self, ids: Iterable[int]) -> None:
        for i in ids:
            self._wanted.setdefault(int(i))

    def load(self) -> None:
        """Decode every wanted, not yet loaded image (the first ``limit`` of them)."""
        todo: list[int] = []
        for i in self._wanted:
            if i in self._thumbs:
                continue
            err = self.manifest.at[i, "decode_error"]
            if not pd.isna(err):
                self._thumbs[i] = Thumb(None, f"undecodable: {err}")
            elif len(todo) + self.n_decoded >= self.limit:
                self._thumbs[i] = Thumb(None, "not shown: report.max_thumbnails reached")
            else:
                todo.append(i)
        with ThreadPoolExecutor(max_workers=max(1, self.workers)) as pool:
            for i, thumb in zip(todo, pool.map(self._make, todo)):
                self._thumbs[i] = thumb

    def _make(self, i: int) -> Thumb:
        m = self.manifest
        rel = str(m.at[i, "path"])
        try:
            data = reopen_bytes(
                self.root, rel, max_bytes=self.max_bytes,
                size=optional_int(m.at[i, "bytes"]) if "bytes" in m else None,
                sha256=optional(m.at[i, "sha256"]) if "sha256" in m else None)
        except ChangedSinceScan as exc:
            if not os.path.lexists(self.root / rel):
                return Thumb(None, "file missing (moved since the scan?)")
            return Thumb(None, str(exc).split(": ", 1)[-1].split("; rerun")[0])
        return make_thumbnail(self.root / rel, size=self.size, max_pixels=self.max_pixels,
                              data=data, budget=self.budget)

    @property
    def n_decoded(self) -> int:
        return sum(t.uri is not None for t in self._thumbs.values())

    def get(self, i: int) -> Thumb:
        return self._thumbs.get(int(i)) or Thumb(None, "no thumbnail")
