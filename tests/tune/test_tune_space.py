"""Search spaces and rounds from params and the start: the engine's knobs with the
start inside every space, batch sizes that fit, the LR narrowed around round 1's best,
the fine round narrowed around round 2's top trials and widened past an edge."""

from __future__ import annotations

import math

import optuna
import pytest

from dataqa.errors import ParamsError
from dataqa.params import TuneParams, validate
from dataqa.tune.space import (
    Dim,
    Space,
    batch_sizes,
    fine_space,
    joint_space,
    lr_space,
    plan_rounds,
    widen_edges,
)


def tune(**raw: object) -> TuneParams:
    return validate(TuneParams, raw)


# crossval's CPU configuration, as dataqa.tune.start.crossval_start gives it
START = {"arch": "small_cnn", "width": 16, "depth": 1, "dropout": 0.0, "unfreeze": 1.0,
         "optimizer": "adamw", "lr": 2e-3, "momentum": 0.9, "weight_decay": 5e-4,
         "batch_size": 64, "schedule": "onecycle", "plateau_factor": 0.5,
         "label_smoothing": 0.0, "crop_padding": 2, "flip": False}


def test_start_is_crossvals_configuration() -> None:
    import torch

    from dataqa.params import Params
    from dataqa.tune.start import crossval_start

    start = crossval_start(validate(Params, {}), torch.device("cpu"), n_train=1600)
    assert start.config == START and start.epochs == 12


def test_plan_rounds_leaves_null_budgets_to_the_time_budget() -> None:
    plans = plan_rounds(tune(rounds={"joint": {"trials": 0}, "fine": {"epochs": 9,
                                                                      "subset": "big"}}))
    assert [(p.name, p.trials, p.epochs, p.subset) for p in plans] == [
        ("lr", None, None, "p10"), ("joint", 0, None, "p10"), ("fine", None, 9, "big")]


def test_every_space_holds_the_start_and_searches_the_engines_knobs() -> None:
    t = tune()
    lr = lr_space(t, START)
    assert list(lr.dims) == ["lr"] and lr.fixed["arch"] == "small_cnn"
    joint = joint_space(t, START, n_train=1600, best_lr=2e-3)
    assert set(joint.dims) == {"arch", "schedule", "optimizer", "lr", "batch_size",
                               "weight_decay", "dropout", "momentum", "plateau_factor",
                               "width", "depth"}
    assert joint.dims["arch"].choices == ("small_cnn", "small_resnet")
    assert joint.dims["schedule"].choices == ("onecycle", "plateau", "cosine")
    for space in (lr, joint):
        full = dict(space.fixed, **space.params_of(START))
        assert all(d.contains(full[k]) for k, d in space.dims.items() if d.applies(full))
    # conditional knobs: depth only for small_resnet, plateau_factor only for plateau
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    study.enqueue_trial(joint.params_of(START))
    config = joint.suggest(study.ask())
    assert {k: config[k] for k in START} == START  # the start, exactly
    assert "depth" not in joint.params_of(START)  # small_cnn has no depth to search


def test_a_start_outside_the_configured_ranges_widens_them() -> None:
    odd = dict(START, lr=0.5, batch_size=8, width=12, weight_decay=0.1)
    joint = joint_space(tune(), odd, n_train=1600, best_lr=None)
    assert joint.dims["lr"].contains(0.5) and joint.dims["weight_decay"].contains(0.1)
    assert 8 in joint.dims["batch_size"].choices and 12 in joint.dims["width"].choices
    assert lr_space(tune(), odd).dims["lr"].high == 0.5


def test_a_pretrained_backbone_searches_only_what_applies() -> None:
    start = dict(START, arch="resnet18")
    joint = joint_space(tune(), start, n_train=1600, best_lr=1e-2, pretrained=True)
    assert not {"arch", "width", "depth", "dropout"} & set(joint.dims)
    assert {"lr", "weight_decay", "batch_size", "unfreeze"} <= set(joint.dims)
    assert joint.fixed["arch"] == "resnet18"
    assert "unfreeze" not in joint_space(tune(), START, n_train=1600, best_lr=None).dims


def test_a_best_value_on_the_edge_widens_the_next_round() -> None:
    wide = Space({"weight_decay": Dim(1e-6, 1e-2, log=True), "dropout": Dim(0.0, 0.5),
                  "width": Dim(choices=(8, 16, 32))})
    best = {"weight_decay": 9.5e-3, "dropout": 0.25, "width": 32}
    fine = fine_space(wide, [best], margin=0.1, n_train=1000)
    widened, notes = widen_edges(fine, wide, best, fraction=0.1)
    assert widened.dims["weight_decay"].high == pytest.approx(1e-2 * 1e4)  # one span more
    assert 64 in widened.dims["width"].choices
    assert widened.dims["dropout"] == fine.dims["dropout"]  # mid-range: unchanged
    assert sorted(n["param"] for n in notes) == ["weight_decay", "width"]
    assert "high end" in notes[0]["message"]


@pytest.mark.parametrize(("lo", "hi", "n_train", "expected"), [
    (16, 256, 10_000, [16, 32, 64, 128, 256]),  # plenty of data: the whole range
    (16, 256, 160, [16, 32]),  # 160 images: 4 steps per epoch allow at most 32
    (64, 256, 40, [8]),  # nothing in range fits: the largest that does
    (20, 100, 10_000, [32, 64]),  # only powers of two
])
def test_batch_sizes(lo: int, hi: int, n_train: int, expected: list) -> None:
    assert batch_sizes(lo, hi, n_train=n_train) == expected


