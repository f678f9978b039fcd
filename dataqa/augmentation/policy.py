"""The augmentation policy itself (steps and ranges in :mod:`dataqa.augmentation`):
:func:`get_policy` validates the keys once; :func:`canvas_crop`, :func:`zoom_range` and
:func:`kept_area_bound` are the geometry both paths (albumentations on CPU, batched on
the device) share."""

from __future__ import annotations

import math
from dataclasses import dataclass

from dataqa.errors import ParamsError
from dataqa.params import (
    MIN_AREA_FLOOR,  # noqa: F401  (re-exported)
    AugmentParams,
)

WHERE = "params.yaml: augment"


@dataclass(frozen=True)
class Policy:
    """The validated policy (see the module docstring); ``size`` is the canvas side."""

    size: int
    geometry: str
    min_area: float
    rotate_limit: float
    hflip: bool
    brightness_contrast: float


def get_policy(params: AugmentParams, *, size: int) -> Policy:
    """The policy of ``params`` on a ``size`` canvas (:class:`ParamsError` for a size under 8;
    the keys' ranges are checked when params load)."""
    if not isinstance(size, int) or size < 8:
        raise ParamsError(f"{WHERE}.size: canvas side must be an integer >= 8, got {size!r}")
    # min_area, rotate_limit, brightness_contrast: checked when params load (dataqa/params)
    return Policy(size=size, geometry=params.geometry, min_area=params.min_area,
                  rotate_limit=params.rotate_limit, hflip=params.hflip,
                  brightness_contrast=params.brightness_contrast)


def canvas_crop(shape: tuple[int, int], policy: Policy) -> tuple[int, int, float]:
    """Step 1 for an ``(H, W)`` source: the crop ``(h, w)`` taken after scaling the shorter
    side to ``size`` (``geometry="shortest"``; ``(0, 0)`` for ``"longest"``, which never
    crops) and the share of the image it keeps."""
    if policy.geometry == "longest":
        return 0, 0, 1.0
    h, w = shape
    s = policy.size
    scale = s / min(h, w)  # as SmallestMaxSize computes it, so the crop fits exactly
    long_side = max(1, round(max(h, w) * scale))
    keep = min(long_side, max(s, math.ceil(policy.min_area * long_side - 1e-9)))
    crop = (s, keep) if w >= h else (keep, s)
    return crop[0], crop[1], keep / long_side


def zoom_range(policy: Policy, kept: float = 1.0) -> float:
    """Lower bound of the zoom window's area share for a canvas whose step 1 kept ``kept``.

    Rounded up so that albumentations' ``round(sqrt(area))`` window side never falls
    below ``ceil(sqrt(lo) * size)``: the bound holds after rounding too. 1.0 = no zoom.
    """
    lo = policy.min_area / kept
    if lo >= 1.0 - 1e-9:
        return 1.0
    side = math.ceil(math.sqrt(lo) * policy.size - 1e-9)
    if side >= policy.size:
        return 1.0
    return min(1.0, ((side - 0.5 + 1e-6) / policy.size) ** 2)


def kept_area_bound(policy: Policy) -> float:
    """The least share of a source image that steps 1-2 keep (rotation corners aside),
    up to one pixel of rounding per side."""
    return policy.min_area
