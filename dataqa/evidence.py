"""What lies behind a failed gate rule: the report to open and the first few files.

The gate stage (``dataqa/gate.py``) puts these lines into the JUnit failure message and
prints them, so a red CI job says where to look without opening anything first. The
evidence comes from files the audit already wrote (``issues.parquet``, the manifest,
``audit.json``); nothing is recomputed. Paths are relative to ``data.source``.

Decisions: at most :data:`MAX_FILES` items per rule; a missing or unreadable issues
table gives no file list (the rule still fails, the report is still named), never an
error that would hide the gate's verdict. Every path and class name goes through
:func:`dataqa.text.shown` (one visible line each: a newline in a class name cannot forge
a line of the gate's output).
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from dataqa.params import Params
from dataqa.text import shown

MAX_FILES = 5


def report_for(params: Params, on: str) -> str:
    """The file a reader opens for gate ``on``."""
    name = "audit_html" if on == "audit" else "prepared_metrics"
    return str(getattr(params.paths, name))


def evidence(params: Params, on: str, rule_name: str, metrics: dict[str, Any]) -> list[str]:
    """Up to :data:`MAX_FILES` files (or classes) behind the failed rule ``rule_name``."""
    key, _, check = rule_name.partition(".")
    try:
        if key == "max_undecodable_rate":
            manifest = pd.read_parquet(params.path("manifest"), columns=["path", "decode_error"])
            bad = manifest[manifest["decode_error"].notna()].sort_values("path")
            return [f"{shown(r.path)} ({shown(r.decode_error)})" for r in bad.head(MAX_FILES).itertuples()]
        if key == "max_rates" and check:
            col = f"is_{check}_issue"
            issues = pd.read_parquet(params.path("issues"))
            flagged = issues[issues[col].fillna(False).astype(bool)].sort_values("path")
            if "review_pending" in flagged:  # the flags the gate counted: pending review
                pend = flagged["review_pending"].fillna("").astype(str).str.split(";")
                flagged = flagged[pend.map(lambda cs: check in cs).to_numpy(dtype=bool)]
            return [shown(p) for p in flagged["path"].head(MAX_FILES).astype(str)]
        if key == "max_cross_split_duplicates" and check:
            examples = metrics.get("checks", {}).get(check, {}).get("cross_split_examples", [])
            return [" <-> ".join(f"{shown(p)} ({shown(s)})" for p, s in zip(e["paths"], e["splits"]))
                    for e in examples[:MAX_FILES]]
        if key in ("min_images_per_class", "max_imbalance_ratio"):
            counts = metrics.get("balance", {}).get("counts_per_class", {})
            ordered = sorted(counts.items(), key=lambda kv: (kv[1], kv[0]))
            if key == "max_imbalance_ratio" and ordered:
                ordered = [ordered[0], ordered[-1]]
            return [f"class '{shown(c)}': {n} images" for c, n in ordered[:MAX_FILES]]
    except (OSError, ValueError, KeyError):
        return []
    return []


def failure_lines(params: Params, on: str, failed: list[str],
                  metrics: dict[str, Any]) -> dict[str, str]:
    """rule name -> one paragraph: the report, then the evidence (for JUnit/console)."""
    report = report_for(params, on)
    out: dict[str, str] = {}
    for name in failed:
        items = evidence(params, on, name, metrics)
        text = f"see {report}"
        if items:
            text += "; evidence (paths relative to data.source): " + "; ".join(items)
        out[name] = text
    return out
