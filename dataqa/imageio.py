"""Reading images safely: the one place dataqa opens an image file.

``open_image`` applies the decompression-bomb guard (explicit pixel limit), EXIF
orientation, and converts every mode (palette with or without transparency, alpha,
16-bit, CMYK, LA, 1-bit) into ``L`` or ``RGB`` 8-bit. Raw files are only read.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps


class ImageDecodeError(Exception):
    """The file could not be decoded; the message says why (stored in the manifest)."""


def open_image(path: str | Path, max_pixels: int, *, data: bytes | None = None) -> Image.Image:
    """Decode ``path`` (or ``data``, its bytes) fully into an ``L`` or ``RGB`` image.

    Raises :class:`ImageDecodeError` with a short reason for zero-byte, truncated,
    unknown-format, or over-limit files.
    """
    import io

    if data is None:
        data = Path(path).read_bytes()
    if not data:
        raise ImageDecodeError("zero-byte file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data))
            w, h = im.size
            if w * h > max_pixels:
                raise ImageDecodeError(f"over the pixel limit: {w}x{h} > {max_pixels} pixels")
            im.load()
    except ImageDecodeError:
        raise
    except Image.DecompressionBombError as exc:
        raise ImageDecodeError(f"over the pixel limit: {exc}") from None
    except Image.UnidentifiedImageError:
        raise ImageDecodeError("not an image (unidentified format)") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageDecodeError(f"cannot decode: {exc}") from None
    return to_8bit(ImageOps.exif_transpose(im))


def to_8bit(im: Image.Image) -> Image.Image:
    """Convert any PIL mode to ``L`` (grayscale) or ``RGB``, compositing alpha on white."""
    mode = im.mode
    if mode in ("L", "RGB"):
        return im
    if mode == "P":
        im = im.convert("RGBA") if "transparency" in im.info else im.convert("RGB")
        mode = im.mode
    if mode in ("RGBA", "LA", "PA"):
        rgba = im.convert("RGBA")
        bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        out = Image.alpha_composite(bg, rgba).convert("RGB")
        return out.convert("L") if mode == "LA" else out
    if mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(im, dtype=np.float64)
        hi = 65535.0 if mode.startswith("I;16") else max(float(arr.max()), 1.0)
        return Image.fromarray(np.clip(arr / hi * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
    if mode == "1":
        return im.convert("L")
    return im.convert("RGB")  # CMYK, YCbCr, LAB, HSV, RGBX, ...


def letterbox(img: np.ndarray, size: int) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """Scale ``img`` (H, W[, C]) so its longer side is ``size`` and pad the rest with
    zeros, centred. Never stretches. Returns the (size, size[, C]) array and the content
    box ``(top, left, height, width)``."""
    h, w = img.shape[:2]
    scale = size / max(h, w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    pil = Image.fromarray(img)
    resized = np.asarray(pil.resize((nw, nh), Image.Resampling.BILINEAR, reducing_gap=2.0)
                         if (nh, nw) != (h, w) else pil)
    out = np.zeros((size, size, *img.shape[2:]), dtype=np.uint8)
    top, left = (size - nh) // 2, (size - nw) // 2
    out[top:top + nh, left:left + nw] = resized
    return out, (top, left, nh, nw)
