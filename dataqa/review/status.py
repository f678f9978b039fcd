"""Decisions against the flags: which flags are pending review, which are decided.

The audit stage is the one reader of the decisions file in the pipeline: it matches
each decision to the manifest rows with that sha256 (:func:`match`), runs the checks on
the reviewed labels, and writes the per-row outcome into ``issues.parquet`` as the
``review_*`` columns (:func:`review_columns`) and the counts into ``audit.json: review``
and ``checks.<name>.pending`` (:func:`review_summary`). The report, the gate, the filter
and ``dataqa review list`` read those; none reads the decisions file again.

Rules (issue 22):

- a flag of a check whose verdict rests on a model too weak to judge
  (:func:`dataqa.model_strength.review_only`) is a *suspicion*, not a flag: it is
  never pending and never counted as flagged;
- ``exclude``: every flag of the image is decided (the image is quarantined);
- ``keep`` / ``relabel``: the flags of the checks named in the decision's ``checks``
  are decided; a flag of another check (a new, different problem) is pending again.
  A relabelled image is audited under its new class, so it is not flagged for its old
  one;
- an image without a decision: every flag is pending.

A decision whose image is not in the manifest (removed, or not scanned yet) stays in
the file and is reported (``unmatched``); a relabel to a class the dataset does not have
is ignored with a warning naming its row.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from dataqa.review.decisions import Decision

# issues.parquet columns written by the audit (strings; "" when none)
DECISION = "review_decision"  # keep | exclude | relabel | ""
LABEL_ORIGINAL = "review_label_original"  # the manifest's label of a relabelled image
NOTE = "review_note"
BY = "review_by"
AT = "review_at"
DECIDED_FOR = "review_checks"  # the checks the decision covers (';'-separated)
PENDING = "review_pending"  # the checks whose flags are pending review (';'-separated)
COLUMNS = (DECISION, LABEL_ORIGINAL, NOTE, BY, AT, DECIDED_FOR, PENDING)


@dataclass
class Matched:
    """Decisions aligned with manifest rows: ``decisions[i]`` is row i's or None."""

    decisions: list[Decision | None]
    unmatched: list[Decision] = field(default_factory=list)  # hash not in the manifest
    warnings: list[str] = field(default_factory=list)

    @property
    def n_rows(self) -> int:
        return len(self.decisions)

    def reviewed_labels(self, labels: pd.Series) -> pd.Series:
        """``labels`` (aligned with the rows) with every relabel applied."""
        new = [d.label if d is not None and d.decision == "relabel" else None
               for d in self.decisions]
        mask = np.array([v is not None for v in new], dtype=bool)
        if not mask.any():
            return labels
        out = labels.astype("string").copy()
        out.iloc[np.flatnonzero(mask)] = [v for v in new if v is not None]
        return out


def match(sha256: Sequence[Any], decisions: Sequence[Decision], *,
          classes: Sequence[str] | None = None, labels: Sequence[Any] | None = None,
          source: str = "the decisions file") -> Matched:
    """Align ``decisions`` with the rows whose ``sha256`` they name (every exact copy of
    an image shares its decision). A relabel to a class not in ``classes`` is ignored
    with a warning; a relabel to the row's own class counts as ``keep``."""
    by_sha = {d.sha256: d for d in decisions}
    known = set(classes) if classes is not None else None
    out: list[Decision | None] = []
    seen: set[str] = set()
    warned: set[str] = set()
    warnings: list[str] = []
    for i, sha in enumerate(sha256):
        d = by_sha.get(str(sha)) if isinstance(sha, str) else None
        if d is None:
            out.append(None)
            continue
        seen.add(d.sha256)
        if d.decision == "relabel":
            if known is not None and d.label not in known:
                if d.sha256 not in warned:
                    warnings.append(f"{source}: row {d.row}: relabel to '{d.label}', a class "
                                    f"the dataset does not have ({_few(sorted(known))}); "
                                    f"ignored, the image stays pending")
                    warned.add(d.sha256)
                out.append(None)
                continue
            if labels is not None and str(labels[i]) == d.label:
                d = Decision(d.sha256, "keep", d.path, "", d.note, d.by, d.at, d.checks, d.row)
        out.append(d)
    unmatched = [d for d in decisions if d.sha256 not in seen]
    return Matched(out, unmatched, warnings)


def _few(items: Sequence[str], n: int = 8) -> str:
    return ", ".join(items[:n]) + (", ..." if len(items) > n else "")


def flag_table(issues: pd.DataFrame, checks: Sequence[str]) -> dict[str, np.ndarray]:
    """check -> (N,) bool: its ``is_<check>_issue`` column (missing values: not flagged)."""
    return {c: issues[f"is_{c}_issue"].fillna(False).to_numpy(dtype=bool, copy=True)
            for c in checks if f"is_{c}_issue" in issues}


