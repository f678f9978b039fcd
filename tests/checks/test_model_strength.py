"""The out-of-fold model is judged before its verdicts are trusted (issue 12, item 3)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dataqa import gate
from dataqa.engine.learning_curve import recommend
from dataqa.errors import ParamsError
from dataqa.model_strength import (
    ModelStrengthSettings,
    expected_calibration_error,
    judge_counts,
    judge_model,
    review_only,
    wilson_interval,
)
from dataqa.params import FilterParams, GateParams
from dataqa.prepare.filter import filter_rows


def _probs(labels: np.ndarray, accuracy: float, k: int, seed: int = 0) -> np.ndarray:
    """Confident predictions, right on ``accuracy`` of the rows."""
    rng = np.random.default_rng(seed)
    pred = labels.copy()
    wrong = rng.random(len(labels)) > accuracy
    pred[wrong] = (labels[wrong] + rng.integers(1, k, wrong.sum())) % k
    probs = np.full((len(labels), k), 0.1 / (k - 1))
    probs[np.arange(len(labels)), pred] = 0.9
    return probs


def test_wilson_interval_known_values() -> None:
    lo, hi = wilson_interval(76, 100)
    assert lo == pytest.approx(0.668, abs=2e-3) and hi == pytest.approx(0.833, abs=2e-3)
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_ece_of_a_calibrated_and_an_overconfident_model() -> None:
    labels = np.zeros(1000, dtype=np.int64)
    calibrated = np.tile([0.9, 0.1], (1000, 1))
    labels[:100] = 1  # 90 % right at confidence 0.9
    assert expected_calibration_error(calibrated, labels) == pytest.approx(0.0, abs=1e-9)
    over = np.tile([0.99, 0.01], (1000, 1))
    assert expected_calibration_error(over, labels) == pytest.approx(0.09, abs=1e-6)


def test_weak_two_class_model_like_the_issue_is_not_trusted() -> None:
    labels = np.repeat([0, 1], 200)
    model = judge_model(_probs(labels, 0.76, 2), labels)
    assert 0.70 < model["accuracy"] < 0.82
    assert model["majority_baseline"] == 0.5 and model["chance"] == 0.5
    assert not model["reliable"] and model["review_only_checks"] == ["label"]
    assert "too weak" in model["reason"] and "baseline of 50.0%" in model["reason"]
    assert "pretrained backbone" in model["advice"]


def test_strong_model_is_trusted_and_imbalance_raises_the_baseline() -> None:
    labels = np.repeat(np.arange(10), 100)
    assert judge_model(_probs(labels, 0.97, 10), labels)["reliable"]
    # 90 % of one class: 92 % accuracy is barely better than always saying that class
    skewed = np.r_[np.zeros(900, np.int64), np.ones(100, np.int64)]
    model = judge_model(_probs(skewed, 0.92, 2), skewed)
    assert model["baseline"] == 0.9 and not model["reliable"]


def test_few_images_widen_the_interval() -> None:
    # 19 of 20 right is 95 %, but 20 images cannot show it is clearly above 50 % + skill
    small = judge_counts(19, 20, np.array([10, 10]))
    big = judge_counts(950, 1000, np.array([500, 500]))
    assert small["skill_lower"] < big["skill_lower"]
    assert big["reliable"]


def test_settings_are_validated_and_ece_can_be_required() -> None:
    with pytest.raises(ParamsError, match="min_skill"):
        ModelStrengthSettings(min_skill=2.0)
    labels = np.repeat(np.arange(10), 100)
    probs = _probs(labels, 0.97, 10)
    probs = np.where(probs == 0.9, 0.999999, 1e-7)  # overconfident
    strict = ModelStrengthSettings(max_ece=0.01)
    model = judge_model(probs, labels, strict)
    assert not model["reliable"] and "calibrated" in model["reason"]


def _audit_metrics(reliable: bool) -> dict:
    labels = np.repeat([0, 1], 200)
    model = judge_model(_probs(labels, 0.99 if reliable else 0.7, 2), labels)
    return {"checks": {"label": {"rate": 0.3, "count": 120}, "dark": {"rate": 0.0}},
            "model": model}


def test_gate_does_not_evaluate_rules_of_a_weak_model() -> None:
    params = GateParams(max_rates={"label": 0.1, "dark": 0.01})
    weak = {r.name: r for r in gate.evaluate(params, _audit_metrics(False))}
    assert weak["max_rates.label"].passed is None
    assert "review-only" in weak["max_rates.label"].message
    assert "too weak" in weak["max_rates.label"].message
    assert weak["max_rates.dark"].passed is True
    strong = {r.name: r for r in gate.evaluate(params, _audit_metrics(True))}
    assert strong["max_rates.label"].passed is False  # 30 % > 10 %: a real failure
    assert review_only({"checks": {}}) == {}


def _frames(n: int = 6) -> tuple[pd.DataFrame, pd.DataFrame]:
    manifest = pd.DataFrame({"id": np.arange(n), "path": [f"c/{i}.png" for i in range(n)],
                             "label": ["a"] * n, "split": ["train"] * n,
                             "decode_error": [None] * n})
    issues = manifest[["id", "path", "label", "split"]].copy()
    flags = {"label": [1, 0, 0, 0, 0, 0], "light": [0, 1, 1, 0, 0, 0],
             "low_information": [0, 1, 1, 0, 0, 0], "grayscale": [0, 1, 0, 0, 0, 0]}
    for c, f in flags.items():
        issues[f"is_{c}_issue"] = np.asarray(f, dtype=bool)
        issues[f"{c}_score"] = np.where(np.asarray(f, dtype=bool), 0.1, 0.9)
    return manifest, issues


def test_filter_does_not_quarantine_on_a_weak_models_word() -> None:
    manifest, issues = _frames()
    params = FilterParams(policy={"label": "drop"})
    strong = filter_rows(manifest, issues, params=params)
    assert 0 in set(strong.quarantine["id"])
    weak = filter_rows(manifest, issues, params=params,
                       demoted={"label": "the model is too weak"})
    assert 0 not in set(weak.quarantine["id"])
    row = weak.clean.set_index("id").loc[0]
    assert row["review"] and "label" in row["review_checks"]
    assert weak.summary["checks"]["label"]["action"] == "review"


def test_several_independent_review_flags_quarantine_an_image() -> None:
    manifest, issues = _frames()
    result = filter_rows(manifest, issues, params=FilterParams())
    q = result.quarantine.set_index("id")
    assert list(q.index) == [1]  # light + low_information + grayscale; row 2 has two
    assert q.loc[1, "check"].startswith("several_checks")
    assert "3 independent checks" in q.loc[1, "reason"]
    off = filter_rows(manifest, issues, params=FilterParams(quarantine_min_flags=None))
    assert off.quarantine.empty
    with pytest.raises(ParamsError, match="quarantine_min_flags"):
        filter_rows(manifest, issues, params=FilterParams(quarantine_min_flags=1))


def test_learning_curve_never_says_fine_for_a_weak_model() -> None:
    weak = judge_counts(52, 100, np.array([50, 50]))
    advice = recommend(gain_per_doubling=0.0, gain_se=0.01, imbalance=1.0,
                       classes_under_min=[], min_per_class=10, model=weak)
    assert "fine" not in advice.actions and "weak_model" in advice.actions
    assert "fine" not in advice.text and "pretrained backbone" in advice.text
    strong = judge_counts(98, 100, np.array([50, 50]))
    assert recommend(gain_per_doubling=0.0, gain_se=0.01, imbalance=1.0,
                     classes_under_min=[], min_per_class=10, model=strong).actions == ["fine"]
