"""``light``: images much paler (washed out, over-exposed) than their peers.

Value: the image's *shadow level*, luminance in [0, 1], the mirror of ``dark``'s
highlight level::

    level = min(p05, max(0, p95 - ((p95 - mean)^2 + std^2) / (p95 - mean)))

(the second term is the dark level of a two-level image with this background (p95),
mean and std: it sees thin dark strokes on a white page that the 5th percentile
misses). Brightening an image moves
its shadows towards white, so the robust z is taken on ``-log(1 - level)``, the
log of the room left below white: a copy whose shadows went from 0 to 0.6 sits
``-log(0.4) = 0.92`` above its class.

Absolute bound (decision): shadows above ``absolute_min`` (default 0.92, about
235/255: the darkest pixels are nearly white, a blank or blown-out frame) are light in
any dataset; null disables it.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from pydantic import Field

from dataqa.checks import register
from dataqa.checks.base import AuditContext
from dataqa.checks.quality import StatCheck, stat
from dataqa.params.base import BIG, Section

EPS = 1.0 / 255.0  # one grey level: keeps log finite for an all-white image


class LightSettings(Section):
    """``audit.settings.light``."""

    threshold: float = Field(3.5, gt=0, le=100, description="robust z above the class median of -log(1 - shadow level)")
    floor: float = Field(0.15, gt=0, le=100, description="least scale of -log(1 - shadow level)")
    min_class_size: int = Field(20, ge=1, le=BIG, description="smaller classes are compared with the whole dataset")
    absolute_min: float | None = Field(0.92, ge=0, le=1, description="shadow level over this is light regardless")


def shadow_level(mean: np.ndarray, std: np.ndarray, p05: np.ndarray, p95: np.ndarray
                 ) -> np.ndarray:
    """``min(p05, max(0, p95 - ((p95 - mean)^2 + std^2) / (p95 - mean)))``, shape (N,).
    A flat image (mean = p95) has no dark part: its level is p05."""
    drop = p95 - mean
    ok = drop > 1e-6
    two_level = np.where(ok, p95 - (drop * drop + std * std) / np.where(ok, drop, 1.0), 1.0)
    return np.minimum(p05, np.maximum(0.0, two_level))


@register
class Light(StatCheck):
    name = "light"
    Settings = LightSettings
    description = "much paler / more washed out than the other images of its class"
    direction: ClassVar = "high"
    formula = ("shadow level = min(5th percentile, dark level of a two-level image with "
               "the same 95th percentile, mean and std) of luminance in [0, 1]")
    transform_name = "-log(1 - shadow level)"

    def values(self, ctx: AuditContext, decoded: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        m = ctx.manifest
        level = shadow_level(stat(m, "stat_mean", decoded), stat(m, "stat_std", decoded),
                             stat(m, "stat_p05", decoded), stat(m, "stat_p95", decoded))
        return level, -np.log(np.maximum(1.0 - level, EPS))

    def inverse(self, transformed: float) -> float:
        return float(1.0 - np.exp(-transformed))

    def absolute_bound(self, value: np.ndarray, ctx: AuditContext, decoded: np.ndarray
                       ) -> tuple[np.ndarray, np.ndarray] | None:
        bound = self.settings.absolute_min
        if bound is None:
            return None
        room = np.clip((1.0 - value) / (1.0 - bound), 0.0, 0.98)
        return value > bound, 0.5 * room
