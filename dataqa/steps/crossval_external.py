"""``crossval.mode: external`` (the crossval stage dispatches here): the user's own
predictions, read and checked by :mod:`dataqa.dataset.external`, written to
``paths.pred_probs``, ``paths.embeddings`` and ``paths.crossval_metrics`` as the trained
pass writes them, so every later stage and check uses them unchanged. No torch."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from dataqa.dataset.external import Keys, read_embeddings, read_pred_probs
from dataqa.dataset.manifest import decodable, has_label, labelled_rows, read_manifest
from dataqa.dataset.sources import source_root
from dataqa.errors import PredictionsError
from dataqa.io import write_json, write_npy
from dataqa.params import Params

log = logging.getLogger("dataqa.external")


def run_external(params: Params) -> int:
    """Write ``paths.pred_probs``, ``paths.embeddings`` and ``paths.crossval_metrics``
    from ``crossval.external``, aligned with the manifest."""
    ext = params.crossval.external
    if not ext.pred_probs:
        raise PredictionsError("params.yaml: crossval.external.pred_probs: required with "
                               "crossval.mode: external (a .parquet, .csv or .npy file)")
    manifest = read_manifest(params.path("manifest"))
    rows, names, ids = labelled_rows(manifest)  # the one rule crossval also uses
    classes = [str(c) for c in names]
    known = has_label(manifest)
    required = np.zeros(len(manifest), dtype=bool)
    required[rows] = True
    if not required.any():
        raise PredictionsError(f"{params.path('manifest')}: no decodable image has a label; "
                               "nothing to check predictions against")
    keys = Keys(manifest, source_root(params.resolve(params.data.source)), required)
    probs = read_pred_probs(params.resolve(ext.pred_probs), ext, keys, classes, params)
    if ext.embeddings:
        emb = read_embeddings(params.resolve(ext.embeddings), ext, keys, params)
    else:
        emb = np.full((len(manifest), 1), np.nan, dtype=np.float32)
    write_npy(params.path("pred_probs"), probs)
    write_npy(params.path("embeddings"), emb)
    right = probs[rows].argmax(axis=1) == ids
    per_class = {c: float(right[ids == i].mean()) for i, c in enumerate(classes)}
    metrics: dict[str, Any] = {
        "mode": "external", "classes": classes, "oof_accuracy": float(right.mean()),
        "per_class_accuracy": per_class, "n_rows": len(manifest),
        "n_used": int(required.sum()), "n_undecodable": int((~decodable(manifest)).sum()),
        "n_unlabelled": int((decodable(manifest).to_numpy() & ~known).sum()),
        "pred_probs_file": str(ext.pred_probs), "embeddings_file": ext.embeddings,
        "embedding_dim": int(emb.shape[1]) if ext.embeddings else 0,
        "warnings": [] if ext.embeddings else [
            "crossval.external.embeddings not given: the embedding evidence of the "
            "outlier and near_duplicate checks is off"],
    }
    write_json(params.path("crossval_metrics"), metrics)
    log.info("crossval (external): %d images, %d classes from %s; accuracy of the given "
             "predictions %.4f", int(required.sum()), len(classes), ext.pred_probs,
             metrics["oof_accuracy"])
    return 0
