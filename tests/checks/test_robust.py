"""Robust z-scores: exact values, the floor, per-group references, NaN handling."""

from __future__ import annotations

import numpy as np
import pytest

from dataqa.checks.robust import (
    MAD_TO_SIGMA,
    excess_to_score,
    get_robust_z,
    robust_reference,
    signed_excess,
    threshold_value,
)

NAN = float("nan")


@pytest.mark.parametrize(("values", "floor", "center", "scale", "floored"), [
    ([1, 2, 3, 4, 100], 0.1, 3.0, MAD_TO_SIGMA * 1.0, False),  # the outlier moves neither
    ([5, 5, 5, 5, 6], 0.5, 5.0, 0.5, True),  # MAD 0: the floor sets the scale
    ([1, NAN, 3, np.inf, 2], 0.1, 2.0, MAD_TO_SIGMA * 1.0, False),  # non-finite ignored
    ([], 0.2, NAN, 0.2, True),  # nothing finite: no centre
])
def test_robust_reference(values, floor, center, scale, floored):
    ref = robust_reference(np.array(values, dtype=float), floor=floor)
    np.testing.assert_allclose([ref.center, ref.scale], [center, scale], equal_nan=True)
    assert ref.floored is floored


def test_z_global_exact():
    v = np.array([1, 2, 3, 4, 100, NAN], dtype=float)
    z, refs = get_robust_z(v, floor=0.1, min_size=3)
    expected = (v - 3.0) / MAD_TO_SIGMA
    np.testing.assert_allclose(z, expected, equal_nan=True)  # NaN row stays NaN
    assert (refs.overall.center, refs.overall.n, refs.groups) == (3.0, 5, {})


def test_z_per_group_and_fallback():
    # group a: 20 values around 0, group b: 20 values around 10, group c: 3 values
    # (under min_group_size: compared with the whole dataset), None: whole dataset
    rng = np.random.default_rng(0)
    a, b = rng.normal(0, 1, 20), rng.normal(10, 1, 20)
    v = np.concatenate([a, b, [10.0, 10.0, 10.0], [10.0]])
    groups = np.array(["a"] * 20 + ["b"] * 20 + ["c"] * 3 + [None], dtype=object)
    z, refs = get_robust_z(v, floor=0.01, groups=groups, min_group_size=20)
    ref_a = robust_reference(a, floor=0.01)
    ref_b = robust_reference(b, floor=0.01)
    ref_all = robust_reference(v, floor=0.01)
    np.testing.assert_allclose(z[:20], (a - ref_a.center) / ref_a.scale)
    np.testing.assert_allclose(z[20:40], (b - ref_b.center) / ref_b.scale)
    np.testing.assert_allclose(z[40:], (10.0 - ref_all.center) / ref_all.scale)
    assert set(refs.groups) == {"a", "b"}
    assert refs.overall == ref_all


def test_too_few_values_gives_no_reference():
    z, _ = get_robust_z(np.array([1.0, 50.0, NAN]), floor=0.1, min_size=8)
    assert np.isnan(z).all()  # nothing can be flagged from 2 values


def test_floor_must_be_positive():
    with pytest.raises(ValueError, match="floor"):
        get_robust_z(np.ones(10), floor=0.0)


@pytest.mark.parametrize(("direction", "expected"), [
    ("low", [2.0, 0.0, 0.0]),  # only the low tail counts
    ("high", [0.0, 0.5, 3.0]),  # only the high tail counts
    ("both", [2.0, 0.5, 3.0]),  # either tail
])
def test_signed_excess(direction, expected):
    z = np.array([-2.0, 0.5, 3.0])
    np.testing.assert_allclose(signed_excess(z, direction), expected)


@pytest.mark.parametrize(("excess", "score"), [
    (0.0, 1.0),  # at or inside the centre: clean
    (3.5, 0.5),  # exactly at the threshold: 0.5, so "flagged" means score < 0.5
    (7.0, 0.2),  # twice the threshold
    (NAN, 1.0),  # not evaluated: clean
])
def test_excess_to_score(excess, score):
    np.testing.assert_allclose(excess_to_score(np.array([excess]), 3.5), [score])


def test_threshold_value():
    ref = robust_reference(np.array([1, 2, 3, 4, 5.0]), floor=0.1)
    assert threshold_value(ref, 2.0, "both") == pytest.approx(
        {"below": 3 - 2 * MAD_TO_SIGMA, "above": 3 + 2 * MAD_TO_SIGMA})
