"""``grayscale``: grayscale images in a dataset that is mostly colour.

A grayscale image among colour ones teaches the model a shortcut (or nothing about
colour); in a grayscale dataset (MNIST, X-rays) it is the norm. So an image is flagged
when its colourfulness (``stat_colorfulness``: mean |channel - channel mean| / 255,
0 for a single-channel file, a few thousandths for a grey picture saved as JPEG RGB)
is under ``max_colorfulness`` AND at least ``min_colour_share`` of the dataset's
decodable images are colour. CleanVision flags every grayscale image whatever the
dataset, which calls all 10,000 MNIST digits an issue.

Score: ``min(1, colourfulness / (2 max_colorfulness))`` for flagged rows (0.5 at the
bound), 1 otherwise.
"""

from __future__ import annotations

import numpy as np
from pydantic import Field

from dataqa.checks import register
from dataqa.checks.base import AuditContext, Check, CheckResult
from dataqa.checks.quality import stat
from dataqa.params.base import Section


class GrayscaleSettings(Section):
    """``audit.settings.grayscale``."""

    max_colorfulness: float = Field(0.01, ge=0, le=1, description="colourfulness under this = a grey image (~2.5/255)")
    min_colour_share: float = Field(0.8, ge=0, le=1, description="fire only when this share of images is colour")


@register
class Grayscale(Check):
    name = "grayscale"
    Settings = GrayscaleSettings
    description = "a grayscale image in a dataset that is mostly colour"

    def find(self, ctx: AuditContext) -> CheckResult:
        s = self.settings
        decoded = ctx.decoded
        colour = stat(ctx.manifest, "stat_colorfulness", decoded)
        finite = np.isfinite(colour)
        gray = finite & (colour < s.max_colorfulness)
        n = int(finite.sum())
        share = float((finite & ~gray).sum() / n) if n else 0.0
        active = n > 0 and share >= s.min_colour_share
        is_issue = gray & active
        score = np.where(is_issue, np.minimum(1.0, np.nan_to_num(colour) /
                                              (2 * s.max_colorfulness)), 1.0)
        summary = {
            "colour_share": share,
            "active": active,
            "rule": (f"flagged when colourfulness < {s.max_colorfulness:g} and at least "
                     f"{s.min_colour_share:.0%} of the decodable images are colour "
                     f"(here {share:.1%})"),
            "n_grayscale": int(gray.sum()),
        }
        return self.result(ctx, is_issue, score, summary, value=colour)
