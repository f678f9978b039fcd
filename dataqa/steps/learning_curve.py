"""DVC stage ``learning_curve``: would more data help? The curve, its slope and the
recommendation are :mod:`dataqa.engine.learning_curve`; this step reads the inputs and
writes ``paths.learning_curve`` and its points as a flat table for ``dvc plots``
(``paths.learning_curve_plot``: DVC reads a JSON plot from every list in the file, and
an empty list anywhere, e.g. no class under the minimum, breaks it)."""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any

import numpy as np

from dataqa.dataset.balance import imbalance_ratio
from dataqa.dataset.manifest import labelled_rows, read_manifest
from dataqa.dataset.tensors import load_tensors
from dataqa.engine import device as dev
from dataqa.engine.crossval import untrainable_reason
from dataqa.engine.learning_curve import (
    check_fractions,
    get_learning_curve,
    get_slope,
    learning_curve_config,
    log,
    print_progress,
    probe_learning_curve,
    recommend,
    stratified_holdout,
)
from dataqa.errors import EngineError
from dataqa.io import atomic_path, write_json
from dataqa.params import Params
from dataqa.text import say


def run_stage(params: Params) -> int:
    """Write ``paths.learning_curve``::

        fractions, points[{fraction, n_train, epochs, images_seen, val_accuracy, val_loss,
                           train_accuracy, per_class_accuracy, status, seconds}],
        n_pool, n_val, val_fraction, seed, device, config,
        slope{per_log_fraction, gain_per_doubling, gain_se},
        balance{counts, imbalance_ratio, classes_under_min, min_per_class},
        recommendation{actions, text}, seconds
    """
    start = time.perf_counter()
    manifest = read_manifest(params.path("manifest"))
    images, decoded = load_tensors(params, manifest)
    rows, classes, ids = labelled_rows(manifest, decoded)  # crossval's rows and order
    counts = {c: int(n) for c, n in zip(classes, np.bincount(ids, minlength=len(classes)))}
    min_per_class = params.audit.min_per_class
    under = [c for c, n in counts.items() if n < min_per_class]
    ratio = imbalance_ratio(counts)
    device = dev.pick_device(params.engine.device, cpu_threads=params.engine.cpu_threads)
    fractions = check_fractions(params.audit.learning_curve)
    reason = untrainable_reason(ids, classes)
    if reason is not None:  # the worst data: say so, and let the audit and report run
        write_json(params.path("learning_curve"), {
            "evaluated": False, "not_evaluated_reason": reason, "fractions": fractions,
            "points": [], "balance": {"counts": counts, "imbalance_ratio": ratio,
                                      "classes_under_min": under,
                                      "min_per_class": min_per_class},
            "seconds": time.perf_counter() - start})
        write_plot(params, [])
        log.warning("WARNING: learning curve not evaluated: %s", reason)
        return 0
    split = params.split  # the one validation rule (dataqa/dataset/splits.py)
    n_pool = len(stratified_holdout(ids, val_fraction=split.val_fraction, seed=split.seed,
                                    classes=classes)[0])
    config = learning_curve_config(params, device, n_pool)
    if params.crossval.mode == "linear_probe":  # the crossval stage's backbone features
        points, n_pool, n_val = probe_learning_curve(
            _probe_embeddings(params, rows), ids, classes=classes, fractions=fractions,
            val_fraction=split.val_fraction, seed=params.engine.seed,
            split_seed=split.seed, c=params.crossval.probe_c)
    else:
        log.info("learning curve: %d images, %d classes, fractions %s, %d passes per "
                 "point, batch %d on %s", len(rows), len(classes), fractions, config.epochs,
                 config.batch_size, dev.describe(device))
        points, n_pool, n_val = get_learning_curve(
            np.asarray(images[rows]), ids, classes=classes, fractions=fractions,
            config=config, device=device, val_fraction=split.val_fraction,
            seed=params.engine.seed, split_seed=split.seed, progress=print_progress)
    slope = get_slope([p.fraction for p in points], [p.val_accuracy for p in points],
                      n_val=n_val)
    val_rows = stratified_holdout(ids, val_fraction=split.val_fraction, seed=split.seed,
                                  classes=classes)[1]
    model = _judge_last_point(points, ids[val_rows], len(classes), params)
    advice = recommend(gain_per_doubling=slope.gain_per_doubling, gain_se=slope.gain_se,
                       imbalance=ratio, classes_under_min=under, min_per_class=min_per_class,
                       model=model)
    out: dict[str, Any] = {
        "fractions": fractions,
        "points": [dataclasses.asdict(p) for p in points],
        "n_pool": n_pool, "n_val": n_val, "val_fraction": split.val_fraction,
        "seed": params.engine.seed, "device": dev.describe(device),
        "config": config.describe(),
        "slope": dataclasses.asdict(slope),
        "balance": {"counts": counts, "imbalance_ratio": ratio,
                    "classes_under_min": under, "min_per_class": min_per_class},
        "recommendation": dataclasses.asdict(advice),
        "model": model,
        "seconds": time.perf_counter() - start,
    }
    out = _finite(out)
    write_json(params.path("learning_curve"), out)
    write_plot(params, out["points"])
    say("learning curve: val accuracy "
          + ", ".join(f"{p.fraction:g}: {p.val_accuracy:.3f}" for p in points)
          + f"; {slope.gain_per_doubling:+.2%} per doubling -> {', '.join(advice.actions)}")
    return 0


PLOT_COLUMNS = ["fraction", "n_train", "val_accuracy", "train_accuracy", "val_loss", "status"]


def write_plot(params: Params, points: list[dict[str, Any]]) -> None:
    """``paths.learning_curve_plot``: one CSV row per fraction (the columns of
    :data:`PLOT_COLUMNS`; a value that is not finite is left empty)."""
    import pandas as pd

    frame = pd.DataFrame([{c: p.get(c) for c in PLOT_COLUMNS} for p in points],
                         columns=PLOT_COLUMNS)
    with atomic_path(params.path("learning_curve_plot"), suffix=".csv") as tmp:
        frame.to_csv(tmp, index=False, float_format="%.6g")


def _probe_embeddings(params: Params, rows: np.ndarray) -> np.ndarray:
    """The backbone embeddings of ``rows`` written by the crossval stage."""
    path = params.path("embeddings")
    if not path.is_file():
        raise EngineError(f"{path}: not found; crossval.mode linear_probe: run the "
                          "'crossval' stage first (it embeds the images)")
    emb = np.load(path, mmap_mode="r")
    if len(rows) and emb.shape[0] <= int(rows.max()):
        raise EngineError(f"{path}: {emb.shape[0]} rows do not match the manifest; rerun "
                          "the 'crossval' stage")
    return np.asarray(emb[rows], dtype=np.float32)


def _judge_last_point(points: list[Any], y_val: np.ndarray, n_classes: int,
                      params: Params) -> dict[str, Any] | None:
    """The last (largest) point's model judged against the majority-class baseline of
    the validation split (:func:`dataqa.model_strength.judge_counts`)."""
    from dataqa.model_strength import judge_counts

    if not points or len(y_val) == 0:
        return None
    right = int(round(points[-1].val_accuracy * len(y_val)))
    return judge_counts(right, len(y_val), np.bincount(y_val, minlength=n_classes),
                        params.audit.model_strength)


def _finite(obj: Any) -> Any:
    """NaN/inf -> None, recursively (JSON has no NaN)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    return obj
