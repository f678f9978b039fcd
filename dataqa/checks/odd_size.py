"""``odd_size``: images too small for the training resolution, so upscaled.

What harms training is an image the letterbox must *enlarge* far beyond its pixels
(interpolation invents the detail the model then learns), not ordinary variation: a
200 px and a 2592 px photo are both fine at 224 px (issue 12). Letterboxing scales the
longer side to the training size, so the upscale factor of an image is
``R / longer side``, where the reference ``R`` is the training size
(``engine.image_size``) capped at the dataset's median longer side: when the whole
dataset is smaller than the training size (32 px icons trained at 224) every image is
upscaled alike, which the summary reports once instead of flagging them all. Without
a known training size (a check run outside the pipeline) ``R`` is the median.

Flagged when the factor exceeds ``max_upscale`` (default 2: past 2x, three of every
four pixels the model sees are interpolated), or when the image is *extreme*: its side
(``sqrt(width x height)``) is more than ``max_relative`` times (default 8, three
doublings) off the dataset's median side either way, which no single capture source
spans (a 2,600 px and a 200 px photo are 3.5x from a 700 px median; a 280 px image
among 28 px digits is 10x). Otherwise large images are not flagged: downscaling loses
nothing training can use, and decompression bombs are the scan's business
(``scan.max_pixels``). A narrow strip is ``odd_aspect_ratio``'s.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from pydantic import Field

from dataqa.checks import register
from dataqa.checks.base import AuditContext, CheckResult
from dataqa.checks.quality import StatCheck, stat
from dataqa.params.base import Section


class OddSizeSettings(Section):
    """``audit.settings.odd_size``."""

    max_upscale: float = Field(2.0, gt=1, le=1e6, description="training size / longer side above this flags")
    max_relative: float | None = Field(8.0, gt=1, le=1e6, description="side this many times off the median flags; null: off")
    threshold: float = Field(0.0, ge=0, le=100, description="unused (kept for the StatCheck contract)")
    floor: float = Field(0.0, ge=0, le=100, description="unused")


@register
class OddSize(StatCheck):
    name = "odd_size"
    Settings = OddSizeSettings
    description = ("so small that the training resolution enlarges it more than 2x, or "
                   "extreme in size for the dataset")
    direction: ClassVar = "low"
    per_class = False
    formula = "upscale = reference side / longer side"

    def values(self, ctx: AuditContext, decoded: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        w = stat(ctx.manifest, "width", decoded)
        h = stat(ctx.manifest, "height", decoded)
        longer = np.where((w > 0) & (h > 0), np.maximum(w, h), np.nan)
        return longer, longer

    def find(self, ctx: AuditContext) -> CheckResult:
        s: OddSizeSettings = self.settings
        longer, _ = self.values(ctx, ctx.decoded)
        finite = np.isfinite(longer)
        median = float(np.median(longer[finite])) if finite.any() else float("nan")
        reference = min(float(ctx.image_size), median) if ctx.image_size else median
        upscale = np.where(finite, reference / np.where(finite, longer, 1.0), np.nan)
        r_up = np.nan_to_num(upscale, nan=0.0) / s.max_upscale
        w = stat(ctx.manifest, "width", ctx.decoded)
        h = stat(ctx.manifest, "height", ctx.decoded)
        side = np.sqrt(np.where(finite, w * h, np.nan))
        med_side = float(np.median(side[finite])) if finite.any() else float("nan")
        off = np.maximum(side / med_side, med_side / side)
        r_ext = (np.nan_to_num(off, nan=0.0) / s.max_relative if s.max_relative is not None
                 else np.zeros(len(side)))
        ratio = np.maximum(r_up, r_ext)
        is_issue = ratio > 1.0
        where = (f"the {ctx.image_size} px training size" if ctx.image_size and
                 reference == ctx.image_size else f"the dataset's median {median:.0f} px")
        reason = np.full(len(longer), None, dtype=object)
        for i in np.flatnonzero(is_issue):
            parts = []
            if r_up[i] > 1.0:
                parts.append(f"longer side {longer[i]:.0f} px, enlarged {upscale[i]:.1f}x "
                             f"to {where} (limit {s.max_upscale:g}x)")
            if r_ext[i] > 1.0:
                parts.append(f"side {side[i]:.0f} px is {off[i]:.1f}x off the dataset's "
                             f"median {med_side:.0f} px (limit {s.max_relative:g}x)")
            reason[i] = "; ".join(parts)
        summary: dict[str, object] = {
            "formula": self.formula, "reference_side": reference, "median_side": median,
            "image_size": ctx.image_size,
            "median_area_side": med_side, "n_upscaled": int((r_up > 1).sum()),
            "n_extreme": int((r_ext > 1).sum()),
            "rule": (f"flagged when {where} is over {s.max_upscale:g}x the longer side, or "
                     f"the side is over {s.max_relative}x off the median")}
        if ctx.image_size and np.isfinite(median) and ctx.image_size / median > s.max_upscale:
            summary["warnings"] = [
                f"the median image ({median:.0f} px) is enlarged "
                f"{ctx.image_size / median:.1f}x to the {ctx.image_size} px training size: "
                "consider a smaller engine.image_size"]
        score = 1.0 / (1.0 + ratio ** 2)
        return self.result(ctx, is_issue, score, summary, value=longer, upscale=upscale,
                           reason=reason)
