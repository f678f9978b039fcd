"""Search spaces and rounds from params: device budgets, batch sizes that fit, the LR
narrowed around round 1's best, the fine round narrowed around round 2's top trials."""

from __future__ import annotations

import math

import optuna
import pytest

from dataqa.errors import ParamsError
from dataqa.params import EngineParams, TuneParams, validate
from dataqa.tune.space import (
    DEVICE_BUDGETS,
    Dim,
    Space,
    batch_sizes,
    fine_space,
    joint_space,
    lr_space,
    plan_rounds,
)


def tune(**raw: object) -> TuneParams:
    return validate(TuneParams, raw)


@pytest.mark.parametrize(("raw", "device", "expected"), [
    ({}, "cpu", [(6, 3, "p10"), (8, 3, "p10"), (6, 4, "p100")]),  # CPU defaults
    ({}, "cuda", [(8, 4, "p10"), (16, 6, "p10"), (8, 12, "p100")]),  # GPU: 32 trials
    ({"rounds": {"joint": {"trials": 0}, "fine": {"epochs": 9, "subset": "big"}}}, "cpu",
     [(6, 3, "p10"), (0, 3, "p10"), (6, 9, "big")]),  # explicit values win over the device's
])
def test_plan_rounds(raw: dict, device: str, expected: list) -> None:
    plans = plan_rounds(tune(**raw), device)
    assert [(p.trials, p.epochs, p.subset) for p in plans] == expected
    assert [p.name for p in plans] == ["lr", "joint", "fine"]


def test_gpu_default_is_the_32_trial_search() -> None:
    assert sum(t for t, _ in DEVICE_BUDGETS["cuda"].values()) == 32


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
    (5e-2, 1.0, (5e-3, 1e-1)),  # clipped to the configured maximum
    (1e-3, 0.5, (1e-3 / 10**0.5, 1e-3 * 10**0.5)),  # half a decade each way
    (None, 1.0, (1e-5, 1e-1)),  # round 1 gave nothing: the whole range
])
def test_joint_space_narrows_lr(best_lr: float | None, decades: float,
                                expected: tuple[float, float]) -> None:
    space = joint_space(tune(rounds={"joint": {"lr_decades": decades}}), EngineParams(),
                        n_train=1000, best_lr=best_lr)
    lr = space.dims["lr"]
    assert lr.log
    assert lr.low == pytest.approx(expected[0]) and lr.high == pytest.approx(expected[1])


def test_lr_round_searches_only_lr() -> None:
    space = lr_space(tune(fixed={"batch_size": 128}), EngineParams(width=24), n_train=160)
    assert list(space.dims) == ["lr"]
    assert space.dims["lr"] == Dim(1e-5, 1e-1, log=True)
    assert space.fixed["batch_size"] == 32  # capped: 160 images, 4 steps per epoch
    assert space.fixed["width"] == 24  # null tune.fixed.width takes engine.width
    assert "lr" not in space.fixed


def test_joint_space_searches_what_params_say() -> None:
    space = joint_space(tune(space={"searched": ["lr", "dropout", "optimizer"],
                                    "optimizers": ["adamw"]}),
                        EngineParams(), n_train=1000, best_lr=1e-2)
    assert sorted(space.dims) == ["dropout", "lr"]
    assert space.fixed["optimizer"] == "adamw"  # one choice: fixed, not searched
    assert space.fixed["batch_size"] == 64  # not searched: tune.fixed


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
    ({"space": {"searched": ["lr", "colour"]}}, "tune.space.searched[1]: expected one of 'lr'"),  # unknown name
    ({"space": {"widths": []}}, "tune.space.widths"),  # nothing to choose from
    ({"rounds": {"lr": {"epochs": 0}}}, "tune.rounds.lr.epochs: expected a value in [1, 10000], got 0"),  # no epochs
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
