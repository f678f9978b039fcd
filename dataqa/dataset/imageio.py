"""Reading images safely: the one place dataqa opens an image file.

:func:`decode_image` turns a file's bytes into an 8-bit ``L`` or ``RGB`` image plus what
the header said (format, stored mode, size, frames, EXIF orientation), or into a short
reason why it cannot. It applies the decompression-bomb guard (explicit pixel limit,
checked from the header before any pixel is decoded), EXIF orientation, and converts
every mode (palette with or without transparency, alpha, 16-bit, CMYK, LA, 1-bit) into
``L`` or ``RGB`` 8-bit. :func:`open_image` is the same for callers that only want the
pixels. Raw files are only read.

Decode-failure reasons start with one of :data:`DECODE_ERROR_KINDS` followed by
``": detail"`` (or nothing), so checks can group them without parsing prose.

Hostile files that decode "successfully" into wrong pixels are failures here too:

- a float image (TIFF mode ``F``) with NaN or infinite pixels ("cannot decode");
- a JPEG whose header claims more pixels than its data can code ("truncated"): every
  8x8 block of a Huffman-coded JPEG costs at least one bit (its DC symbol), so a file of
  fewer than ``width * height / 512`` bytes cannot hold its picture; libjpeg would fill
  the rest with grey and only warn;
- a decode over the time budget (``budget`` seconds, ``scan.decode_timeout``): a JPEG
  with more than :data:`MAX_JPEG_SCANS` scans is refused from its markers before
  decoding (each scan is a pass over the whole image: 2,000 repeated scans cost
  minutes); any other decode is interrupted by a timer where the caller runs in the
  main thread (scan workers, tensors) and, where it cannot be (threads), flagged once
  it took longer than the budget.
"""

from __future__ import annotations

import contextlib
import io
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from dataqa.io import open_regular

# The first words of every decode_error the scan writes.
DECODE_ERROR_KINDS = ("zero-byte file", "not an image", "over the pixel limit", "truncated",
                      "cannot decode", "unsupported mode", "cannot read",
                      "over the time budget", "over the size limit")
MAX_JPEG_SCANS = 100  # libjpeg's progressive scripts use ~10; thousands are an attack

