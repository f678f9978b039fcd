"""Is tuning worth it? The crossval stage's configuration (the model the audit already
trusts) as the reference trial, against the best tuned configuration, both trained on
the final round's data with the same validation set and the same seeds.

Both arms go through the one training engine (:func:`dataqa.engine.fit.fit`): the
baseline with :func:`dataqa.engine.crossval.crossval_config` exactly (its schedule,
epochs, net and batch), the tuned arm with the best trial's configuration and the final
round's epochs (early stopping on validation loss). Each arm is scored with the tuning
run's ranking metric, so the comparison is like for like. The verdict: the tuned
configuration is better only when its mean exceeds the baseline's by more than the
seed spread (std tuned + std baseline); otherwise it is "no better than the baseline".
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch

from dataqa.engine.crossval import crossval_config
from dataqa.engine.data import DeviceData
from dataqa.engine.fit import fit
from dataqa.params import Params
from dataqa.tune.cleaning import summarise
from dataqa.tune.progress import RunsClock
from dataqa.tune.trial import history_records, score_of, standard_error, train_config

BASELINE_SEED = 8_000_000  # seeds of the comparison: tune.seed + this + i


def get_baseline_verdict(tuned: list[float], baseline: list[float], *, n_val: int
                         ) -> dict[str, Any]:
    """Compare (n_seeds,) validation accuracies of the tuned and the baseline arm; each
    mean gets its validation standard error (``n_val`` images) beside its seed std."""
    t, b = summarise(tuned), summarise(baseline)
    for arm in (t, b):
        arm["se"] = standard_error(arm["mean"], n_val)
    if t["mean"] is None or b["mean"] is None:
        return {"tuned": t, "baseline": b, "difference": None, "spread": None,
                "better": None, "verdict": "not run: an arm has no result"}
    diff = t["mean"] - b["mean"]
    spread = t["std"] + b["std"]
    better = diff > spread and diff > 0
    head = (f"tuned {t['mean']:.4f} ± {t['std']:.4f} vs baseline {b['mean']:.4f} ± "
            f"{b['std']:.4f} (mean ± std over {t['n']} seeds; validation SE ~"
            f"{(t['se'] or 0):.3f})")
    if better:
        verdict = (f"tuning helps: +{diff:.4f} validation accuracy over the crossval "
                   f"configuration, more than the seed spread ({spread:.4f}); {head}")
    else:
        where = (f"the difference {diff:+.4f} is within the seed spread ({spread:.4f})"
                 if abs(diff) <= spread else
                 f"the baseline is better by {-diff:.4f}, more than the seed spread "
                 f"({spread:.4f})")
        verdict = f"no better than the baseline: {where}; {head}"
    return {"tuned": t, "baseline": b, "difference": diff, "spread": spread,
            "better": better, "verdict": verdict}


def compare_baseline(data: DeviceData, params: Params, *, train_idx: np.ndarray,
                     val_idx: np.ndarray, best_config: Mapping[str, Any], epochs: int,
                     device: torch.device, subset: str, augment: Any = None,
                     progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Train the crossval configuration and ``best_config`` on rows ``train_idx``
    (n_train,) of ``data``, validating on ``val_idx`` (n_val,), with
    ``tune.baseline.seeds`` seeds each. Returns :func:`get_baseline_verdict` plus both
    configurations, the runs' curves, sizes and wall time."""
    tune = params.tune
    start = time.perf_counter()
    base_cfg = crossval_config(params, device, n_train=len(train_idx))
    if tune.baseline.epochs is not None:
        base_cfg = dataclasses.replace(base_cfg, epochs=tune.baseline.epochs)
    sel = tune.selection
    runs: list[dict[str, Any]] = []
    scores: dict[str, list[float]] = {"tuned": [], "baseline": []}
    seeds = max(tune.baseline.seeds, 1)
    clock = RunsClock("tune baseline", seeds * (base_cfg.epochs + epochs),
                      emit=progress or (lambda _line: None))
    for i in range(seeds):
        seed = tune.seed + BASELINE_SEED + i
        for arm in ("baseline", "tuned"):
            if arm == "baseline":
                cfg = dataclasses.replace(base_cfg, seed=seed)
            else:
                cfg = train_config(best_config, epochs=epochs, seed=seed,
                                   stopping=tune.stopping, engine=params.engine,
                                   augment=augment)
            res = fit(data, train_idx, val_idx, cfg, log_prefix=f"[baseline {arm} {seed}] ",
                      callback=clock.run(f"{arm} seed {i + 1}/{seeds}", cfg.epochs))
            clock.finished(cfg.epochs, len(res.history))
            hist = history_records(res)
            score = score_of(hist, sel.metric, sel.window)
            if not math.isfinite(score):
                score = 0.0
            scores[arm].append(score)
            runs.append({"arm": arm, "seed": seed, "value": score, "status": res.status,
                         "history": hist, "seconds": res.seconds})
            if progress is not None:
                progress(f"tune baseline: {arm:8s} seed {i + 1}/{seeds}: val_acc "
                         f"{score:.4f} ({res.status}, {len(hist)} epochs, "
                         f"{res.seconds:.1f} s)")
    out = get_baseline_verdict(scores["tuned"], scores["baseline"], n_val=len(val_idx))
    described = base_cfg.describe()
    out.update(runs=runs, subset=subset, n_train=int(len(train_idx)),
               n_val=int(len(val_idx)), tuned_epochs=epochs, tuned_config=dict(best_config),
               baseline_config={k: described[k] for k in (
                   "epochs", "batch_size", "lr", "optimizer", "schedule", "weight_decay",
                   "momentum", "width", "depth", "dropout", "label_smoothing", "flip",
                   "crop_padding", "arch")},
               seconds=time.perf_counter() - start)
    return out
