"""``dark``: images much darker than their peers (CleanVision's name).

Value: the image's *highlight level*, luminance in [0, 1]::

    level = max(p95, min(1, p05 + ((mean - p05)^2 + std^2) / (mean - p05)))

The 95th percentile alone is the brightness of a photo's bright parts, but on sparse
images (a thin white "1" on black covers about 5% of the pixels) it is background or
a stroke's soft edge. The second term is the bright level of a two-level image with
this background (p05), mean and std: exact for a white stroke on black however thin,
and it scales with the image's brightness like p95 does. Darkening an image scales
the level, so the robust z is taken on ``log(level)``: a copy at 40% brightness sits
``log(0.4) = -0.92`` below its class whatever the class's own brightness.

Absolute bound (decision): an image whose highlight level is under
``absolute_max`` (default 0.08, about 20/255: near-black, a failed capture) is dark
even in a dark dataset, because it shows almost nothing; set it to null to rely on
the relative rule only.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from pydantic import Field

from dataqa.checks import register
from dataqa.checks.base import AuditContext
from dataqa.checks.quality import StatCheck, stat
from dataqa.params.base import BIG, Section

EPS = 1.0 / 255.0  # one grey level: keeps log finite for an all-black image


class DarkSettings(Section):
    """``audit.settings.dark``."""

    threshold: float = Field(3.5, gt=0, le=100, description="robust z below the class median of log(highlight level)")
    floor: float = Field(0.15, gt=0, le=100, description="least scale of log(highlight level): ~15% brightness")
    min_class_size: int = Field(20, ge=1, le=BIG, description="smaller classes are compared with the whole dataset")
    absolute_max: float | None = Field(0.08, ge=0, le=1, description="highlight level under this is dark regardless")


def highlight_level(mean: np.ndarray, std: np.ndarray, p05: np.ndarray, p95: np.ndarray
                    ) -> np.ndarray:
    """``max(p95, min(1, p05 + ((mean - p05)^2 + std^2) / (mean - p05)))``, shape (N,).
    A flat image (mean = p05) has no bright part: its level is p95."""
    lift = mean - p05
    ok = lift > 1e-6
    two_level = np.where(ok, p05 + (lift * lift + std * std) / np.where(ok, lift, 1.0), 0.0)
    return np.maximum(p95, np.minimum(1.0, two_level))


@register
class Dark(StatCheck):
    name = "dark"
    Settings = DarkSettings
    description = "much darker than the other images of its class (or near-black)"
    direction: ClassVar = "low"
    formula = ("highlight level = max(95th percentile, bright level of a two-level image "
               "with the same 5th percentile, mean and std) of luminance in [0, 1]")
    transform_name = "log(highlight level)"

    def values(self, ctx: AuditContext, decoded: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        m = ctx.manifest
        level = highlight_level(stat(m, "stat_mean", decoded), stat(m, "stat_std", decoded),
                                stat(m, "stat_p05", decoded), stat(m, "stat_p95", decoded))
        return level, np.log(np.maximum(level, EPS))

    def inverse(self, transformed: float) -> float:
        return float(np.exp(transformed))

    def absolute_bound(self, value: np.ndarray, ctx: AuditContext, decoded: np.ndarray
                       ) -> tuple[np.ndarray, np.ndarray] | None:
        bound = self.settings.absolute_max
        if bound is None:
            return None
        return value < bound, 0.5 * np.clip(value / bound, 0.0, 0.98)
