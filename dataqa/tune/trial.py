"""One trial: a configuration from the round's space, one engine ``fit``, its curves
stored on the Optuna trial, pruning from the per-epoch callback.

Everything the report needs later is stored as trial user attributes, so that it is in
the study's storage whichever worker (or host) ran the trial: ``history`` (per-epoch
records, see :class:`dataqa.engine.fit.EpochLog`), ``status`` (engine status),
``config`` (the full configuration, fixed values included), ``start`` (the trial is the
starting configuration), ``seed``, ``worker``,
``seconds``, ``images_per_s`` and ``message``.
"""

from __future__ import annotations

import math
import os
import socket
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import optuna

from dataqa.engine.data import DeviceData
from dataqa.engine.fit import EpochLog, FitResult, fit
from dataqa.errors import EngineError
from dataqa.params import EngineParams, TuneStopping
from dataqa.text import say
from dataqa.tune.space import RoundPlan, Space
from dataqa.tune.start import train_config
from dataqa.tune.study import is_surplus

SEED_STRIDE = 100_000  # trial seed = tune.seed + round index x stride + trial number


def trial_seed(base: int, round_index: int, number: int) -> int:
    return base + round_index * SEED_STRIDE + number


def history_records(result: FitResult) -> list[dict[str, Any]]:
    """Per-epoch records as JSON-safe dicts (NaN -> None)."""
    return [{k: (None if isinstance(v, float) and not math.isfinite(v) else v)
             for k, v in asdict(h).items()} for h in result.history]


def score_of(history: Sequence[Mapping[str, Any]], metric: str = "smoothed",
             window: int = 3) -> float:
    """The trial's objective from its evaluated epochs (0 when none was evaluated, e.g.
    divergence in epoch 1).

    ``smoothed`` (default): the best mean validation accuracy over ``window``
    consecutive evaluated epochs (windows are never truncated, so a spike at the end
    gains nothing), so a one-epoch spike (0.72 between 0.65 and 0.62) scores 0.66, not
    0.72. The window is at most half the evaluated epochs, rounded up: over all of a
    short run's epochs the mean measures how fast a model starts, not where it ends
    (3 epochs of a one-cycle warm-up at 0.40, 0.94, 0.96 scored 0.77, now 0.95);
    ``checkpoint``: the validation
    accuracy of the lowest-validation-loss epoch (the model early stopping keeps);
    ``max``: the best single epoch (optimistic: the maximum of noisy values is biased
    upwards)."""
    ev = [h for h in history if h.get("val_acc") is not None
          and math.isfinite(float(h["val_acc"]))]
    if not ev:
        return 0.0
    accs = [float(h["val_acc"]) for h in ev]
    if metric == "max":
        return max(accs)
    if metric == "checkpoint":
        losses = [float(h["val_loss"]) if h.get("val_loss") is not None
                  and math.isfinite(float(h["val_loss"])) else math.inf for h in ev]
        return accs[min(range(len(ev)), key=lambda i: (losses[i], i))]
    w = min(max(int(window), 1), (len(accs) + 1) // 2)
    return max(float(np.mean(accs[i:i + w])) for i in range(len(accs) - w + 1))


def standard_error(acc: float | None, n: int) -> float | None:
    """Binomial standard error of an accuracy measured on ``n`` images."""
    if acc is None or n <= 0 or not math.isfinite(acc):
        return None
    return math.sqrt(max(acc * (1.0 - acc), 0.0) / n)


@dataclass
class PruningCallback:
    """Engine epoch callback: report the running score (the ranking metric of the
    epochs so far) to Optuna and ask the pruner; returning True makes the engine stop
    with status ``pruned``. ``on_epoch(entry)`` is called first (progress lines)."""

    trial: optuna.Trial
    enabled: bool = True
    metric: str = "smoothed"
    window: int = 3
    on_epoch: Callable[[EpochLog], None] | None = None
    seen: list[dict[str, Any]] = field(default_factory=list)

    def __call__(self, entry: EpochLog) -> bool:
        if self.on_epoch is not None:
            self.on_epoch(entry)
        if not math.isfinite(entry.val_acc):
            return False
        self.seen.append({"val_acc": entry.val_acc, "val_loss": entry.val_loss})
        self.trial.report(score_of(self.seen, self.metric, self.window), entry.epoch)
        return self.enabled and self.trial.should_prune()


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass
class Objective:
    """The Optuna objective of one round on one subset.

    ``train_idx`` (n_train,) and ``val_idx`` (n_val,) are rows of ``data``.
    ``on_done(trial, value, status)`` is called after each trial (progress lines).
    """

    data: DeviceData
    train_idx: np.ndarray
    val_idx: np.ndarray
    plan: RoundPlan
    space: Space
    stopping: TuneStopping
    engine: EngineParams
    seed: int
    augment: Any = None
    on_done: Callable[[optuna.Trial, float, str], None] | None = None
    on_epoch: Callable[[int, EpochLog], None] | None = None  # (trial number, epoch)
    metric: str = "smoothed"
    window: int = 3

    def __call__(self, trial: optuna.Trial) -> float:
        trial.set_user_attr("worker", worker_id())
        assert self.plan.trials is not None and self.plan.epochs is not None
        if is_surplus(trial.study, trial.number, self.plan.trials):
            trial.set_user_attr("surplus", True)
            raise optuna.TrialPruned("surplus: the round's budget was used by other workers")
        config = self.space.suggest(trial)
        seed = trial_seed(self.seed, self.plan.index, trial.number)
        trial.set_user_attr("config", config)
        trial.set_user_attr("seed", seed)
        trial.set_user_attr("n_train", int(len(self.train_idx)))
        fidelity_of = trial.user_attrs.get("fidelity_of")
        # the re-runs of round-2 configurations must finish (fidelity needs their
        # scores), and so must the start (every round's reference)
        on_epoch = self.on_epoch
        tick = None if on_epoch is None else (lambda entry: on_epoch(trial.number, entry))
        callback = PruningCallback(trial, enabled=fidelity_of is None
                                   and not trial.user_attrs.get("start"), metric=self.metric,
                                   window=self.window, on_epoch=tick)
        try:
            cfg = train_config(config, epochs=self.plan.epochs, seed=seed,
                               stopping=self.stopping, engine=self.engine,
                               augment=self.augment)
            result = fit(self.data, self.train_idx, self.val_idx, cfg, callback=callback,
                         log_prefix=f"[{self.plan.name} #{trial.number}] ")
        except EngineError as exc:  # this configuration cannot train: it uses its budget
            trial.set_user_attr("status", "error")
            trial.set_user_attr("message", str(exc))
            raise
        history = history_records(result)
        value = score_of(history, self.metric, self.window)
        trial.set_user_attr("history", history)
        trial.set_user_attr("n_val", int(len(self.val_idx)))
        trial.set_user_attr("status", result.status)
        trial.set_user_attr("message", result.message)
        trial.set_user_attr("batch_size_used", result.batch_size)
        trial.set_user_attr("seconds", result.seconds)
        trial.set_user_attr("images_per_s", result.train_images_per_s)
        if self.on_done is not None:
            self.on_done(trial, value, result.status)
        if result.status == "pruned":
            raise optuna.TrialPruned(result.message)
        return value


def print_progress(line: str) -> None:
    say(line, err=True)
