"""Diagnoses as pure functions of curves: a table of synthetic curves, one per case the
guide names, each with its exact verdict; the numbers each verdict quotes; the boundary
verdict on search spaces."""

from __future__ import annotations

import math

import pytest

from dataqa.params import TuneDiagnose
from dataqa.tune.diagnose import REMEDIES, diagnose_trial, find_edges
from dataqa.tune.space import Dim, Space

TH = TuneDiagnose()  # the defaults params.yaml ships: gap 0.1, rise 0.05, chance 0.8, ...
LN2, LN4, LN10 = math.log(2), math.log(4), math.log(10)


def hist(train_loss, val_loss, train_acc, val_acc, std=None, batch=32):
    n = len(train_loss)
    std = std or [0.05 * t for t in train_loss]
    return [{"epoch": i + 1, "train_loss": train_loss[i], "val_loss": val_loss[i],
             "train_acc": train_acc[i], "val_acc": val_acc[i], "lr": 0.1, "seconds": 1.0,
             "train_loss_std": std[i], "batch_size": batch} for i in range(n)]


HEALTHY = hist([1.0, 0.5, 0.40, 0.395], [1.0, 0.6, 0.50, 0.50],
               [0.6, 0.85, 0.90, 0.90], [0.6, 0.82, 0.85, 0.85])

# (name, history, engine status, K classes, expected codes)
CASES = [
    ("healthy", HEALTHY, "early_stopped", 10, []),
    ("overfitting: big gap and val loss rising 3 epochs",
     hist([1.0, 0.4, 0.1, 0.05, 0.02], [1.0, 0.8, 0.9, 1.0, 1.2],
          [0.6, 0.9, 0.98, 0.99, 1.0], [0.5, 0.6, 0.6, 0.59, 0.58]),
     "early_stopped", 10, ["overfitting"]),
    ("gap alone (val loss still falling) is not overfitting",
     hist([1.0, 0.5, 0.3], [1.0, 0.9, 0.85], [0.7, 0.95, 0.99], [0.6, 0.8, 0.85]),
     "early_stopped", 10, []),
    ("val loss up for one epoch only is not overfitting",
     hist([1.0, 0.4, 0.1, 0.05], [1.0, 0.8, 0.7, 0.9], [0.6, 0.9, 0.98, 1.0],
          [0.5, 0.6, 0.62, 0.6]), "early_stopped", 10, []),
    ("val loss rising but train accuracy never above val: not overfitting",
     hist([0.60, 0.50, 0.45, 0.44, 0.43], [0.40, 0.30, 0.35, 0.40, 0.45],
          [0.70, 0.75, 0.78, 0.79, 0.80], [0.80, 0.88, 0.86, 0.85, 0.84]),
     "early_stopped", 2, []),
    ("the issue's case: train loss 0.57 on 2 classes is undertrained, not overfitting",
     hist([0.69, 0.62, 0.58, 0.57, 0.57], [0.68, 0.60, 0.62, 0.66, 0.70],
          [0.52, 0.62, 0.66, 0.67, 0.67], [0.55, 0.70, 0.68, 0.66, 0.64]),
     "early_stopped", 2, ["undertrained"]),
    ("undertrained: training loss near ln K",
     hist([2.30, 2.10, 2.00], [2.28, 2.12, 2.02], [0.12, 0.20, 0.25], [0.12, 0.21, 0.24]),
     "completed", 10, ["undertrained"]),
    ("undertrained: training loss still falling at the end",
     hist([1.0, 0.7, 0.5], [1.0, 0.7, 0.55], [0.6, 0.8, 0.85], [0.6, 0.78, 0.83]),
     "completed", 10, ["undertrained"]),
    ("same curves stopped early: they did not use every epoch",
     hist([1.0, 0.7, 0.5], [1.0, 0.7, 0.55], [0.6, 0.8, 0.85], [0.6, 0.78, 0.83]),
     "early_stopped", 10, []),
    ("flat at the end (0.1%): enough epochs",
     hist([1.0, 0.7, 0.699], [1.0, 0.7, 0.699], [0.6, 0.8, 0.85], [0.6, 0.78, 0.83]),
     "completed", 10, []),
    ("lr too high: NaN loss",
     hist([2.3, float("nan")], [2.3, float("nan")], [0.1, 0.1], [0.1, 0.1]),
     "diverged", 10, ["lr_too_high"]),
    ("lr too high: exploding loss the engine stopped",
     hist([2.3, 40.0], [2.3, 55.0], [0.1, 0.1], [0.1, 0.1]), "diverged", 10,
     ["lr_too_high"]),
    ("lr too high: oscillating training loss (up 2 times by > 10%)",
     hist([1.2, 0.8, 1.1, 0.7, 1.0, 0.9], [1.2, 0.9, 1.1, 0.8, 1.0, 0.95],
          [0.5, 0.7, 0.6, 0.75, 0.65, 0.7], [0.5, 0.68, 0.6, 0.72, 0.64, 0.69]),
     "completed", 10, ["lr_too_high"]),
    ("lr too low: the engine stalled",
     hist([1.38, 1.38, 1.38], [1.38, 1.38, 1.38], [0.25] * 3, [0.25] * 3), "stalled", 4,
     ["lr_too_low"]),
    ("lr too low: loss barely moves near chance (not undertrained too)",
     hist([LN4, 0.99 * LN4, 0.98 * LN4, 0.975 * LN4], [LN4] * 4, [0.26, 0.27, 0.27, 0.28],
          [0.25, 0.26, 0.26, 0.27]), "completed", 4, ["lr_too_low"]),
    ("a low flat loss has converged: not lr too low",
     hist([0.05, 0.049, 0.049, 0.0488], [0.06, 0.06, 0.06, 0.06], [0.99] * 4, [0.98] * 4),
     "completed", 10, []),
    ("noisy steps: larger batch",
     hist([1.0, 0.5, 0.4, 0.399], [1.0, 0.6, 0.5, 0.5], [0.6, 0.85, 0.9, 0.9],
          [0.6, 0.82, 0.85, 0.85], std=[0.1, 0.3, 0.3, 0.3], batch=8),
     "early_stopped", 10, ["noisy"]),
]


