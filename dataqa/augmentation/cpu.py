"""The albumentations path of the augmentation policy (:mod:`dataqa.augmentation`):
:func:`build_transform` -> an albumentations ``Compose`` (CPU, one image at a time, any
source size), with which the ``augment`` stage writes class-balancing copies; its
records (:func:`to_dict`, :func:`from_dict`) and the aspect-preservation check."""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from typing import Any

# albumentations asks PyPI for a newer version on import (a blocking request with a 2 s
# timeout): dataqa never reaches the network at run time
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import albumentations as A  # noqa: E402
import cv2  # noqa: E402
import numpy as np  # noqa: E402

from dataqa.augmentation.policy import (  # noqa: E402
    WHERE,
    canvas_crop,
    get_policy,
    zoom_range,
)
from dataqa.errors import ParamsError  # noqa: E402
from dataqa.params import AugmentParams  # noqa: E402


# --------------------------------------------------------------------------- CPU
def build_transform(params: AugmentParams, *, size: int,
                    source_shape: tuple[int, int] | None = None) -> A.Compose:
    """The albumentations ``Compose`` of the policy for one source image.

    ``source_shape`` ``(H, W)`` is needed with ``geometry="shortest"`` (the crop towards a
    square depends on the aspect); ``None`` means a square source. The Compose carries
    keypoint params so that :func:`apply_transform` can measure the geometry it applied.
    Raises :class:`ParamsError` for invalid keys.
    """
    policy = get_policy(params, size=size)
    s = policy.size
    shape = source_shape or (s, s)
    if min(shape) < 1:
        raise ParamsError(f"{WHERE}: source shape {shape} has no pixels")
    crop_h, crop_w, kept = canvas_crop(shape, policy)
    ops: list[Any] = []
    if crop_h:
        ops += [A.SmallestMaxSize(max_size=s, interpolation=cv2.INTER_LINEAR,
                                  area_for_downscale="image"),
                A.RandomCrop(height=crop_h, width=crop_w)]
    # INTER_AREA when downscaling: cv2's linear resize aliases badly on large photos
    ops += [A.LongestMaxSize(max_size=s, interpolation=cv2.INTER_LINEAR,
                             area_for_downscale="image"),
            A.PadIfNeeded(min_height=s, min_width=s, position="center",
                          border_mode=cv2.BORDER_CONSTANT, fill=0, fill_mask=0)]
    lo = zoom_range(policy, kept)
    if lo < 1.0:
        ops.append(A.RandomResizedCrop(size=(s, s), scale=(lo, 1.0), ratio=(1.0, 1.0),
                                       interpolation=cv2.INTER_LINEAR))
    if policy.rotate_limit > 0:
        ops.append(A.Rotate(limit=policy.rotate_limit, interpolation=cv2.INTER_LINEAR,
                            border_mode=cv2.BORDER_CONSTANT, fill=0, fill_mask=0, p=1.0))
    if policy.hflip:
        ops.append(A.HorizontalFlip(p=0.5))
    if policy.brightness_contrast > 0:
        bc = policy.brightness_contrast
        ops.append(A.RandomBrightnessContrast(brightness_limit=bc, contrast_limit=bc,
                                              brightness_by_max=True, p=1.0))
    transform = A.Compose(ops, keypoint_params=A.KeypointParams(format="xy",
                                                                remove_invisible=False))
    check_aspect_preserving(transform)
    return transform


def check_aspect_preserving(transform: A.BaseCompose) -> None:
    """Raise :class:`ParamsError` when a transform of ``transform`` may change the aspect
    ratio of pixels (an anisotropic resize, a non-square resized crop, shear, ...).

    Allowed: isotropic resizes (Longest/SmallestMaxSize), pads, plain crops, square
    RandomResizedCrop to a square size, rigid rotations and flips, isotropic Affine
    without shear, and every pixel-only transform.
    """
    for t in transform.transforms:
        if isinstance(t, A.BaseCompose):
            check_aspect_preserving(t)
            continue
        name = type(t).__name__
        why = _distortion(t)
        if why:
            raise ParamsError(f"{WHERE}: transform {name} may distort the aspect ratio "
                              f"({why}); only aspect-preserving geometry is allowed")


