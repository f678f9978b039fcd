"""``odd_aspect_ratio``: images whose shape training will waste or distort.

Orientation-symmetric (issue 12): the value is the *elongation* ``e = longer side /
shorter side`` (after EXIF orientation), so a 2:3 portrait among 3:2 landscapes is the
same shape turned, not an oddity. Letterboxing to the square training tensor leaves
``padding = 1 - 1/e`` of it empty: 0.25 for 4:3, 0.33 for 3:2, 0.44 for 16:9, 0.5 for
2:1, 0.8 for 5:1.

An image is flagged when

- its padding exceeds ``max_padding`` (default 0.5: more than half of what the model
  sees would be padding, the image itself shrunk to under half the tensor's pixels)
  **and** its elongation is a robust outlier of the dataset (z of ``log e`` above
  ``threshold``, floor ``floor``): a dataset of panoramas is a choice, not a problem
  of one image; or
- its elongation exceeds ``absolute_max_ratio`` (default 10:1), odd in any dataset (a
  strip that letterboxing reduces to a few pixel rows).

The reason column says it in numbers (``3.2:1, 69% of the 224 px square is padding``).
When the dataset's *median* padding exceeds ``max_padding`` the summary says so (crop
instead: ``augment.geometry: shortest``), without flagging every image.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from pydantic import Field

from dataqa.checks import register
from dataqa.checks.base import AuditContext, CheckResult
from dataqa.checks.quality import StatCheck, find_stat_outliers, stat
from dataqa.params.base import Section


class OddAspectRatioSettings(Section):
    """``audit.settings.odd_aspect_ratio``."""

    threshold: float = Field(3.5, gt=0, le=100, description="robust z of log(longer / shorter side), high side")
    floor: float = Field(0.1, gt=0, le=100, description="least scale of log(elongation)")
    max_padding: float = Field(0.5, ge=0, lt=1, description="share of the letterboxed square left empty that may flag")
    absolute_max_ratio: float | None = Field(10.0, ge=1, le=1e6, description="longer/shorter side over this is odd regardless")


@register
class OddAspectRatio(StatCheck):
    name = "odd_aspect_ratio"
    Settings = OddAspectRatioSettings
    description = ("elongated (either orientation) so that letterboxing wastes most of "
                   "the training square, and unusual for the dataset; or extreme")
    direction: ClassVar = "high"
    per_class = False
    formula = "elongation = longer side / shorter side (orientation-symmetric)"
    transform_name = "log(elongation)"

    def values(self, ctx: AuditContext, decoded: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        w = stat(ctx.manifest, "width", decoded)
        h = stat(ctx.manifest, "height", decoded)
        ok = (w > 0) & (h > 0)
        elong = np.where(ok, np.maximum(w, h) / np.where(ok, np.minimum(w, h), 1.0), np.nan)
        return elong, np.log(elong)

    def inverse(self, transformed: float) -> float:
        return float(np.exp(transformed))

    def find(self, ctx: AuditContext) -> CheckResult:
        s: OddAspectRatioSettings = self.settings
        decoded = ctx.decoded
        elong, log_e = self.values(ctx, decoded)
        log_e = np.where(decoded, log_e, np.nan)
        out = find_stat_outliers(log_e, direction="high", threshold=s.threshold,
                                 floor=s.floor, groups=None, min_class_size=0)
        padding = 1.0 - 1.0 / elong
        finite = np.isfinite(elong)
        z = np.nan_to_num(out.z, nan=0.0)
        # ratio > 1 on a rule means it flags; both parts of the relative rule must
        r_rel = np.minimum(np.nan_to_num(padding, nan=0.0) / max(s.max_padding, 1e-9),
                           z / s.threshold)
        r_abs = (np.nan_to_num(elong, nan=0.0) / s.absolute_max_ratio
                 if s.absolute_max_ratio is not None else np.zeros(len(elong)))
        ratio = np.where(finite, np.maximum(r_rel, r_abs), 0.0)
        is_issue = ratio > 1.0
        side = f"{ctx.image_size} px " if ctx.image_size else ""
        reason = np.full(len(elong), None, dtype=object)
        for i in np.flatnonzero(is_issue):
            why = "extreme" if r_abs[i] > 1.0 else f"unusual for the dataset (z={z[i]:.1f})"
            reason[i] = (f"{elong[i]:.1f}:1, {padding[i]:.0%} of the {side}training square "
                         f"is padding; {why}")
        summary = self.summarize(out)
        summary.update(rule=(f"flagged when letterboxing pads more than {s.max_padding:.0%} "
                             f"of the square (elongation > {1 / (1 - s.max_padding):.2g}:1) "
                             f"and log(elongation) lies more than {s.threshold:g} robust "
                             "standard deviations above the dataset's median, or when the "
                             f"elongation exceeds {s.absolute_max_ratio}:1"),
                       n_relative=int((r_rel > 1.0).sum()), n_absolute=int((r_abs > 1.0).sum()))
        median_pad = float(np.nanmedian(padding)) if finite.any() else 0.0
        summary["median_padding"] = median_pad
        if median_pad > s.max_padding:
            summary["warnings"] = [
                f"the median image leaves {median_pad:.0%} of the training square as "
                "padding: consider cropping instead of letterboxing "
                "(augment.geometry: shortest)"]
        return self.result(ctx, is_issue, 1.0 / (1.0 + ratio ** 2), summary, value=elong,
                           z=out.z, padding=padding, reason=reason)
