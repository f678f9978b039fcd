"""One trial through the real engine on tiny CPU data: the planted failure modes get
their status and diagnosis, trials are reproducible, pruning, early stopping and plateau
decay behave as configured."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import optuna
import pytest

from dataqa.engine.data import DeviceData
from dataqa.params import EngineParams, TuneDiagnose, TuneStopping
from dataqa.tune.results import trial_record
from dataqa.tune.space import RoundPlan, Space
from dataqa.tune.trial import Objective

BASE = {"batch_size": 16, "weight_decay": 5e-4, "dropout": 0.0, "optimizer": "sgd",
        "momentum": 0.9, "plateau_factor": 0.5, "width": 8, "depth": 1, "lr": 0.05}
STOP = TuneStopping(patience=3, min_epochs=3, plateau_patience=1)


def run_trial(data: DeviceData, n_train: int, config: dict[str, Any], *, epochs: int,
              stopping: TuneStopping = STOP, pruner: optuna.pruners.BasePruner | None = None,
              user_attrs: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run one trial of a fixed configuration; return its report record."""
    plan = RoundPlan(2, "joint", 1, epochs, "s", "random")
    study = optuna.create_study(direction="maximize", pruner=pruner)
    if user_attrs:
        study.enqueue_trial({}, user_attrs=user_attrs)
    objective = Objective(data, np.arange(n_train), np.arange(n_train, data.n), plan,
                          Space({}, config), stopping, EngineParams(), seed=0)
    study.optimize(objective, n_trials=1)
    return trial_record(study.trials[0], plan, TuneDiagnose(), n_classes=int(data.num_classes))


# (data, n_train, config changes, epochs, engine status, diagnosis expected)
CASES = [
    (dict(n=200), 150, {"lr": 50.0}, 4, "diverged",
     "lr_too_high"),  # learning rate far too high: the loss explodes in epoch 1
    (dict(n=200), 150, {"lr": 1e-7}, 4, "stalled",
     "lr_too_low"),  # far too low: the loss does not move
    (dict(n=400, signal=20.0, seed=1), 300, {"width": 1}, 4, "completed",
     "undertrained"),  # a 1-channel net on faint classes: the loss stays near ln 4
    (dict(n=200, signal=25.0, seed=1), 16, {"width": 32, "depth": 2, "batch_size": 4}, 12,
     "early_stopped", "overfitting"),  # a big net memorises 16 images: train 1.0, val ~0.45
]


@pytest.mark.parametrize(("data_kw", "n_train", "change", "epochs", "status", "code"), CASES)
def test_planted_failures_are_diagnosed(quadrants: Callable[..., DeviceData], data_kw: dict,
                                        n_train: int, change: dict, epochs: int, status: str,
                                        code: str) -> None:
    rec = run_trial(quadrants(**data_kw), n_train, dict(BASE, **change), epochs=epochs)
    assert rec["status"] == status
    assert code in [d["code"] for d in rec["diagnoses"]]
    assert rec["state"] == "COMPLETE"
    assert len(rec["history"]) == rec["epochs_run"] >= 1


def test_healthy_trial_has_no_fitting_verdict(quadrants: Callable[..., DeviceData]) -> None:
    rec = run_trial(quadrants(n=200), 150, BASE, epochs=6)
    codes = {d["code"] for d in rec["diagnoses"]}
    assert rec["value"] == pytest.approx(1.0)  # the quadrant classes are easy
    assert not codes & {"overfitting", "undertrained", "lr_too_high", "lr_too_low"}


def test_trials_are_reproducible_with_their_seed(quadrants: Callable[..., DeviceData]) -> None:
    data = quadrants(n=160)
    a = run_trial(data, 120, BASE, epochs=2)
    b = run_trial(data, 120, BASE, epochs=2)
    assert a["seed"] == b["seed"]
    keys = ("train_loss", "train_acc", "val_loss", "val_acc", "lr")
    assert [[h[k] for k in keys] for h in a["history"]] == \
        [[h[k] for k in keys] for h in b["history"]]


class AlwaysPrune(optuna.pruners.BasePruner):
    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        return True


def test_pruned_trial_keeps_its_curve(quadrants: Callable[..., DeviceData]) -> None:
    rec = run_trial(quadrants(n=160), 120, BASE, epochs=4, pruner=AlwaysPrune())
    assert rec["state"] == "PRUNED" and rec["status"] == "pruned"
    assert rec["epochs_run"] == 1  # stopped after the first reported epoch
    assert rec["value"] == rec["history"][0]["val_acc"]  # its last reported value


