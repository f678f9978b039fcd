"""The one definition of the training-time augmentation policy.

Two implementations of the same policy, built from the same :class:`AugmentParams`:

- :func:`build_transform` -> an albumentations ``Compose`` (CPU, one image at a time,
  any source size). The ``augment`` stage writes class-balancing copies with it.
- :func:`device_augment` -> a batched torch function ``(uint8 NCHW, Generator) -> uint8
  NCHW`` that the engine's fit loop applies to whole batches on the device.

The policy, in order (each step is aspect-preserving; nothing is ever stretched):

1. **Canvas** (raw image -> ``size`` x ``size``): ``geometry="longest"`` scales the
   longer side to ``size`` and pads the rest with zeros, centred (the same letterbox as
   :func:`dataqa.dataset.imageio.letterbox`, so copies look like the tensors); ``"shortest"``
   scales the shorter side to ``size`` and crops the longer one towards a square, but
   never below ``min_area`` of the image (the rest is padded).
2. **Zoom**: a random square window of the canvas whose area share is drawn in
   ``[lo, 1]`` is scaled back to the full canvas (isotropic: square to square), where
   ``lo = min_area / (share kept by step 1)``; all crops together keep at least
   ``min_area`` of the image (see :func:`kept_area_bound`).
3. **Rotate** by a uniform angle in ``[-rotate_limit, rotate_limit]`` degrees about the
   centre, zero fill (rigid: no aspect change; its corners are measured, not bounded).
4. **Horizontal flip** with probability 0.5 when ``hflip``.
5. **Brightness/contrast**: ``x * alpha + beta * 255`` with ``alpha - 1`` and ``beta``
   uniform in ``[-brightness_contrast, brightness_contrast]`` (albumentations'
   ``RandomBrightnessContrast`` formula, applied last on both paths so both treat the
   padding alike).

The device path receives letterboxed square tensors (step 1 already done by the
``tensors`` stage), so it runs steps 2-5; on a square canvas step 1 keeps everything
and both paths draw the zoom from the same range. ``tests/test_augmentation.py`` checks
that both agree on geometry (content-box aspect, kept area) and, given the same drawn
parameters, on pixels.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# albumentations asks PyPI for a newer version on import (a blocking request with a 2 s
# timeout): dataqa never reaches the network at run time
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import albumentations as A  # noqa: E402
import cv2  # noqa: E402
import numpy as np  # noqa: E402

from dataqa.errors import ParamsError  # noqa: E402
from dataqa.params import AugmentParams  # noqa: E402

# A crop of a centred canvas keeps >= sqrt(share) of the content along each axis only
# when the window covers at least half the canvas side; below 0.25 the bound fails.
MIN_AREA_FLOOR = 0.25

_WHERE = "params.yaml: augment"


# --------------------------------------------------------------------------- policy
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
    """Validate the policy keys of ``params`` once; raise :class:`ParamsError` naming the key."""
    if not isinstance(size, int) or size < 8:
        raise ParamsError(f"{_WHERE}.size: canvas side must be an integer >= 8, got {size!r}")
    if not MIN_AREA_FLOOR <= params.min_area <= 1.0:
        raise ParamsError(f"{_WHERE}.min_area: {params.min_area} is outside "
                          f"[{MIN_AREA_FLOOR}, 1] (share of the image every crop keeps)")
    if not 0.0 <= params.rotate_limit <= 180.0:
        raise ParamsError(f"{_WHERE}.rotate_limit: {params.rotate_limit} is outside [0, 180] "
                          "degrees")
    if not 0.0 <= params.brightness_contrast < 1.0:
        raise ParamsError(f"{_WHERE}.brightness_contrast: {params.brightness_contrast} is "
                          "outside [0, 1)")
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
        raise ParamsError(f"{_WHERE}: source shape {shape} has no pixels")
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
            raise ParamsError(f"{_WHERE}: transform {name} may distort the aspect ratio "
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


# --------------------------------------------------------------------------- device
DeviceAugment = Callable[[Any, Any], Any]  # (uint8 NCHW tensor, torch.Generator) -> same


def device_augment(params: AugmentParams) -> DeviceAugment:
    """The batched torch equivalent of :func:`build_transform` on square letterboxed
    canvases (steps 2-5 of the policy), for the engine's fit loop.

    Returns ``augment(images, generator)``: ``images`` (N, C, H, W) uint8 on any device,
    ``generator`` a ``torch.Generator`` (its device draws the random numbers, so the same
    seed gives the same batch on CPU); returns a new (N, C, H, W) uint8 tensor on the
    images' device. One ``grid_sample`` per batch does zoom, rotation and flip together
    (one resampling instead of albumentations' two).
    """
    import torch

    def augment(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        if images.dtype != torch.uint8 or images.ndim != 4:
            raise ValueError(f"device_augment: expected uint8 (N, C, H, W), got "
                             f"{images.dtype} {tuple(images.shape)}")
        n, _, h, w = images.shape
        policy = get_policy(params, size=min(h, w))
        draws = sample_device_params(policy, n=n, height=h, width=w, generator=generator)
        return warp_batch(images, **{k: v.to(images.device) for k, v in draws.items()})

    return augment


def sample_device_params(policy: Policy, *, n: int, height: int, width: int,
                         generator: Any) -> dict[str, Any]:
    """Draw the per-image parameters of steps 2-5 as albumentations draws them (window
    side ``round(sqrt(area))``, offset ``int((H - h + 1) * u)``, uniform angle, flip with
    p=0.5, ``alpha = 1 + U(-l, l)``, ``beta = 255 * U(-l, l)``), all from one ``rand``
    call on the generator's device (no host round-trip).

    Returns tensors: ``boxes`` (N, 4) int64 ``(x0, y0, w, h)`` of the zoom window,
    ``angles`` (N,) degrees, ``flips`` (N,) bool, ``alpha``/``beta`` (N,) float32.
    """
    import torch

    u = torch.rand(n, 7, generator=generator, device=generator.device, dtype=torch.float32)
    lo = zoom_range(policy)
    root = torch.sqrt(lo + (1.0 - lo) * u[:, 0])
    # the window keeps the canvas aspect (ratio 1 on a square canvas, as on the CPU path)
    wh = torch.round(root * width).clamp_(1, width)
    hh = torch.round(root * height).clamp_(1, height)
    y0 = torch.floor((height - hh + 1) * u[:, 1])
    x0 = torch.floor((width - wh + 1) * u[:, 2])
    r, bc = policy.rotate_limit, policy.brightness_contrast
    return {"boxes": torch.stack([x0, y0, wh, hh], dim=1).long(),
            "angles": r * (2.0 * u[:, 3] - 1.0),
            "flips": (u[:, 4] < 0.5) & policy.hflip,
            "alpha": 1.0 + bc * (2.0 * u[:, 5] - 1.0),
            "beta": 255.0 * bc * (2.0 * u[:, 6] - 1.0)}


def warp_batch(images: Any, *, boxes: Any, angles: Any, flips: Any, alpha: Any,
               beta: Any) -> Any:
    """Apply given parameters (see :func:`sample_device_params`) to a uint8 NCHW batch:
    crop ``boxes`` scaled back to (H, W), rotate ``angles`` degrees about the centre
    (albumentations' sign: positive = counter-clockwise on screen), flip where ``flips``,
    then ``clip(x * alpha + beta)`` truncated to uint8 like albumentations' LUT.

    Zoom, rotation and flip are one affine map per image, applied by one ``grid_sample``;
    its coefficients are built with a few elementwise ops (the batch is small, so kernel
    launches, not arithmetic, bound the time) and nothing waits for the device.
    """
    import torch
    import torch.nn.functional as F

    n, _, h, w = images.shape
    dev = images.device
    f32 = torch.float32
    b = boxes.to(dev, f32)
    x0, y0, bw, bh = b.unbind(1)
    theta = torch.deg2rad(angles.to(dev, f32))
    cos, sin = torch.cos(theta), torch.sin(theta)
    fl = flips.to(dev, f32)
    sf, tf = 1.0 - 2.0 * fl, fl * (w - 1.0)  # flip: x -> sf * x + tf
    cx, cy = w / 2 - 0.5, h / 2 - 0.5
    # output pixel (x, y) -> pre-rotation position q = R^T (flip(x, y) - c) + c, where
    # albumentations' forward rotation is R = [[cos, sin], [-sin, cos]] about c
    qx = (cos * sf, -sin, cos * (tf - cx) + sin * cy + cx)
    qy = (sin * sf, cos, sin * (tf - cx) - cos * cy + cy)
    # q -> the zoom window (cv2.resize's half-pixel mapping) -> grid_sample's normalised
    # coordinates (align_corners=False): u = q * 2 bw / w^2 + (bw / w + 2 x0) / w - 1
    ax, bx = 2.0 * bw / (w * w), (bw / w + 2.0 * x0) / w - 1.0
    ay, by = 2.0 * bh / (h * h), (bh / h + 2.0 * y0) / h - 1.0
    coef = torch.stack([ax * qx[0], ax * qx[1], ax * qx[2] + bx,
                        ay * qy[0], ay * qy[1], ay * qy[2] + by,
                        *qx, *qy], dim=1).view(n, 4, 3)
    out = _pixel_grid(h, w, dev) @ coef.transpose(1, 2)  # (N, H*W, 4): grid, then q
    grid = out[..., :2].reshape(n, h, w, 2)
    q = out[..., 2:]
    warped = F.grid_sample(images.float(), grid, mode="bilinear", padding_mode="zeros",
                           align_corners=False)
    # albumentations rotates the zoomed canvas, so whatever the rotation brings in from
    # outside the zoom window is fill, not the canvas beyond the window: weight each
    # pixel by the bilinear coverage of the window at its pre-rotation position
    qx_, qy_ = q[..., 0], q[..., 1]
    cover = (torch.minimum(qx_ + 1.0, w - qx_).clamp_(0.0, 1.0)
             * torch.minimum(qy_ + 1.0, h - qy_).clamp_(0.0, 1.0)).view(n, 1, h, w)
    warped = torch.round(warped * cover)
    out_img = warped * alpha.to(dev, f32).view(n, 1, 1, 1) + beta.to(dev, f32).view(n, 1, 1, 1)
    out_img = out_img.clamp_(0.0, 255.0).floor_().to(torch.uint8)
    # the engine stores NHWC and reads batches as channels_last NCHW views: keep that
    return out_img.contiguous(memory_format=torch.channels_last)


_GRIDS: dict[tuple[int, int, str], Any] = {}


def _pixel_grid(h: int, w: int, dev: Any) -> Any:
    """(H*W, 3) float32 ``(x, y, 1)`` of every output pixel centre, cached per device."""
    import torch

    key = (h, w, str(dev))
    if key not in _GRIDS:
        ys, xs = torch.meshgrid(torch.arange(h, device=dev, dtype=torch.float32),
                                torch.arange(w, device=dev, dtype=torch.float32),
                                indexing="ij")
        _GRIDS[key] = torch.stack([xs.reshape(-1), ys.reshape(-1),
                                   torch.ones(h * w, device=dev)], dim=1)
    return _GRIDS[key]


__all__ = ["Policy", "Augmented", "get_policy", "canvas_crop", "zoom_range",
           "kept_area_bound", "build_transform", "check_aspect_preserving",
           "apply_transform", "to_dict", "from_dict", "device_augment",
           "sample_device_params", "warp_batch", "MIN_AREA_FLOOR"]