_RIGID = (A.LongestMaxSize, A.SmallestMaxSize, A.PadIfNeeded, A.RandomCrop, A.CenterCrop,
          A.Crop, A.Rotate, A.HorizontalFlip, A.VerticalFlip, A.RandomRotate90, A.Transpose,
          A.SafeRotate, A.CropAndPad, A.RandomCropFromBorders)


def _distortion(t: Any) -> str:
    """Why ``t`` may distort the aspect ratio, or '' when it cannot."""
    if isinstance(t, A.ImageOnlyTransform):
        return ""
    if isinstance(t, A.CropAndPad) and getattr(t, "keep_size", False):
        return "keep_size resizes the cropped image back to the input size"
    if isinstance(t, _RIGID):
        return ""
    if isinstance(t, A.RandomResizedCrop | A.RandomSizedCrop):
        h, w = t.size
        ratio = tuple(getattr(t, "ratio", (getattr(t, "w2h_ratio", 1.0),) * 2))
        if h == w and ratio == (1.0, 1.0):
            return ""
        return f"crops of aspect {ratio} resized to {w}x{h}"
    if isinstance(t, A.Affine):
        sx, sy = t.scale["x"], t.scale["y"]
        shear = [v for v in t.shear.values()]
        if any(tuple(v) != (0.0, 0.0) for v in shear):
            return f"shear {t.shear}"
        if not t.keep_ratio and tuple(sx) != tuple(sy):
            return f"scale x {sx} != scale y {sy} without keep_ratio"
        return ""
    return "not a known aspect-preserving transform"


@dataclass(frozen=True)
class Augmented:
    """One augmented image and the geometry measured while making it.

    ``scale_x``/``scale_y``: output pixels per source pixel along the source's axes
    (measured from transformed reference points); ``aspect_change`` = |scale_x / scale_y
    - 1|; ``area_kept``: share of the source area visible in the output (measured from a
    transformed all-ones mask); ``padding``: share of the output that is fill.
    """

    image: np.ndarray  # (size, size[, C]) uint8
    scale_x: float
    scale_y: float
    aspect_change: float
    area_kept: float
    padding: float
    content_mask: np.ndarray  # (size, size) bool, True where the source is visible


def apply_transform(transform: A.Compose, image: np.ndarray, *, seed: int) -> Augmented:
    """Apply ``transform`` to ``image`` (H, W[, C] uint8) with ``seed``: same seed, same bytes.

    A mask and three reference points ride along with the image through the same
    geometric transforms, so the measurements describe what was actually applied.
    """
    h, w = image.shape[:2]
    transform.set_random_seed(int(seed))
    out = transform(image=image, mask=np.ones((h, w), dtype=np.uint8),
                    keypoints=np.array([[0.0, 0.0], [float(w), 0.0], [0.0, float(h)]]))
    kp = np.asarray(out["keypoints"], dtype=np.float64)
    scale_x = float(np.hypot(*(kp[1] - kp[0]))) / w
    scale_y = float(np.hypot(*(kp[2] - kp[0]))) / h
    mask = np.asarray(out["mask"]) > 0
    visible = float(mask.sum())
    area_kept = min(1.0, visible / (w * h * scale_x * scale_y))
    return Augmented(image=np.ascontiguousarray(out["image"]), scale_x=scale_x,
                     scale_y=scale_y, aspect_change=abs(scale_x / scale_y - 1.0),
                     area_kept=area_kept, padding=1.0 - visible / mask.size,
                     content_mask=mask)


def to_dict(transform: A.Compose) -> dict[str, Any]:
    """``A.to_dict`` of ``transform`` (recorded with every copy next to its seed)."""
    return A.to_dict(transform)


def from_dict(record: dict[str, Any]) -> A.Compose:
    """Rebuild a recorded transform: ``apply_transform(from_dict(d), img, seed=s)``
    reproduces the recorded copy byte for byte."""
    with warnings.catch_warnings():
        # albumentations 2.0.8 serialises PadIfNeeded's derived 'padding' attribute and
        # then warns that it is not an argument when reading it back; it is ignored
        warnings.filterwarnings("ignore", message=r"Argument\(s\) 'padding'")
        transform = A.from_dict(record)
    if not isinstance(transform, A.Compose):
        raise ParamsError("recorded transform is not an albumentations Compose")
    check_aspect_preserving(transform)
    return transform