def test_fidelity_reruns_are_never_pruned(quadrants: Callable[..., DeviceData]) -> None:
    rec = run_trial(quadrants(n=160), 120, BASE, epochs=3, pruner=AlwaysPrune(),
                    user_attrs={"fidelity_of": 5})
    assert rec["state"] == "COMPLETE" and rec["epochs_run"] == 3
    assert rec["fidelity_of"] == 5


def simulate(val_losses: list[float], *, lr: float, factor: float,
             stopping: TuneStopping) -> tuple[list[float], int]:
    """The configured rules replayed on a validation-loss curve: the LR after each epoch
    (decay by ``factor`` once more than ``plateau_patience`` epochs in a row fail to
    improve the best by 1e-4 relative, as torch's ReduceLROnPlateau does) and the epoch
    at which early stopping ends the run (``patience`` epochs without a new best, never
    before ``min_epochs``)."""
    lrs, best_p, bad_p, best_e, bad_e = [], float("inf"), 0, float("inf"), 0
    for epoch, v in enumerate(val_losses, start=1):
        best_p, bad_p = (v, 0) if v < best_p * (1 - 1e-4) else (best_p, bad_p + 1)
        if bad_p > stopping.plateau_patience:
            lr, bad_p = lr * factor, 0
        lrs.append(lr)
        best_e, bad_e = (v, 0) if v < best_e else (best_e, bad_e + 1)
        if epoch >= stopping.min_epochs and bad_e >= stopping.patience:
            return lrs, epoch
    return lrs, len(val_losses)


@pytest.mark.parametrize(("stopping", "factor"), [
    (TuneStopping(patience=2, min_epochs=6, plateau_patience=0), 0.5),  # halve at once; stop late
    (TuneStopping(patience=4, min_epochs=1, plateau_patience=1), 0.2),  # /5 after 2 bad epochs
])
def test_early_stopping_and_plateau_decay_follow_params(
        quadrants: Callable[..., DeviceData], stopping: TuneStopping, factor: float) -> None:
    # random labels: validation loss stops improving quickly, so both rules fire
    data = quadrants(n=120, labels="random", seed=3)
    rec = run_trial(data, 40, dict(BASE, width=16, plateau_factor=factor, batch_size=8),
                    epochs=20, stopping=stopping)
    hist = rec["history"]
    lrs, stop = simulate([h["val_loss"] for h in hist], lr=BASE["lr"], factor=factor,
                         stopping=stopping)
    assert rec["status"] == "early_stopped"
    assert len(hist) == stop  # stopped exactly where the rule says
    assert [h["lr"] for h in hist] == pytest.approx(lrs)
    assert min(lrs) < BASE["lr"]  # the plateau decay did happen


@pytest.mark.parametrize(("stopping", "status"), [
    (STOP, "completed"),  # a healthy run with the default thresholds
    (STOP.replace(stall_tolerance=0.99), "stalled"),  # "moved < 99%": stalled
])
def test_stall_threshold_from_params_reaches_the_engine(
        quadrants: Callable[..., DeviceData], stopping: TuneStopping, status: str) -> None:
    rec = run_trial(quadrants(n=200), 150, BASE, epochs=4, stopping=stopping)
    assert rec["status"] == status


def test_a_trial_the_engine_refuses_fails_and_counts(quadrants: Callable[..., DeviceData]) -> None:
    from dataqa.errors import EngineError
    from dataqa.tune.study import budget_left, run_round_trials

    plan = RoundPlan(2, "joint", 2, 1, "s", "random")
    study = optuna.create_study(direction="maximize")
    data = quadrants(n=60)
    objective = Objective(data, np.arange(40), np.arange(40, 60), plan,
                          Space({}, dict(BASE, lr=-1.0)), STOP, EngineParams(), seed=0)
    ran = run_round_trials(study, objective, trials=2, catch=(EngineError,))
    assert ran == 2 and budget_left(study, 2) == 0  # errors use the budget: no endless retry
    t = study.trials[0]
    assert t.state == optuna.trial.TrialState.FAIL and t.user_attrs["status"] == "error"
    assert "lr=-1.0" in t.user_attrs["message"]
