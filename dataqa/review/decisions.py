"""The decisions file: what a person decided about flagged images (``paths.reviews``,
``reviews.csv`` in the user's repository, tracked by git).

One CSV row per image, keyed by the sha256 of the file's bytes (the manifest's
``sha256``), so a rename or a move keeps the decision::

    sha256,path,decision,label,note,by,at,checks
    9f2c...,train/cat/0042.jpg,relabel,dog,a dog,alice,2026-12-07T12:00:00Z,label
    41aa...,train/dog/0007.png,keep,,,alice,2026-12-07T12:01:00Z,dark;low_information

- ``decision``: ``keep`` (the flags are fine), ``exclude`` (quarantine the image) or
  ``relabel`` (``label`` holds the new class);
- ``path``: where the image was when decided (informational; the hash is the key);
- ``checks``: the checks that flagged it when decided (``;``-separated), so that a new,
  different problem on the same image is pending again;
- ``note``, ``by``, ``at`` (ISO 8601, UTC): free text, who, when.

The file is untrusted (edited by hand, merged by git, downloaded from a browser):
:func:`parse_decisions` reads it strictly and names the row of every problem
(:class:`DecisionsError`, exit 2; never a traceback): a malformed row, a wrong
encoding, a file over :data:`MAX_BYTES`, two rows for one image that disagree. Text
cells that a spreadsheet would run as a formula (``=cmd()``, ``+``, ``-``, ``@``) are
written with a leading ``'`` (:func:`neutralise`) and read back without it.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

from dataqa.errors import DataQAError
from dataqa.io import write_text

DECISIONS = ("keep", "exclude", "relabel")
COLUMNS = ("sha256", "path", "decision", "label", "note", "by", "at", "checks")
REQUIRED = ("sha256", "decision")
MAX_BYTES = 64 << 20  # 64 MiB: ~400,000 decisions; a larger file is not a decisions file
MAX_CELL = 4096  # characters of one cell (a note, a path)
_SHA = re.compile(r"[0-9a-f]{64}")
_CHECK = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_FORMULA = ("=", "+", "-", "@", "\t", "\r")


class DecisionsError(DataQAError):
    """The decisions file (or a file to import) is unusable; the message names the row."""


@dataclass(frozen=True)
class Decision:
    """One row of the decisions file. ``row``: its line in the file it was read from
    (0 when made here), for messages only."""

    sha256: str
    decision: str
    path: str = ""
    label: str = ""  # the new class of a relabel
    note: str = ""
    by: str = ""
    at: str = ""
    checks: tuple[str, ...] = ()
    row: int = field(default=0, compare=False)

    def same_verdict(self, other: Decision) -> bool:
        return (self.decision, self.label) == (other.decision, other.label)


def now() -> str:
    """The ``at`` of a decision made now: ISO 8601, UTC, seconds."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --------------------------------------------------------------------------- reading
def read_decisions(path: str | Path, *, missing_ok: bool = True) -> list[Decision]:
    """Every decision of the file at ``path`` (none when it does not exist and
    ``missing_ok``); :class:`DecisionsError` naming the file and row otherwise."""
    path = Path(path)
    if not path.is_file():
        if missing_ok and not path.exists():
            return []
        raise DecisionsError(f"{path}: not found (or not a file)")
    size = path.stat().st_size
    if size > MAX_BYTES:
        raise DecisionsError(f"{path}: {size / 2**20:.0f} MiB is larger than a decisions "
                             f"file can be ({MAX_BYTES >> 20} MiB); is it the right file?")
    return parse_decisions(path.read_bytes(), source=str(path))


def parse_decisions(data: bytes, *, source: str) -> list[Decision]:
    """Decisions from the bytes of a CSV (UTF-8, a BOM allowed). Identical rows for one
    image are merged; rows for one image that disagree are an error naming both rows;
    so are a missing column, a malformed hash, an unknown decision, a relabel without
    a class and a cell over :data:`MAX_CELL` characters."""
    if len(data) > MAX_BYTES:
        raise DecisionsError(f"{source}: {len(data) / 2**20:.0f} MiB is larger than a "
                             f"decisions file can be ({MAX_BYTES >> 20} MiB)")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise DecisionsError(f"{source}: row {line}: not UTF-8 text (byte "
                             f"0x{data[exc.start]:02x} at offset {exc.start}); save the file "
                             f"as UTF-8 (CSV UTF-8 in a spreadsheet)") from None
    if "\x00" in text:
        line = text[: text.index("\x00")].count("\n") + 1
        raise DecisionsError(f"{source}: row {line}: a NUL byte; not a text CSV file")
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader, None)
    except csv.Error as exc:
        raise DecisionsError(f"{source}: row 1: malformed CSV ({exc})") from None
    if header is None or not any(h.strip() for h in header):
        return []
    names = [h.strip().lower() for h in header]
    missing = [c for c in REQUIRED if c not in names]
    unknown = [h for h in names if h not in COLUMNS]
    if missing or unknown or len(set(names)) != len(names):
        raise DecisionsError(
            f"{source}: row 1: the header must name the columns {', '.join(COLUMNS)} "
            f"(sha256 and decision required); "
            + (f"missing {missing}" if missing else f"unknown or repeated {unknown or names}"))
    out: dict[str, Decision] = {}
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            raise DecisionsError(f"{source}: row {reader.line_num}: malformed CSV ({exc})"
                                 ) from None
        row = reader.line_num
        if not any(c.strip() for c in cells):
            continue
        if len(cells) != len(names):
            raise DecisionsError(f"{source}: row {row}: {len(cells)} cells, the header has "
                                 f"{len(names)}")
        d = _decision(dict(zip(names, cells)), row=row, source=source)
        prev = out.get(d.sha256)
        if prev is not None and not prev.same_verdict(d):
            raise DecisionsError(
                f"{source}: rows {prev.row} and {row} decide differently about one image "
                f"(sha256 {d.sha256[:12]}..., {d.path or prev.path}): {_verdict(prev)} vs "
                f"{_verdict(d)}; keep one of them")
        if prev is None or d.at >= prev.at:
            out[d.sha256] = d
    return list(out.values())


