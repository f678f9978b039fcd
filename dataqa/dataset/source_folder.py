"""Listing an ImageFolder source (``root/<class>/<file>`` or
``root/<split>/<class>/<file>``) for :func:`dataqa.dataset.sources.list_source`.

ImageFolder decisions:

ImageFolder (``root/<class>/<file>``) decisions:

- the label is the name of the top-level folder; deeper folders are walked and belong to
  their top-level class (``root/cat/2019/a.jpg`` is class ``cat``, path ``cat/2019/a.jpg``);
- a file is listed when its extension (case-insensitive) is in ``extensions``; other files
  are ignored. A file with an image extension and bad content (text named ``.png``) is
  listed: the scan flags it;
- hidden files and folders (name starting with ``.``) are skipped; a hidden class (or
  split) folder and a hidden image file are named in a warning (tool folders such as
  ``.git`` and other hidden files are skipped quietly). A special file (FIFO,
  socket, device) with an image extension is listed: the scan never opens it blocking
  and flags its row ("cannot read: not a regular file (a FIFO)"), so it is counted and
  shown instead of vanishing;
- image files directly in the root have no class: skipped, with a warning;
- a class folder holding no image file: a warning (the class will not exist);
- ``data.layout`` (:mod:`dataqa.dataset.layout`) decides whether the top level holds
  classes or splits (``root/<split>/<class>/<file>``: the split is the folder name,
  lower-cased when it is a known split name); ``auto`` tells them apart and refuses a
  mix. Top-level folders that all look like split names but hold no class folder: a
  warning, because they become labels; in ``split/class``, a class folder named like a
  split (``train/val/<class>``: class ``val`` of split ``train``) is a warning too;
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
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

from dataqa.dataset.layout import SPLIT_NAMES, canonical_split, is_split_name
from dataqa.dataset.source_common import MAX_LISTED, resolve_or_none
from dataqa.errors import SourceError
from dataqa.text import shown

# hidden folders that tools create beside data: skipped without a warning
_TOOL_FOLDERS = frozenset({".git", ".dvc", ".ipynb_checkpoints", ".cache", ".Trash",
                           ".thumbnails", ".svn", ".hg", ".idea", ".vscode"})
# extensions of image formats that a user may expect to be read; a skipped file with one
# of them is counted (extensions compare lower-case, so '.JPE' counts as '.jpe')
IMAGE_LIKE = {".jpg", ".jpeg", ".jpe", ".jfif", ".jif", ".pjpeg", ".pjp", ".png", ".apng",
              ".gif", ".bmp", ".dib", ".tif", ".tiff", ".webp", ".heic", ".heif", ".avif",
              ".jxl", ".jp2", ".j2k", ".jpx", ".ico", ".ppm", ".pgm", ".pbm", ".pnm",
              ".tga", ".psd", ".dng", ".cr2", ".nef", ".arw", ".raw", ".svg", ".exr",
              ".hdr", ".pcx", ".qoi"}


def list_image_folder(source: Path, default_split: str, extensions: list[str],
                       ) -> tuple[Path, list[tuple[str, str, str]], list[str], dict[str, int]]:
    root = source.resolve()
    exts = {e.lower() for e in extensions}
    warnings: list[str] = []
    loose: list[str] = []
    classes: list[str] = []
    skipped: dict[str, str] = {}  # real path -> extension (a file counted once)
    undecodable_names: list[str] = []
    found: dict[str, list[tuple[str, str, str]]] = {}  # real path -> [(rel, label, split)]
    hidden: list[str] = []
    for entry in _scandir(root):
        if entry.name.startswith("."):
            _note_hidden(entry, entry.name, exts, hidden)
            continue
        if not _utf8(entry.name):
            undecodable_names.append(entry.path)
            continue
        if _is_dir(entry, root):
            _check_link(entry, root)
            classes.append(entry.name)
            for rel, real in _walk_class(Path(entry.path), entry.name, root, exts, skipped,
                                         undecodable_names, hidden):
                found.setdefault(real, []).append((rel, entry.name, default_split))
        elif Path(entry.name).suffix.lower() in exts:
            loose.append(entry.name)
    rows, by_ext = _collect(root, found, skipped, undecodable_names, warnings, hidden)
    labelled = {label for _, label, _ in rows}
    for name in classes:
        if name not in labelled:
            warnings.append(f"class folder '{shown(name)}' holds no image file of its own "
                            f"(extensions {sorted(exts)}): the class will not exist")
    if loose:
        listed = ", ".join(shown(n) for n in sorted(loose)[:MAX_LISTED])
        warnings.append(f"{len(loose)} image file(s) directly in the root have no class "
                        f"folder and are skipped: {listed}")
    if classes and {c.lower() for c in classes} <= SPLIT_NAMES:
        warnings.append(f"the top-level folders {sorted(classes)} look like splits, but in "
                        f"an ImageFolder they are the labels; list files in a CSV with a "
                        f"'split' column to keep splits")
    if not rows:
        raise SourceError(f"{source}: no image files found (ImageFolder expects "
                          f"<class>/<file> with extensions {sorted(exts)})")
    return root, rows, warnings, by_ext


def list_split_folder(source: Path, extensions: list[str],
                       ) -> tuple[Path, list[tuple[str, str, str]], list[str], dict[str, int]]:
    """``root/<split>/<class>/<file>``: split from the first level, label from the second;
    the same link, name and extension rules as :func:`list_image_folder`."""
    root = source.resolve()
    exts = {e.lower() for e in extensions}
    rows: list[tuple[str, str, str]] = []
    warnings: list[str] = []
    skipped: dict[str, str] = {}
    undecodable_names: list[str] = []
    found: dict[str, list[tuple[str, str, str]]] = {}  # real path -> [(rel, label, split)]
    hidden: list[str] = []
    nested: list[str] = []  # class folders named like a split: train/val/<class>
    for split_entry in _scandir(root):
        if split_entry.name.startswith("."):
            _note_hidden(split_entry, split_entry.name, exts, hidden)
            continue
        if not _utf8(split_entry.name):
            undecodable_names.append(split_entry.path)
            continue
        if not _is_dir(split_entry, root):
            if Path(split_entry.name).suffix.lower() in exts:
                warnings.append(f"image file '{shown(split_entry.name)}' directly in the root has "
                                f"no split or class folder and is skipped")
            continue
        _check_link(split_entry, root)
        split = canonical_split(split_entry.name)
        loose = []
        for entry in _scandir(Path(split_entry.path)):
            rel = f"{split_entry.name}/{entry.name}"
            if entry.name.startswith("."):
                _note_hidden(entry, rel, exts, hidden)
                continue
            if not _utf8(entry.name):
                undecodable_names.append(entry.path)
                continue
            if _is_dir(entry, root):
                _check_link(entry, root)
                if is_split_name(entry.name):
                    nested.append(rel)
                files = _walk_class(Path(entry.path), rel, root, exts, skipped,
                                    undecodable_names, hidden)
                if not files:
                    warnings.append(f"class folder '{shown(rel)}' holds no image file "
                                    f"(extensions {sorted(exts)})")
                for f, real in files:
                    found.setdefault(real, []).append((f, entry.name, split))
            elif Path(entry.name).suffix.lower() in exts:
                loose.append(rel)
        if loose:
            listed = ", ".join(shown(n) for n in sorted(loose)[:MAX_LISTED])
            warnings.append(f"{len(loose)} image file(s) directly in split folder "
                            f"'{shown(split_entry.name)}' have no class folder and are skipped: "
                            f"{listed}")
    if nested:
        warnings.append(f"class folder(s) {', '.join(repr(shown(n)) for n in nested[:MAX_LISTED])} "
                        f"have a split name: with data.layout split/class the second level "
                        f"is the class, so they become class(es) "
                        f"{sorted({shown(n.split('/')[1]) for n in nested})} of their split; "
                        f"move a nested split to the top level (<split>/<class>/<file>)")
    rows, by_ext = _collect(root, found, skipped, undecodable_names, warnings, hidden)
    if not rows:
        raise SourceError(f"{source}: no image files found (data.layout split/class expects "
                          f"<split>/<class>/<file> with extensions {sorted(exts)})")
    return root, rows, warnings, by_ext


def _collect(root: Path, found: dict[str, list[tuple[str, str, str]]],
             skipped: dict[str, str], undecodable_names: list[str], warnings: list[str],
             hidden: list[str]) -> tuple[list[tuple[str, str, str]], dict[str, int]]:
    """What both folder listers finish with: a SourceError for names that are not UTF-8;
    one row per real file (the link-free path first, the aliases named in a warning); a
    warning counting the skipped image-like extensions, one naming the hidden folders and
    image files skipped. Returns ``(rows, by extension)``."""
    if hidden:
        warnings.append(f"{len(hidden)} hidden folder(s) or image file(s) (name starting "
                        f"with '.') are skipped: "
                        f"{', '.join(shown(h) for h in sorted(hidden)[:MAX_LISTED])}"
                        + (" ..." if len(hidden) > MAX_LISTED else "")
                        + "; rename them to include them")
    if undecodable_names:
        listed = ", ".join(repr(os.fsencode(os.path.relpath(n, root)))[1:]
                          for n in sorted(undecodable_names)[:MAX_LISTED])
        raise SourceError(f"{root}: {len(undecodable_names)} file or folder name(s) are not "
                          f"valid UTF-8 (a manifest path must be text): {listed}; rename them")
    rows: list[tuple[str, str, str]] = []
    aliases: list[str] = []
    for real, places in found.items():
        places.sort(key=lambda p: (os.path.join(root, p[0]) != real, p[0]))  # link-free first
        rows.append(places[0])
        aliases.extend(f"'{shown(rel)}' (= '{shown(places[0][0])}')" for rel, _, _ in places[1:])
    if aliases:
        warnings.append(f"{len(aliases)} file(s) reached a second time through a symlink are "
                        f"listed once, under their own path: {', '.join(aliases[:MAX_LISTED])}")
    by_ext = Counter(skipped.values())
    if by_ext:
        counts = ", ".join(f"{n} {ext}" for ext, n in sorted(by_ext.items()))
        warnings.append(f"{len(skipped)} file(s) with an image extension not in "
                        f"scan.extensions were skipped ({counts}); add the extension to "
                        f"scan.extensions to scan them")
    return rows, dict(by_ext)


def _walk_class(folder: Path, label: str, root: Path, exts: set[str], skipped: dict[str, str],
                undecodable_names: list[str], hidden: list[str]) -> list[tuple[str, str]]:
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
            rel = f"{rel_dir}/{entry.name}"
            if entry.name.startswith("."):
                if Path(entry.name).suffix.lower() in exts:  # deeper hidden folders: quiet
                    hidden.append(rel)
                continue
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
                found.append((rel, os.path.join(real, entry.name)))  # folder resolved once
            elif ext in IMAGE_LIKE:
                skipped[os.path.join(real, entry.name)] = ext
    return found


def _note_hidden(entry: os.DirEntry[str], rel: str, exts: set[str], hidden: list[str]) -> None:
    """Count a hidden entry of the class (or split) level that a user may have meant as
    data: a folder (a class ``.cats``) or an image file. ``.git``-like tool folders and
    other hidden files are skipped quietly."""
    try:
        is_dir = entry.is_dir()
    except OSError:
        is_dir = False
    if is_dir and entry.name not in _TOOL_FOLDERS:
        hidden.append(rel + "/")
    elif not is_dir and Path(entry.name).suffix.lower() in exts:
        hidden.append(rel)


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
            raise SourceError(f"{root}: '{shown(rel)}' is a symlink loop ({exc.strerror})") from None
        raise SourceError(f"{root}: '{shown(rel)}': cannot read ({exc.strerror or exc})") from None


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
    target = resolve_or_none(Path(entry.path))
    if target is None:
        raise SourceError(f"{root}: '{shown(rel)}' is a symlink loop")
    if not target.is_relative_to(root):
        raise SourceError(f"{root}: '{shown(rel)}' is a symlink to {target}, outside the source "
                          f"root; copy the file in or point data.source at a common parent")
    if not target.exists():
        raise SourceError(f"{root}: '{shown(rel)}' is a broken symlink (target {target} missing)")
