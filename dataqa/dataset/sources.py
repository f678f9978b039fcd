"""Listing the files of an image source: an ImageFolder directory or a CSV.

:func:`list_source` returns the source root and one row per file (``path`` posix and
relative to the root, ``label``, ``split``), sorted by ``path``. It reads no image and
writes nothing. Problems with the source itself are a :class:`SourceError` naming the
file or CSV row; problems with a file's *content* are for the scan (a row with
``decode_error``), never an error here.

ImageFolder (``root/<class>/<file>``) decisions:

- the label is the name of the top-level folder; deeper folders are walked and belong to
  their top-level class (``root/cat/2019/a.jpg`` is class ``cat``, path ``cat/2019/a.jpg``);
- a file is listed when its extension (case-insensitive) is in ``extensions``; other files
  are ignored. A file with an image extension and bad content (text named ``.png``) is
  listed: the scan flags it;
- hidden files and folders (name starting with ``.``) are skipped. A special file (FIFO,
  socket, device) with an image extension is listed: the scan never opens it blocking
  and flags its row ("cannot read: not a regular file (a FIFO)"), so it is counted and
  shown instead of vanishing;
- image files directly in the root have no class: skipped, with a warning;
- a class folder holding no image file: a warning (the class will not exist);
- ``data.layout`` (:mod:`dataqa.dataset.layout`) decides whether the top level holds
  classes or splits (``root/<split>/<class>/<file>``: the split is the folder name,
  lower-cased when it is a known split name); ``auto`` tells them apart and refuses a
  mix. Top-level folders that all look like split names but hold no class folder: a
  warning, because they become labels;
- a symlink (file or folder) whose resolved target lies outside the root, that points
  nowhere, or that is a loop: SourceError naming it. Links inside the root are followed
  (loops are cut); a file is listed once however many folder links reach it (a class
  folder linked to the root): under its path without links, the aliases named in a
  warning. A symlink to a file is listed as a file of its own (the audit flags it as an
  exact duplicate of its target);
- a file or folder name that is not valid UTF-8: SourceError naming every such name
  (with the raw bytes escaped) so it can be renamed; a manifest path must be text;
- files with an image-like extension not in ``extensions`` (``.jfif``, ``.heic``,
  ``.JPE``...) are skipped and counted per extension: a warning and
  ``frame.attrs["skipped_extensions"]`` (shown in the report);
- no image file at all: SourceError.

CSV (columns ``path,label`` and optional ``split``, paths relative to the CSV's folder,
which is the source root) decisions:

- UTF-8 (a BOM is accepted); header names are matched after trimming spaces and case;
  other columns are ignored;
- rows are numbered as a spreadsheet shows them: the header is row 1. Blank rows are
  skipped (they still count). Cells are trimmed of surrounding spaces; ``\\`` in a path is
  read as ``/``;
- an empty ``split`` cell takes ``default_split``; known split names are matched
  case-insensitively and stored lower-cased (``Train`` and ``train`` are one split,
  :func:`dataqa.dataset.layout.canonical_split`); a listed file is kept whatever its
  extension (the CSV is explicit);
- errors, all collected and raised as one SourceError naming each row and value: missing
  columns, a NUL byte or a cell over :data:`MAX_CELL` characters, empty path, empty label, absolute path, a path whose ``..`` leaves the root,
  a path that leaves the root through a symlink (resolved and checked), a missing file or
  a directory, the same file listed twice (both rows named).

Warnings are logged (logger ``dataqa.dataset.sources``) and kept in ``frame.attrs["warnings"]``.
"""

from __future__ import annotations

import csv
import io
import logging
import os
import posixpath
import re
import unicodedata
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from dataqa.dataset.layout import SPLIT_NAMES, canonical_split, resolve_layout
from dataqa.errors import SourceError

log = logging.getLogger(__name__)

