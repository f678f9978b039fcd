"""DVC stage ``filter``: the manifest and issues -> ``clean``, ``quarantine`` and
``filter_metrics`` (the policy is :func:`dataqa.prepare.filter.filter_rows`)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from dataqa.dataset.manifest import load_classes, read_manifest
from dataqa.errors import StageInputError
from dataqa.io import write_json, write_parquet
from dataqa.params import Params
from dataqa.prepare.common import read_table
from dataqa.prepare.filter import WHERE, filter_rows
from dataqa.text import say


def run_stage(params: Params) -> int:
    """Write ``clean``, ``quarantine`` and ``filter_metrics``; raw files are only read
    by earlier stages, never touched here."""
    manifest = read_manifest(params.path("manifest"))
    issues = read_table(params.path("issues"), stage="audit")
    pred_probs, classes = None, None
    if params.filter.relabel:
        pred_probs, classes = _load_predictions(params, manifest)
    result = filter_rows(manifest, issues, params=params.filter, pred_probs=pred_probs,
                         classes=classes, demoted=_demoted(params))
    write_parquet(params.path("clean"), result.clean)
    write_parquet(params.path("quarantine"), result.quarantine)
    write_json(params.path("filter_metrics"), result.summary)
    s = result.summary
    say(f"filter: {s['n_clean']} clean ({s['n_review']} to review, {s['n_relabelled']} "
          f"relabelled), {s['n_quarantined']} quarantined of {s['n_rows']}")
    for c, why in s["demoted"].items():
        say(f"  {c}: review-only, not quarantined ({why})")
    for c, info in s["checks"].items():
        say(f"  {c:<20} {info['action']:<7} failed {info['failed']:>6}  quarantined "
              f"{info['quarantined']:>6}  review {info['review']:>6}")
    return 0


def _demoted(params: Params) -> dict[str, str]:
    """Checks the audit marked review-only (a weak out-of-fold model), from
    ``audit.json``; none when that file is absent."""
    import json

    from dataqa.model_strength import review_only

    path = params.path("audit_metrics")
    if not path.is_file():
        return {}
    try:
        metrics = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise StageInputError(f"{path}: not valid JSON ({exc}); rerun the 'audit' stage"
                              ) from None
    return review_only(metrics) if isinstance(metrics, dict) else {}


def _load_predictions(params: Params, manifest: pd.DataFrame
                      ) -> tuple[np.ndarray, list[str]]:
    path = params.path("pred_probs")
    if not path.is_file():
        raise StageInputError(f"{path}: not found; {WHERE}.relabel needs the 'crossval' "
                              "stage's out-of-fold predictions")
    return np.load(path, mmap_mode="r"), load_classes(params, manifest)
