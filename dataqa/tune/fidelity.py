"""Subsample fidelity: can the small subset's ranking of configurations be trusted?

The fine round first re-runs the joint round's top configurations on its larger
subset (with more epochs). If the two rankings agree (Spearman's rho high), searching
on the small subset was sound; if not, the cheap rounds may have chosen the wrong
region and the report says so.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from scipy import stats


def spearman_interval(rho: float, n: int, *, level: float = 0.95) -> tuple[float, float]:
    """Confidence interval of a Spearman rho from ``n`` pairs: Fisher's z with the
    Fieller-Hartley-Pearson standard error sqrt(1.06 / (n - 3)) (n >= 4)."""
    if n < 4:
        return (-1.0, 1.0)
    z = math.atanh(max(min(rho, 0.999999), -0.999999))
    half = stats.norm.ppf(0.5 + level / 2) * math.sqrt(1.06 / (n - 3))
    return (min(math.tanh(z - half), rho), max(math.tanh(z + half), rho))


def get_fidelity(small: Sequence[float], large: Sequence[float], *,
                 min_spearman: float, min_configs: int = 5, small_name: str = "small",
                 large_name: str = "large") -> dict[str, Any]:
    """Spearman rank correlation of the same configurations' scores on two subsets, with
    its 95% interval.

    ``small`` and ``large`` are (n,) scores, pair i being one configuration. Returns
    ``rho`` and ``interval`` (None when undefined), ``n``, ``trustworthy`` (True when the
    whole interval is at or above ``min_spearman``, False when it is wholly below, None
    otherwise: fewer than ``min_configs`` pairs, no spread, or an interval that straddles
    the threshold) and a ``message`` for the report.
    """
    pairs = [(float(a), float(b)) for a, b in zip(small, large, strict=True)
             if math.isfinite(float(a)) and math.isfinite(float(b))]
    n = len(pairs)
    out: dict[str, Any] = {"n": n, "rho": None, "p_value": None, "interval": None,
                           "trustworthy": None, "min_spearman": min_spearman,
                           "min_configs": min_configs, "small": small_name,
                           "large": large_name}
    if n < max(min_configs, 3):
        out["message"] = (f"not enough configurations to judge: {n} ran on both "
                          f"'{small_name}' and '{large_name}', at least {min_configs} are "
                          "needed for a rank correlation worth reading (raise "
                          "tune.rounds.fine.top_k and tune.rounds.fine.trials)")
        return out
    xs, ys = zip(*pairs, strict=True)
    if len(set(xs)) < 2 or len(set(ys)) < 2:
        out["message"] = (f"the scores on '{small_name if len(set(xs)) < 2 else large_name}' "
                          "are all equal: no ranking to compare")
        return out
    res = stats.spearmanr(xs, ys)
    rho, p = float(res.statistic), float(res.pvalue)
    lo, hi = spearman_interval(rho, n)
    out.update(rho=rho, p_value=p, interval=[lo, hi])
    span = f"Spearman rho = {rho:.2f}, 95% interval {lo:.2f} to {hi:.2f}, n = {n}"
    if lo >= min_spearman:
        out["trustworthy"] = True
        out["message"] = (f"the top {n} configurations rank alike on '{small_name}' and "
                          f"'{large_name}' ({span}, all >= {min_spearman:g}): the small "
                          "subset is a fair proxy")
    elif hi < min_spearman:
        out["trustworthy"] = False
        out["message"] = (f"WARNING: the top {n} configurations rank differently on "
                          f"'{small_name}' and '{large_name}' ({span}, all < "
                          f"{min_spearman:g}): the small subset cannot be trusted to pick "
                          "configurations; search on a larger subset or with more epochs")
    else:
        out["message"] = (f"undecided: {span} straddles {min_spearman:g}; "
                          f"{n} configurations cannot tell whether '{small_name}' ranks "
                          f"configurations as '{large_name}' does (more configurations "
                          "would narrow the interval)")
    return out
