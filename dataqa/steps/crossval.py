"""DVC stage ``crossval``: out-of-fold predicted probabilities and embeddings of every
labelled, decodable image (the K-fold pass is :func:`dataqa.engine.crossval.cross_val_predict`)."""

from __future__ import annotations

import numpy as np

from dataqa.dataset.manifest import has_label, labelled_rows, read_manifest
from dataqa.dataset.tensors import load_tensors
from dataqa.engine import device as dev
from dataqa.engine import probe
from dataqa.engine.crossval import cross_val_predict, crossval_config, log, oof_metrics
from dataqa.engine.progress import show_progress
from dataqa.errors import EngineError
from dataqa.io import write_json, write_npy
from dataqa.params import Params


def run_stage(params: Params) -> int:
    """Write ``paths.pred_probs`` (N, K), ``paths.embeddings`` (N, D) aligned with the
    manifest (NaN rows where an image did not decode or has no label) and the metrics
    JSON ``paths.crossval_metrics`` (with ``classes``, the class names by id)."""
    show_progress()
    manifest = read_manifest(params.path("manifest"))
    images, decoded = load_tensors(params, manifest)
    rows, classes, ids = labelled_rows(manifest, decoded)
    known = has_label(manifest)
    if len(rows) == 0:
        raise EngineError(f"{params.path('manifest')}: no decodable image has a label; "
                          "nothing to cross-validate")
    device = dev.pick_device(params.engine.device, cpu_threads=params.engine.cpu_threads)
    n_train = len(rows) * (params.crossval.folds - 1) // max(params.crossval.folds, 1)
    config = crossval_config(params, device, n_train=n_train)
    mode = params.crossval.mode
    log.info("crossval (%s): %d images, %d classes, %d folds on %s: %s", mode, len(rows),
             len(classes), params.crossval.folds, dev.describe(device),
             {k: getattr(config, k) for k in ("epochs", "batch_size", "lr", "arch", "width",
                                              "depth", "weights")})
    if mode == "linear_probe":  # frozen backbone, logistic regression (dataqa/engine/probe.py)
        probs, emb, info = probe.linear_probe(
            images, rows, ids, folds=params.crossval.folds, arch=config.arch,
            weights=config.weights or "", device=device, seed=params.engine.seed,
            c=params.crossval.probe_c, batch_size=params.crossval.embed_batch_size,
            class_names=classes)
    else:
        if mode == "finetune":
            probe.require_backbone(config.arch, config.weights, mode,
                                   params.engine.image_size)
            config = probe.finetune_config(config, params.crossval, device)
        probs, emb, info = cross_val_predict(np.asarray(images[rows]), ids,
                                             folds=params.crossval.folds, config=config,
                                             seed=params.engine.seed, device=device,
                                             class_names=classes)
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
