"""Does cleaning help? The best configuration trained on the clean training set and, with
the same configuration, epochs and validation set, on the unfiltered one; several seeds
each; validation accuracy mean ± std for both, and whether the difference exceeds the
seed spread.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from dataqa.engine.data import DeviceData
from dataqa.engine.fit import fit
from dataqa.params import EngineParams, TuneStopping
from dataqa.tune.progress import RunsClock
from dataqa.tune.trial import history_records, score_of, train_config

CLEANING_SEED = 7_000_000  # seeds of the comparison: tune.seed + this + i


def summarise(scores: Sequence[float]) -> dict[str, Any]:
    """Mean and sample std (ddof=1; 0 for one seed) of (n,) scores."""
    arr = np.asarray(scores, dtype=float)
    return {"scores": [float(s) for s in arr], "n": int(arr.size),
            "mean": float(arr.mean()) if arr.size else None,
            "std": float(arr.std(ddof=1)) if arr.size > 1 else 0.0}


def get_cleaning_verdict(clean: Sequence[float], raw: Sequence[float]) -> dict[str, Any]:
    """Compare two arms' (n_seeds,) validation accuracies.

    The difference "exceeds the seed spread" when ``|mean_clean - mean_raw|`` is larger
    than ``std_clean + std_raw`` (the ±1 std bars do not overlap). A Welch t-test p-value
    is given alongside when each arm has two or more seeds.
    """
    c, r = summarise(clean), summarise(raw)
    if c["mean"] is None or r["mean"] is None:
        return {"clean": c, "raw": r, "difference": None, "spread": None,
                "exceeds_spread": None, "p_value": None,
                "verdict": "not run: an arm has no result"}
    diff = c["mean"] - r["mean"]
    spread = c["std"] + r["std"]
    exceeds = abs(diff) > spread
    p = None
    if c["n"] >= 2 and r["n"] >= 2 and (c["std"] > 0 or r["std"] > 0):
        from scipy import stats

        p = float(stats.ttest_ind(clean, raw, equal_var=False).pvalue)
    if not exceeds:
        verdict = (f"no clear effect: the difference {diff:+.4f} is within the seed spread "
                   f"({spread:.4f})")
    elif diff > 0:
        verdict = (f"cleaning helps: +{diff:.4f} validation accuracy, more than the seed "
                   f"spread ({spread:.4f})")
    else:
        verdict = (f"cleaning hurts: {diff:.4f} validation accuracy, more than the seed "
                   f"spread ({spread:.4f}); check what the filter dropped")
    return {"clean": c, "raw": r, "difference": diff, "spread": spread,
            "exceeds_spread": exceeds, "p_value": p, "verdict": verdict}


def compare_cleaning(data: DeviceData, *, clean_idx: np.ndarray, raw_idx: np.ndarray,
                     val_idx: np.ndarray, config: Mapping[str, Any], epochs: int,
                     seeds: int, base_seed: int, stopping: TuneStopping,
                     engine: EngineParams, augment: Any = None,
                     progress: Callable[[str], None] | None = None,
                     metric: str = "smoothed", window: int = 3) -> dict[str, Any]:
    """Train ``config`` for ``epochs`` on rows ``clean_idx`` (n_clean,) and ``raw_idx``
    (n_raw,) of ``data`` with ``seeds`` seeds each (the same seeds for both arms),
    validating on ``val_idx`` (n_val,). Returns :func:`get_cleaning_verdict` plus the
    runs' curves, sizes and wall time."""
    start = time.perf_counter()
    runs: list[dict[str, Any]] = []
    scores: dict[str, list[float]] = {"clean": [], "raw": []}
    clock = RunsClock("tune cleaning", 2 * seeds * epochs,
                      emit=progress or (lambda _line: None))
    for i in range(seeds):
        seed = base_seed + CLEANING_SEED + i
        for arm, idx in (("clean", clean_idx), ("raw", raw_idx)):
            cfg = train_config(config, epochs=epochs, seed=seed, stopping=stopping,
                               engine=engine, augment=augment)
            res = fit(data, idx, val_idx, cfg, log_prefix=f"[cleaning {arm} seed {seed}] ",
                      callback=clock.run(f"{arm} seed {i + 1}/{seeds}", epochs))
            clock.finished(epochs, len(res.history))
            hist = history_records(res)
            score = score_of(hist, metric, window)
            if not math.isfinite(score):
                score = 0.0
            scores[arm].append(score)
            runs.append({"arm": arm, "seed": seed, "value": score, "status": res.status,
                         "history": hist, "seconds": res.seconds})
            if progress is not None:
                progress(f"tune cleaning: {arm:5s} seed {i + 1}/{seeds}: val_acc {score:.4f} "
                         f"({res.status}, {res.seconds:.1f} s)")
    out = get_cleaning_verdict(scores["clean"], scores["raw"])
    out.update(runs=runs, n_clean=int(len(clean_idx)), n_raw=int(len(raw_idx)),
               n_val=int(len(val_idx)), epochs=epochs, config=dict(config),
               seconds=time.perf_counter() - start)
    return out
