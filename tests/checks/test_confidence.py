"""Confidence histograms of the out-of-fold max softmax probability: exact counts."""

from __future__ import annotations

import numpy as np
import pytest

from dataqa.checks.confidence import get_confidence_histogram, get_max_probs

NAN = float("nan")
# rows: max prob, given label, predicted class -> what each row proves
PROBS = np.array([
    [0.95, 0.05],  # sure and right (label 0)
    [0.55, 0.45],  # unsure but right (label 0)
    [0.30, 0.70],  # fairly sure, disagrees with label 0
    [0.02, 0.98],  # sure and right (label 1)
    [NAN, NAN],  # undecodable: left out everywhere
    [0.35, 0.65],  # label unknown (-1): counted overall only
])
LABELS = np.array([0, 0, 0, 1, 0, -1])


def test_max_probs():
    np.testing.assert_allclose(get_max_probs(PROBS), [0.95, 0.55, 0.7, 0.98, NAN, 0.65])


def test_histogram_exact():
    h = get_confidence_histogram(PROBS, LABELS, classes=["a", "b"], bins=5)
    assert h["bin_edges"] == pytest.approx([0.0, 0.2, 0.4, 0.6, 0.8, 1.0])
    assert h["overall"]["counts"] == [0, 0, 1, 2, 2]  # 0.55 | 0.65, 0.7 | 0.95, 0.98
    assert h["overall"]["n"] == 5
    assert h["overall"]["share_low"] == 0.0  # nothing under 0.5
    assert h["agree"]["counts"] == [0, 0, 1, 0, 2]  # 0.55, 0.95, 0.98
    assert h["disagree"]["counts"] == [0, 0, 0, 1, 0]  # 0.7 predicted b, labelled a
    assert h["per_class"]["a"]["counts"] == [0, 0, 1, 1, 1]
    assert h["per_class"]["b"]["n"] == 1 and h["per_class"]["b"]["median"] == 0.98


def test_without_labels_and_empty_class():
    h = get_confidence_histogram(PROBS, None, bins=2)
    assert set(h) == {"bin_edges", "low", "overall"}  # no per-class without labels
    h = get_confidence_histogram(PROBS[:2], np.array([0, 0]), classes=["a", "b"], bins=2)
    assert h["per_class"]["b"] == {"counts": [0, 0], "n": 0, "mean": None, "median": None,
                                   "share_low": None}  # an empty class is JSON-safe


@pytest.mark.parametrize(("probs", "labels", "classes", "match"), [
    (np.ones(3), None, None, "shape"),  # not (N, K)
    (PROBS, LABELS[:2], None, "labels must have shape"),  # misaligned labels
    (PROBS, None, ["only one"], "class names"),  # names do not match K
])
def test_bad_input(probs, labels, classes, match):
    with pytest.raises(ValueError, match=match):
        get_confidence_histogram(probs, labels, classes=classes)
