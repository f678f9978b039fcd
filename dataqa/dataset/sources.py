"""Listing the files of an image source: an ImageFolder directory or a CSV.

:func:`list_source` returns the source root and one row per file (``path`` posix and
relative to the root, ``label``, ``split``), sorted by ``path``. It reads no image and
writes nothing. Problems with the source itself are a :class:`SourceError` naming the
file or CSV row; problems with a file's *content* are for the scan (a row with
``decode_error``), never an error here.

The listing of each kind lives in its own module: :mod:`dataqa.dataset.source_folder`
(ImageFolder: its decisions are that module's docstring) and
:mod:`dataqa.dataset.source_csv` (CSV); this module chooses between them, sorts the
rows, warns about look-alike class names and holds the one :func:`source_root`.

Warnings are logged (logger ``dataqa.dataset.sources``) and kept in ``frame.attrs["warnings"]``.
"""

from __future__ import annotations

import logging
import unicodedata
from pathlib import Path

import pandas as pd

from dataqa.dataset.layout import resolve_layout
from dataqa.dataset.source_csv import MAX_CELL, list_csv
from dataqa.dataset.source_folder import IMAGE_LIKE, list_image_folder, list_split_folder
from dataqa.errors import SourceError

log = logging.getLogger(__name__)

__all__ = ["IMAGE_LIKE", "MAX_CELL", "list_source", "lookalike_labels", "source_root"]


def list_source(source: Path, *, default_split: str, extensions: list[str],
                layout: str = "auto", quiet: bool = False) -> tuple[Path, pd.DataFrame]:
    """List the files of ``source`` (ImageFolder directory or ``.csv`` file).

    Returns ``(root, frame)``: the resolved folder that paths are relative to, and a
    frame of N rows with string columns ``path`` (posix, relative to ``root``), ``label``,
    ``split``, sorted by ``path``. ``extensions`` (e.g. ``[".png", ".jpg"]``) selects
    ImageFolder files; a CSV lists its files explicitly. ``layout`` is ``data.layout``;
    ``frame.attrs["layout"]`` and ``frame.attrs["layout_reason"]`` say what was used. ``quiet``: warnings are only
    kept in ``frame.attrs`` (the fingerprint lists before the scan, which logs them).
    """
    source = Path(source)
    if source.is_dir():
        chosen, reason = resolve_layout(source.resolve(), layout)
        if chosen == "split/class":
            root, rows, warnings, skipped = list_split_folder(source, extensions)
        else:
            root, rows, warnings, skipped = list_image_folder(source, default_split,
                                                               extensions)
    elif source.is_file() and source.suffix.lower() == ".csv":
        chosen, reason = "csv", "a CSV lists path,label[,split]"
        (root, rows, warnings), skipped = list_csv(source, default_split), {}
    elif source.exists():
        raise SourceError(f"{source}: a source is an ImageFolder directory or a .csv file")
    else:
        raise SourceError(f"{source}: source not found")
    for message in [] if quiet else warnings:
        log.warning("%s: %s", source, message)
    rows.sort()
    frame = pd.DataFrame(rows, columns=["path", "label", "split"], dtype="string")
    look = lookalike_labels(sorted({r[1] for r in rows}))
    if look:
        message = ("look-alike class names are kept apart as different classes: "
                   + "; ".join(" vs ".join(_shown(n) for n in group) for group in look)
                   + " (merge them in the source if they mean the same class)")
        if not quiet:
            log.warning("%s: %s", source, message)
        warnings.append(message)
    frame.attrs["warnings"] = warnings
    frame.attrs["skipped_extensions"] = skipped
    frame.attrs["layout"] = chosen
    frame.attrs["layout_reason"] = reason
    return root, frame


def _shown(name: str) -> str:
    """A label quoted, non-ASCII characters as escapes (NFC 'caf\\xe9' and NFD
    'cafe\\u0301' look the same on screen)."""
    return ascii(name)


def lookalike_labels(labels: list[str]) -> list[list[str]]:
    """Groups of distinct labels that a person reads as one: equal after Unicode NFKC,
    case folding and, for numbers, leading zeros (``Cat``/``cat``, NFC/NFD ``é``,
    ``01``/``1``)."""
    groups: dict[str, list[str]] = {}
    for label in labels:
        key = unicodedata.normalize("NFKC", label).casefold().strip()
        if key.isdigit():
            key = str(int(key))
        groups.setdefault(key, []).append(label)
    return [g for g in groups.values() if len(g) > 1]



def source_root(source: Path) -> Path:
    """The folder manifest paths are relative to: the ImageFolder, or the folder of the
    CSV's *target* (a ``data.source`` that is a symlink to a CSV elsewhere lists paths
    relative to where the CSV really is), every link resolved. The one root every stage
    uses, the same as :func:`list_source` returns."""
    real = Path(source).resolve()
    return real if real.is_dir() else real.parent
