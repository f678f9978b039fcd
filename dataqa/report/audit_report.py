"""The audit report: ``reports/audit.html`` from the audit's results.

:func:`load` gathers what sections read (manifest, issues, audit metrics, the gate's
rules, a thumbnailer) into one :class:`AuditData`; every section registered for kind
``"audit"`` (see :mod:`dataqa.report.sections`) builds from it. Nothing here recomputes
a check: galleries sort the scores in ``issues.parquet``, cards and the gate read
``audit.json`` through :func:`dataqa.gate.evaluate`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from dataqa import gate
from dataqa.dataset.manifest import labelled_rows, read_manifest
from dataqa.dataset.sources import source_root
from dataqa.errors import StageInputError
from dataqa.model_strength import review_only
from dataqa.params import Params
from dataqa.report.page import build_sections, render_page
from dataqa.report.review import ReviewView
from dataqa.report.thumbs import Thumbnailer


@dataclass
class AuditData:
    """Everything an audit-report section may read. Frames are indexed by manifest ``id``
    and aligned (same ids, same order)."""

    params: Params
    manifest: pd.DataFrame
    issues: pd.DataFrame
    metrics: dict[str, Any]
    rules: list[gate.Rule]
    thumbs: Thumbnailer
    review: ReviewView
    _json_cache: dict[str, Any] = field(default_factory=dict)

    @property
    def checks(self) -> list[str]:
        """Checks that ran, in run order."""
        summary = self.metrics.get("summary", {})
        return list(summary.get("checks_run") or self.metrics.get("checks", {}))

    def check_columns(self, name: str) -> list[str]:
        """Extra columns of check ``name`` (not its flag or score), in issues order.
        A column belongs to the check with the longest matching prefix."""
        names = sorted(self.checks, key=len, reverse=True)
        out = []
        for col in self.issues.columns:
            owner = next((c for c in names if str(col).startswith(f"{c}_")), None)
            if owner == name and col != f"{name}_score":
                out.append(str(col))
        return out

    def rule(self, name: str) -> gate.Rule | None:
        return next((r for r in self.rules if r.name == name), None)

    def optional_json(self, path_name: str) -> Any | None:
        """Parsed JSON of ``paths.<path_name>``, or None when that file does not exist
        (for sections whose inputs come from optional stages)."""
        if path_name not in self._json_cache:
            path = self.params.path(path_name)
            self._json_cache[path_name] = _read_json(path) if path.is_file() else None
        return self._json_cache[path_name]


def load(params: Params) -> AuditData:
    manifest = read_manifest(params.path("manifest")).set_index("id", drop=False)
    issues_path = params.path("issues")
    if not issues_path.is_file():
        raise StageInputError(f"{issues_path}: not found; run the 'audit' stage first")
    issues = pd.read_parquet(issues_path)
    if "id" not in issues or not issues["id"].equals(manifest["id"].reset_index(drop=True)):
        raise StageInputError(f"{issues_path}: rows do not match the manifest "
                              f"{params.path('manifest')}; rerun the 'audit' stage")
    issues = issues.set_index("id", drop=False)
    metrics_path = params.path("audit_metrics")
    if not metrics_path.is_file():
        raise StageInputError(f"{metrics_path}: not found; run the 'audit' stage first")
    metrics = _read_json(metrics_path)
    rules = gate.evaluate(params.gate, metrics)
    thumbs = Thumbnailer(manifest, source_root(params.resolve(params.data.source)), size=params.report.thumb_size,
                         max_pixels=params.scan.max_pixels,
                         limit=params.report.max_thumbnails,
                         max_bytes=params.scan.max_bytes, budget=params.scan.decode_timeout)
    checks = list((metrics.get("summary") or {}).get("checks_run") or metrics.get("checks", {}))
    review = ReviewView(manifest, issues, checks, sorted(review_only(metrics)),
                        labelled_rows(manifest.reset_index(drop=True))[1])
    return AuditData(params, manifest, issues, metrics, rules, thumbs, review)


def render(params: Params) -> str:
    data = load(params)
    sections = build_sections("audit", data)
    data.thumbs.load()  # all thumbnails the sections asked for, decoded in one batch
    ds = data.metrics.get("dataset", {})
    bal = data.metrics.get("balance", {})
    facts = [
        ("source", params.data.source),
        ("files", ds.get("n_files")),
        ("decodable", ds.get("n_decodable")),
        ("undecodable", ds.get("n_undecodable")),
        ("classes", bal.get("n_classes")),
        ("splits", ", ".join(f"{k}: {v:,}" for k, v in ds.get("counts_per_split", {}).items())),
        ("checks", ", ".join(data.checks) or "none"),
        ("pending review", (data.metrics.get("review") or {}).get("n_pending")),
    ]
    return render_page(title="dataqa audit report", facts=facts, sections=sections,
                       globals_={"thumbs": data.thumbs, "review": data.review,
                                 "thumb_size": params.report.thumb_size})


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise StageInputError(f"{path}: not valid JSON ({exc}); rerun the stage "
                              f"that writes it") from None
