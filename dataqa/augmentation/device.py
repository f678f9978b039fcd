"""The batched device path of the augmentation policy (:mod:`dataqa.augmentation`):
:func:`device_augment` -> a torch function ``(uint8 NCHW, Generator) -> uint8 NCHW`` that
the engine's fit loop applies to whole batches on the device (steps 2-5 of the policy on
letterboxed square tensors; draws as albumentations draws them, so both paths agree).

Not the engine's ``FlipCrop`` (:mod:`dataqa.engine.data`): that is crossval's own cheap
regulariser (flip + zero-padded translation, ``crossval.flip/crop_padding``, one
gather per batch), not this policy, so it stays in the engine.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dataqa.augmentation.policy import Policy, get_policy, zoom_range
from dataqa.params import AugmentParams

_GRIDS: dict[tuple[int, int, str], Any] = {}  # (h, w, device) -> pixel grid

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
