"""Rounds sized by the data, the ranking metric, the decision in best_params.yaml and the
batch-cap note: pure functions with planted numbers."""

from __future__ import annotations

import pytest

from dataqa.params import TuneSizing, validate
from dataqa.params.tune import TuneParams
from dataqa.tune.compare import ab_verdict
from dataqa.tune.results import best_params_yaml, decide, separation, sizing_notices
from dataqa.tune.sizing import batch_note, shortfall, size_rounds
from dataqa.tune.space import RoundPlan
from dataqa.tune.start import Start
from dataqa.tune.trial import score_of, standard_error

SIZING = TuneSizing(min_train_per_class=20, min_val_per_class=5)
VAL = {"a": 40, "b": 40, "rare": 5}
COUNTS = {"p10": {"a": 16, "b": 16, "rare": 2},
          "p50": {"a": 80, "b": 80, "rare": 10},
          "p100": {"a": 160, "b": 160, "rare": 20},
          "top2": {"a": 16, "b": 16}, "top2_big": {"a": 90, "b": 90}}
SIZES = {"p10": 40, "p50": 200, "p100": 400, "top2": 32, "top2_big": 180}


def plan(name: str, subset: str, trials: int = 4) -> RoundPlan:
    return RoundPlan(1, name, trials, 3, subset, "qmc")


def test_a_short_round_moves_to_the_next_larger_subset_that_meets_the_minimum() -> None:
    plans, notes = size_rounds([plan("lr", "p10"), plan("fine", "p100")], train_counts=COUNTS,
                               sizes=SIZES, val_counts=VAL, sizing=SIZING)
    assert [p.subset for p in plans] == ["p100", "p100"]  # p50's rare class has 10 < 20
    lr = notes["lr"]
    assert lr["moved"] and not lr["below_minimum"] and lr["requested"] == "p10"
    assert "moved from subset 'p10' to 'p100'" in lr["message"]
    assert "under 20 training images ('a': 16, 'b': 16, 'rare': 2)" in lr["message"]
    assert notes["fine"]["message"] == "" and not notes["fine"]["moved"]


def test_class_subsets_move_only_to_subsets_of_the_same_classes() -> None:
    plans, notes = size_rounds([plan("lr", "top2")], train_counts=COUNTS, sizes=SIZES,
                               val_counts=VAL, sizing=SIZING)
    assert plans[0].subset == "top2_big" and notes["lr"]["moved"]


def test_no_subset_large_enough_runs_on_the_largest_and_says_so() -> None:
    val = dict(VAL, rare=3)  # the shared validation split is short: no subset can fix it
    plans, notes = size_rounds([plan("lr", "p10")], train_counts=COUNTS, sizes=SIZES,
                               val_counts=val, sizing=SIZING)
    assert plans[0].subset == "p100"
    assert notes["lr"]["below_minimum"]
    assert "below the per-class minimum" in notes["lr"]["message"]
    assert "under 5 validation images ('rare': 3)" in notes["lr"]["message"]
    assert "subsample.val_fraction" in notes["lr"]["message"]


def test_rounds_without_trials_keep_their_subset() -> None:
    plans, notes = size_rounds([plan("joint", "p10", trials=0)], train_counts=COUNTS,
                               sizes=SIZES, val_counts=VAL, sizing=SIZING)
    assert plans[0].subset == "p10" and notes == {}


def test_shortfall_counts_validation_of_the_subsets_classes_only() -> None:
    assert shortfall({"a": 30, "b": 30}, {"a": 9, "b": 9, "rare": 0}, SIZING) == []


def test_batch_cap_is_reported_when_it_bites() -> None:
    tune = validate(TuneParams, {})  # batch 16..256
    note = batch_note(tune, 20)  # 20 images: at most batch 4 for 4 steps per epoch
    assert note is not None and note["cap"] == 4 and note["asked"] == 256
    assert "capped at 4 by 20 training images" in note["message"]
    assert batch_note(tune, 4000) is None


START = Start({"lr": 2e-3, "batch_size": 64}, 12, "crossval's configuration")


def best_summary(batch: int, cap: dict | None, better: bool | None) -> dict:
    best = {"key": "fine-1", "value": 0.7, "se": 0.05, "round": "fine", "subset": "p100",
            "epochs": 4, "seed": 1, "config": {"lr": 0.01, "batch_size": batch},
            "metric": "val_acc (smoothed)"}
    sizing = {"lr": {"subset": "p100", "requested": "p10", "moved": True,
                     "below_minimum": True, "shortfall": ["1 class(es) under 20"],
                     "message": "m"}}
    sizing["joint"] = dict(sizing["lr"])
    baseline = None if better is None else ab_verdict(
        [0.60, 0.61], [0.70, 0.71] if better else [0.59, 0.60], a_name="start",
        b_name="tuned", n_val=400)
    if baseline is not None:
        baseline["epochs"] = 4
    summary = {"best": best, "rounds": [{"name": "fine", "batch_cap": cap, "sizing": {}}],
               "baseline": baseline, "notices": sizing_notices(sizing)}
    summary["decision"] = decide(START, best, baseline, epochs=4)
    summary["headline"] = summary["decision"]["headline"]
    return summary


