"""One time budget for the whole tuning run (``tune.budget_seconds``): trials and epochs
follow from a measured epoch time.

The unit is the *image-epoch*: one training image seen once, plus a share
(:data:`EVAL_SHARE`) of one validation image evaluated. :func:`calibrate` measures its
cost with one short epoch of the starting configuration; every finished trial refines
it (:meth:`Budget.observe`), so the later rounds are sized with what the earlier ones
cost. The plan:

1. the comparisons at the end (start vs tuned, clean vs unfiltered: seeds x arms x the
   final epochs) are reserved first, at the rate measured so far. The final epochs are the start's own (its
   one-cycle schedule was made for them), fewer when the comparisons would take more
   than :data:`COMPARE_SHARE` of the budget, never fewer than :data:`MIN_FINAL_EPOCHS`
   (planned with the calibration, planned again with the trials' rate before round 3);
2. the search gets the rest: round 1 (learning rate) :data:`SEARCH_SHARES` ``lr`` of it,
   round 2 its share of what is left when it starts, round 3 all that is left. Rounds 1
   and 2 train a third of the final epochs (at least 2); round 3 the final epochs;
3. a round has as many trials as its share affords (at least :data:`MIN_TRIALS`: the
   start and one other; at most :data:`dataqa.tune.space.MAX_TRIALS`), and no trial
   starts past the round's deadline, except the start, which every round runs, and in
   round 3 one other configuration (a budget too small for the machine is overrun by
   that much rather than tuning nothing).

When the subsets cannot be smaller (small data) the search thus runs fewer trials, not
the same trials on more images.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dataqa.engine.data import DeviceData
from dataqa.engine.fit import fit
from dataqa.params import EngineParams, TuneStopping
from dataqa.tune.start import train_config

EVAL_SHARE = 0.35  # a validation image costs about a third of a training image
COMPARE_SHARE = 0.4  # the comparisons take at most this share of the budget
SEARCH_SHARES = {"lr": 0.2, "joint": 0.35, "fine": 0.45}
MIN_FINAL_EPOCHS = 3
MIN_COARSE_EPOCHS = 2
MIN_TRIALS = 2  # the start and one other configuration
CALIBRATION_IMAGES = 512


def image_epochs(n_train: int, n_val: int) -> float:
    """Cost units of one epoch on ``n_train`` training and ``n_val`` validation images."""
    return n_train + EVAL_SHARE * n_val


def calibrate(data: DeviceData, train_idx: np.ndarray, val_idx: np.ndarray,
              config: Mapping[str, Any], *, stopping: TuneStopping, engine: EngineParams,
              augment: Any = None, seed: int = 0) -> float:
    """Seconds per image-epoch of ``config``: the second of two epochs on up to
    :data:`CALIBRATION_IMAGES` training and half as many validation images (the first
    carries the one-off set-up)."""
    rng = np.random.default_rng(seed)
    tr = rng.permutation(train_idx)[:CALIBRATION_IMAGES]
    va = rng.permutation(val_idx)[:CALIBRATION_IMAGES // 2]
    cfg = train_config(dict(config, batch_size=min(int(config["batch_size"]), len(tr))),
                       epochs=2, seed=seed, stopping=stopping, engine=engine,
                       augment=augment)
    res = fit(data, tr, va, cfg, log_prefix="[calibration] ")
    return res.history[-1].seconds / max(image_epochs(len(tr), len(va)), 1.0)


@dataclass
class Budget:
    """The budget as it is spent. ``rate``: seconds per image-epoch (measured);
    ``reserved``: seconds kept for the comparisons."""

    seconds: float
    rate: float
    started: float = field(default_factory=time.perf_counter)
    compare_units: float = 0.0  # image-epoch units of one epoch of every comparison run
    start_epochs: int = 0
    final_epochs: int = 0
    coarse_epochs: int = 0
    _work: float = 0.0  # image-epochs and seconds of the trials seen, for the rate
    _secs: float = 0.0

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def left(self) -> float:
        """Seconds of the whole budget left (negative when overrun)."""
        return self.seconds - self.elapsed()

    @property
    def reserved(self) -> float:
        """Seconds kept for the comparisons, at the rate measured so far."""
        return self.rate * self.final_epochs * self.compare_units

    def search_left(self) -> float:
        return self.left() - self.reserved

    def observe(self, seconds: float, epochs: int, n_train: int, n_val: int) -> None:
        """A finished run: refine the rate (the mean over every run seen, the
        calibration's guess replaced by the first)."""
        work = epochs * image_epochs(n_train, n_val)
        if work <= 0 or not math.isfinite(seconds):
            return
        self._work += work
        self._secs += seconds
        self.rate = self._secs / self._work

    def run_seconds(self, epochs: int, n_train: int, n_val: int) -> float:
        return self.rate * epochs * image_epochs(n_train, n_val)

    def plan_final(self, start_epochs: int | None = None,
                   compare_units: float | None = None) -> None:
        """Set the final and coarse epochs (the comparisons' seconds are reserved from
        them); ``compare_units``: image-epoch units of one epoch of every comparison
        run. Called again without arguments before the final round, with the rate the
        trials measured."""
        if start_epochs is not None:
            self.start_epochs = start_epochs
        if compare_units is not None:
            self.compare_units = compare_units
        epochs = max(self.start_epochs, 1)
        least = min(MIN_FINAL_EPOCHS, epochs)
        while epochs > least and self.rate * epochs * self.compare_units > \
                COMPARE_SHARE * self.seconds:
            epochs -= 1
        self.final_epochs = epochs
        if start_epochs is not None:  # the coarse rounds' epochs are set once
            self.coarse_epochs = min(epochs, max(MIN_COARSE_EPOCHS, round(epochs / 3)))

    def round_seconds(self, name: str) -> float:
        """Seconds round ``name`` may take: its share of the search time left."""
        names = list(SEARCH_SHARES)
        later = sum(SEARCH_SHARES[n] for n in names[names.index(name):])
        return max(self.search_left(), 0.0) * SEARCH_SHARES[name] / later

    def trials_for(self, name: str, *, epochs: int, n_train: int, n_val: int,
                   cap: int) -> int:
        per = self.run_seconds(epochs, n_train, n_val)
        n = int(self.round_seconds(name) // per) if per > 0 else cap
        return int(min(max(n, MIN_TRIALS), cap))

    def to_json(self) -> dict[str, Any]:
        return {"seconds": self.seconds, "seconds_per_1000_image_epochs": self.rate * 1000,
                "reserved_for_comparisons": self.reserved, "final_epochs": self.final_epochs,
                "coarse_epochs": self.coarse_epochs, "used": self.elapsed()}
