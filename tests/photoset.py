"""A small photo dataset with planted problems, built from the real photos that ship
with scikit-image and scikit-learn (issue 12, item 6). No download.

Only 7 whole colour photos ship (skimage ``astronaut``, ``coffee``, ``chelsea``,
``rocket``, ``immunohistochemistry``; sklearn ``china.jpg``, ``flower.jpg``), fewer than
the 30+ distinct sources the set needs, so each photo is cut into a 3 x 3 grid of
*regions* and every region is one distinct source (63 in all): an image is a random
crop of one region (60-100 % of it, landscape 4:3 / 3:2 / 16:10 or, for about a third,
the same turned to portrait), resized to a longer side of 240-720 px, randomly
mirrored, brightness x 0.9-1.1, saved as JPEG (quality 85-95) or PNG. A region gives at
most two images, and two crops of one region are taken from its opposite halves so
that they are not near copies of each other.

Classes: ``indoor`` (regions of astronaut, coffee, rocket, china) and ``outdoor``
(chelsea, flower, immunohistochemistry): by source photo, so a net can learn them,
but from scratch on ~100 images it is not expected to learn them well.

Planted (:attr:`PhotoSet.planted`: path, kind, the check that must flag it):

- ``placeholder`` x 2: "image not found" text and a frame icon on a flat light
  background, one GIF (palette) and one PNG, filed inside the classes;
- ``screenshot``: a flat UI (title bar, toolbar, sidebar, lines of text) 1280 x 800;
- ``exact_copy``: the bytes of a training image copied into the val split;
- ``near_copy``: a training image resized to 85 % and re-encoded as JPEG q=70, in val;
- ``broken`` x 2: a truncated JPEG and a text file named ``.png``;
- ``flipped`` x 3: photos filed under the other class (label errors; file-level checks
  cannot see them, the label check needs a good model).

The source is a CSV (``path,label,split``) so that the copies cross splits.
"""

from __future__ import annotations

import csv
import io
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

INDOOR = ("astronaut", "coffee", "rocket", "china")
OUTDOOR = ("chelsea", "flower", "immunohistochemistry")
GRID = 3
ASPECTS = (4 / 3, 3 / 2, 16 / 10)


@dataclass
class PhotoSet:
    root: Path
    csv: Path
    planted: list[dict[str, str]] = field(default_factory=list)  # path, kind, check
    photos: list[dict[str, object]] = field(default_factory=list)  # path, source, portrait
    n_sources: int = 0


def _photos() -> dict[str, np.ndarray]:
    from skimage import data
    from sklearn.datasets import load_sample_images

    out = {n: np.asarray(getattr(data, n)())[..., :3] for n in
           ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry")}
    sample = load_sample_images()
    for name, img in zip(sample.filenames, sample.images, strict=True):
        out[Path(name).stem] = np.asarray(img)
    return out


def _crop(region: np.ndarray, rng: np.random.Generator, half: int) -> tuple[Image.Image, bool]:
    h, w = region.shape[:2]
    ar = float(rng.choice(ASPECTS))
    portrait = bool(rng.random() < 0.35)
    if portrait:
        ar = 1 / ar
    # the crop lies in one half of the region (left/right), so two crops differ
    hw = w // 2 + w // 6
    x_lo = 0 if half == 0 else w - hw
    scale = rng.uniform(0.6, 1.0)
    ch = int(min(h, hw / ar) * scale)
    cw = int(ch * ar)
    y0 = int(rng.integers(0, h - ch + 1))
    x0 = x_lo + int(rng.integers(0, hw - cw + 1))
    im = Image.fromarray(region[y0:y0 + ch, x0:x0 + cw])
    longer = int(rng.uniform(240, 720))
    size = (longer, int(longer / ar)) if ar >= 1 else (int(longer * ar), longer)
    im = im.resize(size, Image.Resampling.LANCZOS)
    if rng.random() < 0.5:
        im = im.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    arr = np.asarray(im).astype(np.float64) * rng.uniform(0.9, 1.1)
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)), portrait


def _ordinary(im: Image.Image) -> bool:
    """Luminance entropy >= 6 bits, std >= 0.12 and mean in [0.2, 0.8]: what a
    photo of something looks like (crops of flat sky or of a dark background are
    redrawn, so that the only flat pictures in the set are the planted ones)."""
    lum = np.asarray(im.convert("L"), dtype=np.float64) / 255
    hist = np.bincount((lum * 255).astype(int).ravel(), minlength=256) / lum.size
    entropy = float(-(hist[hist > 0] * np.log2(hist[hist > 0])).sum())
    return entropy >= 6.0 and lum.std() >= 0.12 and 0.2 <= lum.mean() <= 0.8


def placeholder(width: int = 400, height: int = 300) -> Image.Image:
    """An "image not found" picture: flat light grey, a frame icon, a line of text."""
    im = Image.new("RGB", (width, height), (236, 236, 236))
    d = ImageDraw.Draw(im)
    cx, cy = width // 2, height // 2
    d.rectangle([cx - 30, cy - 60, cx + 30, cy - 10], outline=(150, 150, 150), width=3)
    d.line([cx - 30, cy - 10, cx, cy - 40, cx + 30, cy - 10], fill=(150, 150, 150), width=3)
    d.text((cx - 45, cy + 10), "image not found", fill=(120, 120, 120))
    return im


