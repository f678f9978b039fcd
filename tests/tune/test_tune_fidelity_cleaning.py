"""Subsample fidelity (Spearman of the same configurations on two subsets) and the
'does cleaning help' verdict (difference against the seed spread)."""

from __future__ import annotations

import pytest

from dataqa.tune.cleaning import get_cleaning_verdict, summarise
from dataqa.tune.fidelity import get_fidelity


@pytest.mark.parametrize(("small", "large", "rho", "trust"), [
    ([0.9, 0.8, 0.7, 0.6], [0.95, 0.9, 0.85, 0.7], 1.0, True),  # same order: trusted
    ([0.9, 0.8, 0.7, 0.6], [0.7, 0.85, 0.9, 0.95], -1.0, False),  # reversed: warning
    ([0.9, 0.8, 0.7, 0.6], [0.9, 0.7, 0.8, 0.6], 0.8, True),  # one swap: rho 0.8 >= 0.5
    ([0.9, 0.8, 0.7, 0.6], [0.8, 0.9, 0.6, 0.7], 0.6, True),  # two swaps: rho 0.6
    ([0.9, 0.8, 0.7, 0.6], [0.7, 0.9, 0.6, 0.8], 0.0, False),  # unrelated: rho 0
    ([0.9, 0.8], [0.9, 0.8], None, None),  # two pairs: cannot judge
    ([0.9, 0.8, 0.7], [0.5, 0.5, 0.5], None, None),  # no spread on the large subset
    ([0.9, float("nan"), 0.7, 0.6, 0.5], [0.9, 0.1, 0.8, 0.7, 0.6], 1.0, True),  # NaN pair dropped
])
def test_get_fidelity(small: list, large: list, rho: float | None, trust: bool | None) -> None:
    out = get_fidelity(small, large, min_spearman=0.5, small_name="p10", large_name="p100")
    if rho is None:
        assert out["rho"] is None
    else:
        assert out["rho"] == pytest.approx(rho)
    assert out["trustworthy"] is trust
    assert ("WARNING" in out["message"]) is (trust is False)
    assert "p10" in out["message"] or "p100" in out["message"] or "too few" in out["message"]


@pytest.mark.parametrize(("clean", "raw", "exceeds", "word"), [
    ([0.95, 0.96, 0.97], [0.90, 0.91, 0.92], True, "cleaning helps"),  # +0.05 >> spread 0.02
    ([0.90, 0.91, 0.92], [0.95, 0.96, 0.97], True, "cleaning hurts"),  # the other way round
    ([0.93, 0.95, 0.97], [0.92, 0.94, 0.96], False, "no clear effect"),  # +0.01 < spread 0.04
    ([0.95], [0.90], True, "cleaning helps"),  # one seed each: spread 0, any difference
])
def test_cleaning_verdict(clean: list, raw: list, exceeds: bool, word: str) -> None:
    out = get_cleaning_verdict(clean, raw)
    assert out["exceeds_spread"] is exceeds
    assert out["verdict"].startswith(word)
    assert out["difference"] == pytest.approx(sum(clean) / len(clean) - sum(raw) / len(raw))
    assert out["spread"] == pytest.approx(out["clean"]["std"] + out["raw"]["std"])
    assert (out["p_value"] is None) is (len(clean) < 2)


def test_summarise_uses_sample_std() -> None:
    s = summarise([0.9, 0.92, 0.94])
    assert s["mean"] == pytest.approx(0.92)
    assert s["std"] == pytest.approx(0.02)  # ddof=1
    assert summarise([0.5])["std"] == 0.0
