"""``odd_size``: images far smaller or larger than the dataset's usual size.

Value: ``sqrt(width * height)`` in pixels (the side of the square of the same area).
The robust z is taken on its log over the whole dataset (size is a property of the
capture, not of the class), both tails: a 32 px thumbnail among 512 px photos sits
``log 16 = 2.8`` away. The floor (default 0.15, ~16%) keeps a dataset of one size, or
of slightly varying sizes, from being flagged.

No absolute bound: 8x8 images are normal in some datasets (sklearn's digits); only
the relative rule applies.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from dataqa.checks import register
from dataqa.checks.base import AuditContext
from dataqa.checks.quality import StatCheck, stat


@dataclass(frozen=True)
class OddSizeSettings:
    threshold: float = 3.5  # robust z of log(sqrt(width * height)), either side
    floor: float = 0.15  # least scale of log(size)


@register
class OddSize(StatCheck):
    name = "odd_size"
    Settings = OddSizeSettings
    description = "far smaller or larger (in area) than the rest of the dataset"
    direction: ClassVar = "both"
    per_class = False
    formula = "size = sqrt(width x height), pixels"
    transform_name = "log(size)"

    def values(self, ctx: AuditContext, decoded: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        w = stat(ctx.manifest, "width", decoded)
        h = stat(ctx.manifest, "height", decoded)
        ok = (w > 0) & (h > 0)
        size = np.where(ok, np.sqrt(np.where(ok, w * h, 1.0)), np.nan)
        return size, np.log(size)

    def inverse(self, transformed: float) -> float:
        return float(np.exp(transformed))
