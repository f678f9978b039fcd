"""Diagnoses as pure functions of curves: planted histories with exact verdicts, and the
boundary verdict on search spaces."""

from __future__ import annotations

import math

import pytest

from dataqa.params import TuneDiagnose
from dataqa.tune.diagnose import REMEDIES, diagnose_trial, find_edges
from dataqa.tune.space import Dim, Space

TH = TuneDiagnose(overfit_gap=0.1, overfit_rise=0.1, underfit_acc=0.7, noise_cv=0.5,
                  edge_fraction=0.1, still_improving=0.02)


def hist(train_loss, val_loss, train_acc, val_acc, std=None, batch=32):
    n = len(train_loss)
    std = std or [0.05 * t for t in train_loss]
    return [{"epoch": i + 1, "train_loss": train_loss[i], "val_loss": val_loss[i],
             "train_acc": train_acc[i], "val_acc": val_acc[i], "lr": 0.1, "seconds": 1.0,
             "train_loss_std": std[i], "batch_size": batch} for i in range(n)]


HEALTHY = hist([1.0, 0.5, 0.40, 0.39], [1.0, 0.6, 0.50, 0.50],
               [0.6, 0.85, 0.90, 0.90], [0.6, 0.82, 0.85, 0.85])

CASES = [
    (HEALTHY, "early_stopped", []),  # converged, small gap: nothing to say
    (hist([1.0, 0.4, 0.1, 0.02], [1.0, 0.8, 0.9, 1.2], [0.6, 0.9, 0.98, 1.0],
          [0.5, 0.6, 0.6, 0.58]), "early_stopped",
     ["overfitting"]),  # val loss up while train loss falls, and a 0.42 accuracy gap
    (hist([1.0, 0.5, 0.3], [1.0, 0.9, 0.85], [0.7, 0.95, 0.99], [0.6, 0.8, 0.85]),
     "early_stopped", ["overfitting"]),  # gap 0.14 > 0.1 at the last epoch, val loss fine
    (hist([1.4, 1.35, 1.33], [1.4, 1.36, 1.36], [0.3, 0.35, 0.36], [0.3, 0.33, 0.34]),
     "early_stopped", ["underfitting"]),  # both accuracies far below 0.7
    (hist([1.0, 0.5, 0.4], [1.0, 0.6, 0.5], [0.6, 0.85, 0.9], [0.6, 0.82, 0.85],
          std=[0.1, 0.3, 0.3]), "early_stopped",
     ["noisy"]),  # last-epoch step std 0.75 x mean loss
    (hist([1.0, 0.7, 0.5], [1.0, 0.7, 0.55], [0.6, 0.8, 0.85], [0.6, 0.78, 0.83]),
     "completed", ["more_epochs"]),  # all epochs used, val loss still fell 21% in the last epoch
    (hist([1.0, 0.7, 0.5], [1.0, 0.7, 0.55], [0.6, 0.8, 0.85], [0.6, 0.78, 0.83]),
     "early_stopped", []),  # same curves stopped early: not "too few epochs"
    (hist([1.0, 0.7, 0.69], [1.0, 0.7, 0.699], [0.6, 0.8, 0.85], [0.6, 0.78, 0.83]),
     "completed", []),  # flat at the end (0.1%): enough epochs
    (hist([2.3, float("nan")], [2.3, float("nan")], [0.1, 0.1], [0.1, 0.1]), "diverged",
     ["diverged"]),  # NaN loss: only the divergence verdict
    (hist([1.38, 1.38, 1.38], [1.38, 1.38, 1.38], [0.25] * 3, [0.25] * 3), "stalled",
     ["stalled"]),  # flat loss: only the stall verdict, not underfitting too
]


@pytest.mark.parametrize(("history", "status", "codes"), CASES)
def test_diagnose_trial(history: list, status: str, codes: list[str]) -> None:
    found = diagnose_trial(history, status, TH)
    assert [d.code for d in found] == codes
    for d in found:
        assert d.remedy == REMEDIES[d.code]  # every diagnosis carries the guide's remedy


def test_remedies_say_what_the_guide_says() -> None:
    assert all(w in REMEDIES["overfitting"] for w in ("More data", "augmentation", "L1/L2",
                                                     "dropout", "early stopping"))
    assert all(w in REMEDIES["underfitting"] for w in ("larger model", "less regularisation",
                                                      "longer training"))
    assert "larger batch" in REMEDIES["noisy"]
    assert "more epochs" in REMEDIES["more_epochs"]
    assert "widen" in REMEDIES["edge"]


SPACE = Space({"lr": Dim(1e-5, 1e-1, log=True), "dropout": Dim(0.0, 0.5),
               "momentum": Dim(0.8, 0.99), "batch_size": Dim(choices=(16, 32, 64, 128)),
               "optimizer": Dim(choices=("sgd", "adamw")), "depth": Dim(choices=(1, 2))})
MID = {"lr": 1e-3, "dropout": 0.25, "momentum": 0.9, "batch_size": 32, "optimizer": "sgd",
       "depth": 1}


@pytest.mark.parametrize(("best", "expected"), [
    (MID, []),  # everything inside: no verdict
    (dict(MID, lr=0.09), [("lr", "high")]),  # 0.09 is within 10% (log) of 0.1
    (dict(MID, lr=1.5e-5), [("lr", "low")]),  # near the low end on the log scale
    (dict(MID, lr=5e-5), []),  # 0.17 of the log range: not on the edge
    (dict(MID, dropout=0.0), []),  # dropout 0 is a natural bound: cannot widen below
    (dict(MID, dropout=0.49), [("dropout", "high")]),  # but its high end can grow
    (dict(MID, momentum=0.985), [("momentum", "high")]),  # 0.99 is not 1
    (dict(MID, batch_size=128), [("batch_size", "high")]),  # largest batch choice
    (dict(MID, batch_size=16, lr=0.1), [("lr", "high"), ("batch_size", "low")]),  # two edges
    (dict(MID, optimizer="adamw", depth=2), []),  # unordered / two choices: no edge
])
def test_find_edges(best: dict, expected: list) -> None:
    found = find_edges(SPACE, best, fraction=0.1)
    assert [(d.param, d.side) for d in found] == expected
    assert all(d.code == "edge" and "widen" in d.remedy for d in found)


def test_overfit_message_has_numbers() -> None:
    d = diagnose_trial(CASES[1][0], "early_stopped", TH)[0]
    assert "gap 0.420" in d.message and "rose from 0.8" in d.message
    assert math.isclose(TH.overfit_gap, 0.1)