@pytest.mark.parametrize(("best_lr", "decades", "expected"), [
    (1e-3, 1.0, (1e-4, 1e-2)),  # x/÷ 10 around the best
    (5e-2, 1.0, (2e-3, 5e-1)),  # past the configured maximum (a best on the edge widens),
    # and down to the start's 2e-3 (every space holds the start)
    (1e-3, 0.5, (1e-3 / 10**0.5, 1e-3 * 10**0.5)),  # half a decade each way
    (None, 1.0, (1e-5, 1e-1)),  # round 1 gave nothing: the whole range
])
def test_joint_space_narrows_lr(best_lr: float | None, decades: float,
                                expected: tuple[float, float]) -> None:
    space = joint_space(tune(rounds={"joint": {"lr_decades": decades}}), START,
                        n_train=1000, best_lr=best_lr)
    lr = space.dims["lr"]
    assert lr.log
    assert lr.low == pytest.approx(expected[0]) and lr.high == pytest.approx(expected[1])


def test_joint_space_searches_what_params_say() -> None:
    space = joint_space(tune(space={"searched": ["lr", "dropout", "optimizer"],
                                    "optimizers": ["adamw"]}),
                        START, n_train=1000, best_lr=1e-2)
    assert sorted(space.dims) == ["dropout", "lr"]
    assert space.fixed["optimizer"] == "adamw"  # one choice: fixed, not searched
    assert space.fixed["batch_size"] == 64  # not searched: the start's


def test_fine_space_narrows_around_top_trials() -> None:
    joint = Space({"lr": Dim(1e-4, 1e-2, log=True), "dropout": Dim(0.0, 0.5),
                   "batch_size": Dim(choices=(16, 32, 64, 128)),
                   "optimizer": Dim(choices=("sgd", "adamw")),
                   "width": Dim(choices=(16, 32, 64))}, {"depth": 2})
    top = [{"lr": 1e-3, "dropout": 0.1, "batch_size": 32, "optimizer": "sgd", "width": 32},
           {"lr": 2e-3, "dropout": 0.2, "batch_size": 64, "optimizer": "sgd", "width": 32}]
    fine = fine_space(joint, top, margin=0.1, n_train=10_000)
    lr = fine.dims["lr"]
    pad = 0.1 * (math.log(1e-2) - math.log(1e-4))  # 10% of the log range on each side
    assert lr.low == pytest.approx(math.exp(math.log(1e-3) - pad))
    assert lr.high == pytest.approx(math.exp(math.log(2e-3) + pad))
    assert fine.dims["dropout"].low == pytest.approx(0.05)  # 0.1 - 10% of 0.5
    assert fine.dims["dropout"].high == pytest.approx(0.25)
    assert fine.dims["batch_size"].choices == (32, 64)  # ordered: the span of the top
    assert fine.fixed["optimizer"] == "sgd"  # one choice left: fixed
    assert fine.fixed["width"] == 32
    assert fine.fixed["depth"] == 2  # fixed stays fixed


def test_fine_space_clips_to_the_joint_range() -> None:
    joint = Space({"dropout": Dim(0.0, 0.5)})
    fine = fine_space(joint, [{"dropout": 0.0}, {"dropout": 0.01}], margin=0.2, n_train=100)
    assert fine.dims["dropout"].low == 0.0  # never below the round-2 range


@pytest.mark.parametrize(("raw", "message"), [
    ({"space": {"lr_min": 0.1, "lr_max": 0.01}}, "tune.space.lr_min: expected lr_min < lr_max"),  # reversed
    ({"space": {"lr_min": 0.0}}, "tune.space.lr_min: expected a value in (0, 10], got 0.0"),  # log range through zero
    ({"space": {"dropout_max": 1.0}}, "tune.space.dropout_max: expected a value in [0, 1)"),  # dropout 1
    ({"space": {"optimizers": ["lion"]}}, "tune.space.optimizers[0]: expected one of 'sgd' or 'adamw'"),  # unknown optimizer
    ({"space": {"searched": ["lr", "colour"]}}, "tune.space.searched[1]: expected one of 'arch'"),  # unknown name
    ({"space": {"widths": []}}, "tune.space.widths"),  # nothing to choose from
    ({"rounds": {"lr": {"epochs": 0}}}, "tune.rounds.lr.epochs: expected a value in [1, 10000], got 0"),  # no epochs
    ({"budget_seconds": 0}, "tune.budget_seconds: expected a value in [1, 2592000], got 0"),
    ({"fixed": {"lr": 0.1}}, "tune.fixed"),  # gone: the start replaces it
])
def test_bad_space_is_a_params_error(raw: dict, message: str) -> None:
    with pytest.raises(ParamsError) as info:
        tune(**raw)
    assert message in str(info.value)


def test_space_json_round_trip_and_suggest() -> None:
    space = Space({"lr": Dim(1e-4, 1e-2, log=True), "width": Dim(choices=(8, 16))},
                  {"depth": 1})
    again = Space.from_json(space.to_json())
    assert again == space
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    config = again.suggest(study.ask())
    assert config["depth"] == 1 and config["width"] in (8, 16)
    assert 1e-4 <= config["lr"] <= 1e-2
