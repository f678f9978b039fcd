"""The one augmentation policy: albumentations on CPU and the batched torch version agree.

Inputs are letterboxed canvases with a planted content box (pixels >= 1, padding 0), as
the tensors stage writes them. For each path we know the zoom window it drew, so the
content box of every output can be predicted exactly and measured from its pixels.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dataqa import augmentation
from dataqa.augmentation import (
    apply_transform,
    build_transform,
    check_aspect_preserving,
    device_augment,
    from_dict,
    get_policy,
    sample_device_params,
    to_dict,
    warp_batch,
    zoom_range,
)
from dataqa.errors import ParamsError
from dataqa.params import AugmentParams

# albumentations through dataqa.augmentation, which switches off its on-import PyPI query
A = augmentation.A
S = 32


def canvas(h: int, w: int, seed: int = 0, *, flat: bool = False) -> np.ndarray:
    """A (S, S, 3) letterboxed canvas whose centred (h, w) content is never 0: a ramp,
    or ``flat`` (all 200, so half-covered pixels read 100: a sharp measurable edge)."""
    rng = np.random.default_rng(seed)
    out = np.zeros((S, S, 3), dtype=np.uint8)
    top, left = (S - h) // 2, (S - w) // 2
    if flat:
        out[top:top + h, left:left + w] = 200
        return out
    yy, xx = np.mgrid[0:h, 0:w]  # a smooth photo-like ramp plus mild noise
    ramp = 40 + 160 * (0.6 * xx / max(w - 1, 1) + 0.4 * yy / max(h - 1, 1))
    noisy = ramp[..., None] + rng.integers(-10, 11, (h, w, 3))
    out[top:top + h, left:left + w] = np.clip(noisy, 1, 255).astype(np.uint8)
    return out


def content_box(img: np.ndarray, *, level: int = 100) -> tuple[int, int, int, int]:
    """(top, left, height, width) of the pixels above ``level`` (at least half content)."""
    nz = img.reshape(img.shape[0], img.shape[1], -1).max(axis=2) >= level
    rows, cols = np.flatnonzero(nz.any(1)), np.flatnonzero(nz.any(0))
    return int(rows[0]), int(cols[0]), int(rows[-1] - rows[0] + 1), int(cols[-1] - cols[0] + 1)


def expected_box(h: int, w: int, window: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    """Content box after zooming window (x0, y0, side, side) of the canvas to S x S: the
    content rectangle scaled by S / side about the window's corner, clipped to S x S."""
    x0, y0, side, _ = window
    top, left = (S - h) // 2, (S - w) // 2
    k = S / side
    y1, y2 = max(0.0, (top - y0) * k), min(float(S), (top + h - y0) * k)
    x1, x2 = max(0.0, (left - x0) * k), min(float(S), (left + w - x0) * k)
    return round(y1), round(x1), round(y2 - y1), round(x2 - x1)


CONTENT = [
    (12, 32),  # wide: padded above and below
    (32, 10),  # tall: padded left and right
    (32, 32),  # square: no padding
    (20, 20),  # small square inside padding on all sides
]


def cpu_windows(params: AugmentParams, img: np.ndarray, seeds: range):
    t = build_transform(params, size=S)
    t.save_applied_params = True
    for seed in seeds:
        t.set_random_seed(seed)
        out = t(image=img, mask=np.ones((S, S), np.uint8), keypoints=np.zeros((0, 2)))
        applied = dict(out["applied_transforms"])
        x0, y0, x1, y1 = applied.get("RandomResizedCrop", {"crop_coords": (0, 0, S, S)})[
            "crop_coords"]
        yield out["image"], (x0, y0, x1 - x0, y1 - y0), applied


