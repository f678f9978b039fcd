"""Regenerate the bundled sample ``data/sample/`` deterministically.

Real MNIST test digits (class-stratified, seeded) as 8-bit grayscale PNG in an
ImageFolder tree ``<out>/<class>/<file>``, plus planted problems, one per row of
``<out>/PLANTED.csv`` (columns ``path,kind,check,detail``) so that every dataqa check
has known truth to find. Usage::

    .venv/bin/python scripts/make_sample.py [--mnist DIR] [--out DIR]

The same inputs and the same Pillow build (its zlib-ng and libjpeg-turbo) give
byte-identical files. The output folder is built next to the target and swapped in
whole, so an interrupted run leaves the previous sample or none, never a mix.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import io
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_MNIST = REPO_ROOT.parent / "shared" / "datasets" / "mnist-test"
DEFAULT_OUT = REPO_ROOT / "data" / "sample"

SEED = 20240611
CLASSES = [str(d) for d in range(10)]
N_PER_CLASS = 215  # clean real digits per class
RARE_CLASS = "7"
N_RARE = 25  # clean real digits in the rare class
PHOTOS = ["astronaut", "coffee", "chelsea", "rocket", "camera"]  # skimage.data, bundled
PHOTO_LONG_SIDE = (64, 128)  # inclusive range of the downscaled longer side, px


class SampleError(Exception):
    """The inputs are unusable; the message names the file."""


@dataclass(frozen=True)
class Planted:
    path: str  # posix, relative to the sample root
    kind: str
    check: str
    detail: str


# --------------------------------------------------------------------------- inputs

def load_mnist(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read the MNIST test IDX files: images (10000, 28, 28) uint8 and labels (10000,)."""
    if not folder.is_dir():
        raise SampleError(f"{folder}: MNIST test folder not found (pass --mnist DIR holding "
                          "t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz)")
    images = _read_idx(folder / "t10k-images-idx3-ubyte.gz", magic=0x803)
    labels = _read_idx(folder / "t10k-labels-idx1-ubyte.gz", magic=0x801)
    if images.shape[0] != labels.shape[0]:
        raise SampleError(f"{folder}: {images.shape[0]} images but {labels.shape[0]} labels")
    return images, labels


def _read_idx(path: Path, *, magic: int) -> np.ndarray:
    if not path.is_file():
        raise SampleError(f"{path}: file not found")
    try:
        raw = gzip.decompress(path.read_bytes())
    except (OSError, EOFError) as exc:
        raise SampleError(f"{path}: not a readable gzip file ({exc})") from None
    found = int.from_bytes(raw[:4], "big")
    if found != magic:
        raise SampleError(f"{path}: IDX magic {found:#x}, expected {magic:#x}")
    ndim = magic & 0xFF
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    payload = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if payload.size != int(np.prod(dims)):
        raise SampleError(f"{path}: {payload.size} bytes of data, header says {dims}")
    return payload.reshape(dims)


def load_photo(name: str) -> np.ndarray:
    """A real photo shipped inside scikit-image (no download), (H, W, 3) uint8."""
    try:
        import skimage.data
    except ImportError:
        raise SampleError("scikit-image is needed for the photos: install the test "
                          "extras (pip install -e '.[test]')") from None
    arr = np.asarray(getattr(skimage.data, name)())
    # camera is a grayscale photo; store it as RGB like the others (a common real case)
    return np.repeat(arr[:, :, None], 3, axis=2) if arr.ndim == 2 else arr


# --------------------------------------------------------------------------- encoders

