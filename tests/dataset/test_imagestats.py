"""Per-image statistics and hashes: planted images with known numbers, equivalence with
imagehash and PIL, and independence from the batch an image is computed in."""

from __future__ import annotations

import gzip
import io
import math
from pathlib import Path

import imagehash
import numpy as np
import pytest
from PIL import Image

from dataqa.dataset import imagestats as S
from dataqa.dataset.manifest import STAT_SIZE

MNIST = Path(__file__).resolve().parents[3] / "shared" / "datasets" / "mnist-test"


def mnist_digits(n: int) -> np.ndarray:
    path = MNIST / "t10k-images-idx3-ubyte.gz"
    if not path.is_file():
        pytest.skip(f"MNIST test images not found at {path} (shared datasets absent)")
    raw = gzip.decompress(path.read_bytes())
    return np.frombuffer(raw, np.uint8, offset=16).reshape(-1, 28, 28)[:n]


def flat_bpp(n: int = STAT_SIZE * STAT_SIZE) -> float:
    """Residual entropy of a flat image: one pixel keeps its value, the rest predict to 0."""
    p = np.array([1 / n, (n - 1) / n])
    return float(-(p * np.log2(p)).sum())


HALF = np.zeros((64, 64), np.uint8)
HALF[:, 32:] = 255
RAMP = np.tile(np.arange(0, 256, 4, dtype=np.uint8), (64, 1))  # 64 levels, each 1/64 of pixels


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        (Image.new("L", (10, 10), 128),  # flat grey: no spread, no texture, no colour
         {"stat_mean": 128 / 255, "stat_std": 0.0, "stat_p05": 128 / 255, "stat_p95": 128 / 255,
          "stat_entropy": 0.0, "stat_colorfulness": 0.0, "stat_blur": 0.0,
          "stat_gradient": 0.0, "stat_bpp": flat_bpp()}),
        (Image.fromarray(HALF),  # two levels, half each: 1 bit, std 0.5, p05 black, p95 white
         {"stat_mean": 0.5, "stat_std": 0.5, "stat_p05": 0.0, "stat_p95": 1.0,
          "stat_entropy": 1.0, "stat_colorfulness": 0.0}),
        (Image.fromarray(RAMP),  # 64 equally frequent levels: 6 bits; nearest-rank percentiles
         {"stat_mean": 126 / 255, "stat_entropy": 6.0, "stat_p05": 12 / 255,
          "stat_p95": 240 / 255}),
        (Image.new("RGB", (8, 8), (255, 0, 0)),  # pure red: |255-85|+|0-85|*2 = 340 / 3 / 255
         {"stat_colorfulness": 340 / 3 / 255, "stat_mean": 76 / 255, "stat_std": 0.0}),
        (Image.fromarray(np.dstack([HALF] * 3)),  # grey saved as RGB: colourfulness exactly 0
         {"stat_colorfulness": 0.0, "stat_mean": 0.5, "stat_entropy": 1.0}),
        (Image.new("L", (1, 1), 7),  # a single pixel still has every statistic
         {"stat_mean": 7 / 255, "stat_std": 0.0, "stat_blur": 0.0, "stat_gradient": 0.0,
          "stat_bpp": flat_bpp()}),
    ],
)
def test_planted_image_statistics(image: Image.Image, expected: dict[str, float]) -> None:
    stats = S.get_image_stats(image)
    assert set(stats) == set(S.FIELDS)
    for name, value in expected.items():
        assert stats[name] == pytest.approx(value, abs=1e-12), name