def device_windows(params: AugmentParams, img: np.ndarray, n: int):
    x = torch.from_numpy(img).permute(2, 0, 1)[None].repeat(n, 1, 1, 1).contiguous()
    draws = sample_device_params(get_policy(params, size=S), n=n, height=S, width=S,
                                 generator=torch.Generator().manual_seed(0))
    out = warp_batch(x, **draws).permute(0, 2, 3, 1).numpy()
    for i in range(n):
        yield out[i], tuple(int(v) for v in draws["boxes"][i]), None


@pytest.mark.parametrize("h, w", CONTENT)
@pytest.mark.parametrize("path", ["cpu", "device"])
def test_both_paths_zoom_isotropically_within_area_bound(path, h, w):
    params = AugmentParams(min_area=0.5, rotate_limit=0, brightness_contrast=0, hflip=False)
    img = canvas(h, w, flat=True)
    runs = (cpu_windows(params, img, range(40)) if path == "cpu"
            else device_windows(params, img, 40))
    lo = zoom_range(get_policy(params, size=S))
    sides = []
    for out, window, _ in runs:
        side = window[2]
        assert window[2] == window[3]  # square window on a square canvas
        assert (side / S) ** 2 >= params.min_area  # the drawn zoom keeps >= min_area
        got, want = content_box(out), expected_box(h, w, window)
        # the measured content box is the predicted one (aspect of pixels unchanged)
        assert all(abs(g - e) <= 1 for g, e in zip(got, want)), (got, want, window)
        kept = (got[2] * got[3]) / (S / side) ** 2 / (h * w)
        assert kept >= params.min_area - 2.5 / min(h, w)  # within a pixel per side
        sides.append(side)
    assert min(sides) >= math.ceil(math.sqrt(lo) * S - 0.5)
    assert max(sides) > min(sides)  # the zoom really varies


def test_zoom_draws_have_the_same_range_on_both_paths():
    params = AugmentParams(min_area=0.6, rotate_limit=0, brightness_contrast=0)
    img = canvas(32, 32)
    cpu = [w[2] for _, w, _ in cpu_windows(params, img, range(300))]
    dev = [w[2] for _, w, _ in device_windows(params, img, 300)]
    side_lo = math.ceil(math.sqrt(0.6) * S)
    assert min(cpu) == min(dev) == side_lo  # the same smallest window (25 px of 32)
    assert max(cpu) == max(dev) == S  # and the whole canvas
    assert abs(np.mean(cpu) - np.mean(dev)) < 0.6  # same distribution (uniform area)


@pytest.mark.parametrize("h, w", CONTENT)
def test_same_drawn_parameters_give_the_same_pixels(h, w):
    """Full policy (zoom, rotation, flip, brightness/contrast): feed the parameters that
    albumentations drew to the device path; the pixels agree up to resampling."""
    params = AugmentParams(min_area=0.6, rotate_limit=20, hflip=True, brightness_contrast=0.2)
    img = canvas(h, w, seed=3)
    x = torch.from_numpy(img).permute(2, 0, 1)[None].contiguous()
    flips = 0
    for cpu_out, window, applied in cpu_windows(params, img, range(12)):
        m = applied["Rotate"]["matrix"]
        flip = "HorizontalFlip" in applied
        flips += flip
        bc = applied["RandomBrightnessContrast"]
        dev = warp_batch(x, boxes=torch.tensor([window]),
                         angles=torch.tensor([math.degrees(math.atan2(m[0, 1], m[0, 0]))],
                                             dtype=torch.float64),
                         flips=torch.tensor([flip]), alpha=torch.tensor([bc["alpha"]]),
                         beta=torch.tensor([bc["beta"]]))[0].permute(1, 2, 0).numpy()
        diff = np.abs(dev.astype(int) - cpu_out.astype(int))
        # one resampling (device) against two (albumentations): small, never systematic
        assert diff.mean() < 4.0, diff.mean()
        assert np.median(diff) <= 2
    assert 0 < flips < 12  # both flip states were compared


