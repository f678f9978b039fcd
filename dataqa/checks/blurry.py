"""``blurry``: images much less sharp than their peers.

Value: *sharpness* = variance of the Laplacian (``stat_blur``) divided by the squared
mean gradient magnitude (``stat_gradient``), both at the normalised size (longer side
64 px). The raw Laplacian variance also drops with contrast and with how much
structure an image has (a dim or sparse but sharp image would look blurred); the ratio
of second- to first-derivative energy keeps only how high the finest frequencies
reach, which is what a blur cuts. On 48 photo crops its robust spread is 0.33 in log
units against 0.55 for Laplacian variance / luminance variance, so blurred copies
stand out further. The robust z is taken on ``log(sharpness)`` (a blur multiplies it),
per class. Nearly flat images (luminance std under ``min_std``) have no defined
sharpness and are not evaluated here (they are ``low_information``).

Only blur visible at the normalised size counts: a blur of under a pixel at 64 px
does not change what a model trained at ``engine.image_size`` sees.

No absolute bound: how sharp an image should be depends on its content (a foggy
landscape class is legitimately soft), so only the relative rule applies.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from pydantic import Field

from dataqa.checks import register
from dataqa.checks.base import AuditContext
from dataqa.checks.quality import StatCheck, stat
from dataqa.params.base import BIG, Section


class BlurrySettings(Section):
    """``audit.settings.blurry``."""

    threshold: float = Field(3.5, gt=0, le=100, description="robust z below the class median of log(sharpness)")
    floor: float = Field(0.25, gt=0, le=100, description="least scale of log(sharpness)")
    min_class_size: int = Field(20, ge=1, le=BIG, description="smaller classes are compared with the whole dataset")
    min_std: float = Field(0.02, ge=0, le=1, description="luminance std under which sharpness is undefined")


@register
class Blurry(StatCheck):
    name = "blurry"
    Settings = BlurrySettings
    description = "much less sharp than the other images of its class"
    direction: ClassVar = "low"
    formula = ("sharpness = variance of the Laplacian / (mean gradient magnitude)^2, at "
               "longer side 64 px")
    transform_name = "log(sharpness)"

    def values(self, ctx: AuditContext, decoded: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        m = ctx.manifest
        std = stat(m, "stat_std", decoded)
        lap = stat(m, "stat_blur", decoded)
        grad = stat(m, "stat_gradient", decoded)
        ok = (std >= self.settings.min_std) & (grad > 0)
        sharp = np.where(ok, lap / np.where(ok, grad * grad, 1.0), np.nan)
        return sharp, np.log(np.maximum(sharp, 1e-12))

    def inverse(self, transformed: float) -> float:
        return float(np.exp(transformed))