_ORIENTATION_TAG = 0x0112
_TRANSPOSE = {  # EXIF orientation -> the transpose that shows the picture upright
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
# info keys that may carry an orientation; without any of them there is nothing to parse
_EXIF_KEYS = ("exif", "Raw profile type exif", "XML:com.adobe.xmp", "xmp")


class TooLarge(Exception):
    """A file over the byte limit; ``size`` is its size."""

    def __init__(self, size: int) -> None:
        super().__init__(f"{size} bytes")
        self.size = size


def read_regular(path: str | Path, max_bytes: int | None = None) -> bytes:
    """The bytes of ``path`` (:func:`open_regular`: a regular file, never blocking), at
    most ``max_bytes`` (larger: :class:`TooLarge`, nothing read).

    Reads are sized by the file's real size: ``size + 1`` bytes are asked for (never
    ``max_bytes + 1``: one buffer of ``scan.max_bytes``, 1 GiB, per file would kill a
    normal folder under a memory limit), and a file that grows while read is read on in
    1 MiB steps and caught once it passes ``max_bytes``.
    """
    with open_regular(path) as (fh, st):
        if max_bytes is not None and st.st_size > max_bytes:
            raise TooLarge(st.st_size)
        limit = max_bytes
        first = st.st_size + 1 if limit is None else min(st.st_size, limit) + 1
        data = fh.read(first)
        if len(data) == first:  # grew since the stat: read on in bounded steps
            parts = [data]
            got = len(data)
            while limit is None or got <= limit:
                step = _GROWTH_STEP if limit is None else min(_GROWTH_STEP, limit + 1 - got)
                more = fh.read(step)
                if not more:
                    break
                parts.append(more)
                got += len(more)
            data = b"".join(parts)
    if max_bytes is not None and len(data) > max_bytes:
        raise TooLarge(len(data))
    return data


_GROWTH_STEP = 1 << 20


class ImageDecodeError(Exception):
    """The file could not be decoded; the message says why (stored in the manifest)."""


@dataclass
class DecodedImage:
    """What :func:`decode_image` learnt about one file.

    ``image`` is ``None`` exactly when ``error`` is set; header fields are filled as far
    as the header could be read (an over-limit or truncated file still has a format,
    mode and size).
    """

    image: Image.Image | None  # 8-bit L or RGB, upright; at 1/scale of the size for JPEG drafts
    error: str | None = None  # "<kind>[: detail]", kind one of DECODE_ERROR_KINDS
    format: str | None = None  # real format from the content (PIL's name: PNG, JPEG, MPO...)
    mode: str | None = None  # mode as stored (P, RGBA, I;16, CMYK, L, RGB, ...)
    width: int | None = None  # full size after EXIF orientation (header size if not decoded)
    height: int | None = None
    n_frames: int | None = None
    exif_rotated: bool | None = None  # orientation tag 2..8 (rotation or mirror) was applied
    orientation: int = 1  # the EXIF orientation tag (1 = upright or absent)
    scale: int = 1  # 1, or the JPEG DCT reduction (2, 4, 8) ``image`` was decoded at


class _OverBudget(BaseException):
    """Raised by the timer inside a decode that ran past its budget. A BaseException (as
    KeyboardInterrupt is), so the decoder's own ``except Exception`` handlers, which turn
    a bad file into a row, cannot swallow it wherever the signal lands."""


@contextlib.contextmanager
def _time_limit(seconds: float | None) -> Iterator[None]:
    """Raise :class:`_OverBudget` in this thread after ``seconds`` (main thread only:
    elsewhere, and when a timer is already set, nothing is armed)."""
    if (not seconds or threading.current_thread() is not threading.main_thread()
            or not hasattr(signal, "setitimer") or signal.getitimer(signal.ITIMER_REAL)[0]):
        yield
        return

    def expire(signum: int, frame: object) -> None:
        raise _OverBudget

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def decode_image(data: bytes, max_pixels: int, *, draft_side: int | None = None,
                 budget: float | None = None) -> DecodedImage:
    """:func:`_decode` under a time budget of ``budget`` seconds (None: no limit): a
    decode that runs out of it is a failure "over the time budget"."""
    if budget is None:
        return _decode(data, max_pixels, draft_side)
    start = time.perf_counter()
    try:
        with _time_limit(budget):
            out = _decode(data, max_pixels, draft_side)
    except _OverBudget:
        return DecodedImage(None, f"over the time budget: decoding stopped after {budget:g} s "
                                  f"(scan.decode_timeout)")
    took = time.perf_counter() - start
    if out.error is None and took > budget:
        out.image = None
        out.error = (f"over the time budget: decoding took {took:.1f} s > {budget:g} s "
                     f"(scan.decode_timeout)")
    return out


def _decode(data: bytes, max_pixels: int, draft_side: int | None = None) -> DecodedImage:
    """Decode one file's bytes; never raises for a bad file (see ``DecodedImage.error``).

    ``draft_side``: when given, a JPEG whose longer side is at least twice this is decoded
    at a reduced DCT scale (1/2, 1/4 or 1/8) that keeps its longer side >= ``draft_side``.
    libjpeg then skips the inverse DCT of the dropped frequencies (measured: 1/8 scale
    decodes in ~55-70 % of the full time at quality 75-95, where Huffman decoding of
    every coefficient remains); callers that only need a small copy (statistics,
    thumbnails, training tensors) use it, and ``scale`` says it happened. ``width`` and
    ``height`` stay the full size.
    """
    if not data:
        return DecodedImage(None, "zero-byte file")
    try:
        # PIL's DecompressionBombWarning (at 89 Mpx) is only a warning: the pixel limit
        # below is ours and explicit. (Were warnings errors, it would be a row, not a crash.)
        im = Image.open(io.BytesIO(data))
    except Image.UnidentifiedImageError:
        return DecodedImage(None, "not an image: unidentified format")
    except Image.DecompressionBombError as exc:  # PIL's hard stop, 2 x MAX_IMAGE_PIXELS
        return DecodedImage(None, f"over the pixel limit: {exc}")
    except Exception as exc:  # malformed headers raise anything; a bad file is a row
        return DecodedImage(None, _reason(exc))
    out = DecodedImage(None, format=im.format, mode=im.mode, width=im.width, height=im.height)
    if im.width * im.height > max_pixels:
        out.error = (f"over the pixel limit: {im.width}x{im.height} = "
                     f"{im.width * im.height} pixels > {max_pixels}")
        return out
    if im.format in ("JPEG", "MPO"):
        out.error = _jpeg_structure_problem(data, im.width, im.height)
        if out.error:
            return out
    try:
        out.n_frames = int(getattr(im, "n_frames", 1))  # before load: counting seeks
        if draft_side and im.format in ("JPEG", "MPO") and max(im.size) >= 2 * draft_side:
            w, h = im.size
            side = max(w, h)
            im.draft(im.mode, (max(1, w * draft_side // side), max(1, h * draft_side // side)))
            out.scale = round(w / im.width)
        im.load()
        orientation = _orientation(im)
    except Exception as exc:  # decoders raise OSError, SyntaxError, struct.error...
        out.error = _reason(exc)
        return out
    if im.mode == "F":
        bad = int(np.count_nonzero(~np.isfinite(np.asarray(im, dtype=np.float32))))
        if bad:
            out.error = (f"cannot decode: {bad} of {im.width * im.height} float pixels are "
                         f"NaN or infinite")
            return out
    try:
        im8 = to_8bit(im)
    except (ValueError, OSError) as exc:  # e.g. LAB has no conversion to RGB
        out.error = f"unsupported mode: {im.mode} ({exc})"
        return out
    method = _TRANSPOSE.get(orientation)
    out.orientation = orientation if method is not None else 1
    out.exif_rotated = method is not None
    if method is not None:
        im8 = im8.transpose(method)
        if method in (Image.Transpose.TRANSPOSE, Image.Transpose.TRANSVERSE,
                      Image.Transpose.ROTATE_90, Image.Transpose.ROTATE_270):
            out.width, out.height = out.height, out.width
    out.image = im8
    return out


def _jpeg_structure_problem(data: bytes, width: int, height: int) -> str | None:
    """Why a JPEG's markers alone rule out decoding it, or None (see the module doc).

    ``FF DA`` (start of scan) cannot occur inside entropy-coded data (an ``FF`` there is
    followed by ``00`` or a restart marker), so counting it bounds the scans from above
    (an embedded EXIF thumbnail adds its own few)."""
    scans = data.count(b"\xff\xda")
    if scans > MAX_JPEG_SCANS:
        return (f"over the time budget: {scans} JPEG scans (> {MAX_JPEG_SCANS}); each is "
                f"a pass over the whole image")
    arithmetic = any(m in data for m in (b"\xff\xc9", b"\xff\xca", b"\xff\xcb"))
    least = width * height // 512  # one bit per 8x8 luma block, in bytes
    if not arithmetic and len(data) < least:
        return (f"truncated: the header claims {width}x{height} pixels, which need at "
                f"least {least} bytes of coded data; the file has {len(data)}")
    return None


def open_image(path: str | Path, max_pixels: int, *, data: bytes | None = None,
               draft_side: int | None = None) -> Image.Image:
    """Decode ``path`` (or ``data``, its bytes) into an upright ``L`` or ``RGB`` image.

    Raises :class:`ImageDecodeError` with the short reason of :func:`decode_image`.
    """
    if data is None:
        data = read_regular(path)
    decoded = decode_image(data, max_pixels, draft_side=draft_side)
    if decoded.image is None:
        raise ImageDecodeError(decoded.error)
    return decoded.image


def _orientation(im: Image.Image) -> int:
    """EXIF orientation (1..8) of a loaded image; 1 when absent or unreadable."""
    if not any(k in im.info for k in _EXIF_KEYS) and not hasattr(im, "tag_v2"):
        return 1  # getexif() costs ~30 us per file; most files have nothing to parse
    try:
        value = im.getexif().get(_ORIENTATION_TAG, 1)
    except Exception:  # corrupt EXIF: the pixels are fine, keep them as stored
        return 1
    return value if isinstance(value, int) else 1


def _reason(exc: BaseException) -> str:
    msg = str(exc).strip() or type(exc).__name__
    if isinstance(exc, EOFError) or "truncated" in msg.lower():
        return f"truncated: {msg}"
    return f"cannot decode: {msg}"


def to_8bit(im: Image.Image) -> Image.Image:
    """Convert any PIL mode to ``L`` (grayscale) or ``RGB``, compositing alpha on white."""
    mode = im.mode
    if mode in ("L", "RGB"):
        return im
    if mode == "P":
        im = im.convert("RGBA") if "transparency" in im.info else im.convert("RGB")
        mode = im.mode
        if mode == "RGB":
            return im
    if mode in ("RGBA", "LA", "PA", "La", "RGBa"):
        rgba = im.convert("RGBA")
        bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        out = Image.alpha_composite(bg, rgba).convert("RGB")
        return out.convert("L") if mode in ("LA", "La") else out
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
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


def header_size(path: str | Path) -> tuple[str | None, int, int] | None:
    """``(format, width, height)`` from the file's header only (no pixel is decoded; for
    ``dataqa init``'s overview); None when PIL cannot read the header. The file is
    opened through :func:`open_regular`: a FIFO or device in the source is "unknown",
    never a hang."""
    try:
        with open_regular(path) as (fh, _), Image.open(fh) as im:
            return im.format, int(im.width), int(im.height)
    except Exception:  # noqa: BLE001 - any unreadable header is simply "unknown"
        return None