_SPLIT_NAMES = SPLIT_NAMES
_WINDOWS_ABSOLUTE = re.compile(r"^[A-Za-z]:[\\/]|^[\\/]")
_MAX_LISTED = 20  # problems shown in one error message; the count says how many more
MAX_CELL = 4096  # characters in one CSV cell (a path or label); longer is a bad row
# extensions of image formats that a user may expect to be read; a skipped file with one
# of them is counted (extensions compare lower-case, so '.JPE' counts as '.jpe')
IMAGE_LIKE = {".jpg", ".jpeg", ".jpe", ".jfif", ".jif", ".pjpeg", ".pjp", ".png", ".apng",
              ".gif", ".bmp", ".dib", ".tif", ".tiff", ".webp", ".heic", ".heif", ".avif",
              ".jxl", ".jp2", ".j2k", ".jpx", ".ico", ".ppm", ".pgm", ".pbm", ".pnm",
              ".tga", ".psd", ".dng", ".cr2", ".nef", ".arw", ".raw", ".svg", ".exr",
              ".hdr", ".pcx", ".qoi"}


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
            root, rows, warnings, skipped = _list_split_folder(source, extensions)
        else:
            root, rows, warnings, skipped = _list_image_folder(source, default_split,
                                                               extensions)
    elif source.is_file() and source.suffix.lower() == ".csv":
        chosen, reason = "csv", "a CSV lists path,label[,split]"
        (root, rows, warnings), skipped = _list_csv(source, default_split), {}
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


# --------------------------------------------------------------------------- ImageFolder
def _list_image_folder(source: Path, default_split: str, extensions: list[str],
                       ) -> tuple[Path, list[tuple[str, str, str]], list[str], dict[str, int]]:
    root = source.resolve()
    exts = {e.lower() for e in extensions}
    warnings: list[str] = []
    loose: list[str] = []
    classes: list[str] = []
    skipped: dict[str, str] = {}  # real path -> extension (a file counted once)
    undecodable_names: list[str] = []
    found: dict[str, list[tuple[str, str, str]]] = {}  # real path -> [(rel, label, split)]
    for entry in _scandir(root):
        if entry.name.startswith("."):
            continue
        if not _utf8(entry.name):
            undecodable_names.append(entry.path)
            continue
        if _is_dir(entry, root):
            _check_link(entry, root)
            classes.append(entry.name)
            for rel, real in _walk_class(Path(entry.path), entry.name, root, exts, skipped,
                                         undecodable_names):
                found.setdefault(real, []).append((rel, entry.name, default_split))
        elif Path(entry.name).suffix.lower() in exts:
            loose.append(entry.name)
    rows, by_ext = _collect(root, found, skipped, undecodable_names, warnings)
    labelled = {label for _, label, _ in rows}
    for name in classes:
        if name not in labelled:
            warnings.append(f"class folder '{name}' holds no image file of its own "
                            f"(extensions {sorted(exts)}): the class will not exist")
    if loose:
        shown = ", ".join(sorted(loose)[:_MAX_LISTED])
        warnings.append(f"{len(loose)} image file(s) directly in the root have no class "
                        f"folder and are skipped: {shown}")
    if classes and {c.lower() for c in classes} <= _SPLIT_NAMES:
        warnings.append(f"the top-level folders {sorted(classes)} look like splits, but in "
                        f"an ImageFolder they are the labels; list files in a CSV with a "
                        f"'split' column to keep splits")
    if not rows:
        raise SourceError(f"{source}: no image files found (ImageFolder expects "
                          f"<class>/<file> with extensions {sorted(exts)})")
    return root, rows, warnings, by_ext