@pytest.mark.parametrize(("history", "status", "k", "codes"),
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_diagnosis_table(history: list, status: str, k: int, codes: list[str]) -> None:
    found = diagnose_trial(history, status, TH, n_classes=k)
    assert [d.code for d in found] == codes
    for d in found:
        assert d.remedy == REMEDIES[d.code]  # every diagnosis carries the guide's remedy
        assert any(ch.isdigit() for ch in d.message)  # and quotes its numbers


def test_never_overfitting_when_train_accuracy_stays_below_validation() -> None:
    """Whatever the losses do, a trial whose training accuracy never exceeds its
    validation accuracy is not called overfitting."""
    import numpy as np

    rng = np.random.default_rng(0)
    for _ in range(300):
        n = int(rng.integers(3, 9))
        val_acc = rng.uniform(0.3, 1.0, n)
        train_acc = val_acc - rng.uniform(0.0, 0.3, n)
        losses = rng.uniform(0.05, 3.0, (2, n))
        h = hist(list(losses[0]), list(losses[1]), list(train_acc), list(val_acc))
        assert "overfitting" not in [d.code for d in diagnose_trial(h, "early_stopped", TH,
                                                                     n_classes=5)]


def test_messages_quote_the_numbers() -> None:
    over = diagnose_trial(CASES[1][1], "early_stopped", TH, n_classes=10)[0]
    assert "gap 0.420" in over.message and "epoch 5" in over.message
    assert "rose over 3 epochs from 0.8 (epoch 2) to 1.2" in over.message
    under = diagnose_trial(CASES[5][1], "early_stopped", TH, n_classes=2)[0]
    assert "0.57" in under.message and "ln 2 = 0.693" in under.message
    osc = diagnose_trial(CASES[12][1], "completed", TH, n_classes=10)[0]
    assert "oscillates" in osc.message and "epoch 3: 0.8 -> 1.1" in osc.message
    low = diagnose_trial(CASES[14][1], "completed", TH, n_classes=4)[0]
    assert "barely moved" in low.message and "2.5%" in low.message
    noisy = diagnose_trial(CASES[16][1], "early_stopped", TH, n_classes=10)[0]
    assert "0.75 x" in noisy.message and "batch size 8" in noisy.message


def test_remedies_say_what_the_guide_says() -> None:
    assert all(w in REMEDIES["overfitting"] for w in ("More data", "augmentation", "L1/L2",
                                                     "dropout", "early stopping"))
    assert all(w in REMEDIES["undertrained"] for w in ("longer", "larger model",
                                                      "less regularisation"))
    assert "too high" in REMEDIES["lr_too_high"] and "lower" in REMEDIES["lr_too_high"]
    assert "too low" in REMEDIES["lr_too_low"] and "raise" in REMEDIES["lr_too_low"]
    assert "larger batch" in REMEDIES["noisy"]
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


def test_edge_says_how_to_widen() -> None:
    lr = find_edges(SPACE, dict(MID, lr=0.09), fraction=0.1)[0]
    assert "widen it to about 1 (tune.space.lr_max)" in lr.message
    bs = find_edges(SPACE, dict(MID, batch_size=128), fraction=0.1)[0]
    assert "larger batches than 128 (tune.space.batch_size_max)" in bs.message