def pending_checks(flags: Mapping[str, np.ndarray], decisions: Sequence[Decision | None],
                   *, demoted: Sequence[str] = ()) -> list[list[str]]:
    """Per row, the checks whose flags are pending review (rules in the module doc)."""
    names = [c for c in flags if c not in set(demoted)]
    n = len(decisions)
    out: list[list[str]] = [[] for _ in range(n)]
    for c in names:
        for i in np.flatnonzero(flags[c]).tolist():
            d = decisions[i]
            if d is None or (d.decision != "exclude" and c not in d.checks):
                out[i].append(c)
    return out


def review_columns(flags: Mapping[str, np.ndarray], matched: Matched, labels: pd.Series,
                   *, demoted: Sequence[str] = ()) -> pd.DataFrame:
    """The ``review_*`` columns of ``issues.parquet`` (one row per manifest row);
    ``labels``: the manifest's own labels (the original of a relabel)."""
    pend = pending_checks(flags, matched.decisions, demoted=demoted)
    ds = matched.decisions

    def col(get: Any) -> pd.Series:
        return pd.Series(["" if d is None else get(d) for d in ds], dtype="string")

    original = [("" if pd.isna(lab) else str(lab)) if d is not None
                and d.decision == "relabel" else "" for d, lab in zip(ds, labels)]
    return pd.DataFrame({
        DECISION: col(lambda d: d.decision),
        LABEL_ORIGINAL: pd.Series(original, dtype="string"),
        NOTE: col(lambda d: d.note),
        BY: col(lambda d: d.by),
        AT: col(lambda d: d.at),
        DECIDED_FOR: col(lambda d: ";".join(d.checks)),
        PENDING: pd.Series([";".join(p) for p in pend], dtype="string"),
    })


def review_summary(flags: Mapping[str, np.ndarray], matched: Matched, *,
                   demoted: Sequence[str] = ()) -> dict[str, Any]:
    """``audit.json: review``::

        n_flagged   images with a flag (suspicions of a weak model not counted)
        n_pending   images with a flag pending review
        n_decided   images with a decision; by_decision {keep, exclude, relabel}
        checks      {check: {flagged, pending, waived, waived_by {who: n}}}
        suspicions  {check: images} of checks too weak to flag (not counted above)
        unmatched   decisions for images not in the manifest
    """
    demoted = list(demoted)
    ds = matched.decisions
    n = matched.n_rows
    pend = pending_checks(flags, ds, demoted=demoted)
    flagged_any = np.zeros(n, dtype=bool)
    checks: dict[str, Any] = {}
    for c, mask in flags.items():
        if c in demoted:
            continue
        flagged_any |= mask
        rows = np.flatnonzero(mask).tolist()
        waived = [i for i in rows if c not in pend[i]]
        by = Counter((d.by or "unknown") for d in (ds[i] for i in waived) if d is not None)
        checks[c] = {"flagged": int(len(rows)), "pending": int(len(rows) - len(waived)),
                     "waived": len(waived), "waived_by": dict(sorted(by.items()))}
    decided = [d for d in ds if d is not None]
    return {
        "n_images": n,
        "n_flagged": int(flagged_any.sum()),
        "n_pending": int(sum(1 for p in pend if p)),
        "pending_rate": float(sum(1 for p in pend if p) / n) if n else 0.0,
        "n_decided": len(decided),
        "by_decision": {k: sum(d.decision == k for d in decided)
                        for k in ("keep", "exclude", "relabel")},
        "checks": checks,
        "suspicions": {c: int(flags[c].sum()) for c in demoted if c in flags},
        "unmatched": len(matched.unmatched),
    }


def add_review_metrics(metrics: dict[str, Any], review: dict[str, Any]) -> None:
    """Put :func:`review_summary` into ``audit.json``: the ``review`` block, and per
    check ``pending``, ``pending_rate`` (what the gate's ``max_rates`` compares),
    ``waived`` and ``waived_by``; ``summary.n_flagged_any`` / ``rate_flagged_any``
    count flags only (a weak model's suspicions apart, ``summary.n_suspected``)."""
    metrics["review"] = review
    n = review["n_images"]
    for name, info in review["checks"].items():
        summary = metrics.get("checks", {}).get(name)
        if isinstance(summary, dict):
            summary.update(pending=info["pending"],
                           pending_rate=info["pending"] / n if n else 0.0,
                           waived=info["waived"], waived_by=info["waived_by"])
    summary = metrics.setdefault("summary", {})
    summary["n_flagged_any"] = review["n_flagged"]
    summary["rate_flagged_any"] = review["n_flagged"] / n if n else 0.0
    summary["n_pending"] = review["n_pending"]
    summary["suspected"] = review["suspicions"]
