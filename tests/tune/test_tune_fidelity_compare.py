"""Subsample fidelity (Spearman of the same configurations on two subsets) and the one
A/B statistic of both comparisons (difference against the seed spread)."""

from __future__ import annotations

import pytest

from dataqa.tune.compare import ab_verdict, summarise
from dataqa.tune.fidelity import get_fidelity

UP6 = [0.9, 0.8, 0.7, 0.6, 0.5, 0.4]


@pytest.mark.parametrize(("small", "large", "rho", "trust", "word"), [
    (UP6, [0.95, 0.9, 0.85, 0.7, 0.6, 0.5], 1.0, True, "fair proxy"),  # same order
    (UP6, [0.5, 0.6, 0.7, 0.85, 0.9, 0.95], -1.0, False, "WARNING"),  # reversed
    # one swap in 5: rho 0.9, but 5 configurations leave a wide interval: undecided
    (UP6[:5], [0.9, 0.7, 0.8, 0.6, 0.5], 0.9, None, "undecided"),
    # the case: 4 (or 3) configurations are not enough to judge
    ([0.9, 0.8, 0.7, 0.6], [0.95, 0.9, 0.85, 0.7], None, None, "not enough configurations"),
    ([0.9, 0.8, 0.7], [0.9, 0.8, 0.7], None, None, "not enough configurations"),
    (UP6[:5], [0.5] * 5, None, None, "all equal"),  # no spread on the large subset
    ([0.9, float("nan"), 0.7, 0.6, 0.5, 0.4], [0.9, 0.1, 0.8, 0.7, 0.6, 0.5], 1.0, True,
     "fair proxy"),  # the NaN pair is dropped: 5 left
])
def test_get_fidelity(small: list, large: list, rho: float | None, trust: bool | None,
                      word: str) -> None:
    out = get_fidelity(small, large, min_spearman=0.5, min_configs=5, small_name="p10",
                       large_name="p100")
    if rho is None:
        assert out["rho"] is None and out["interval"] is None
    else:
        assert out["rho"] == pytest.approx(rho)
        lo, hi = out["interval"]
        assert lo <= out["rho"] <= hi  # the interval is given with every correlation
        assert f"{lo:.2f} to {hi:.2f}" in out["message"]
    assert out["trustworthy"] is trust
    assert word in out["message"]
    assert ("WARNING" in out["message"]) is (trust is False)


def test_spearman_interval_narrows_with_more_configurations() -> None:
    from dataqa.tune.fidelity import spearman_interval

    lo5, hi5 = spearman_interval(0.8, 5)
    lo30, hi30 = spearman_interval(0.8, 30)
    assert lo5 < lo30 < 0.8 < hi30 < hi5
    assert lo5 < 0  # 5 configurations cannot even exclude no correlation at rho 0.8


@pytest.mark.parametrize(("a", "b", "better", "worse", "word"), [
    ([0.90, 0.91, 0.92], [0.95, 0.96, 0.97], True, False, "clean is better by +0.0500"),
    ([0.95, 0.96, 0.97], [0.90, 0.91, 0.92], False, True, "unfiltered is better by +0.0500"),
    ([0.92, 0.94, 0.96], [0.93, 0.95, 0.97], False, False, "no clear difference"),  # noise
    ([0.90], [0.95], True, False, "clean is better"),  # one seed each: spread 0
])
def test_ab_verdict(a: list, b: list, better: bool, worse: bool, word: str) -> None:
    out = ab_verdict(a, b, a_name="unfiltered", b_name="clean", n_val=400)
    assert out["better"] is better and out["worse"] is worse
    assert out["verdict"].startswith(word)
    assert out["difference"] == pytest.approx(sum(b) / len(b) - sum(a) / len(a))
    assert out["spread"] == pytest.approx(out["a"]["std"] + out["b"]["std"])
    assert (out["p_value"] is None) is (len(a) < 2)
    assert out["b"]["se"] == pytest.approx((out["b"]["mean"] * (1 - out["b"]["mean"])
                                            / 400) ** 0.5)


def test_summarise_uses_sample_std() -> None:
    s = summarise([0.9, 0.92, 0.94])
    assert s["mean"] == pytest.approx(0.92)
    assert s["std"] == pytest.approx(0.02)  # ddof=1
    assert summarise([0.5])["std"] == 0.0
