"""``low_information``: images carrying far less information than their peers
(placeholders, blank frames, a flat grey picture with a small icon).

Value: the luminance histogram entropy in bits (``stat_entropy``, 0..8), compared with
the image's class by a robust z of ``log(entropy)`` (low tail). CleanVision flags
entropy under a fixed fraction of 8 bits, which calls every MNIST digit "low
information" (a black page with a white stroke has ~1.5 bits); relative to its peers a
digit is ordinary, a flat placeholder among photos (~0.1 bit against ~7) is not. The
log makes the rule a ratio: a blank frame with a 3x3 mark (0.09 bits) sits 7.8
robust deviations below the thin "1"s (median 0.93 bits), where on the plain bit
scale it sat at 2.8 (missed) while 6 real digits crossed 3.5; on the log scale no
real MNIST test digit does. A darkened photo (entropy 7 -> 5 bits) stays ordinary.

Absolute bound (decision): a flat image (luminance std under ``absolute_max_std``,
default 0.01 = 2.5/255) carries nothing in any dataset and is flagged regardless.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from pydantic import Field

from dataqa.checks import register
from dataqa.checks.base import AuditContext
from dataqa.checks.quality import StatCheck, stat
from dataqa.params.base import BIG, Section

EPS = 0.01  # bits: keeps log finite for a flat image (entropy 0)


class LowInformationSettings(Section):
    """``audit.settings.low_information``."""

    threshold: float = Field(3.5, gt=0, le=100, description="robust z below the class median of log(entropy)")
    floor: float = Field(0.3, gt=0, le=100, description="least scale of log(entropy): ~35%")
    min_class_size: int = Field(20, ge=1, le=BIG, description="smaller classes are compared with the whole dataset")
    absolute_max_std: float | None = Field(0.01, ge=0, le=1, description="luminance std under this = flat image")


@register
class LowInformation(StatCheck):
    name = "low_information"
    Settings = LowInformationSettings
    description = "far less detail (histogram entropy) than the other images of its class"
    direction: ClassVar = "low"
    formula = "entropy of the 256-bin luminance histogram, bits (0..8)"
    transform_name = "log(entropy)"

    def values(self, ctx: AuditContext, decoded: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        entropy = stat(ctx.manifest, "stat_entropy", decoded)
        return entropy, np.log(np.maximum(entropy, EPS))

    def inverse(self, transformed: float) -> float:
        return float(np.exp(transformed))

    def absolute_bound(self, value: np.ndarray, ctx: AuditContext, decoded: np.ndarray
                       ) -> tuple[np.ndarray, np.ndarray] | None:
        bound = self.settings.absolute_max_std
        if bound is None:
            return None
        std = stat(ctx.manifest, "stat_std", decoded)
        flat = np.nan_to_num(std, nan=np.inf) < bound
        return flat, 0.5 * np.clip(np.nan_to_num(std, nan=0.0) / bound, 0.0, 0.98)
