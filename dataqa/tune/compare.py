"""Arm A against arm B over seeds: the one A/B runner of the tuning run.

Two questions go through it: *did tuning help?* (the starting configuration against the
best tuned one, on the final round's data) and *does cleaning help?* (the chosen
configuration on the clean training set against the unfiltered one). An :class:`Arm` is
a configuration and the training rows; every run is one engine ``fit`` (the same
:func:`dataqa.tune.start.train_config`, epochs, early stopping, validation set and
augmentation for both arms), with fresh seeds that are the same for both arms, scored
with the run's ranking metric. A run is made once: the same configuration on the same
rows with the same seed (the chosen arm of the first comparison is the clean arm of the
second) is taken from the :class:`Runner`'s cache.

The one statistic (:func:`ab_verdict`): the difference of the arms' mean scores against
the seed spread, std A + std B (sample std over seeds; their ±1 std bars do not
overlap when the difference exceeds it); a Welch t-test p-value is given beside it.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dataqa.engine.data import DeviceData
from dataqa.engine.fit import fit
from dataqa.params import EngineParams, TuneStopping
from dataqa.tune.progress import RunsClock
from dataqa.tune.start import train_config
from dataqa.tune.trial import history_records, score_of, standard_error

COMPARE_SEED = 8_000_000  # seeds of the comparisons: tune.seed + this + i


@dataclass(frozen=True)
class Arm:
    """``name`` (as the report says it), ``config`` (a tuning configuration) trained on
    ``train_idx`` (n_train,) rows of the data."""

    name: str
    config: Mapping[str, Any]
    train_idx: np.ndarray

    def key(self, seed: int, epochs: int) -> str:
        rows = hashlib.sha1(np.ascontiguousarray(np.sort(self.train_idx)).tobytes()).hexdigest()
        return json.dumps([dict(self.config), rows, seed, epochs], sort_keys=True, default=str)


def summarise(scores: Sequence[float]) -> dict[str, Any]:
    """Mean and sample std (ddof=1; 0 for one seed) of (n,) scores."""
    arr = np.asarray(scores, dtype=float)
    return {"scores": [float(s) for s in arr], "n": int(arr.size),
            "mean": float(arr.mean()) if arr.size else None,
            "std": float(arr.std(ddof=1)) if arr.size > 1 else 0.0}


def ab_verdict(a: Sequence[float], b: Sequence[float], *, a_name: str, b_name: str,
               n_val: int = 0) -> dict[str, Any]:
    """Does arm B beat arm A? (n_seeds,) scores of each. ``difference`` = mean B - mean
    A; ``better`` (B better) when it exceeds the seed spread (std A + std B), ``worse``
    when -difference does; otherwise within the spread. Each arm's mean gets its
    validation standard error (``n_val`` images) beside its seed std."""
    sa, sb = summarise(a), summarise(b)
    for arm in (sa, sb):
        arm["se"] = standard_error(arm["mean"], n_val) if n_val else None
    out: dict[str, Any] = {"a": dict(sa, name=a_name), "b": dict(sb, name=b_name),
                           "difference": None, "spread": None, "better": None,
                           "worse": None, "p_value": None}
    if sa["mean"] is None or sb["mean"] is None:
        out["verdict"] = "not run: an arm has no result"
        return out
    diff = sb["mean"] - sa["mean"]
    spread = sa["std"] + sb["std"]
    p = None
    if sa["n"] >= 2 and sb["n"] >= 2 and (sa["std"] > 0 or sb["std"] > 0):
        from scipy import stats

        p = float(stats.ttest_ind(list(b), list(a), equal_var=False).pvalue)
    head = (f"{b_name} {sb['mean']:.4f} ± {sb['std']:.4f} vs {a_name} {sa['mean']:.4f} ± "
            f"{sa['std']:.4f} (mean ± std over {sb['n']} seeds)")
    if diff > spread:
        verdict = (f"{b_name} is better by {diff:+.4f}, more than the seed spread "
                   f"({spread:.4f}): {head}")
    elif -diff > spread:
        verdict = (f"{a_name} is better by {-diff:+.4f}, more than the seed spread "
                   f"({spread:.4f}): {head}")
    else:
        verdict = (f"no clear difference: {diff:+.4f} is within the seed spread "
                   f"({spread:.4f}): {head}")
    out.update(difference=diff, spread=spread, better=diff > spread, worse=-diff > spread,
               p_value=p, verdict=verdict)
    return out


@dataclass
class Runner:
    """Trains arms for ``epochs`` on ``data``, validating on ``val_idx`` (n_val,); seed
    i of every arm is ``base_seed + COMPARE_SEED + i``. ``on_run(seconds, epochs_run,
    n_train, n_val)`` is called after each fit (the budget's rate)."""

    data: DeviceData
    val_idx: np.ndarray
    epochs: int
    stopping: TuneStopping
    engine: EngineParams
    base_seed: int
    augment: Any = None
    metric: str = "smoothed"
    window: int = 3
    progress: Callable[[str], None] | None = None
    on_run: Callable[[float, int, int, int], None] | None = None
    cache: dict[str, dict[str, Any]] = field(default_factory=dict)

    def seed(self, i: int) -> int:
        return self.base_seed + COMPARE_SEED + i

    def planned(self, arms: Sequence[Arm], seeds: int) -> int:
        """Epochs still to train for ``arms`` x ``seeds`` (cached runs cost nothing)."""
        return sum(self.epochs for i in range(seeds) for arm in arms
                   if arm.key(self.seed(i), self.epochs) not in self.cache)

    def run(self, arm: Arm, i: int, *, label: str, clock: RunsClock | None = None
            ) -> dict[str, Any]:
        seed = self.seed(i)
        key = arm.key(seed, self.epochs)
        if key in self.cache:
            return dict(self.cache[key], arm=arm.name, reused=True)
        cfg = train_config(arm.config, epochs=self.epochs, seed=seed, stopping=self.stopping,
                           engine=self.engine, augment=self.augment)
        callback = None if clock is None else clock.run(f"{arm.name} seed {i + 1}", self.epochs)
        res = fit(self.data, arm.train_idx, self.val_idx, cfg, callback=callback,
                  log_prefix=f"[{label} {arm.name} seed {seed}] ")
        if clock is not None:
            clock.finished(self.epochs, len(res.history))
        hist = history_records(res)
        score = score_of(hist, self.metric, self.window)
        if not math.isfinite(score):
            score = 0.0
        run = {"arm": arm.name, "seed": seed, "value": score, "status": res.status,
               "history": hist, "seconds": res.seconds, "n_train": int(len(arm.train_idx))}
        self.cache[key] = run
        if self.on_run is not None:
            self.on_run(res.seconds, len(res.history), len(arm.train_idx), len(self.val_idx))
        if self.progress is not None:
            self.progress(f"tune {label}: {arm.name} seed {i + 1}: val_acc {score:.4f} "
                          f"({res.status}, {len(hist)} epochs, {res.seconds:.1f} s)")
        return run

    def compare(self, a: Arm, b: Arm, *, seeds: int, label: str) -> dict[str, Any]:
        """Both arms over ``seeds`` seeds: :func:`ab_verdict` (B against A) plus the
        runs, sizes, epochs and wall time."""
        start = time.perf_counter()
        seeds = max(int(seeds), 1)
        clock = RunsClock(f"tune {label}", self.planned([a, b], seeds),
                          emit=self.progress or (lambda _line: None))
        runs = [self.run(arm, i, label=label, clock=clock)
                for i in range(seeds) for arm in (a, b)]
        out = ab_verdict([r["value"] for r in runs if r["arm"] == a.name],
                         [r["value"] for r in runs if r["arm"] == b.name],
                         a_name=a.name, b_name=b.name, n_val=len(self.val_idx))
        out.update(runs=runs, epochs=self.epochs, n_val=int(len(self.val_idx)),
                   n_train={a.name: int(len(a.train_idx)), b.name: int(len(b.train_idx))},
                   configs={a.name: dict(a.config), b.name: dict(b.config)},
                   seconds=time.perf_counter() - start)
        return out
