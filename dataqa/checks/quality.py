"""Shared machinery of the image-statistic checks (``dark``, ``light``, ``blurry``,
``low_information``, ``odd_aspect_ratio``, ``odd_size``, ``complexity``).

Each of those checks derives one value per image from the manifest's statistics (never
from pixels: the scan decoded every image once), then flags the images whose value is a
robust outlier in one tail of the dataset's own distribution (median/MAD z-score, per
class where the content legitimately differs between classes, with a floor on the
scale so that a uniform dataset is not flagged wholesale), plus an optional absolute
bound for images that are broken whatever their peers look like (an all-black frame).

This module registers no check; it holds the common settings and the flagging step.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from dataqa.checks.base import AuditContext, Check, CheckResult
from dataqa.checks.robust import (
    Direction,
    Reference,
    excess_to_score,
    get_robust_z,
    signed_excess,
    threshold_value,
)


@dataclass(frozen=True)
class Outliers:
    """What :func:`find_stat_outliers` found; arrays have shape (N,)."""

    is_issue: np.ndarray  # bool
    score: np.ndarray  # [0, 1], 1 = clean
    z: np.ndarray  # robust z of the transformed value, NaN where not evaluated
    relative: np.ndarray  # bool, flagged by the relative rule
    absolute: np.ndarray  # bool, flagged by the absolute bound
    overall: Reference  # the whole dataset
    classes: dict[str, Reference]  # classes with their own reference


def find_stat_outliers(transformed: np.ndarray, *, direction: Direction, threshold: float,
                       floor: float, groups: np.ndarray | None, min_class_size: int,
                       absolute: np.ndarray | None = None,
                       absolute_score: np.ndarray | None = None) -> Outliers:
    """Flag robust outliers of ``transformed`` (N,) in the ``direction`` tail.

    A row is flagged when its z lies more than ``threshold`` into the tail, or when
    ``absolute`` (N,) bool marks it. ``absolute_score`` (N,) in [0, 0.5) is the score of
    absolutely flagged rows (how far past the bound); the final score is the smaller
    of the two scores. NaN values (undecodable rows) are never flagged and score 1.
    """
    z, refs = get_robust_z(transformed, floor=floor, groups=groups,
                           min_group_size=min_class_size)
    excess = signed_excess(z, direction)
    relative = np.nan_to_num(excess, nan=0.0) > threshold
    score = excess_to_score(excess, threshold)
    absolute = (np.zeros(len(score), dtype=bool) if absolute is None
                else np.asarray(absolute, dtype=bool) & np.isfinite(transformed))
    if absolute_score is not None:
        score = np.where(absolute, np.minimum(score, absolute_score), score)
    return Outliers(is_issue=relative | absolute, score=score, z=z, relative=relative,
                    absolute=absolute, overall=refs.overall, classes=refs.groups)


def stat(manifest: pd.DataFrame, column: str, decoded: np.ndarray) -> np.ndarray:
    """Column ``column`` as float (N,), NaN where the image did not decode or the value
    is missing."""
    values = pd.to_numeric(manifest[column], errors="coerce").to_numpy(dtype=float,
                                                                       na_value=np.nan)
    return np.where(decoded, values, np.nan)


def class_keys(manifest: pd.DataFrame) -> np.ndarray:
    """Per-row group key for per-class references: the label, None when missing."""
    labels = manifest["label"].astype(object)
    return labels.where(labels.notna(), None).to_numpy(dtype=object)


class StatCheck(Check):
    """A check that flags one tail of one derived per-image value.

    Subclasses set ``direction``, ``per_class`` (whether classes get their own
    reference), ``formula`` (the derived value in words, for the summary) and
    implement :meth:`values` (value shown in the report, transformed value the robust
    z is computed on) and, when they have one, :meth:`absolute_bound`.
    Their ``Settings`` have ``threshold`` and ``floor``, and ``min_class_size`` when
    ``per_class``.
    """

    direction: ClassVar[Direction] = "low"
    per_class: ClassVar[bool] = True
    formula: ClassVar[str] = ""
    transform_name: ClassVar[str] = ""  # e.g. "log(value)"; empty: the value itself

    @abc.abstractmethod
    def values(self, ctx: AuditContext, decoded: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray]:
        """(value, transformed), both (N,): the statistic and the scale it is judged on."""

    def inverse(self, transformed: float) -> float:
        """The value whose transform is ``transformed`` (thresholds in value units)."""
        return transformed

    def absolute_bound(self, value: np.ndarray, ctx: AuditContext, decoded: np.ndarray
                       ) -> tuple[np.ndarray, np.ndarray] | None:
        """``(mask, score)`` of rows flagged whatever the dataset looks like, or None;
        scores of flagged rows lie in [0, 0.5)."""
        return None

    def find(self, ctx: AuditContext) -> CheckResult:
        s: Any = self.settings
        decoded = ctx.decoded
        value, transformed = self.values(ctx, decoded)
        transformed = np.where(decoded, transformed, np.nan)
        bound = self.absolute_bound(value, ctx, decoded)
        out = find_stat_outliers(
            transformed, direction=self.direction, threshold=s.threshold, floor=s.floor,
            groups=class_keys(ctx.manifest) if self.per_class else None,
            min_class_size=getattr(s, "min_class_size", 0),
            absolute=None if bound is None else bound[0],
            absolute_score=None if bound is None else bound[1])
        return self.result(ctx, out.is_issue, out.score, self.summarize(out),
                           value=value, z=out.z)

    def summarize(self, out: Outliers) -> dict[str, Any]:
        s: Any = self.settings
        def describe(ref: Reference) -> dict[str, Any]:
            return {"median": _finite(self.inverse(ref.center)), "scale": ref.scale,
                    "n": ref.n, "scale_is_floor": ref.floored,
                    **{side: _finite(self.inverse(t)) for side, t in
                       threshold_value(ref, s.threshold, self.direction).items()}}

        tail = {"low": "below", "high": "above", "both": "beyond"}[self.direction]
        on = self.transform_name or "the value"
        return {
            "formula": self.formula,
            "rule": (f"flagged when {on} lies more than {s.threshold:g} robust standard "
                     f"deviations (1.4826 x MAD, at least {s.floor:g}) {tail} the median of "
                     + ("its class (the whole dataset for classes under "
                        f"{getattr(s, 'min_class_size', 0)} images)" if self.per_class
                        else "the whole dataset")),
            "n_relative": int(out.relative.sum()),
            "n_absolute": int(out.absolute.sum()),
            # median and thresholds in the value's units, scale in the transformed
            # value's units: for the whole dataset, and per class that has its own
            "reference": describe(out.overall),
            "class_references": {k: describe(r) for k, r in out.classes.items()},
        }


def _finite(x: float) -> float | None:
    """JSON has no NaN/inf: those become null."""
    return float(x) if np.isfinite(x) else None
