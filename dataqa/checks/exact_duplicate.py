"""``exact_duplicate``: files with identical bytes (``sha256``) or identical decoded
pixels (``pixel_sha256``: the same picture re-saved, e.g. PNG -> BMP, or with other
metadata), grouped. In each group the first file by path is kept (not an issue); the
others are redundant copies (score 0). Copies in different splits are leakage.

Reads the manifest only; undecodable files are left to ``integrity``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from pydantic import Field

from dataqa.checks import register
from dataqa.checks.base import AuditContext, Check, CheckResult
from dataqa.checks.neighbors import get_groups
from dataqa.params.base import Section


class ExactDuplicateSettings(Section):
    """``audit.settings.exact_duplicate``."""

    max_examples: int = Field(20, ge=0, le=1_000_000, description="cross-split pairs listed in the summary (all are counted)")


def find_exact_groups(manifest: pd.DataFrame, valid: np.ndarray) -> np.ndarray:
    """Group ids (N,) int64 of rows sharing ``sha256`` or ``pixel_sha256`` among
    ``valid`` rows; -1 for rows in no group. Groups are numbered by their first path."""
    n = len(manifest)
    edges = [np.zeros((0, 2), dtype=np.int64)]
    rows = np.flatnonzero(valid)
    for column in ("sha256", "pixel_sha256"):
        if column not in manifest:
            continue
        values = manifest[column].to_numpy(dtype=object)[rows]
        known = pd.notna(values)
        codes, _ = pd.factorize(values[known])
        members = rows[known]
        first = np.full(codes.max() + 1 if len(codes) else 0, -1, dtype=np.int64)
        first[codes[::-1]] = members[::-1]  # first row of each hash value
        edges.append(np.stack([members, first[codes]], axis=1))  # a star per value
    return get_groups(n, np.concatenate(edges), order=path_order(manifest))


def path_order(manifest: pd.DataFrame) -> np.ndarray:
    """Row positions sorted by path (the row kept in a group is the first of these)."""
    return np.argsort(manifest["path"].astype(str).to_numpy(), kind="stable")


def kept_rows(groups: np.ndarray, order: np.ndarray) -> np.ndarray:
    """(N,) int64: the row position kept in each row's group (-1 outside groups)."""
    kept = np.full(len(groups), -1, dtype=np.int64)
    first = np.full(int(groups.max()) + 1 if len(groups) else 0, -1, dtype=np.int64)
    grouped = order[groups[order] >= 0]
    first[groups[grouped[::-1]]] = grouped[::-1]
    kept[groups >= 0] = first[groups[groups >= 0]]
    return kept


def summarize_groups(manifest: pd.DataFrame, groups: np.ndarray, *, max_examples: int,
                     exclude: np.ndarray | None = None) -> dict[str, Any]:
    """Group counts and cross-split pairs (leakage) of ``groups`` (N,) int64.

    Pairs inside one ``exclude`` group (N,) (e.g. exact copies, already reported by
    ``exact_duplicate``) are not counted again.
    """
    member = groups >= 0
    split = manifest["split"].astype("string").fillna("").to_numpy(dtype=object)
    frame = pd.DataFrame({"group": groups[member], "split": split[member],
                          "path": manifest["path"].astype(str).to_numpy()[member]})
    cross = _cross_split_pairs(frame, ["group"])
    if exclude is not None:
        frame["exclude"] = exclude[member]
        cross -= _cross_split_pairs(frame[frame["exclude"] >= 0], ["group", "exclude"])
    sizes = frame.groupby("group").size()
    return {
        "groups": int(len(sizes)),
        "redundant": int(len(frame) - len(sizes)),
        "largest_group": int(sizes.max()) if len(sizes) else 0,
        "cross_split_pairs": int(cross),
        "cross_split_examples": _cross_split_examples(frame, max_examples),
    }


def _cross_split_pairs(frame: pd.DataFrame, keys: list[str]) -> int:
    """Pairs of rows in one group (by ``keys``) whose splits differ: all pairs minus
    the pairs inside each split."""
    n = frame.groupby(keys).size().to_numpy(dtype=np.int64)
    per_split = frame.groupby([*keys, "split"]).size().to_numpy(dtype=np.int64)
    return int((n * (n - 1) // 2).sum() - (per_split * (per_split - 1) // 2).sum())


def _cross_split_examples(frame: pd.DataFrame, limit: int) -> list[dict[str, Any]]:
    """One example pair per leaking group: the first file of its first two splits."""
    firsts = frame.sort_values("path").groupby(["group", "split"], sort=False).head(1)
    examples: list[dict[str, Any]] = []
    for group, rows in firsts.groupby("group", sort=True):
        if len(rows) > 1 and len(examples) < limit:
            a, b = rows.iloc[0], rows.iloc[1]
            examples.append({"group": int(group), "paths": [a["path"], b["path"]],
                             "splits": [a["split"], b["split"]]})
    return examples


@register
class ExactDuplicateCheck(Check):
    name = "exact_duplicate"
    Settings = ExactDuplicateSettings
    description = ("identical file bytes or identical decoded pixels as an earlier file "
                   "(by path); the earlier file is kept")

    def find(self, ctx: AuditContext) -> CheckResult:
        manifest = ctx.manifest
        order = path_order(manifest)
        groups = find_exact_groups(manifest, ctx.decoded)
        kept = kept_rows(groups, order)
        is_issue = (groups >= 0) & (kept != np.arange(len(groups)))
        ids = manifest["id"].to_numpy(dtype=np.int64)
        summary = summarize_groups(manifest, groups, max_examples=self.settings.max_examples)
        sha = manifest["sha256"].to_numpy(dtype=object) if "sha256" in manifest else None
        if sha is not None:  # copies with other bytes but the same pixels (re-saved files)
            summary["pixel_only"] = int(sum(sha[i] != sha[kept[i]]
                                            for i in np.flatnonzero(is_issue)))
        return self.result(ctx, is_issue, np.where(is_issue, 0.0, 1.0), summary,
                           group=groups, kept_id=np.where(kept >= 0, ids[kept], -1))
