"""``dataqa review list | set | import``: decide in a terminal (a thin layer: the
decisions file is :mod:`dataqa.review.decisions`, the pending/decided rules
:mod:`dataqa.review.status`).

- ``list``: flagged, pending and decided per check, from the last audit
  (``issues.parquet``) and the decisions file as it is now; ``--pending`` prints the
  paths of the images pending review, one per line (for scripts);
- ``set PATH... --keep | --exclude | --relabel CLASS [--note TEXT] [--by NAME]``: a
  path as the report shows it (relative to ``data.source``) or the image file's own
  path (hashed here, so a file the last scan has not seen can be decided too);
- ``import FILE``: a file downloaded from the report (or written by hand), validated
  whole first (an error names the row and writes nothing), then merged: later
  decisions win, and each replaced row is printed.

Nothing here opens an image for its pixels or touches the raw files.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dataqa.dataset.manifest import labelled_rows, read_manifest
from dataqa.dataset.sources import source_root
from dataqa.errors import DataQAError
from dataqa.params import Params
from dataqa.review.decisions import (
    Decision,
    DecisionsError,
    merge,
    now,
    parse_decisions,
    read_decisions,
    write_decisions,
)
from dataqa.review.status import flag_table, match, pending_checks
from dataqa.text import printable, say

MAX_IMPORT_BYTES = 64 << 20


def run(params: Params, action: str, **kw: Any) -> int:
    """Entry point of ``dataqa review ACTION`` (see the module doc)."""
    if action == "list":
        return review_list(params, pending=bool(kw.get("pending")))
    if action == "set":
        return review_set(params, kw["paths"], decision=kw["decision"],
                          label=kw.get("relabel") or "", note=kw.get("note") or "",
                          by=kw.get("by") or default_reviewer())
    if action == "import":
        return review_import(params, kw["file"], by=kw.get("by") or default_reviewer())
    raise DataQAError(f"unknown review action '{action}'")


def default_reviewer() -> str:
    """Who decides when ``--by`` is not given: ``$GIT_AUTHOR_NAME``, else the login
    name (no subprocess: the package runs no command)."""
    name = os.environ.get("GIT_AUTHOR_NAME", "").strip()
    if name:
        return name
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return "unknown"


# --------------------------------------------------------------------------- inputs
class _Audit:
    """What the last scan and audit say: manifest (path, sha256, label), the flags of
    each check, the checks a weak model demoted. Issues are optional (``set`` works
    after a scan alone)."""

    def __init__(self, params: Params, *, need_issues: bool) -> None:
        self.params = params
        self.manifest = read_manifest(params.path("manifest"))
        path = params.path("issues")
        self.issues: pd.DataFrame | None = None
        if path.is_file():
            issues = pd.read_parquet(path)
            if len(issues) == len(self.manifest):
                self.issues = issues
        if self.issues is None and need_issues:
            raise DataQAError(f"{path}: no audit of the current manifest; run the 'audit' "
                              f"stage (dvc repro) first")
        self.demoted: list[str] = []
        metrics = params.path("audit_metrics")
        if metrics.is_file():
            from dataqa.model_strength import review_only
            try:
                self.demoted = sorted(review_only(json.loads(metrics.read_text("utf-8"))))
            except ValueError:
                pass
        self._flags: dict[str, np.ndarray] | None = None
        self.checks = ([c[3:-6] for c in self.issues.columns
                        if str(c).startswith("is_") and str(c).endswith("_issue")]
                       if self.issues is not None else [])

    @property
    def classes(self) -> list[str]:
        return labelled_rows(self.manifest)[1]

    def flags(self) -> dict[str, np.ndarray]:
        if self._flags is None:
            self._flags = (flag_table(self.issues, self.checks)
                           if self.issues is not None else {})
        return self._flags

    def flagged_checks(self, row: int) -> tuple[str, ...]:
        """Every check flagging manifest row ``row`` now (a weak model's too: the
        person saw them)."""
        return tuple(sorted(c for c, m in self.flags().items() if m[row]))


# --------------------------------------------------------------------------- list
def review_list(params: Params, *, pending: bool = False) -> int:
    audit = _Audit(params, need_issues=True)
    decisions = read_decisions(params.path("reviews"))
    matched = match(audit.manifest["sha256"].tolist(), decisions, classes=audit.classes,
                    labels=audit.manifest["label"].tolist(), source=str(params.paths.reviews))
    flags = audit.flags()
    pend = pending_checks(flags, matched.decisions, demoted=audit.demoted)
    if pending:
        for i in [i for i, p in enumerate(pend) if p]:
            say(audit.manifest["path"].iloc[i])
        return 0
    for line in matched.warnings:
        say(f"warning: {line}")
    say(f"{'check':<20} {'flagged':>8} {'pending':>8} {'decided':>8}")
    for c, mask in flags.items():
        rows = np.flatnonzero(mask)
        if c in audit.demoted:
            say(f"{c:<20} {len(rows):>8} {'-':>8} {'-':>8}  suspicions of a model too "
                  f"weak to judge: not flags")
            continue
        n_pend = sum(1 for i in rows if c in pend[i])
        say(f"{c:<20} {len(rows):>8} {n_pend:>8} {len(rows) - n_pend:>8}")
    decided = [d for d in matched.decisions if d is not None]
    counts = {k: sum(d.decision == k for d in decided) for k in ("keep", "exclude", "relabel")}
    n_pending = sum(1 for p in pend if p)
    say(f"images: {len(pend)}, pending review: {n_pending}, decided: {len(decided)} "
          f"(keep {counts['keep']}, exclude {counts['exclude']}, relabel {counts['relabel']})"
          f"; decisions in {params.paths.reviews}: {len(decisions)}"
          + (f", {len(matched.unmatched)} for images not in the source"
             if matched.unmatched else ""))
    if n_pending:
        say("pending images: dataqa review list --pending")
    return 0


# --------------------------------------------------------------------------- set
def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def resolve(audit: _Audit, arg: str) -> tuple[str, str, int | None]:
    """(sha256, path as the report shows it, manifest row or None) of a PATH argument:
    a manifest path, else an image file on disk (hashed)."""
    m = audit.manifest
    hits = np.flatnonzero(m["path"].astype(str).to_numpy() == arg)
    if len(hits):
        i = int(hits[0])
        sha = m["sha256"].iloc[i]
        if pd.isna(sha):
            raise DataQAError(f"{arg}: the scan could not read this file (no content hash); "
                              f"nothing to decide about")
        return str(sha), arg, i
    file = Path(arg)
    if not file.is_file():
        raise DataQAError(f"{arg}: neither an image path as the report shows it (relative to "
                          f"data.source) nor a file")
    sha = _sha256_file(file)
    root = source_root(audit.params.resolve(audit.params.data.source))
    try:
        shown = file.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        shown = file.as_posix()
    rows = np.flatnonzero(m["sha256"].astype("string").fillna("").to_numpy(dtype=str) == sha)
    return sha, shown, (int(rows[0]) if len(rows) else None)


def review_set(params: Params, paths: Sequence[str], *, decision: str, label: str = "",
               note: str = "", by: str = "") -> int:
    audit = _Audit(params, need_issues=False)
    classes = audit.classes
    if decision == "relabel" and label not in classes:
        raise DataQAError(f"--relabel {label!r}: not a class of the dataset; classes: "
                          f"{', '.join(classes[:20])}{', ...' if len(classes) > 20 else ''}")
    made: list[Decision] = []
    for arg in paths:
        sha, shown, row = resolve(audit, arg)
        if row is None:
            say(printable(f"review: warning: {arg}: not in the last scan (run dvc repro); "
                            f"decided by its content all the same"))
        elif decision == "relabel" and str(audit.manifest["label"].iloc[row]) == label:
            raise DataQAError(f"{arg}: already in class '{label}'; use --keep")
        checks = audit.flagged_checks(row) if row is not None else ()
        made.append(Decision(sha256=sha, decision=decision, path=shown, label=label,
                             note=note, by=by, at=now(), checks=checks))
    return _save(params, made, verb="set")


# --------------------------------------------------------------------------- import
def review_import(params: Params, file: str, *, by: str = "") -> int:
    src = Path(file)
    if not src.is_file():
        raise DecisionsError(f"{file}: not found")
    if src.stat().st_size > MAX_IMPORT_BYTES:
        raise DecisionsError(f"{file}: {src.stat().st_size / 2**20:.0f} MiB is larger than "
                             f"a decisions file can be ({MAX_IMPORT_BYTES >> 20} MiB)")
    incoming = parse_decisions(src.read_bytes(), source=file)
    manifest_path = params.path("manifest")
    if manifest_path.is_file():
        audit = _Audit(params, need_issues=False)
        classes = set(audit.classes)
        known = set(audit.manifest["sha256"].dropna().astype(str))
        bad = [d for d in incoming if d.decision == "relabel" and d.label not in classes]
        if bad:
            d = bad[0]
            raise DecisionsError(
                f"{file}: row {d.row}: relabel to '{d.label}', a class the dataset does not "
                f"have ({', '.join(sorted(classes)[:12])}); nothing imported"
                + (f" ({len(bad)} such rows)" if len(bad) > 1 else ""))
        for d in incoming:
            if d.sha256 not in known:
                say(printable(f"review: warning: {file}: row {d.row}: no image of the last "
                                f"scan has sha256 {d.sha256[:12]}... ({d.path}); imported, "
                                f"applied when that image is in the source"))
    incoming = [d if d.by else Decision(d.sha256, d.decision, d.path, d.label, d.note, by,
                                        d.at or now(), d.checks, d.row) for d in incoming]
    return _save(params, incoming, verb="import", source=file)


def _save(params: Params, incoming: list[Decision], *, verb: str, source: str = "") -> int:
    target = params.path("reviews")
    existing = read_decisions(target)
    result = merge(existing, incoming)
    for old, new in result.replaced:
        say(printable(f"review: replaced {target.name} row {old.row} ({old.path}: "
                        f"{_words(old)}) by {_words(new)}"
                        + (f" from {source} row {new.row}" if source else "")))
    for old, new in result.older:
        say(printable(f"review: kept {target.name} row {old.row} ({old.path}: "
                        f"{_words(old)}, {old.at}): newer than {source} row {new.row} "
                        f"({_words(new)}, {new.at})"))
    for d in result.added:
        say(f"review: {_words(d)}: {d.path}")
    write_decisions(target, result.decisions)
    say(f"review {verb}: {len(result.added)} added, {len(result.replaced)} replaced, "
          f"{result.unchanged} unchanged"
          + (f", {len(result.older)} older ignored" if result.older else "")
          + f"; {target} holds {len(result.decisions)} decisions (`dvc repro` applies them)")
    return 0


def _words(d: Decision) -> str:
    return f"relabel to '{d.label}'" if d.decision == "relabel" else d.decision