def _list_split_folder(source: Path, extensions: list[str],
                       ) -> tuple[Path, list[tuple[str, str, str]], list[str], dict[str, int]]:
    """``root/<split>/<class>/<file>``: split from the first level, label from the second;
    the same link, name and extension rules as :func:`_list_image_folder`."""
    root = source.resolve()
    exts = {e.lower() for e in extensions}
    rows: list[tuple[str, str, str]] = []
    warnings: list[str] = []
    skipped: dict[str, str] = {}
    undecodable_names: list[str] = []
    found: dict[str, list[tuple[str, str, str]]] = {}  # real path -> [(rel, label, split)]
    for split_entry in _scandir(root):
        if split_entry.name.startswith("."):
            continue
        if not _utf8(split_entry.name):
            undecodable_names.append(split_entry.path)
            continue
        if not _is_dir(split_entry, root):
            if Path(split_entry.name).suffix.lower() in exts:
                warnings.append(f"image file '{split_entry.name}' directly in the root has "
                                f"no split or class folder and is skipped")
            continue
        _check_link(split_entry, root)
        split = canonical_split(split_entry.name)
        loose = []
        for entry in _scandir(Path(split_entry.path)):
            if entry.name.startswith("."):
                continue
            if not _utf8(entry.name):
                undecodable_names.append(entry.path)
                continue
            rel = f"{split_entry.name}/{entry.name}"
            if _is_dir(entry, root):
                _check_link(entry, root)
                files = _walk_class(Path(entry.path), rel, root, exts, skipped,
                                    undecodable_names)
                if not files:
                    warnings.append(f"class folder '{rel}' holds no image file "
                                    f"(extensions {sorted(exts)})")
                for f, real in files:
                    found.setdefault(real, []).append((f, entry.name, split))
            elif Path(entry.name).suffix.lower() in exts:
                loose.append(rel)
        if loose:
            shown = ", ".join(sorted(loose)[:_MAX_LISTED])
            warnings.append(f"{len(loose)} image file(s) directly in split folder "
                            f"'{split_entry.name}' have no class folder and are skipped: "
                            f"{shown}")
    rows, by_ext = _collect(root, found, skipped, undecodable_names, warnings)
    if not rows:
        raise SourceError(f"{source}: no image files found (data.layout split/class expects "
                          f"<split>/<class>/<file> with extensions {sorted(exts)})")
    return root, rows, warnings, by_ext


def _collect(root: Path, found: dict[str, list[tuple[str, str, str]]],
             skipped: dict[str, str], undecodable_names: list[str], warnings: list[str]
             ) -> tuple[list[tuple[str, str, str]], dict[str, int]]:
    """What both folder listers finish with: a SourceError for names that are not UTF-8;
    one row per real file (the link-free path first, the aliases named in a warning); a
    warning counting the skipped image-like extensions. Returns ``(rows, by extension)``."""
    if undecodable_names:
        shown = ", ".join(repr(os.fsencode(os.path.relpath(n, root)))[1:]
                          for n in sorted(undecodable_names)[:_MAX_LISTED])
        raise SourceError(f"{root}: {len(undecodable_names)} file or folder name(s) are not "
                          f"valid UTF-8 (a manifest path must be text): {shown}; rename them")
    rows: list[tuple[str, str, str]] = []
    aliases: list[str] = []
    for real, places in found.items():
        places.sort(key=lambda p: (os.path.join(root, p[0]) != real, p[0]))  # link-free first
        rows.append(places[0])
        aliases.extend(f"'{rel}' (= '{places[0][0]}')" for rel, _, _ in places[1:])
    if aliases:
        warnings.append(f"{len(aliases)} file(s) reached a second time through a symlink are "
                        f"listed once, under their own path: {', '.join(aliases[:_MAX_LISTED])}")
    by_ext = Counter(skipped.values())
    if by_ext:
        counts = ", ".join(f"{n} {ext}" for ext, n in sorted(by_ext.items()))
        warnings.append(f"{len(skipped)} file(s) with an image extension not in "
                        f"scan.extensions were skipped ({counts}); add the extension to "
                        f"scan.extensions to scan them")
    return rows, dict(by_ext)