def png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def jpeg(arr: np.ndarray, *, quality: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def resize(arr: np.ndarray, width: int, height: int) -> np.ndarray:
    return np.asarray(Image.fromarray(arr).resize((width, height), Image.Resampling.BICUBIC))


# --------------------------------------------------------------------------- the plan

class Builder:
    """Collects the sample's files and its PLANTED rows; draws from per-class pools."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, *, seed: int) -> None:
        self.images = images
        self.labels = labels
        self.rng = np.random.default_rng(seed)
        self.files: dict[str, bytes] = {}
        self.planted: list[Planted] = []
        self.clean: dict[str, list[int]] = {}
        self.pool: dict[str, list[int]] = {}
        for c in CLASSES:
            idx = self.rng.permutation(np.flatnonzero(labels == int(c))).tolist()
            n = N_RARE if c == RARE_CLASS else N_PER_CLASS
            self.clean[c], self.pool[c] = idx[:n], idx[n:]
        common = [c for c in CLASSES if c != RARE_CLASS]
        self._hosts = self._cycle(common)

    def _cycle(self, items: list[str]) -> Iterator[str]:
        # one seeded order, repeated: planted files spread evenly over the common classes
        order = [items[i] for i in self.rng.permutation(len(items))]
        while True:
            yield from order

    def host(self) -> str:
        return next(self._hosts)

    def fresh(self, c: str) -> int:
        """A test-set index of class ``c`` that is nowhere else in the sample."""
        return self.pool[c].pop(0)

    def add(self, path: str, data: bytes, planted: tuple[str, str, str] | None = None) -> None:
        if path in self.files:
            raise AssertionError(f"{path} planned twice")
        self.files[path] = data
        if planted is not None:
            self.planted.append(Planted(path, *planted))


def build(images: np.ndarray, labels: np.ndarray, *, seed: int = SEED) -> Builder:
    b = Builder(images, labels, seed=seed)
    for c in CLASSES:
        for i in b.clean[c]:
            b.add(f"{c}/mnist_{i:05d}.png", png(images[i]))
    used: set[int] = set()

    def source(c: str) -> int:
        # a clean digit of class c not yet copied by another planted problem
        choices = [i for i in b.clean[c] if i not in used]
        i = choices[int(b.rng.integers(len(choices)))]
        used.add(i)
        return i

    for _ in range(4):  # byte-identical copies under another name, same class
        c = b.host()
        i = source(c)
        b.add(f"{c}/mnist_{i:05d}_copy.png", b.files[f"{c}/mnist_{i:05d}.png"],
              ("exact_duplicate", "exact_duplicate", f"copy of {c}/mnist_{i:05d}.png"))

    near = [  # (file suffix, how, encoder)
        ("_q85.jpg", "re-encoded as JPEG quality 85", lambda a: jpeg(a, quality=85)),
        ("_36px.png", "resized to 36x36", lambda a: png(resize(a, 36, 36))),
        ("_crop.png", "border of 1 px cropped, resized back to 28x28",
         lambda a: png(resize(a[1:-1, 1:-1], 28, 28))),
        ("_56px.jpg", "resized to 56x56, JPEG quality 75",
         lambda a: jpeg(resize(a, 56, 56), quality=75)),
    ]
    for suffix, how, encode in near:
        c = b.host()
        i = source(c)
        b.add(f"{c}/mnist_{i:05d}{suffix}", encode(images[i]),
              ("near_duplicate", "near_duplicate", f"near copy of {c}/mnist_{i:05d}.png: {how}"))

    _plant_integrity(b)
    _plant_photos(b)
    b.planted.append(Planted(RARE_CLASS, "rare_class", "class_balance",
                             f"{N_RARE} images; every other class has {N_PER_CLASS} clean "
                             "digits plus a few planted files"))
    _plant_flipped(b, n=12)
    _plant_quality(b)
    _plant_textures(b)
    _plant_geometry(b)
    return b


def _plant_integrity(b: Builder) -> None:
    c = b.host()
    b.add(f"{c}/empty.png", b"", ("zero_byte", "integrity", "zero-byte file"))
    c = b.host()
    i = b.fresh(c)
    data = png(b.images[i])
    cut = int(len(data) * 0.6)
    b.add(f"{c}/mnist_{i:05d}.png", data[:cut],
          ("truncated", "integrity", f"first 60% ({cut} of {len(data)} bytes) of a PNG, "
                                     f"true label {c}"))
    c = b.host()
    b.add(f"{c}/notes.png", b"scanned batch 7: rescan the smudged sheets before labelling\n",
          ("not_an_image", "integrity", "a text file with a .png extension"))
    c = b.host()
    i = b.fresh(c)
    b.add(f"{c}/mnist_{i:05d}.jpg", png(b.images[i]),
          ("wrong_extension", "integrity", "PNG content under a .jpg extension; decodes fine"))


def _plant_photos(b: Builder) -> None:
    for name in PHOTOS:
        c = b.host()
        arr = load_photo(name)
        h, w = arr.shape[:2]
        long_side = int(b.rng.integers(PHOTO_LONG_SIDE[0], PHOTO_LONG_SIDE[1] + 1))
        scale = long_side / max(h, w)
        nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
        small = np.asarray(Image.fromarray(arr).resize((nw, nh), Image.Resampling.LANCZOS))
        b.add(f"{c}/photo_{name}.jpg", jpeg(small, quality=90),
              ("irrelevant_photo", "outlier", f"skimage.data.{name}() at {nw}x{nh}, RGB JPEG"))


def _plant_flipped(b: Builder, *, n: int) -> None:
    """Clear digits filed under a wrong class. "Clear" = the most typical of 200 fresh
    candidates (cosine similarity to its own class mean minus the best other class mean),
    so a model finds them; a genuinely ambiguous digit would test the model, not the check."""
    flat = b.images.reshape(len(b.images), -1).astype(np.float64)
    centroids = np.stack([flat[b.clean[c]].mean(axis=0) for c in CLASSES])
    centroids /= np.linalg.norm(centroids, axis=1, keepdims=True)
    for _ in range(n):
        host = b.host()
        others = [c for c in CLASSES if c != host]
        true = others[int(b.rng.integers(len(others)))]
        cand = np.asarray(b.pool[true][:200])
        v = flat[cand] / np.linalg.norm(flat[cand], axis=1, keepdims=True)
        sim = v @ centroids.T  # (200, 10)
        own = sim[:, int(true)]
        sim[:, int(true)] = -np.inf
        i = int(cand[int(np.argmax(own - sim.max(axis=1)))])
        b.pool[true].remove(i)
        b.add(f"{host}/mnist_{i:05d}.png", png(b.images[i]),
              ("flipped_label", "label", f"true label {true}"))


def _plant_quality(b: Builder) -> None:
    def dark(a: np.ndarray) -> np.ndarray:
        return (a.astype(np.float64) * 0.15).round().astype(np.uint8)

    def light(a: np.ndarray) -> np.ndarray:  # white page, faint grey strokes
        return (255 - (a.astype(np.float64) * 0.15).round()).astype(np.uint8)

    def blurry(a: np.ndarray) -> np.ndarray:
        # blurred at 4x so the result is smooth, then back to 28x28: a Gaussian of about 1.5
        # native px. Keeping the native size means only `blurry` should fire, not
        # `odd_size`; a 112x112 copy blurred by 2 px would be no blurrier than an
        # ordinary digit once the stats rescale it (scan measures at 64 px).
        big = Image.fromarray(a).resize((112, 112), Image.Resampling.BICUBIC)
        big = big.filter(ImageFilter.GaussianBlur(radius=6))
        return np.asarray(big.resize((28, 28), Image.Resampling.LANCZOS))

    for kind, how, fn in [("dark", "pixels x 0.15", dark),
                          ("light", "255 - 0.15 x pixels", light),
                          ("blurry", "Gaussian blur of ~1.5 px (radius 6 at 112x112, back "
                                     "to 28x28)", blurry)]:
        for _ in range(3):
            c = b.host()
            i = b.fresh(c)
            b.add(f"{c}/mnist_{i:05d}.png", png(fn(b.images[i])),
                  (kind, kind, f"{how}, true label {c}"))


def _plant_textures(b: Builder) -> None:
    yy, xx = np.mgrid[:28, :28]
    checker = np.where((yy + xx) % 2 == 0, 255.0, 0.0)
    for k in range(4):
        c = b.host()
        if k < 2:
            arr = b.rng.integers(0, 256, size=(28, 28)).astype(np.uint8)
            how = "uniform noise"
        else:
            noise = b.rng.normal(0.0, 60.0, size=(28, 28))
            arr = np.clip(checker + noise, 0, 255).round().astype(np.uint8)
            how = "1-px checkerboard + Gaussian noise (sd 60)"
        b.add(f"{c}/texture_{k}.png", png(arr),
              ("complex_texture", "complexity", f"synthetic 28x28 {how}, not a digit"))


def _plant_geometry(b: Builder) -> None:
    c = b.host()
    i = b.fresh(c)
    wide = np.zeros((28, 140), dtype=np.uint8)
    wide[:, 56:84] = b.images[i]
    b.add(f"{c}/mnist_{i:05d}.png", png(wide),
          ("odd_aspect_ratio", "odd_aspect_ratio", f"padded to 140x28 (w x h), true label {c}"))
    c = b.host()
    i = b.fresh(c)
    b.add(f"{c}/mnist_{i:05d}.png", png(resize(b.images[i], 140, 28)),
          ("odd_aspect_ratio", "odd_aspect_ratio",
           f"stretched to 140x28 (w x h), true label {c}"))
    for _ in range(2):
        c = b.host()
        i = b.fresh(c)
        b.add(f"{c}/mnist_{i:05d}.png", png(resize(b.images[i], 280, 280)),
              ("odd_size", "odd_size", f"upscaled to 280x280, true label {c}"))


# --------------------------------------------------------------------------- output

README = """\
# Bundled sample

An ImageFolder tree (`<class>/<file>`, classes "0".."9") of {n_digits} real handwritten
digits from the MNIST test set plus planted problems, one per row of `PLANTED.csv`
(`path,kind,check,detail`; `path` relative to this folder, a folder for class-level
kinds). Class "{rare}" is deliberately rare. Generated by `scripts/make_sample.py`
(seed {seed}); do not edit by hand.

## Origin and licences

- **Digits**: the MNIST database by Yann LeCun, Corinna Cortes and Christopher J.C.
  Burges, licensed under Creative Commons Attribution-Share Alike 3.0 (CC BY-SA 3.0).
  Test-set digits converted to 8-bit grayscale PNG; `mnist_NNNNN` is the index in the
  standard test-set order. Derived files (re-encoded, resized, darkened, blurred, ...)
  are shared under the same licence.
- **Photos** (`photo_*.jpg`), from scikit-image's `skimage.data`, downscaled:
  - `astronaut`: Eileen Collins, NASA Great Images database; no known copyright
    restrictions, released into the public domain.
  - `coffee`: courtesy of Pikolo Espresso Bar; CC0 by the photographer (Rachel Michetti).
  - `chelsea`: Chelsea the cat; CC0 by the photographer (Stefan van der Walt).
  - `rocket`: launch of DSCOVR on Falcon 9, by SpaceX, released into the public domain.
  - `camera`: CC0 by the photographer (Lav Varshney); a grayscale photo, stored as RGB.
- **Textures** (`texture_*.png`) and the text file are synthetic (seeded).

## Regenerate

    .venv/bin/python scripts/make_sample.py            # needs ../shared/datasets/mnist-test
    .venv/bin/python scripts/make_sample.py --mnist DIR --out DIR

It needs the MNIST test IDX files and scikit-image (test extras). The same seed and the
same Pillow build give byte-identical files (`tests/test_sample.py` checks this).
"""


def render(b: Builder) -> dict[str, bytes]:
    """Every output file, path -> bytes: the images, PLANTED.csv and README.md."""
    out = dict(b.files)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["path", "kind", "check", "detail"])
    for p in b.planted:
        writer.writerow([p.path, p.kind, p.check, p.detail])
    out["PLANTED.csv"] = buf.getvalue().encode("utf-8")
    n_digits = sum(1 for p in b.files if "/mnist_" in p)
    out["README.md"] = README.format(n_digits=n_digits, rare=RARE_CLASS,
                                     seed=SEED).encode("utf-8")
    return out


def check_replaceable(out: Path) -> None:
    """Refuse to replace a folder this script did not make (it would be deleted)."""
    if out.exists() and not out.is_dir():
        raise SampleError(f"{out}: exists and is not a folder")
    if out.is_dir() and not (out / "PLANTED.csv").is_file() and any(out.iterdir()):
        raise SampleError(f"{out}: exists and is not a generated sample (no PLANTED.csv); "
                          "refusing to replace it")


def write_tree(files: dict[str, bytes], out: Path) -> None:
    """Write ``files`` under ``out``: built in a sibling temp folder, then swapped in, so
    readers see the old sample or the new one, never a mix. Replaces ``out`` only when it
    is empty or a sample made by this script (it has PLANTED.csv)."""
    out = out.resolve()
    check_replaceable(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    build_dir = Path(tempfile.mkdtemp(prefix=f".{out.name}.new-", dir=out.parent))
    try:
        for rel, data in files.items():
            target = build_dir / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        os.chmod(build_dir, 0o755)  # mkdtemp makes it 0700
        old = None
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
            os.replace(out, old / out.name)
        os.replace(build_dir, out)
        if old is not None:
            shutil.rmtree(old)
    finally:
        if build_dir.exists():
            shutil.rmtree(build_dir)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mnist", type=Path, default=DEFAULT_MNIST,
                        help=f"folder with the MNIST test IDX .gz files (default: {DEFAULT_MNIST})")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help=f"output folder, replaced whole (default: {DEFAULT_OUT})")
    args = parser.parse_args(argv)
    try:
        check_replaceable(args.out.resolve())  # before the work, not after it
        images, labels = load_mnist(args.mnist)
        files = render(build(images, labels))
        write_tree(files, args.out)
    except SampleError as exc:
        print(f"make_sample: error: {exc}", file=sys.stderr)
        return 1
    n_img = sum(1 for p in files if "/" in p)
    size = sum(len(d) for d in files.values())
    print(f"wrote {n_img} files ({size / 1e6:.2f} MB) to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
