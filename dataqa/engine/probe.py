"""Transfer learning for the out-of-fold pass: ``crossval.mode: linear_probe | finetune``.

**linear_probe** (the field's cheapest honest baseline for a pretrained backbone):

1. the frozen backbone (``engine.arch`` with ``engine.weights``, see
   :mod:`dataqa.engine.backbones`) embeds every image *once*: batches of
   ``crossval.embed_batch_size`` rows are read from the memory-mapped tensors, moved to
   the device, normalised with the weights' mean/std and passed forward under
   ``torch.no_grad``; only the (B, D) features come back. Memory is one batch of
   pixels plus the (N, D) float32 embeddings (100k images x 512 = 205 MB), never the
   N full-size images;
2. stratified K-fold multinomial logistic regression (scikit-learn
   ``LogisticRegression``, lbfgs, L2 with ``C = crossval.probe_c``, features
   standardised per fold) gives the out-of-fold ``pred_probs``.

The embeddings are the backbone's features, written as ``embeddings.npy``, so the
near-duplicate and outlier checks see what a pretrained net sees.

**finetune**: the pretrained net is trained whole per fold through the engine's one fit
loop (:func:`dataqa.engine.crossval.cross_val_predict`); :func:`finetune_config` sets
fine-tuning budgets (a low learning rate, few epochs) for what ``crossval`` leaves null.
"""

from __future__ import annotations

import dataclasses
import logging
import time
import warnings
from typing import Any

import numpy as np
import torch
from sklearn.model_selection import StratifiedKFold

from dataqa.engine import device as dev
from dataqa.engine.fit import TrainConfig
from dataqa.errors import EngineError

log = logging.getLogger("dataqa.engine")

# Fine-tuning budgets when crossval leaves them null: SGD-Nesterov, one-cycle, peak lr
# 0.01 (torchvision's fine-tuning references use 0.001-0.01; the scratch budget's 0.1-0.4
# would wash out the pretrained features), few epochs (the features are already good).
FINETUNE_BUDGETS: dict[str, dict[str, Any]] = {
    "cuda": {"epochs": 8, "batch_size": 128, "lr": 0.01},
    "cpu": {"epochs": 3, "batch_size": 32, "lr": 0.01},
}


def require_backbone(arch: str, weights: str | None, mode: str,
                     image_size: int | None = None) -> None:
    """An error unless ``arch``/``weights`` name a pretrained backbone; a warning when
    ``image_size`` differs from the size the weights were trained at."""
    if arch == "small_resnet" or not weights:
        raise EngineError(
            f"crossval.mode: {mode} needs a pretrained backbone: set engine.arch to a "
            "torchvision model (resnet18, resnet50, mobilenet_v3_large, efficientnet_b0, "
            "convnext_tiny, ...) and engine.weights to its weights (DEFAULT) or a local "
            f"file; got arch={arch}, weights={weights}")
    from dataqa.engine.backbones import preprocessing

    prep = preprocessing(arch, weights)
    if image_size is not None and prep is not None and prep.crop_size != image_size:
        log.warning("WARNING: %s %s was trained at %d px; engine.image_size is %d: set it to "
                    "%d for the weights' own preprocessing", arch, weights, prep.crop_size,
                    image_size, prep.crop_size)


def finetune_config(base: TrainConfig, cv: Any, device: torch.device) -> TrainConfig:
    """``base`` (crossval's config) with the fine-tuning budget for what ``cv`` (the
    crossval params) leaves null."""
    budget = FINETUNE_BUDGETS["cuda" if device.type == "cuda" else "cpu"]
    pick = {k: budget[k] if getattr(cv, k) is None else getattr(cv, k)
            for k in ("epochs", "batch_size", "lr")}
    return dataclasses.replace(base, **pick)


@torch.no_grad()
def embed(images: np.ndarray, rows: np.ndarray, *, arch: str, weights: str,
          device: torch.device, batch_size: int = 64) -> tuple[np.ndarray, dict[str, Any]]:
    """Features (len(rows), D) float32 of ``images[rows]`` ((N, H, W, C) uint8, may be
    a memory map) from the frozen pretrained ``arch``; reads one batch at a time."""
    from dataqa.engine.backbones import load_pretrained, preprocessing
    from dataqa.engine.nets import build_net, head_of

    c, size = int(images.shape[3]), int(images.shape[1])
    model = build_net(arch, num_classes=2, in_channels=c, image_size=size)
    load_pretrained(model, arch, weights)
    prep = preprocessing(arch, weights)
    if prep is not None and prep.crop_size != size:
        log.warning("WARNING: %s %s was trained at %d px; the tensors are %d px "
                    "(engine.image_size): set engine.image_size: %d for the weights' own "
                    "preprocessing", arch, weights, prep.crop_size, size, prep.crop_size)
    mean = torch.tensor(prep.mean if prep else (0.485, 0.456, 0.406)) * 255.0
    std = torch.tensor(prep.std if prep else (0.229, 0.224, 0.225)) * 255.0
    if c == 1:
        mean, std = mean.mean().reshape(1), std.mean().reshape(1)
    mean, std = mean.to(device)[:, None, None], std.to(device)[:, None, None]
    model = model.to(device).eval()
    feats: list[torch.Tensor] = []
    handle = head_of(model).register_forward_pre_hook(
        lambda _m, inputs: feats.append(inputs[0].float().cpu()))
    start = time.perf_counter()
    try:
        for lo in range(0, len(rows), batch_size):
            idx = np.sort(rows[lo:lo + batch_size])  # sorted reads of the memory map
            order = np.argsort(np.argsort(rows[lo:lo + batch_size]))
            x = torch.from_numpy(np.ascontiguousarray(images[idx])).to(device)
            x = (x.permute(0, 3, 1, 2).float() - mean) / std
            with dev.autocast(device):
                model(x)
            feats[-1] = feats[-1][torch.from_numpy(order)]
    finally:
        handle.remove()
    dev.synchronize(device)
    seconds = time.perf_counter() - start
    emb = torch.cat(feats).numpy() if feats else np.zeros((0, head_of(model).in_features))
    info = {"embed_seconds": seconds, "embed_images_per_s": len(rows) / max(seconds, 1e-9),
            "embedding_dim": int(emb.shape[1])}
    log.info("linear probe: embedded %d images (%d-d) in %.1f s (%.0f images/s) on %s",
             len(rows), emb.shape[1], seconds, info["embed_images_per_s"],
             dev.describe(device))
    return emb.astype(np.float32, copy=False), info