def test_best_params_yaml_holds_the_start_unless_tuning_beat_it() -> None:
    import yaml

    text = best_params_yaml(best_summary(4, {"cap": 4, "n_train": 20, "asked": 256,
                                             "message": "batch size capped at 4"}, True))
    assert text.startswith("# Tuning helped: +0.1000 validation accuracy over the start")
    assert "# NOTE: batch_size 4 was forced by the subset" in text
    doc = yaml.safe_load(text)
    assert doc["choice"] == "tuned" and doc["params"]["batch_size"] == 4
    assert doc["score"] == pytest.approx(0.705) and doc["trial"] == "fine-1"
    # the sizing warning of two rounds, said once
    assert sum("below the per-class minimum" in n for n in doc["notes"]) == 1
    assert doc["notes"][1].startswith("rounds 'lr', 'joint' run below")
    worse = best_params_yaml(best_summary(64, None, False))
    assert worse.startswith("# Tuning did not help: the best tuned configuration scored "
                            "-0.0100")
    doc = yaml.safe_load(worse)
    assert doc["choice"] == "start" and doc["params"] == START.config
    assert doc["epochs"] == 12 and "did not beat it" in doc["why"]
    unchecked = yaml.safe_load(best_params_yaml(best_summary(64, None, None)))
    assert unchecked["choice"] == "start"  # no comparison, no proof: the start


@pytest.mark.parametrize(("metric", "expected"), [
    ("max", 0.72),  # the one-epoch spike
    ("smoothed", pytest.approx((0.65 + 0.72 + 0.62) / 3)),  # the spike averaged away
    ("checkpoint", 0.65),  # val acc at the lowest val loss (epoch 2)
])
def test_ranking_metric_does_not_reward_a_spike(metric: str, expected: object) -> None:
    history = [{"val_acc": a, "val_loss": v} for a, v in
               [(0.5, 1.2), (0.6, 1.0), (0.65, 0.9), (0.72, 0.95), (0.62, 1.0), (0.63, 1.0)]]
    assert score_of(history, metric, 3) == expected
    assert score_of([], metric) == 0.0


def test_short_runs_are_not_scored_by_their_warm_up() -> None:
    # 3 epochs of a one-cycle warm-up: the window is at most half the epochs, so the
    # score is where the run ends (0.95), not how fast it started (0.77 over all three)
    slow = [{"val_acc": a, "val_loss": 1.0} for a in (0.40, 0.94, 0.96)]
    fast = [{"val_acc": a, "val_loss": 1.0} for a in (0.89, 0.95, 0.93)]
    assert score_of(slow, "smoothed", 3) == pytest.approx(0.95)
    assert score_of(slow, "smoothed", 3) > score_of(fast, "smoothed", 3)
    assert score_of(slow[:1], "smoothed", 3) == pytest.approx(0.40)  # one epoch: itself


def test_standard_error_and_separation() -> None:
    assert standard_error(0.5, 100) == pytest.approx(0.05)
    assert standard_error(None, 100) is None
    recs = [{"key": f"fine-{i}", "state": "COMPLETE", "value": v, "n_val": 80,
             "se": standard_error(v, 80)} for i, v in enumerate([0.72, 0.70, 0.5])]
    sep = separation(recs)
    assert sep is not None and not sep["separated"]
    assert "cannot tell them apart" in sep["message"] and "80 validation images" in sep["message"]
    recs[1]["value"], recs[1]["se"] = 0.40, standard_error(0.40, 80)
    assert separation(recs)["separated"]  # type: ignore[index]


def test_runs_clock_prints_every_epoch_with_the_time_left() -> None:
    from dataqa.engine.fit import EpochLog
    from dataqa.tune.progress import RunsClock

    lines: list[str] = []
    clock = RunsClock("tune baseline", 2 * 3, emit=lines.append)
    for run in ("a", "b"):
        tick = clock.run(run, 3)
        ran = 2 if run == "a" else 3  # run a early-stops after 2 of its 3 epochs
        for e in range(1, ran + 1):
            assert tick(EpochLog(e, 1.0, 0.5, 1.0, 0.5, 0.1, 2.0, 0.1, 8)) is False
        clock.finished(3, ran)
    assert len(lines) == 5
    assert lines[0] == ("tune baseline a epoch 1/3: train loss 1.0000 val acc 0.5000  2.0 s; "
                        "left <= 10 s")  # 5 more epochs planned at 2 s each
    assert lines[2].startswith("tune baseline b epoch 1/3") and lines[2].endswith("<= 4 s")
    assert lines[-1].endswith("left <= 0 s")