def test_device_augment_is_seeded_and_shape_preserving():
    aug = device_augment(AugmentParams(hflip=True))
    x = torch.from_numpy(np.stack([canvas(12, 32, s) for s in range(6)])).permute(0, 3, 1, 2)
    a = aug(x, torch.Generator().manual_seed(7))
    b = aug(x, torch.Generator().manual_seed(7))
    c = aug(x, torch.Generator().manual_seed(8))
    assert a.dtype == torch.uint8 and a.shape == x.shape
    assert torch.equal(a, b) and not torch.equal(a, c)
    with pytest.raises(ValueError, match="uint8"):
        aug(x.float(), torch.Generator())


def test_identity_policy_leaves_canvas_untouched():
    params = AugmentParams(min_area=1.0, rotate_limit=0, brightness_contrast=0, hflip=False)
    img = canvas(12, 32)
    out = apply_transform(build_transform(params, size=S), img, seed=0).image
    dev = device_augment(params)(torch.from_numpy(img).permute(2, 0, 1)[None],
                                 torch.Generator())[0].permute(1, 2, 0).numpy()
    assert np.array_equal(out, img) and np.array_equal(dev, img)


BAD = [
    (A.Resize(32, 16), "Resize"),  # anisotropic resize
    (A.RandomResizedCrop(size=(32, 32), ratio=(0.75, 1.33)), "RandomResizedCrop"),  # ratios
    (A.Affine(scale={"x": (0.9, 1.1), "y": (1.0, 1.0)}), "Affine"),  # x-only scale
    (A.Affine(shear=10), "Affine"),  # shear
    (A.GridDistortion(), "GridDistortion"),  # unknown geometry
]


@pytest.mark.parametrize("transform, name", BAD)
def test_distorting_transforms_are_rejected(transform, name):
    with pytest.raises(ParamsError, match=name):
        check_aspect_preserving(A.Compose([A.LongestMaxSize(32), transform]))


def test_policy_compose_passes_and_round_trips():
    params = AugmentParams(geometry="shortest", min_area=0.5, hflip=True)
    t = build_transform(params, size=S, source_shape=(30, 90))
    check_aspect_preserving(t)
    img = np.random.default_rng(0).integers(1, 255, (30, 90, 3), dtype=np.uint8)
    a = apply_transform(t, img, seed=11).image
    b = apply_transform(from_dict(to_dict(t)), img, seed=11).image
    assert np.array_equal(a, b)  # the recorded transform + seed reproduce the copy


@pytest.mark.parametrize("key, value", [("min_area", 0.2), ("rotate_limit", 200.0),
                                        ("brightness_contrast", 1.0)])
def test_bad_policy_keys(key, value):
    with pytest.raises(ParamsError, match=f"augment.{key}"):
        get_policy(AugmentParams(**{key: value}), size=S)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (runs where a GPU is)")
def test_cuda_path_matches_cpu_path_and_is_seeded():
    params = AugmentParams(min_area=0.6, rotate_limit=20, hflip=True, brightness_contrast=0.2)
    x = torch.from_numpy(np.stack([canvas(h, w, seed=i) for i, (h, w) in
                                   enumerate(CONTENT * 16)])).permute(0, 3, 1, 2)
    gen = torch.Generator(device="cuda").manual_seed(0)
    draws = sample_device_params(get_policy(params, size=S), n=len(x), height=S, width=S,
                                 generator=gen)
    on_gpu = warp_batch(x.cuda(), **draws).cpu()
    on_cpu = warp_batch(x, **{k: v.cpu() for k, v in draws.items()})
    # the same parameters give the same pixels up to float rounding on either device
    assert (on_gpu.int() - on_cpu.int()).abs().max() <= 1
    aug = device_augment(params)
    a = aug(x.cuda(), torch.Generator(device="cuda").manual_seed(3))
    b = aug(x.cuda(), torch.Generator(device="cuda").manual_seed(3))
    assert a.device.type == "cuda" and torch.equal(a, b)