@pytest.mark.parametrize(
    ("sharper", "softer", "stat"),
    [
        ("checker", "checker_blurred", "stat_blur"),  # blurring lowers the Laplacian variance
        ("checker", "checker_blurred", "stat_gradient"),  # ... and the gradient energy
        ("noise", "flat", "stat_bpp"),  # noise is incompressible, a flat image nearly free
        ("noise", "ramp", "stat_bpp"),  # a smooth ramp is predictable, noise is not
    ],
)
def test_texture_statistics_order_planted_pairs(sharper: str, softer: str, stat: str) -> None:
    rng = np.random.default_rng(0)
    checker = ((np.indices((64, 64)).sum(axis=0) // 4) % 2 * 255).astype(np.uint8)
    images = {
        "checker": Image.fromarray(checker),
        "checker_blurred": Image.fromarray(checker).resize((16, 16), Image.Resampling.BOX)
        .resize((64, 64), Image.Resampling.BILINEAR),
        "noise": Image.fromarray(rng.integers(0, 256, (64, 64), dtype=np.uint8)),
        "flat": Image.new("L", (64, 64), 90),
        "ramp": Image.fromarray(RAMP),
    }
    assert S.get_image_stats(images[sharper])[stat] > 2 * S.get_image_stats(images[softer])[stat]


def test_noise_costs_nearly_eight_bits_per_pixel() -> None:
    rng = np.random.default_rng(1)
    noise = Image.fromarray(rng.integers(0, 256, (64, 64), dtype=np.uint8))
    assert 7.9 < S.get_image_stats(noise)["stat_bpp"] <= 8.0


def test_hashes_equal_imagehash_on_real_digits() -> None:
    for digit in mnist_digits(100):
        im = Image.fromarray(digit)
        stats = S.get_image_stats(im)
        assert stats["phash"] == str(imagehash.phash(im))
        assert stats["dhash"] == str(imagehash.dhash(im))


def test_hashes_near_imagehash_on_real_photos() -> None:
    import skimage.data

    for name in ("astronaut", "coffee", "chelsea", "camera"):
        photo = Image.fromarray(getattr(skimage.data, name)())
        for side in (96, 300, 512):  # the image itself; box-reduced analysis copies
            im = photo.resize((side, side * photo.height // photo.width))
            stats = S.get_image_stats(im)
            for kind, ref in (("phash", imagehash.phash(im)), ("dhash", imagehash.dhash(im))):
                distance = bin(int(str(stats[kind]), 16) ^ int(str(ref), 16)).count("1")
                assert distance <= 6, (name, side, kind, distance)


def test_resize_matches_pil_within_two_levels() -> None:
    digits = mnist_digits(50)
    for size, kind, pil in (((64, 64), "bilinear", Image.Resampling.BILINEAR),
                            ((32, 32), "lanczos", Image.Resampling.LANCZOS),
                            ((9, 8), "lanczos", Image.Resampling.LANCZOS)):
        mine = S.resize(digits.astype(np.float32), size, kind)
        ref = np.stack([np.asarray(Image.fromarray(d).resize(size, pil)) for d in digits])
        diff = np.abs(mine - ref)
        assert diff.max() <= 2  # PIL rounds its filter weights to 22-bit fixed point
        assert (diff > 0).mean() < 0.01, kind


def test_statistics_do_not_depend_on_the_batch() -> None:
    rng = np.random.default_rng(2)
    images = [Image.fromarray(rng.integers(0, 256, (28, 28), dtype=np.uint8)) for _ in range(5)]
    images += [Image.fromarray(rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)),
               Image.fromarray(rng.integers(0, 256, (300, 200, 3), dtype=np.uint8)),
               Image.new("L", (28, 28), 3)]
    alone = [S.get_image_stats(im) for im in images]
    together = S.get_stats([S.reduce_image(im) for im in images])
    assert together == alone


@pytest.mark.parametrize(
    ("same", "a", "b"),
    [
        (True, ("PNG", {"compress_level": 1}), ("PNG", {"compress_level": 9})),  # re-saved PNG
        (True, ("PNG", {}), ("BMP", {})),  # lossless copy in another format
        (True, ("PNG", {}), ("TIFF", {})),  # ... and another
        (False, ("PNG", {}), ("JPEG", {"quality": 95})),  # lossy copy: other pixels
    ],
)
def test_pixel_hash_follows_pixels_not_bytes(same: bool, a: tuple, b: tuple) -> None:
    from dataqa.dataset.imageio import decode_image

    rng = np.random.default_rng(3)
    img = Image.fromarray(rng.integers(0, 256, (40, 50, 3), dtype=np.uint8))
    hashes = []
    for fmt, kwargs in (a, b):
        buf = io.BytesIO()
        img.save(buf, fmt, **kwargs)
        decoded = decode_image(buf.getvalue(), 10**8)
        assert decoded.image is not None
        hashes.append(S.get_image_stats(decoded.image)["pixel_sha256"])
    assert (hashes[0] == hashes[1]) is same


def _jpeg(img: Image.Image, **kwargs: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", **kwargs)
    return buf.getvalue()


def test_jpeg_stream_hash_ignores_metadata_only() -> None:
    rng = np.random.default_rng(4)
    img = Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))
    exif = Image.Exif()
    exif[0x010F] = "SomeCamera"  # Make: metadata only
    plain = _jpeg(img, quality=90)
    tagged = _jpeg(img, quality=90, exif=exif.tobytes(), comment=b"hello")
    other = _jpeg(img, quality=80)
    assert plain != tagged
    assert S.get_jpeg_stream_sha256(plain, 1) == S.get_jpeg_stream_sha256(tagged, 1)
    assert S.get_jpeg_stream_sha256(plain, 1) != S.get_jpeg_stream_sha256(other, 1)
    assert S.get_jpeg_stream_sha256(plain, 1) != S.get_jpeg_stream_sha256(plain, 6)
    assert S.get_jpeg_stream_sha256(b"not a jpeg", 1) != S.get_jpeg_stream_sha256(b"other", 1)


def test_stat_size_matches_manifest() -> None:
    assert S.STAT_SIZE == STAT_SIZE
    assert math.isclose(S.fit_size((28, 14), STAT_SIZE)[1], 32)


def test_rejects_modes_other_than_l_and_rgb() -> None:
    with pytest.raises(ValueError, match="RGBA"):
        S.reduce_image(Image.new("RGBA", (4, 4)))
