"""``complexity``: overly complex images, which cost training time and teach little
(noise, dense textures, screenshots of text among objects).

Value (``complexity_value``): a weighted geometric mean of three per-image measures
from the scan::

    complexity = bpp ** 0.5  x  gradient ** 0.3  x  entropy ** 0.2

- ``bpp``: bits per pixel of the losslessly compressed normalised copy (longer side
  64 px): how unpredictable the pixels are, the most direct measure of how much
  spatial information a model must fit, so it weighs most;
- ``gradient``: mean gradient magnitude at the same size: how much fine structure;
  partly redundant with ``bpp``;
- ``entropy``: luminance histogram entropy (bits): how many grey levels are in use;
  blind to their arrangement (binary noise has 1 bit, a smooth ramp 8), so it weighs
  least.

Each alone has blind spots (a smooth ramp has high entropy, a regular stripe pattern
compresses well); together they agree on "busy". In log space the robust z on
``log(complexity)`` is the weighted average of the three log-deviations from the class
median, so no measure dominates by its units. Weights measured on real MNIST digits
with five planted 28x28 textures (uniform, binary and sparse noise, a noisy
checkerboard, a digit under noise): equal thirds leave binary noise at z = 3.0
(missed); 0.5/0.3/0.2 flag all five at z >= 4.1 with the largest real-digit z 2.96
(2,000 digits) and 2.72 (10,000). Flagged in the HIGH tail of the image's class.

No absolute bound: "complex" only means something relative to the task.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from pydantic import Field

from dataqa.checks import register
from dataqa.checks.base import AuditContext
from dataqa.checks.quality import StatCheck, stat
from dataqa.params.base import BIG, Section

EPS = 1e-6  # keeps log finite for a flat image (gradient and entropy 0)
WEIGHTS = (0.5, 0.3, 0.2)  # exponents of bpp, gradient, entropy (sum 1)


class ComplexitySettings(Section):
    """``audit.settings.complexity``."""

    threshold: float = Field(3.5, gt=0, le=100, description="robust z above the class median of log(complexity)")
    floor: float = Field(0.15, gt=0, le=100, description="least scale of log(complexity)")
    min_class_size: int = Field(20, ge=1, le=BIG, description="smaller classes are compared with the whole dataset")


def get_complexity_values(bpp: np.ndarray, gradient: np.ndarray, entropy: np.ndarray
                          ) -> np.ndarray:
    """``bpp**0.5 * gradient**0.3 * entropy**0.2``, shape (N,); NaN in, NaN out."""
    wb, wg, we = WEIGHTS
    return (np.maximum(bpp, EPS) ** wb * np.maximum(gradient, EPS) ** wg
            * np.maximum(entropy, EPS) ** we)


@register
class Complexity(StatCheck):
    name = "complexity"
    Settings = ComplexitySettings
    description = ("far busier (compressed size x gradient energy x entropy) than the "
                   "other images of its class")
    direction: ClassVar = "high"
    formula = ("complexity = compressed bits per pixel^0.5 x mean gradient magnitude^0.3 "
               "x luminance entropy (bits)^0.2 (a weighted geometric mean), at longer "
               "side 64 px")
    transform_name = "log(complexity)"

    def values(self, ctx: AuditContext, decoded: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        m = ctx.manifest
        value = get_complexity_values(stat(m, "stat_bpp", decoded),
                                      stat(m, "stat_gradient", decoded),
                                      stat(m, "stat_entropy", decoded))
        return value, np.log(value)

    def inverse(self, transformed: float) -> float:
        return float(np.exp(transformed))