def screenshot(width: int = 1280, height: int = 800) -> Image.Image:
    """A flat desktop-app screenshot: title bar, toolbar, sidebar, text lines."""
    im = Image.new("RGB", (width, height), (255, 255, 255))
    d = ImageDraw.Draw(im)
    d.rectangle([0, 0, width, 32], fill=(45, 45, 48))
    d.rectangle([0, 32, width, 80], fill=(240, 240, 240))
    for i in range(8):
        d.rectangle([12 + 44 * i, 42, 44 + 44 * i, 72], fill=(200, 210, 230))
    d.rectangle([0, 80, 240, height], fill=(246, 246, 250))
    for i in range(20):
        d.text((16, 96 + 30 * i), f"Folder {i}", fill=(40, 40, 40))
    for i in range(22):
        d.text((270, 100 + 30 * i), "Lorem ipsum dolor sit amet, consectetur adipiscing "
               f"elit {i}", fill=(30, 30, 30))
    d.rectangle([900, 300, 1200, 500], outline=(0, 120, 215), width=2)
    return im


def make_photo_set(root: Path, *, per_class: int = 40, seed: int = 0) -> PhotoSet:
    """Write the set under ``root`` (replaced) and return what was planted."""
    rng = np.random.default_rng(seed)
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    photos = _photos()
    rows: list[tuple[str, str, str]] = []
    out = PhotoSet(root, root / "images.csv")
    sources: set[tuple[str, int]] = set()
    for label, names in (("indoor", INDOOR), ("outdoor", OUTDOOR)):
        (root / label).mkdir()
        regions = [(n, r) for n in names for r in range(GRID * GRID)]
        regions = [regions[j] for j in rng.permutation(len(regions))]
        made, j = 0, 0
        while made < per_class:
            if j >= 4 * len(regions):
                raise RuntimeError(f"too few usable regions for {per_class} '{label}' photos")
            name, r = regions[j % len(regions)]
            half = (j // len(regions)) % 2
            j += 1
            img = photos[name]
            h, w = img.shape[:2]
            gy, gx = divmod(r, GRID)
            region = img[gy * h // GRID:(gy + 1) * h // GRID,
                         gx * w // GRID:(gx + 1) * w // GRID]
            for _ in range(20):  # an ordinary photo: not a crop of flat sky or shadow
                im, portrait = _crop(region, rng, half)
                if _ordinary(im):
                    break
            else:
                continue  # a region of sky or shadow only: no photo from it
            i = made
            made += 1
            ext = "jpg" if rng.random() < 0.7 else "png"
            path = f"{label}/{name}_{r}_{i:03d}.{ext}"
            if ext == "jpg":
                im.save(root / path, quality=int(rng.integers(85, 96)))
            else:
                im.save(root / path)
            split = "val" if rng.random() < 0.2 else "train"
            rows.append((path, label, split))
            sources.add((name, r))
            out.photos.append({"path": path, "source": f"{name}:{r}", "portrait": portrait,
                               "label": label, "split": split})
    out.n_sources = len(sources)

    def plant(path: str, label: str, split: str, kind: str, check: str) -> None:
        rows.append((path, label, split))
        out.planted.append({"path": path, "kind": kind, "check": check})

    placeholder().convert("P", palette=Image.Palette.ADAPTIVE).save(
        root / "indoor/missing_0001.gif")
    plant("indoor/missing_0001.gif", "indoor", "train", "placeholder", "several_checks")
    placeholder(480, 360).save(root / "outdoor/missing_0002.png")
    plant("outdoor/missing_0002.png", "outdoor", "train", "placeholder", "several_checks")
    screenshot().save(root / "indoor/screen_0003.png")
    plant("indoor/screen_0003.png", "indoor", "train", "screenshot", "outlier")

    train = [p for p in out.photos if p["split"] == "train"]
    exact, near = train[0], train[len(train) // 2]
    src = str(exact["path"])
    dst = f"{exact['label']}/{Path(src).stem}_copy{Path(src).suffix}"
    shutil.copyfile(root / src, root / dst)
    plant(dst, str(exact["label"]), "val", "exact_copy", "exact_duplicate")
    with Image.open(root / str(near["path"])) as im:
        im = im.convert("RGB")
        im = im.resize((int(im.width * 0.85), int(im.height * 0.85)), Image.Resampling.LANCZOS)
        dst = f"{near['label']}/{Path(str(near['path'])).stem}_resaved.jpg"
        im.save(root / dst, quality=70)
    plant(dst, str(near["label"]), "val", "near_copy", "near_duplicate")

    buf = io.BytesIO()
    Image.fromarray(photos["coffee"]).save(buf, format="JPEG", quality=90)
    (root / "indoor/truncated_0004.jpg").write_bytes(buf.getvalue()[:len(buf.getvalue()) // 3])
    plant("indoor/truncated_0004.jpg", "indoor", "train", "broken", "integrity")
    (root / "outdoor/notes_0005.png").write_text("not an image\n")
    plant("outdoor/notes_0005.png", "outdoor", "train", "broken", "integrity")

    # label errors: three photos filed under the other class
    flipped = [p for p in out.photos if p["split"] == "train"][-3:]
    by_path = {r[0]: i for i, r in enumerate(rows)}
    for p in flipped:
        other = "outdoor" if p["label"] == "indoor" else "indoor"
        i = by_path[str(p["path"])]
        rows[i] = (rows[i][0], other, rows[i][2])
        p["label"] = other
        out.planted.append({"path": str(p["path"]), "kind": "flipped", "check": "label"})

    with out.csv.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "label", "split"])
        writer.writerows(rows)
    return out
