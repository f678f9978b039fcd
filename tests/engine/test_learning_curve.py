"""Learning curve: splits, budget, slope, the recommendation table, and the stage."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch

from dataqa.dataset.manifest import COLUMNS
from dataqa.engine.fit import TrainConfig
from dataqa.engine.learning_curve import (
    check_fractions,
    get_learning_curve,
    get_slope,
    learning_curve_config,
    nested_subsets,
    recommend,
    stratified_holdout,
)
from dataqa.errors import ParamsError
from dataqa.io import write_npy, write_parquet
from dataqa.steps.learning_curve import run_stage


@pytest.fixture(autouse=True)
def one_thread():
    # tiny nets: one thread is faster than two, and far faster on a shared, loaded box
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


LABELS = np.array([0] * 50 + [1] * 20 + [2] * 3 + [3] * 1)


# --------------------------------------------------------------------------- splits
def test_stratified_holdout_counts():
    pool, val = stratified_holdout(LABELS, val_fraction=0.2, seed=0)
    # per class: 10 of 50, 4 of 20, 1 of 3 (round(0.6) = 1), 0 of 1 (never a whole class)
    assert np.bincount(LABELS[val], minlength=4).tolist() == [10, 4, 1, 0]
    assert sorted(np.concatenate([pool, val]).tolist()) == list(range(len(LABELS)))
    again = stratified_holdout(LABELS, val_fraction=0.2, seed=0)
    assert np.array_equal(again[1], val)  # same seed, same split


def test_nested_subsets_are_stratified_and_nested():
    pool, _ = stratified_holdout(LABELS, val_fraction=0.2, seed=0)  # 40, 16, 2, 1 rows
    subsets = nested_subsets(LABELS, pool, [0.1, 0.5, 1.0], seed=0)
    sizes = [np.bincount(LABELS[s], minlength=4).tolist() for s in subsets]
    assert sizes == [[4, 2, 1, 1],  # 10%: round(4), round(1.6), at least 1 per class
                     [20, 8, 1, 1],  # 50%
                     [40, 16, 2, 1]]  # 100%: the whole pool
    assert set(subsets[0]) <= set(subsets[1]) <= set(subsets[2])


@pytest.mark.parametrize("fractions", [
    [1.0],  # one point has no slope
    [0.0, 1.0],  # an empty subset
    [0.5, 1.5],  # more than the data
])
def test_bad_fractions(fractions):
    with pytest.raises(ParamsError, match="audit.learning_curve"):
        check_fractions(fractions)


def test_slope_exact():
    s = get_slope([0.25, 0.5, 1.0], [0.70, 0.80, 0.86], n_val=400)
    assert s.gain_per_doubling == pytest.approx(0.06)  # one doubling from 0.5 to 1.0
    assert s.per_log_fraction == pytest.approx(0.06 / math.log(2))
    assert s.gain_se == pytest.approx(math.sqrt((0.8 * 0.2 + 0.86 * 0.14) / 400))


# --------------------------------------------------------------------------- advice
@pytest.mark.parametrize(("kwargs", "actions", "phrase"), [
    # flat curve, balanced, every class big enough: nothing to do
    (dict(gain_per_doubling=0.002, imbalance=1.2, classes_under_min=[]), ["fine"],
     "Data quantity and balance are fine"),
    # the curve still climbs 5 points per doubling: more data helps
    (dict(gain_per_doubling=0.05, gain_se=0.01, imbalance=1.2, classes_under_min=[]),
     ["collect_more"], "rises by 5.0% per doubling"),
    # a climb within twice the noise is not a reason to collect more
    (dict(gain_per_doubling=0.015, gain_se=0.01, imbalance=1.2, classes_under_min=[]),
     ["fine"], "within the validation noise"),
    # 8:1 imbalance with every class above the minimum: class weights
    (dict(gain_per_doubling=0.0, imbalance=8.0, classes_under_min=[]), ["class_weights"],
     "8.0x"),
    # ...and the flat curve is still said in words
    (dict(gain_per_doubling=0.0, imbalance=8.0, classes_under_min=[]), ["class_weights"],
     "more of the same data would help little"),
    # a class under the minimum (and so imbalanced): augment it first, weights next
    (dict(gain_per_doubling=0.0, imbalance=8.6, classes_under_min=["7"]),
     ["augment_minority", "class_weights"], "Class '7' has fewer than 20"),
    # everything at once, in order of urgency
    (dict(gain_per_doubling=0.04, gain_se=0.005, imbalance=5.0, classes_under_min=["a", "b"]),
     ["augment_minority", "collect_more", "class_weights"], "Classes 'a', 'b' have"),
    # no curve measured: said so, the other rules still apply
    (dict(gain_per_doubling=None, imbalance=1.0, classes_under_min=[]), ["fine"],
     "No learning curve was measured"),
    # exactly at the imbalance threshold: weights (>=)
    (dict(gain_per_doubling=0.0, imbalance=3.0, classes_under_min=[]), ["class_weights"],
     "3.0x"),
])
def test_recommend(kwargs, actions, phrase):
    rec = recommend(min_per_class=20, **kwargs)
    assert rec.actions == actions
    assert phrase in rec.text


# --------------------------------------------------------------------------- training
def _easy_images(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two classes anyone can tell apart: a bright left half or a bright right half."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    x = rng.integers(0, 60, (n, 8, 8, 1))
    x[y == 0, :, :4] += 150
    x[y == 1, :, 4:] += 150
    return x.astype(np.uint8), y


TINY = TrainConfig(epochs=2, batch_size=16, lr=0.05, width=8, depth=1, seed=0)


def test_curve_budget_and_accuracy():
    x, y = _easy_images(100)
    points, n_pool, n_val = get_learning_curve(
        x, y, classes=["left", "right"], fractions=[0.25, 1.0], config=TINY,
        device=torch.device("cpu"), seed=0)
    assert (n_pool, n_val) == (80, 20)
    assert [p.n_train for p in points] == [20, 80]
    assert [p.epochs for p in points] == [8, 2]  # same images seen: 160 at each point
    assert [p.images_seen for p in points] == [160, 160]
    assert points[-1].val_accuracy >= 0.9  # trivially separable
    assert set(points[-1].per_class_accuracy) == {"left", "right"}
    again, _, _ = get_learning_curve(x, y, classes=["left", "right"], fractions=[0.25, 1.0],
                                     config=TINY, device=torch.device("cpu"), seed=0)
    assert [p.val_accuracy for p in again] == [p.val_accuracy for p in points]  # seeded


@pytest.mark.parametrize(("audit", "n_pool", "epochs", "batch"), [
    ({}, 1600, 3, 32),  # CPU default: 3 passes; 4,800 images / 150 steps -> batch 32
    ({"learning_curve_epochs": 20}, 10_000, 20, 128),  # enough steps: crossval's batch
    ({"learning_curve_epochs": 1}, 500, 1, 16),  # never under 16 images per batch
])
def test_config_budget(params_for, audit, n_pool, epochs, batch):
    cfg = learning_curve_config(params_for(audit=audit), torch.device("cpu"), n_pool)
    assert (cfg.epochs, cfg.batch_size, cfg.optimizer) == (epochs, batch, "adamw")
    assert (cfg.width, cfg.depth) == (16, 1)  # crossval's CPU net


def test_run_stage_writes_the_curve(params_for):
    params = params_for(audit={"learning_curve": [0.5, 1.0], "learning_curve_epochs": 1,
                               "min_per_class": 40},
                        engine={"device": "cpu"}, crossval={"width": 8, "depth": 1})
    x, y = _easy_images(120)
    n = len(y) + 1  # plus one undecodable row
    manifest = pd.DataFrame({c: None for c in COLUMNS}, index=range(n))
    manifest["id"], manifest["bytes"], manifest["split"] = np.arange(n), 1, "train"
    manifest["path"] = [f"{i}.png" for i in range(n)]
    manifest["label"] = [["left", "right"][v] for v in y] + ["left"]
    manifest.loc[n - 1, "decode_error"] = "truncated: planted"
    write_parquet(params.path("manifest"), manifest.astype(COLUMNS))
    write_npy(params.path("tensors"), np.concatenate([x, np.zeros((1, 8, 8, 1), np.uint8)]))
    write_parquet(params.path("tensor_index"),
                  pd.DataFrame({"id": np.arange(n), "decoded": [True] * (n - 1) + [False]}))
    assert run_stage(params) == 0
    out = json.loads(params.path("learning_curve").read_text())
    assert out["fractions"] == [0.5, 1.0] and len(out["points"]) == 2
    assert out["n_pool"] + out["n_val"] == 120  # the undecodable row is left out
    assert out["balance"]["counts"] == {"left": 60, "right": 60}
    assert out["balance"]["imbalance_ratio"] == 1.0
    assert out["recommendation"]["actions"][0] in ("fine", "collect_more")
    assert set(out["slope"]) == {"per_log_fraction", "gain_per_doubling", "gain_se"}
