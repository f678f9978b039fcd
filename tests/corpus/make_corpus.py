"""Generate the bad-input corpus: odd and broken files, odd folder layouts and bad CSVs.

Every generator writes real bytes (PIL encoders, or hand-built headers where no encoder
would write such a file) into a folder; :mod:`tests.corpus.test_corpus` runs the
pipeline over them and states, per kind, the exact outcome. Nothing here is random
except the drawn digits, which are seeded.
"""

from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

from tests.pipeline.workspace import draw_digit_folder

# A file name cannot hold '/', so the '<script>' name is a folder '<script>x<' holding
# 'script>.png': its manifest path reads '<script>x</script>.png' inside the class folder.
SCRIPT_DIR = "<script>x<"
SCRIPT_FILE = "script>.png"
HTML_LABEL = "<img src=x onerror=alert(1)>"  # a class folder name that is live HTML
UNICODE_NAME = "ünïcödé 数字.png"
SPACES_NAME = "  with  spaces .png"


def photo(w: int = 40, h: int = 30, *, seed: int = 0) -> Image.Image:
    """A small RGB picture with structure (gradient + noise), not a flat colour."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    arr = np.stack([x * 255 // max(w - 1, 1), y * 255 // max(h - 1, 1),
                    rng.integers(0, 256, (h, w))], axis=-1).astype(np.uint8)
    return Image.fromarray(arr, "RGB")


def encoded(img: Image.Image, fmt: str, **kw: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return (struct.pack(">I", len(data)) + kind + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose IHDR claims width x height (8-bit grey) with one tiny IDAT: what a
    decompression bomb or a corrupt header looks like before any pixel is decoded."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr)
            + png_chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + png_chunk(b"IEND", b""))


def exif_rotated_jpeg() -> bytes:
    """A 40x20 (w x h) JPEG whose EXIF orientation 6 says: show it rotated, 20x40."""
    exif = Image.Exif()
    exif[0x0112] = 6
    return encoded(photo(40, 20, seed=3), "JPEG", exif=exif.tobytes(), quality=90)


def animated_gif() -> bytes:
    frames = [photo(24, 24, seed=s).convert("P") for s in range(3)]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:], duration=50, loop=0)
    return buf.getvalue()


def multipage_tiff() -> bytes:
    pages = [photo(24, 24, seed=s) for s in range(2)]
    buf = io.BytesIO()
    pages[0].save(buf, "TIFF", save_all=True, append_images=pages[1:])
    return buf.getvalue()


def palette_with_transparency() -> bytes:
    img = photo(24, 24, seed=4).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    return encoded(img, "PNG", transparency=0)


def sixteen_bit_png() -> bytes:
    arr = (np.linspace(0, 65535, 32 * 32).reshape(32, 32)).astype(np.uint16)
    return encoded(Image.fromarray(arr), "PNG")  # uint16 -> mode I;16


# path (relative to the dataset root) -> bytes. One file per kind of odd input; the
# expected outcome of each lives in test_corpus.FILE_KINDS.
def odd_files() -> dict[str, bytes]:
    good_png = encoded(photo(seed=1), "PNG")
    good_jpg = encoded(photo(64, 48, seed=2), "JPEG", quality=90)
    return {
        "0/zero_byte.png": b"",
        "0/truncated.jpg": good_jpg[: len(good_jpg) // 2],
        "0/truncated.png": good_png[: len(good_png) // 2],
        "0/text_named.png": b"this is a text file, not a picture\n",
        "0/bomb.png": png_header_only(30000, 30000),
        "0/zero_size.png": png_header_only(0, 0),
        "1/cmyk.jpg": encoded(photo(seed=5).convert("CMYK"), "JPEG"),
        "1/sixteen_bit.png": sixteen_bit_png(),
        "1/palette_trns.png": palette_with_transparency(),
        "1/animated.gif": animated_gif(),
        "1/exif_rotated.jpg": exif_rotated_jpeg(),
        "1/one_pixel.png": encoded(Image.new("L", (1, 1), 128), "PNG"),
        "1/wide_20000x20.png": encoded(Image.new("L", (20000, 20), 90), "PNG"),
        f"2/{UNICODE_NAME}": encoded(photo(seed=6).convert("L"), "PNG"),
        f"2/{SPACES_NAME}": encoded(photo(seed=7).convert("L"), "PNG"),
        f"2/{SCRIPT_DIR}/{SCRIPT_FILE}": encoded(photo(seed=8).convert("L"), "PNG"),
        "2/png_named.jpg": encoded(photo(seed=9), "PNG"),
        "2/gray_alpha.png": encoded(photo(seed=10).convert("LA"), "PNG"),
        "2/bitmap.bmp": encoded(photo(seed=11), "BMP"),
        "2/picture.webp": encoded(photo(seed=12), "WEBP", quality=80),
        "2/multipage.tif": multipage_tiff(),
        "2/readme.txt": b"not an image extension: ignored by the ImageFolder listing\n",
        "2/.hidden.png": encoded(photo(seed=13), "PNG"),  # hidden: skipped
        "loose_in_root.png": encoded(photo(seed=14), "PNG"),  # no class folder: skipped
    }


def make_odd_folder(root: Path) -> Path:
    """ImageFolder: drawn digits in classes 0, 1, 2 and an HTML-named class, plus every
    odd file, an empty class folder and a symlink that stays inside the root."""
    draw_digit_folder(root, classes=4, per_class=12)
    (root / "3").rename(root / HTML_LABEL)
    for rel, data in odd_files().items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    (root / "empty_class").mkdir()
    os.symlink("../0/d000.png", root / "1" / "link_inside.png")
    return root


def make_escaping_symlink(root: Path, outside: Path) -> Path:
    """ImageFolder whose class folder holds a symlink to a file outside the root."""
    draw_digit_folder(root, classes=2, per_class=3)
    outside.parent.mkdir(parents=True, exist_ok=True)
    outside.write_bytes(encoded(photo(), "PNG"))
    os.symlink(outside, root / "1" / "escape.png")
    return root


def make_no_images(root: Path) -> Path:
    """A folder tree with class folders but no image file in any of them."""
    (root / "cat").mkdir(parents=True)
    (root / "cat" / "notes.txt").write_text("no pictures here\n")
    (root / "dog").mkdir()
    return root


def make_single_class(root: Path) -> Path:
    draw_digit_folder(root, classes=1, per_class=10)
    return root


def write_csv(path: Path, rows: list[str], *, bom: bool = False, crlf: bool = False) -> Path:
    text = ("\r\n" if crlf else "\n").join(rows) + ("\r\n" if crlf else "\n")
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8"))
    return path


# ----------------------------------------------------------------- issue 15: decoders
def repeated_scan_jpeg(repeats: int = 2000, size: int = 256) -> bytes:
    """A progressive JPEG whose last scan is repeated ``repeats`` times: each repeat is
    a pass over the whole image in libjpeg (the slow-decode attack), in a small file."""
    data = encoded(photo(size, size), "JPEG", progressive=True, quality=90)
    last = data.rindex(b"\xff\xda")
    assert data.endswith(b"\xff\xd9")
    return data[:-2] + data[last:-2] * repeats + b"\xff\xd9"


def oversized_header_jpeg(width: int = 6000, height: int = 6000) -> bytes:
    """A 16x16 JPEG whose SOF header is patched to claim ``width`` x ``height``: libjpeg
    fills the missing blocks with grey and only warns."""
    data = bytearray(encoded(photo(16, 16), "JPEG", quality=90))
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def float_tiff_with(value: float) -> bytes:
    """A 16x16 float (mode F) TIFF with one ``value`` (NaN, inf) pixel."""
    arr = np.linspace(0, 1, 256, dtype=np.float32).reshape(16, 16)
    arr[3, 5] = value
    return encoded(Image.fromarray(arr, "F"), "TIFF")