def fit_probe(x: np.ndarray, y: np.ndarray, *, c: float = 1.0, seed: int = 0) -> Any:
    """A fitted standardise + multinomial logistic regression pipeline."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    clf = make_pipeline(StandardScaler(),
                        LogisticRegression(C=c, max_iter=1000, random_state=seed))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence is recorded by the caller if needed
        clf.fit(x, y)
    return clf


def probe_predict(embeddings: np.ndarray, labels: np.ndarray, *, folds: int, seed: int = 0,
                  c: float = 1.0, class_names: list[str] | None = None
                  ) -> tuple[np.ndarray, dict[str, Any]]:
    """Out-of-fold probabilities (n, K) of a multinomial logistic regression on
    ``embeddings`` (n, D) by stratified K-fold; folds drop to the smallest class count
    (>= 2) with a warning, as in the training path."""
    labels = np.asarray(labels, dtype=np.int64)
    k = len(class_names) if class_names else int(labels.max()) + 1
    names = class_names or [str(i) for i in range(k)]
    counts = np.bincount(labels, minlength=k)
    present = np.flatnonzero(counts)
    if len(present) < 2:
        raise EngineError("cross-validation needs at least 2 classes")
    smallest = int(present[np.argmin(counts[present])])
    warn: list[str] = []
    used = folds
    if counts[smallest] < folds:
        if counts[smallest] < 2:
            raise EngineError(f"class '{names[smallest]}' has {counts[smallest]} image; "
                              "out-of-fold prediction needs at least 2 per class")
        used = int(counts[smallest])
        warn.append(f"class '{names[smallest]}' has only {counts[smallest]} images, fewer "
                    f"than crossval.folds={folds}: using {used} folds")
    probs = np.zeros((len(labels), k), dtype=np.float32)
    start = time.perf_counter()
    splitter = StratifiedKFold(n_splits=used, shuffle=True, random_state=seed)
    fold_info = []
    for fold, (tr, ho) in enumerate(splitter.split(np.zeros(len(labels)), labels)):
        clf = fit_probe(embeddings[tr], labels[tr], c=c, seed=seed)
        p = clf.predict_proba(embeddings[ho])
        probs[np.ix_(ho, clf.classes_)] = p  # a class absent from a fold keeps 0
        acc = float((probs[ho].argmax(1) == labels[ho]).mean())
        fold_info.append({"fold": fold + 1, "n_train": len(tr), "n_holdout": len(ho),
                          "accuracy": acc,
                          "iterations": int(np.max(clf[-1].n_iter_))})
    seconds = time.perf_counter() - start
    log.info("linear probe: %d-fold logistic regression on %d x %d in %.1f s", used,
             *embeddings.shape, seconds)
    return probs, {"folds": used, "folds_requested": folds, "probe_seconds": seconds,
                   "fold_details": fold_info, "warnings": warn, "probe_c": c}


def linear_probe(images: np.ndarray, rows: np.ndarray, labels: np.ndarray, *, folds: int,
                 arch: str, weights: str, device: torch.device, seed: int = 0,
                 c: float = 1.0, batch_size: int = 64, class_names: list[str] | None = None
                 ) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """(pred_probs (n, K), embeddings (n, D), info) for ``images[rows]`` with
    ``labels`` (n,)."""
    require_backbone(arch, weights, "linear_probe")
    start = time.perf_counter()
    emb, info = embed(images, rows, arch=arch, weights=weights, device=device,
                      batch_size=batch_size)
    probs, pinfo = probe_predict(emb, labels, folds=folds, seed=seed, c=c,
                                 class_names=class_names)
    return probs, emb, {**info, **pinfo, "mode": "linear_probe", "device":
                        dev.describe(device), "seconds": time.perf_counter() - start,
                        "config": {"arch": arch, "weights": weights, "probe_c": c,
                                   "embed_batch_size": batch_size}}
