"""Listing a CSV source (``path,label[,split]``) for
:func:`dataqa.dataset.sources.list_source`.

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
  columns, a NUL byte or a cell over :data:`MAX_CELL` characters, a cell holding a line
  break (an unbalanced quote, named as such, instead of the "empty label" it leads to),
  empty path, empty label, absolute path, a path whose ``..`` leaves the root,
  a path that leaves the root through a symlink (resolved and checked), a missing file or
  a directory, the same file listed twice (both rows named).

"""

from __future__ import annotations

import csv
import io
import os
import posixpath
import re
from collections.abc import Iterator
from pathlib import Path

from dataqa.dataset.layout import canonical_split
from dataqa.dataset.source_common import MAX_LISTED, resolve_or_none
from dataqa.errors import SourceError
from dataqa.text import shown

_WINDOWS_ABSOLUTE = re.compile(r"^[A-Za-z]:[\\/]|^[\\/]")
MAX_CELL = 4096  # characters in one CSV cell (a path or label); longer is a bad row


def list_csv(csv_path: Path, default_split: str,
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
            errors.append(f"{where}: empty path (label '{shown(label)}')")
            continue
        if not label:
            errors.append(f"{where}: empty label for path '{shown(raw)}'")
            continue
        rel, problem = _check_csv_path(raw, root)
        if problem:
            errors.append(f"{where}: {problem}")
            continue
        if rel in first_row:
            errors.append(f"rows {first_row[rel]} and {row_no}: path '{shown(rel)}' is listed twice")
            continue
        first_row[rel] = row_no
        rows.append((rel, label, split))
    if errors:
        more = f"\n  ... and {len(errors) - MAX_LISTED} more" if len(errors) > MAX_LISTED else ""
        raise SourceError(f"{csv_path}: {len(errors)} bad row(s) (paths are relative to "
                          f"{root}):\n  " + "\n  ".join(errors[:MAX_LISTED]) + more)
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
    """Why a row's cells cannot be a path or label (NUL byte, too long, a line break:
    an unbalanced quote swallowed the rows after it), or None."""
    for i, cell in enumerate(cells, start=1):
        if "\x00" in cell:
            return f"cell {i} holds a NUL byte"
        if "\n" in cell or "\r" in cell:
            lines = len(cell.splitlines()) or 2
            return (f"cell {i} spans {lines} lines (it starts '{shown(cell[:60])}'): an "
                    f"unbalanced quote (\") opens it and the rows after it were read into "
                    f"this cell; close or remove the quote")
        if len(cell) > MAX_CELL:
            return f"cell {i} holds {len(cell)} characters (more than {MAX_CELL})"
    return None


def _check_csv_path(raw: str, root: Path) -> tuple[str, str | None]:
    """Normalised relative posix path of a CSV cell, or a problem in words."""
    if _WINDOWS_ABSOLUTE.match(raw) or os.path.isabs(raw):
        return "", f"path '{shown(raw)}' is absolute; paths must be relative to the CSV's folder"
    rel = posixpath.normpath(raw.replace("\\", "/"))
    if rel == ".." or rel.startswith("../"):
        return "", f"path '{shown(raw)}' leaves the source root through '..'"
    if rel == ".":
        return "", f"path '{shown(raw)}' names the source root, not a file"
    full = root / rel
    target = resolve_or_none(full)
    if target is None:
        return "", f"path '{shown(raw)}' runs into a symlink loop"
    if not target.is_relative_to(root):
        return "", (f"path '{shown(raw)}' leaves the source root through a symlink "
                    f"(it resolves to {target})")
    if not target.exists():
        return "", f"file '{shown(raw)}' not found ({full})"
    if not target.is_file():
        return "", f"path '{shown(raw)}' is not a regular file ({full})"
    return rel, None
