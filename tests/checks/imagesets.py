"""Real-image test sets for the image-statistic checks, built through the scan's own
statistics (:func:`dataqa.dataset.imagestats.get_image_stats`), so the checks are tested on the
numbers they will see in production.

- :func:`manifest_of`: a manifest (every ``COLUMNS`` column) for in-memory images.
- :func:`load_mnist`: the real MNIST test digits, or None when the shared folder is
  absent (tests then skip with :data:`MNIST_MISSING`).
- :func:`photo_crops`: real photos (``skimage.data`` + ``sklearn`` sample images) cut
  into varied landscape crops.
"""

from __future__ import annotations

import functools
import gzip
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw

from dataqa.dataset.imagestats import STAT_NAMES, get_image_stats
from dataqa.dataset.manifest import COLUMNS

MNIST_DIR = Path(__file__).resolve().parents[3] / "shared" / "datasets" / "mnist-test"
MNIST_MISSING = f"real MNIST test digits not found in {MNIST_DIR}"


def manifest_of(images: Sequence[np.ndarray], labels: Sequence[str], *,
                broken: Sequence[int] = ()) -> pd.DataFrame:
    """Manifest rows for ``images`` ((H, W) or (H, W, 3) uint8); rows in ``broken`` are
    undecodable (statistics NaN, ``decode_error`` set)."""
    rows = []
    for i, (arr, label) in enumerate(zip(images, labels, strict=True)):
        row: dict[str, object] = {c: None for c in COLUMNS}
        row.update(id=i, path=f"{label}/{i:05d}.png", label=label, split="train", bytes=1)
        if i in broken:
            row["decode_error"] = "truncated: planted"
        else:
            img = Image.fromarray(arr)
            stats = get_image_stats(img)
            row.update({k: stats[k] for k in STAT_NAMES}, width=img.width,
                       height=img.height, mode=img.mode)
        rows.append(row)
    return pd.DataFrame(rows, columns=list(COLUMNS)).astype(COLUMNS)


@functools.lru_cache(maxsize=1)
def load_mnist() -> tuple[np.ndarray, np.ndarray] | None:
    """(10000, 28, 28) uint8 digits and (10000,) labels, or None when absent."""
    images, labels = MNIST_DIR / "t10k-images-idx3-ubyte.gz", MNIST_DIR / "t10k-labels-idx1-ubyte.gz"
    if not (images.is_file() and labels.is_file()):
        return None
    x = np.frombuffer(gzip.decompress(images.read_bytes()), np.uint8, offset=16)
    y = np.frombuffer(gzip.decompress(labels.read_bytes()), np.uint8, offset=8)
    return x.reshape(-1, 28, 28), y


@functools.lru_cache(maxsize=2)
def mnist_manifest(n: int) -> pd.DataFrame | None:
    """Manifest of the first ``n`` MNIST test digits (cached: the statistics of 10,000
    digits take ~15 s on a 2-core box)."""
    data = load_mnist()
    if data is None:
        return None
    x, y = data
    return manifest_of(list(x[:n]), [str(v) for v in y[:n]])


def base_photos() -> list[np.ndarray]:
    """Six real colour photos shipped with scikit-image and scikit-learn (no download)."""
    from skimage import data
    from sklearn.datasets import load_sample_images

    out = [np.asarray(getattr(data, name)())[..., :3]
           for name in ("astronaut", "coffee", "chelsea", "rocket")]
    return out + list(load_sample_images().images)


def photo_crops(n: int, *, seed: int = 0) -> list[np.ndarray]:
    """``n`` landscape crops (aspect 1.2..1.6, width 240..360 px) of the base photos,
    randomly mirrored and with brightness x 0.85..1.15: a photo dataset with natural
    spread in every statistic."""
    rng = np.random.default_rng(seed)
    photos = base_photos()
    out = []
    for i in range(n):
        p = photos[i % len(photos)]
        h, w = p.shape[:2]
        ar = rng.uniform(1.2, 1.6)
        ch = int(rng.uniform(0.6, 0.9) * h)
        cw = min(w, int(ch * ar))
        ch = int(cw / ar)
        y0, x0 = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
        side = int(rng.uniform(240, 360))
        im = Image.fromarray(p[y0:y0 + ch, x0:x0 + cw]).resize((side, int(side / ar)),
                                                               Image.Resampling.LANCZOS)
        if rng.random() < 0.5:
            im = im.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        arr = np.asarray(im).astype(np.float64) * rng.uniform(0.85, 1.15)
        out.append(np.clip(arr, 0, 255).astype(np.uint8))
    return out


def placeholder(width: int = 300, height: int = 220, grey: int = 128) -> np.ndarray:
    """An "image not found" picture: flat grey, a small frame icon and a line of text."""
    im = Image.new("RGB", (width, height), (grey, grey, grey))
    draw = ImageDraw.Draw(im)
    cx, cy = width // 2, height // 2
    draw.rectangle([cx - 20, cy - 40, cx + 20, cy], outline=(80, 80, 80), width=3)
    draw.text((cx - 45, cy + 10), "image not found", fill=(60, 60, 60))
    return np.asarray(im)
