"""The review controls of the audit report (issue 22): what the page needs to let a
person keep, exclude or relabel flagged images offline.

:class:`ReviewView` reads the audit's ``review_*`` columns of ``issues.parquet`` (the
audit is the pipeline's one reader of the decisions file) and the manifest's
``sha256``, and gives the templates, per image: its key (the content hash), the checks
flagging it, the ones pending review, a weak model's suspicions, and the decision in
the file. :meth:`ReviewView.data` is the page's data island: every flagged or decided
image (not only the ones shown), so bulk actions over a whole check or class reach
them all. The page's script (``templates/review.js``) keeps unsaved choices in the
browser's ``localStorage`` and writes the file that ``dataqa review import`` reads.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from dataqa.review.decisions import COLUMNS


class ReviewView:
    """Per manifest id: key, flags, pending checks, suspicions, decision (see module doc)."""

    def __init__(self, manifest: pd.DataFrame, issues: pd.DataFrame, checks: list[str],
                 demoted: list[str], classes: list[str]) -> None:
        self.demoted = [c for c in demoted if c in checks]
        self.checks = [c for c in checks if c not in self.demoted]
        self.classes = classes
        n = len(issues)
        ids = issues["id"].to_numpy(dtype=np.int64)
        sha = (manifest["sha256"].astype("string").reindex(issues.index).to_numpy(dtype=object)
               if "sha256" in manifest else np.full(n, pd.NA, dtype=object))

        def strings(col: str) -> list[str]:
            if col not in issues:
                return [""] * n
            return issues[col].astype("string").fillna("").astype(str).tolist()

        flags = {c: issues[f"is_{c}_issue"].fillna(False).to_numpy(dtype=bool)
                 for c in checks if f"is_{c}_issue" in issues}
        decision, label, note, by, at, covered, pending = (
            strings(c) for c in ("review_decision", "label", "review_note", "review_by",
                                 "review_at", "review_checks", "review_pending"))
        self.rows: dict[int, dict[str, Any]] = {}
        paths, labels = strings("path"), strings("label")
        for i in range(n):
            f = [c for c in self.checks if c in flags and flags[c][i]]
            x = [c for c in self.demoted if c in flags and flags[c][i]]
            if not (f or x or decision[i]) or pd.isna(sha[i]):
                continue
            d = None
            if decision[i]:
                d = {"decision": decision[i], "label": label[i] if decision[i] == "relabel"
                     else "", "note": note[i], "by": by[i], "at": at[i],
                     "checks": [c for c in covered[i].split(";") if c]}
            self.rows[int(ids[i])] = {
                "s": str(sha[i]), "p": paths[i], "l": labels[i],
                "f": f, "x": x, "d": d, "pend": [c for c in pending[i].split(";") if c]}

    def row(self, id_: int) -> dict[str, Any] | None:
        """The image's review state for a card (None: nothing to decide, no hash)."""
        r = self.rows.get(int(id_))
        if r is None:
            return None
        return {**r, "state": self.state(r)}

    @staticmethod
    def state(r: dict[str, Any]) -> str:
        d = r["d"]
        if r["pend"]:
            words = f"pending: {', '.join(r['pend'])}"
            return words + (f" (a new flag since '{d['decision']}')" if d else "")
        if d:
            what = (f"relabel to '{d['label']}'" if d["decision"] == "relabel"
                    else d["decision"])
            return (f"decided: {what}" + (f" by {d['by']}" if d["by"] else "")
                    + (f" \u2014 {d['note']}" if d["note"] else ""))
        if r["x"]:
            return f"suspected by a weak model: {', '.join(r['x'])} (not a flag)"
        return ""

    def is_pending(self, id_: int, check: str) -> bool:
        r = self.rows.get(int(id_))
        return r is not None and check in r["pend"]

    def is_decided(self, id_: int, check: str) -> bool:
        """The image was flagged by ``check`` and a decision covers that flag."""
        r = self.rows.get(int(id_))
        return r is not None and r["d"] is not None and check not in r["pend"]

    def data(self) -> dict[str, Any]:
        """The page's data island (JSON): columns of the file, classes, checks, rows."""
        return {"columns": list(COLUMNS), "classes": self.classes, "checks": self.checks,
                "suspected": self.demoted, "rows": list(self.rows.values())}
