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


def get_fidelity(small: Sequence[float], large: Sequence[float], *,
                 min_spearman: float, small_name: str = "small",
                 large_name: str = "large") -> dict[str, Any]:
    """Spearman rank correlation of the same configurations' scores on two subsets.

    ``small`` and ``large`` are (n,) scores, pair i being one configuration. Returns
    ``rho`` (None when undefined), ``n``, ``trustworthy`` (bool, or None when there are
    fewer than 3 pairs or a side has no spread) and a ``message`` for the report.
    """
    pairs = [(float(a), float(b)) for a, b in zip(small, large, strict=True)
             if math.isfinite(float(a)) and math.isfinite(float(b))]
    n = len(pairs)
    out: dict[str, Any] = {"n": n, "rho": None, "p_value": None, "trustworthy": None,
                           "min_spearman": min_spearman, "small": small_name,
                           "large": large_name}
    if n < 3:
        out["message"] = (f"only {n} configuration(s) ran on both '{small_name}' and "
                          f"'{large_name}': too few to judge the small subset's fidelity "
                          "(raise tune.rounds.fine.top_k and trials)")
        return out
    xs, ys = zip(*pairs, strict=True)
    if len(set(xs)) < 2 or len(set(ys)) < 2:
        out["message"] = (f"the scores on '{small_name if len(set(xs)) < 2 else large_name}' "
                          "are all equal: no ranking to compare")
        return out
    res = stats.spearmanr(xs, ys)
    rho, p = float(res.statistic), float(res.pvalue)
    out.update(rho=rho, p_value=p, trustworthy=rho >= min_spearman)
    if rho >= min_spearman:
        out["message"] = (f"the top {n} configurations rank alike on '{small_name}' and "
                          f"'{large_name}' (Spearman rho = {rho:.2f} >= {min_spearman:g}): "
                          "the small subset is a fair proxy")
    else:
        out["message"] = (f"WARNING: the top {n} configurations rank differently on "
                          f"'{small_name}' and '{large_name}' (Spearman rho = {rho:.2f} < "
                          f"{min_spearman:g}): the small subset cannot be trusted to pick "
                          "configurations; search on a larger subset or with more epochs")
    return out