def _walk_class(folder: Path, label: str, root: Path, exts: set[str], skipped: dict[str, str],
                undecodable_names: list[str]) -> list[tuple[str, str]]:
    """``(relative posix path, real path)`` of the image files under one class folder
    (recursive); image-like files of other extensions are counted into ``skipped``."""
    found: list[tuple[str, str]] = []
    seen: set[str] = set()
    stack = [(folder, label)]
    while stack:
        current, rel_dir = stack.pop()
        real = os.path.realpath(current)
        if real in seen:  # a link back up the tree: walked already
            continue
        seen.add(real)
        for entry in _scandir(current):
            if entry.name.startswith("."):
                continue
            rel = f"{rel_dir}/{entry.name}"
            if not _utf8(entry.name):
                undecodable_names.append(entry.path)
                continue
            ext = Path(entry.name).suffix.lower()
            if _is_dir(entry, root):
                _check_link(entry, root)
                stack.append((Path(entry.path), rel))
            elif ext in exts:
                _check_link(entry, root)
                # regular or special (the scan flags a special file's row). The folder
                # resolved, the name kept: one key per file reached through folder
                # links; a link to a file is a file of its own (an exact duplicate)
                found.append((rel, os.path.join(real, entry.name)))
            elif ext in IMAGE_LIKE:
                skipped[os.path.join(real, entry.name)] = ext
    return found