def _verdict(d: Decision) -> str:
    return f"relabel to '{d.label}'" if d.decision == "relabel" else d.decision


def _decision(cells: dict[str, str], *, row: int, source: str) -> Decision:
    where = f"{source}: row {row}"
    for key, value in cells.items():
        if len(value) > MAX_CELL:
            raise DecisionsError(f"{where}: column '{key}' holds {len(value)} characters "
                                 f"(at most {MAX_CELL})")
    sha = cells["sha256"].strip().lower()
    if not _SHA.fullmatch(sha):
        raise DecisionsError(f"{where}: sha256 {cells['sha256'][:80]!r} is not 64 hex digits "
                             f"(the sha256 of the image file's bytes)")
    decision = cells["decision"].strip().lower()
    if decision not in DECISIONS:
        raise DecisionsError(f"{where}: decision {cells['decision'][:40]!r} is not one of "
                             f"{', '.join(DECISIONS)}")
    label = unneutralise(cells.get("label", "")).strip()
    if decision == "relabel" and not label:
        raise DecisionsError(f"{where}: decision 'relabel' needs the new class in 'label'")
    if decision != "relabel":
        label = ""
    checks = tuple(c for c in (cells.get("checks") or "").replace(",", ";").split(";")
                   if c.strip())
    checks = tuple(c.strip() for c in checks)
    bad = [c for c in checks if not _CHECK.fullmatch(c)]
    if bad:
        raise DecisionsError(f"{where}: 'checks' holds {bad[0][:40]!r}, not a check name "
                             f"(names separated by ';')")
    at = cells.get("at", "").strip()
    if at and not _parse_time(at):
        raise DecisionsError(f"{where}: 'at' {at[:40]!r} is not an ISO 8601 time "
                             f"(e.g. 2026-12-07T12:00:00Z)")
    return Decision(sha256=sha, decision=decision, label=label,
                    path=unneutralise(cells.get("path", "")),
                    note=unneutralise(cells.get("note", "")),
                    by=unneutralise(cells.get("by", "")).strip(), at=at,
                    checks=tuple(sorted(set(checks))), row=row)


def _parse_time(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


# --------------------------------------------------------------------------- writing
def neutralise(text: str) -> str:
    """A cell a spreadsheet would take for a formula (``=``, ``+``, ``-``, ``@``, tab,
    CR first) gets a leading ``'`` (OWASP's CSV-injection advice)."""
    return f"'{text}" if text.startswith(_FORMULA) else text


def unneutralise(text: str) -> str:
    """The inverse of :func:`neutralise` (reading a file it wrote)."""
    return text[1:] if text.startswith("'") and text[1:].startswith(_FORMULA) else text


def to_csv(decisions: Iterable[Decision]) -> str:
    """The decisions file's text: header, then one row per image by path, then hash."""
    buf = io.StringIO(newline="")
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(COLUMNS)
    for d in sorted(decisions, key=lambda d: (d.path, d.sha256)):
        w.writerow([d.sha256, neutralise(d.path), d.decision, neutralise(d.label),
                    neutralise(d.note), neutralise(d.by), d.at, ";".join(d.checks)])
    return buf.getvalue()


def write_decisions(path: str | Path, decisions: Iterable[Decision]) -> None:
    """Write the decisions file atomically (the previous one stays on any failure)."""
    write_text(path, to_csv(decisions))


# --------------------------------------------------------------------------- merging
@dataclass
class Merge:
    """The result of :func:`merge`: the decisions to write, and what changed."""

    decisions: list[Decision]
    added: list[Decision]
    replaced: list[tuple[Decision, Decision]]  # (old, new)
    older: list[tuple[Decision, Decision]]  # (kept newer existing, ignored older incoming)
    unchanged: int


def merge(existing: Sequence[Decision], incoming: Sequence[Decision]) -> Merge:
    """Later decisions win, per image: an incoming row replaces the existing one unless
    the existing one is strictly newer (``at``); a row without a time counts as now."""
    by_sha = {d.sha256: d for d in existing}
    added, replaced, older, same = [], [], [], 0
    for d in incoming:
        old = by_sha.get(d.sha256)
        if old is None:
            by_sha[d.sha256] = d
            added.append(d)
        elif replace(old, row=0) == replace(d, row=0):
            same += 1
        elif old.at and d.at and _parse_time(old.at) > _parse_time(d.at):  # type: ignore[operator]
            older.append((old, d))
        else:
            by_sha[d.sha256] = d
            replaced.append((old, d))
    return Merge(list(by_sha.values()), added, replaced, older, same)
