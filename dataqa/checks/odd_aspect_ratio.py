"""``odd_aspect_ratio``: images whose width/height ratio is far from the dataset's.

Value: ``width / height`` (after EXIF orientation). The robust z is taken on
``log(width / height)`` over the whole dataset (aspect ratio is a property of the
capture, not of the class), both tails: a 2:1 strip among squares sits
``log 2 = 0.69`` away. The floor (default 0.1, ~10%) keeps a dataset of one fixed
shape, or of the usual 4:3 and 3:2 mix, from being flagged.

Absolute bound (decision): a ratio beyond ``absolute_max_ratio`` (default 10:1, either
way) is odd in any dataset (a strip that letterboxing reduces to a few pixel rows);
null disables it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from dataqa.checks import register
from dataqa.checks.base import AuditContext
from dataqa.checks.quality import StatCheck, stat


@dataclass(frozen=True)
class OddAspectRatioSettings:
    threshold: float = 3.5  # robust z of log(width / height), either side
    floor: float = 0.1  # least scale of log(width / height)
    absolute_max_ratio: float | None = 10.0  # longer/shorter side over this is odd regardless


@register
class OddAspectRatio(StatCheck):
    name = "odd_aspect_ratio"
    Settings = OddAspectRatioSettings
    description = "width/height ratio far from the rest of the dataset"
    direction: ClassVar = "both"
    per_class = False
    formula = "aspect ratio = width / height"
    transform_name = "log(width / height)"

    def values(self, ctx: AuditContext, decoded: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        w = stat(ctx.manifest, "width", decoded)
        h = stat(ctx.manifest, "height", decoded)
        ok = (w > 0) & (h > 0)
        ratio = np.where(ok, w / np.where(ok, h, 1.0), np.nan)
        return ratio, np.log(ratio)

    def inverse(self, transformed: float) -> float:
        return float(np.exp(transformed))

    def absolute_bound(self, value: np.ndarray, ctx: AuditContext, decoded: np.ndarray
                       ) -> tuple[np.ndarray, np.ndarray] | None:
        bound = self.settings.absolute_max_ratio
        if bound is None:
            return None
        elong = np.maximum(value, 1.0 / value)
        return elong > bound, 0.5 * np.clip(bound / np.nan_to_num(elong, nan=1.0), 0.0, 0.98)