def _utf8(name: str) -> bool:
    """Whether a name from the OS is valid UTF-8 (Python decodes others with surrogates)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _is_dir(entry: os.DirEntry[str], root: Path) -> bool:
    """``entry.is_dir()``, with a symlink loop (ELOOP) a SourceError naming the link."""
    try:
        return entry.is_dir()
    except OSError as exc:
        rel = os.path.relpath(entry.path, root)
        if entry.is_symlink():
            raise SourceError(f"{root}: '{rel}' is a symlink loop ({exc.strerror})") from None
        raise SourceError(f"{root}: '{rel}': cannot read ({exc.strerror or exc})") from None


def _scandir(folder: Path) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(folder) as it:
            return sorted(it, key=lambda e: e.name)
    except OSError as exc:
        raise SourceError(f"{folder}: cannot list folder ({exc.strerror or exc})") from None


def _check_link(entry: os.DirEntry[str], root: Path) -> None:
    """A symlink must resolve to an existing file or folder inside ``root``."""
    if not entry.is_symlink():
        return
    rel = os.path.relpath(entry.path, root)
    target = _resolve(Path(entry.path))
    if target is None:
        raise SourceError(f"{root}: '{rel}' is a symlink loop")
    if not target.is_relative_to(root):
        raise SourceError(f"{root}: '{rel}' is a symlink to {target}, outside the source "
                          f"root; copy the file in or point data.source at a common parent")
    if not target.exists():
        raise SourceError(f"{root}: '{rel}' is a broken symlink (target {target} missing)")


def _resolve(path: Path) -> Path | None:
    """``path`` with every symlink resolved; None for a symlink loop."""
    try:
        return path.resolve()
    except (RuntimeError, OSError):  # RuntimeError: loop (Python 3.11/3.12)
        return None


# --------------------------------------------------------------------------- CSV
def _list_csv(csv_path: Path, default_split: str,
              ) -> tuple[Path, list[tuple[str, str, str]], list[str]]:
    root = csv_path.resolve().parent
    try:
        text = csv_path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SourceError(f"{csv_path}: not UTF-8 text ({exc})") from None
    records = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(records, None)
    except csv.Error as exc:
        raise SourceError(f"{csv_path}: row 1 (header): cannot be read as CSV ({exc})") from None
    if header is None:
        raise SourceError(f"{csv_path}: empty file; expected a header row 'path,label[,split]'")
    names = [h.strip().lower() for h in header]
    missing = [c for c in ("path", "label") if c not in names]
    if missing:
        raise SourceError(f"{csv_path}: row 1 (header): missing column(s) "
                          f"{', '.join(repr(c) for c in missing)}; found "
                          f"{', '.join(repr(h) for h in header)}; expected path,label[,split]")
    doubled = sorted({n for n in names if names.count(n) > 1 and n in ("path", "label", "split")})
    if doubled:
        raise SourceError(f"{csv_path}: row 1 (header): column(s) {doubled} appear twice")
    i_path, i_label = names.index("path"), names.index("label")
    i_split = names.index("split") if "split" in names else None

    rows: list[tuple[str, str, str]] = []
    errors: list[str] = []
    first_row: dict[str, int] = {}
    for row_no, cells in _csv_rows(records, csv_path):
        if not any(c.strip() for c in cells):
            continue
        bad_cell = _bad_cell(cells)
        if bad_cell:
            errors.append(f"row {row_no}: {bad_cell}")
            continue

        def cell(i: int | None, cells: list[str] = cells) -> str:
            return cells[i].strip() if i is not None and i < len(cells) else ""

        raw, label = cell(i_path), cell(i_label)
        split = canonical_split(cell(i_split) or default_split)
        where = f"row {row_no}"
        if not raw:
            errors.append(f"{where}: empty path (label '{label}')")
            continue
        if not label:
            errors.append(f"{where}: empty label for path '{raw}'")
            continue
        rel, problem = _check_csv_path(raw, root)
        if problem:
            errors.append(f"{where}: {problem}")
            continue
        if rel in first_row:
            errors.append(f"rows {first_row[rel]} and {row_no}: path '{rel}' is listed twice")
            continue
        first_row[rel] = row_no
        rows.append((rel, label, split))
    if errors:
        more = f"\n  ... and {len(errors) - _MAX_LISTED} more" if len(errors) > _MAX_LISTED else ""
        raise SourceError(f"{csv_path}: {len(errors)} bad row(s) (paths are relative to "
                          f"{root}):\n  " + "\n  ".join(errors[:_MAX_LISTED]) + more)
    if not rows:
        raise SourceError(f"{csv_path}: no rows after the header")
    return root, rows, []


def _csv_rows(records: Iterator[list[str]], csv_path: Path) -> Iterator[tuple[int, list[str]]]:
    """``(spreadsheet row number, cells)`` after the header; a malformed row (a cell over
    the csv module's limit, a stray quote at the end of the file) is a SourceError naming
    the row."""
    row_no = 1
    while True:
        row_no += 1
        try:
            cells = next(records)
        except StopIteration:
            return
        except csv.Error as exc:
            raise SourceError(f"{csv_path}: row {row_no}: cannot be read as CSV ({exc}); "
                              f"cells hold at most {MAX_CELL} characters") from None
        yield row_no, cells


def _bad_cell(cells: list[str]) -> str | None:
    """Why a row's cells cannot be a path or label (NUL byte, too long), or None."""
    for i, cell in enumerate(cells, start=1):
        if "\x00" in cell:
            return f"cell {i} holds a NUL byte"
        if len(cell) > MAX_CELL:
            return f"cell {i} holds {len(cell)} characters (more than {MAX_CELL})"
    return None


def _check_csv_path(raw: str, root: Path) -> tuple[str, str | None]:
    """Normalised relative posix path of a CSV cell, or a problem in words."""
    if _WINDOWS_ABSOLUTE.match(raw) or os.path.isabs(raw):
        return "", f"path '{raw}' is absolute; paths must be relative to the CSV's folder"
    rel = posixpath.normpath(raw.replace("\\", "/"))
    if rel == ".." or rel.startswith("../"):
        return "", f"path '{raw}' leaves the source root through '..'"
    if rel == ".":
        return "", f"path '{raw}' names the source root, not a file"
    full = root / rel
    target = _resolve(full)
    if target is None:
        return "", f"path '{raw}' runs into a symlink loop"
    if not target.is_relative_to(root):
        return "", (f"path '{raw}' leaves the source root through a symlink "
                    f"(it resolves to {target})")
    if not target.exists():
        return "", f"file '{raw}' not found ({full})"
    if not target.is_file():
        return "", f"path '{raw}' is not a regular file ({full})"
    return rel, None
