"""What a scan worker does with one file: bytes -> one small manifest row.

Kept apart from :mod:`dataqa.dataset.scan` so that worker processes import only numpy and PIL
(pandas alone costs each spawned worker about a second on a busy 2-core box). Workers
return plain tuples of :data:`ROW_FIELDS`, never pixels.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import warnings
from collections.abc import Iterator
from functools import cache
from typing import Any

from PIL import Image
from threadpoolctl import threadpool_limits

from dataqa.dataset.imageio import TooLarge, decode_image, read_regular
from dataqa.dataset.imagestats import (
    ANALYSIS_SIZE,
    FIELDS,
    Reduced,
    get_jpeg_stream_sha256,
    get_stats_columns,
    reduce_image,
)

ROW_FIELDS = ("sha256", "bytes", "format", "ext_format", "mode", "width", "height",
              "n_frames", "exif_rotated", "decode_error", *FIELDS)


def scan_chunk(root: str, paths: list[str], max_pixels: int, *, max_bytes: int | None = None,
               decode_timeout: float | None = None) -> list[tuple[Any, ...]]:
    """One worker task: a :data:`ROW_FIELDS` tuple for ``root/<path>`` of each path, in
    order. Each file is read once (``rb``), hashed, decoded and reduced to a few KB before
    the next one is read; the statistics of the whole chunk are then computed at once.
    Run it under :func:`worker_settings` (the scan does)."""
    heads: list[tuple[Any, ...]] = []
    reduced: list[Reduced | None] = []
    for p in paths:
        head, red = scan_file(os.path.join(root, p), max_pixels=max_pixels,
                              max_bytes=max_bytes, decode_timeout=decode_timeout)
        heads.append(head)
        reduced.append(red)
    columns = get_stats_columns([r for r in reduced if r is not None])
    stats = zip(*(columns[k] for k in FIELDS), strict=True)
    empty = (None,) * len(FIELDS)
    rows = [head + (empty if red is None else next(stats))
            for head, red in zip(heads, reduced, strict=True)]
    return rows


def scan_chunk_on_node(root: str, paths: list[str], max_pixels: int, max_bytes: int | None,
                       decode_timeout: float | None) -> list[tuple[Any, ...]]:
    """:func:`scan_chunk` as a Ray task (``cluster.backend: ray``): on a node that cannot
    see ``root`` every file would become an unreadable row, so that is an error."""
    check_root_visible(root)
    with worker_settings():
        return scan_chunk(root, paths, max_pixels, max_bytes=max_bytes,
                          decode_timeout=decode_timeout)


def check_root_visible(root: str) -> None:
    """A SourceError when ``root`` is not a folder on this node (a Ray node without the
    shared filesystem that holds ``data.source``)."""
    if not os.path.isdir(root):
        import socket

        from dataqa.errors import SourceError

        raise SourceError(f"{root}: not found on cluster node {socket.gethostname()}: every "
                          "Ray node must see data.source at the same path (a shared "
                          "filesystem), or use cluster.backend: local")


@contextlib.contextmanager
def worker_settings() -> Iterator[None]:
    """What scanning needs from the process it runs in, for the duration of the block:

    - one BLAS thread: the scan parallelises over processes already, and OpenBLAS
      threads fighting over the cores on small matrices cost ten times the work itself;
    - PIL's warnings silenced (odd metadata, large images): each file's problems are
      recorded in its row instead of flooding stderr from every worker.
    """
    with warnings.catch_warnings(), threadpool_limits(limits=1, user_api="blas"):
        warnings.simplefilter("ignore")
        yield


_process_settings: list[contextlib.AbstractContextManager[None]] = []


def init_worker() -> None:
    """Initializer of a scan worker process: :func:`worker_settings` for its lifetime."""
    settings = worker_settings()
    settings.__enter__()
    _process_settings.append(settings)  # kept referenced: collecting it would undo it


def scan_file(path: str, *, max_pixels: int, max_bytes: int | None = None,
              decode_timeout: float | None = None) -> tuple[tuple[Any, ...], Reduced | None]:
    """Read, hash and decode one file: the ``ROW_FIELDS`` up to ``decode_error``, and the
    image's :class:`~dataqa.dataset.imagestats.Reduced` copies (None when it did not decode).
    Never raises for a bad file. The file is opened non-blocking and must be a regular
    file (a FIFO swapped in after the listing cannot block); at most ``max_bytes`` are
    read (larger: a row "over the size limit", nothing read)."""
    ext_format = _extension_formats().get(os.path.splitext(path)[1].lower())
    try:
        data = read_regular(path, max_bytes)
    except OSError as exc:
        return (None, _size(path), None, ext_format, None, None, None, None, None,
                f"cannot read: {exc.strerror or exc}"), None
    except TooLarge as exc:
        return (None, exc.size, None, ext_format, None, None, None, None, None,
                f"over the size limit: {exc.size} bytes > scan.max_bytes {max_bytes}"), None
    # JPEGs of 128 px and more decode at 1/2..1/8 scale: the statistics only look at a
    # copy under 2 * ANALYSIS_SIZE px, and libjpeg's DCT scaling skips the inverse DCT
    # work (about 30 % of the decode). Their pixel hash is then the coded-stream hash.
    decoded = decode_image(data, max_pixels, draft_side=ANALYSIS_SIZE, budget=decode_timeout)
    red = None
    if decoded.image is not None:
        stream = (get_jpeg_stream_sha256(data, decoded.orientation) if decoded.scale > 1
                  else None)
        red = reduce_image(decoded.image, pixel_sha256=stream)
    head = (hashlib.sha256(data).hexdigest(), len(data), decoded.format, ext_format,
            decoded.mode, decoded.width, decoded.height, decoded.n_frames,
            decoded.exif_rotated, decoded.error)
    return head, red


@cache
def _extension_formats() -> dict[str, str]:
    """Lower-case extension -> the format PIL registers for it (``.jpg`` -> ``JPEG``)."""
    return {ext.lower(): fmt for ext, fmt in Image.registered_extensions().items()}


def _size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return -1
