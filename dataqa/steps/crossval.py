"""DVC stage ``crossval``: out-of-fold predicted probabilities and embeddings of every
labelled, decodable image (the K-fold pass is :func:`dataqa.engine.crossval.cross_val_predict`).

The training engine (torch, scikit-learn) is imported only when this stage trains:
``crossval.mode: external`` reads the user's files (:mod:`dataqa.dataset.external`)
without it (tests/test_imports.py)."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from dataqa.dataset.manifest import has_label, labelled_rows, read_manifest
from dataqa.dataset.tensors import load_tensors
from dataqa.io import write_json, write_npy
from dataqa.params import Params

log = logging.getLogger("dataqa.engine")  # the engine's logger (engine/crossval.py)


def run_stage(params: Params) -> int:
    """Write ``paths.pred_probs`` (N, K), ``paths.embeddings`` (N, D) aligned with the
    manifest (NaN rows where an image did not decode or has no label) and the metrics
    JSON ``paths.crossval_metrics`` (with ``classes``, the class names by id).
    ``crossval.mode: external`` reads the user's predictions instead (no training).
    ``cluster.backend: ray``: each fold of ``train``/``finetune`` is a Ray task
    (:func:`~dataqa.engine.crossval.cross_val_predict_on_cluster`); the linear probe
    runs here."""
    if params.crossval.mode == "external":
        from dataqa.steps.crossval_external import run_external

        return run_external(params)
    from dataqa.engine import device as dev
    from dataqa.engine import probe
    from dataqa.engine.crossval import (
        NotTrainable,
        cross_val_predict,
        cross_val_predict_on_cluster,
        crossval_config,
        oof_metrics,
    )
    from dataqa.engine.progress import show_progress

    show_progress()
    manifest = read_manifest(params.path("manifest"))
    images, decoded = load_tensors(params, manifest)
    rows, classes, ids = labelled_rows(manifest, decoded)
    known = has_label(manifest)
    import torch

    device = dev.pick_device(params.engine.device, cpu_threads=params.engine.cpu_threads)
    on_cluster = params.cluster.backend == "ray" and params.crossval.mode != "linear_probe"
    # budgets follow where the folds train: a GPU task on the cluster, else this device
    budget_device = (torch.device("cuda") if params.cluster.num_gpus > 0 else
                     torch.device("cpu")) if on_cluster else device
    n_train = len(rows) * (params.crossval.folds - 1) // max(params.crossval.folds, 1)
    config = crossval_config(params, budget_device, n_train=n_train)
    mode = params.crossval.mode
    log.info("crossval (%s): %d images, %d classes, %d folds on %s: %s", mode, len(rows),
             len(classes), params.crossval.folds, dev.describe(device),
             {k: getattr(config, k) for k in ("epochs", "batch_size", "lr", "arch", "width",
                                              "depth", "weights")})
    try:
        if len(rows) == 0:
            raise NotTrainable(f"{params.path('manifest')}: no decodable image has a label; "
                               "nothing to cross-validate")
        if mode == "linear_probe":  # frozen backbone, logistic regression (engine/probe.py)
            probs, emb, info = probe.linear_probe(
                images, rows, ids, folds=params.crossval.folds, arch=config.arch,
                weights=config.weights or "", device=device, seed=params.engine.seed,
                c=params.crossval.probe_c, batch_size=params.crossval.embed_batch_size,
                class_names=classes)
        elif mode == "finetune":
            probe.require_backbone(config.arch, config.weights, mode,
                                   params.engine.image_size)
            config = probe.finetune_config(config, params.crossval, device)
        if on_cluster:
            probs, emb, info = cross_val_predict_on_cluster(
                np.asarray(images[rows]), ids, folds=params.crossval.folds, config=config,
                seed=params.engine.seed, cluster=params.cluster,
                device=params.engine.device, cpu_threads=params.engine.cpu_threads,
                class_names=classes)
        elif mode != "linear_probe":
            probs, emb, info = cross_val_predict(
                np.asarray(images[rows]), ids, folds=params.crossval.folds, config=config,
                seed=params.engine.seed, device=device, class_names=classes)
    except NotTrainable as exc:  # the worst data: not evaluated, the audit still runs
        return _write_not_evaluated(params, manifest, classes, decoded, known, str(exc))
    n = len(manifest)
    full_probs = np.full((n, len(classes)), np.nan, dtype=np.float32)
    full_emb = np.full((n, emb.shape[1]), np.nan, dtype=np.float32)
    full_probs[rows] = probs
    full_emb[rows] = emb
    write_npy(params.path("pred_probs"), full_probs)
    write_npy(params.path("embeddings"), full_emb)
    metrics = {**oof_metrics(probs, ids, classes), "classes": classes,
               "n_rows": n, "n_used": len(rows), "n_undecodable": int((~decoded).sum()),
               "n_unlabelled": int((decoded & ~known).sum()),
               "epochs": config.epochs, "batch_size": config.batch_size, "lr": config.lr,
               "arch": config.arch, "width": config.width, "depth": config.depth,
               "mode": mode, "weights": config.weights, **info}
    write_json(params.path("crossval_metrics"), metrics)
    for w in info["warnings"]:
        log.warning("WARNING: %s", w)
    log.info("crossval: out-of-fold accuracy %.4f over %d images in %.1f s on %s",
             metrics["oof_accuracy"], len(rows), info["seconds"], info["device"])
    return 0


def _write_not_evaluated(params: Params, manifest: pd.DataFrame, classes: list[str],
                         decoded: np.ndarray, known: np.ndarray, reason: str) -> int:
    """The stage's outputs when no model can be trained: NaN predictions and
    embeddings (one column), and metrics with ``evaluated: false`` and the reason."""
    n = len(manifest)
    known = np.asarray(known, dtype=bool)
    write_npy(params.path("pred_probs"), np.full((n, len(classes)), np.nan, dtype=np.float32))
    write_npy(params.path("embeddings"), np.full((n, 1), np.nan, dtype=np.float32))
    write_json(params.path("crossval_metrics"), {
        "evaluated": False, "not_evaluated_reason": reason, "classes": classes,
        "oof_accuracy": None, "per_class_accuracy": {}, "n_rows": n, "n_used": 0,
        "n_undecodable": int((~decoded).sum()), "n_unlabelled": int((decoded & ~known).sum()),
        "folds": 0, "folds_requested": params.crossval.folds, "warnings": [reason]})
    log.warning("WARNING: crossval: no model can be trained on this data (%s): the checks "
                "that need out-of-fold predictions are not evaluated; the audit and the "
                "report still run", reason)
    return 0
