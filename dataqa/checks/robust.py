"""Robust statistics shared by the checks: median/MAD z-scores, globally or per class.

Why median and MAD rather than mean and standard deviation: the images we want to find
are the outliers, and with mean/std they inflate the very spread they are measured
against (one black frame among 50 photos moves the mean and std a lot, the median and
MAD hardly at all). Why a floor on the scale: a uniform dataset (every image 28x28,
every background black) has MAD = 0, and dividing by it would call every tiny
difference an outlier; the floor says "differences smaller than this are never
remarkable", in the statistic's own units.

All functions are vectorised over rows; per-class statistics use one pandas groupby,
never a Python loop over images.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

MAD_TO_SIGMA = 1.4826  # MAD of a normal distribution times this = its standard deviation

Direction = Literal["low", "high", "both"]


@dataclass(frozen=True)
class Reference:
    """Centre and scale of one group (a class, or the whole dataset)."""

    center: float  # median
    scale: float  # max(1.4826 * MAD, floor)
    n: int  # values the centre and scale were computed from
    floored: bool  # True when the floor, not the MAD, set the scale


@dataclass(frozen=True)
class References:
    """The whole dataset's reference and those of the groups that had their own."""

    overall: Reference
    groups: dict[str, Reference]  # str(group key) -> its reference


def robust_reference(values: np.ndarray, *, floor: float) -> Reference:
    """Median and floored MAD scale of the finite entries of ``values`` (shape (N,))."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return Reference(center=float("nan"), scale=float(floor), n=0, floored=True)
    center = float(np.median(v))
    mad = MAD_TO_SIGMA * float(np.median(np.abs(v - center)))
    return Reference(center=center, scale=max(mad, floor), n=int(v.size), floored=mad < floor)


def get_robust_z(values: np.ndarray, *, floor: float, groups: np.ndarray | None = None,
                 min_group_size: int = 20, min_size: int = 8,
                 ) -> tuple[np.ndarray, References]:
    """Robust z-scores ``(x - median) / max(1.4826 * MAD, floor)``, shape (N,).

    Args:
        values: (N,) floats; NaN/inf entries (undecodable images) get z = NaN and do not
            enter any median.
        floor: least scale, in the units of ``values`` (> 0).
        groups: optional (N,) group keys (class labels). A group with at least
            ``min_group_size`` finite values is compared with itself; smaller groups
            and rows whose key is missing are compared with the whole dataset.
        min_size: with fewer finite values than this in the whole dataset no reference
            is meaningful and every z is NaN (nothing gets flagged).

    Returns:
        ``(z, references)``: the whole dataset's :class:`Reference` and, for each
        group that had its own, that group's (:class:`References`).
    """
    if not floor > 0:
        raise ValueError(f"floor must be > 0, got {floor}")
    v = np.asarray(values, dtype=float)
    finite = np.isfinite(v)
    z = np.full(v.shape, np.nan)
    overall = robust_reference(v, floor=floor)
    refs: dict[str, Reference] = {}
    if overall.n < min_size:
        return z, References(overall, refs)
    center = np.full(v.shape, overall.center)
    scale = np.full(v.shape, overall.scale)
    if groups is not None:
        keys = pd.Series(np.asarray(groups, dtype=object)).where(finite)
        frame = pd.DataFrame({"k": keys, "v": np.where(finite, v, np.nan)}).dropna()
        if len(frame):
            grouped = frame.groupby("k", sort=True)["v"]
            med = grouped.median()
            mad = MAD_TO_SIGMA * (frame["v"] - frame["k"].map(med)).abs().groupby(
                frame["k"]).median()
            count = grouped.size()
            own = count[count >= min_group_size].index
            for key in own:
                refs[str(key)] = Reference(center=float(med[key]),
                                           scale=max(float(mad[key]), floor),
                                           n=int(count[key]), floored=float(mad[key]) < floor)
            key_series = pd.Series(np.asarray(groups, dtype=object))
            has_own = key_series.isin(own).to_numpy() & finite
            center[has_own] = key_series[has_own].map(med).to_numpy(dtype=float)
            scale[has_own] = np.maximum(key_series[has_own].map(mad).to_numpy(dtype=float),
                                        floor)
    z[finite] = (v[finite] - center[finite]) / scale[finite]
    return z, References(overall, refs)


def signed_excess(z: np.ndarray, direction: Direction) -> np.ndarray:
    """How far into the flagged tail each z lies (>= 0; NaN stays NaN): ``-z`` for
    ``low``, ``z`` for ``high``, ``|z|`` for ``both``."""
    if direction == "low":
        out = -z
    elif direction == "high":
        out = z
    else:
        out = np.abs(z)
    return np.where(np.isnan(out), np.nan, np.maximum(out, 0.0))


def excess_to_score(excess: np.ndarray, threshold: float) -> np.ndarray:
    """Map tail excess (>= 0, NaN = not evaluated) to a score in [0, 1], 1 = clean.

    ``1 / (1 + (excess / threshold)^2)``: 1 at the centre, exactly 0.5 at the threshold
    (so "flagged" and "score < 0.5" agree), towards 0 far out; NaN gives 1.
    """
    r = np.nan_to_num(np.asarray(excess, dtype=float), nan=0.0) / threshold
    return 1.0 / (1.0 + r * r)


def threshold_value(ref: Reference, threshold: float, direction: Direction
                    ) -> dict[str, float]:
    """The z threshold translated back into the statistic's units for one reference
    (what the report shows: "flagged below 0.21")."""
    out: dict[str, float] = {}
    if direction in ("low", "both"):
        out["below"] = ref.center - threshold * ref.scale
    if direction in ("high", "both"):
        out["above"] = ref.center + threshold * ref.scale
    return out


__all__ = ["MAD_TO_SIGMA", "Reference", "References", "robust_reference", "get_robust_z",
           "signed_excess", "excess_to_score", "threshold_value"]
