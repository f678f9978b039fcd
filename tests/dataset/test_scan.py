"""The scan stage on a planted tree of every kind of good and bad file: exact manifest
rows, the Parquet schema, identical results with and without workers, and a source tree
left byte-identical."""

from __future__ import annotations

import hashlib
import io
import os
import struct
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from dataqa.dataset.manifest import COLUMNS, read_manifest
from dataqa.dataset.scan import scan_source
from dataqa.dataset.scan_worker import ROW_FIELDS, scan_file
from dataqa.errors import ParamsError, SourceError
from dataqa.params import DataParams, Params, ScanParams
from dataqa.steps.scan import run_stage

MAX_PIXELS = 200_000  # small, so a 600x400 image is over the limit


def png_bytes(img: Image.Image, **kwargs: Any) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG", **kwargs)
    return buf.getvalue()


def jpeg_bytes(img: Image.Image, **kwargs: Any) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", **kwargs)
    return buf.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A valid PNG header claiming a huge size, with almost no pixel data: a bomb."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data)))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + chunk(b"IEND", b""))


def planted_files() -> dict[str, bytes]:
    rng = np.random.default_rng(0)
    photo = Image.fromarray(rng.integers(0, 256, (24, 32, 3), dtype=np.uint8))  # 32x24 RGB
    big_photo = Image.fromarray(rng.integers(0, 256, (300, 400, 3), dtype=np.uint8))
    gray = Image.fromarray(rng.integers(0, 256, (10, 20), dtype=np.uint8))  # 20x10 L
    palette = Image.new("P", (12, 6), 1)
    palette.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    palette.putpixel((0, 0), 0)
    frames = [Image.new("L", (8, 8), v) for v in (0, 120, 250)]
    anim = io.BytesIO()
    frames[0].save(anim, "GIF", save_all=True, append_images=frames[1:])
    exif = Image.Exif()
    exif[0x0112] = 6  # stored 40x20; shown rotated by 90 degrees: 20x40
    stripped = jpeg_bytes(big_photo, quality=90)
    return {
        "good/gray.png": png_bytes(gray),
        "good/gray_copy.bmp": (lambda b: (gray.save(b, "BMP"), b.getvalue())[1])(io.BytesIO()),
        "good/photo.jpg": jpeg_bytes(photo, quality=90),
        "good/big.jpg": stripped,
        "good/big_with_exif.jpg": jpeg_bytes(big_photo, quality=90, comment=b"copy"),
        "good/one.png": png_bytes(Image.new("L", (1, 1), 9)),
        "good/gray_as_rgb.png": png_bytes(gray.convert("RGB")),
        "odd/cmyk.jpg": jpeg_bytes(Image.new("CMYK", (16, 8), (0, 255, 255, 0))),
        "odd/sixteen.png": png_bytes(Image.fromarray(
            np.arange(60, dtype=np.uint16).reshape(6, 10) * 1000)),
        "odd/palette.png": png_bytes(palette, transparency=0),
        "odd/anim.gif": anim.getvalue(),
        "odd/rotated.jpg": jpeg_bytes(Image.new("RGB", (40, 20), (10, 200, 30)),
                                      exif=exif.tobytes()),
        "odd/png_named.jpg": png_bytes(gray),
        "bad/zero.png": b"",
        "bad/truncated.png": png_bytes(photo)[:300],
        "bad/truncated.jpg": jpeg_bytes(big_photo, quality=90)[:5000],
        "bad/text.png": b"hello, I am not an image\n",
        "bad/over_limit.png": png_bytes(Image.new("L", (600, 400))),
        "bad/bomb.png": png_header_only(20_000, 20_000),  # 400 Mpx: PIL's own hard stop too
        "bad/huge.png": png_header_only(10_000, 9_000),  # 90 Mpx: PIL only warns; we refuse
    }


# path -> expected (format, ext_format, mode, width, height, n_frames, exif_rotated,
#                   decode_error prefix or None, colourful)
EXPECTED: dict[str, tuple[Any, ...]] = {
    "good/gray.png": ("PNG", "PNG", "L", 20, 10, 1, False, None, False),  # plain grayscale
    "good/gray_copy.bmp": ("BMP", "BMP", "L", 20, 10, 1, False, None, False),  # same pixels
    "good/photo.jpg": ("JPEG", "JPEG", "RGB", 32, 24, 1, False, None, True),  # colour JPEG
    "good/big.jpg": ("JPEG", "JPEG", "RGB", 400, 300, 1, False, None, True),  # DCT-scaled
    "good/big_with_exif.jpg": ("JPEG", "JPEG", "RGB", 400, 300, 1, False, None, True),
    "good/one.png": ("PNG", "PNG", "L", 1, 1, 1, False, None, False),  # 1x1 still measured
    "good/gray_as_rgb.png": ("PNG", "PNG", "RGB", 20, 10, 1, False, None, False),  # R=G=B
    "odd/cmyk.jpg": ("JPEG", "JPEG", "CMYK", 16, 8, 1, False, None, True),  # CMYK -> RGB
    "odd/sixteen.png": ("PNG", "PNG", "I;16", 10, 6, 1, False, None, False),  # 16-bit -> L
    "odd/palette.png": ("PNG", "PNG", "P", 12, 6, 1, False, None, True),  # P + transparency
    "odd/anim.gif": ("GIF", "GIF", "P", 8, 8, 3, False, None, False),  # animated: 3 frames
    "odd/rotated.jpg": ("JPEG", "JPEG", "RGB", 20, 40, 1, True, None, True),  # EXIF 6: swapped
    "odd/png_named.jpg": ("PNG", "JPEG", "L", 20, 10, 1, False, None, False),  # wrong extension
    "bad/zero.png": (None, "PNG", None, None, None, None, None, "zero-byte file", None),
    "bad/truncated.png": ("PNG", "PNG", "RGB", 32, 24, 1, None, "truncated", None),
    "bad/truncated.jpg": ("JPEG", "JPEG", "RGB", 400, 300, 1, None, "truncated", None),
    "bad/text.png": (None, "PNG", None, None, None, None, None, "not an image", None),
    "bad/over_limit.png": ("PNG", "PNG", "L", 600, 400, None, None, "over the pixel limit",
                           None),  # checked from the header, never decoded
    "bad/bomb.png": (None, "PNG", None, None, None, None, None, "over the pixel limit", None),
    "bad/huge.png": ("PNG", "PNG", "L", 10_000, 9_000, None, None, "over the pixel limit",
                     None),  # header read, pixels never decoded
}


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("planted") / "images"
    for name, data in planted_files().items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


@pytest.fixture(scope="module")
def manifest(source: Path) -> pd.DataFrame:
    return scan_source(source, params=ScanParams(workers=0, max_pixels=MAX_PIXELS),
                       default_split="train", progress=False)


@pytest.mark.parametrize("path", sorted(EXPECTED))
def test_planted_file_row(manifest: pd.DataFrame, path: str) -> None:
    fmt, ext, mode, width, height, frames, rotated, error, colourful = EXPECTED[path]
    row = manifest.set_index("path").loc[path]
    got = (row["format"], row["ext_format"], row["mode"], row["width"], row["height"],
           row["n_frames"], row["exif_rotated"])
    want = (fmt, ext, mode, width, height, frames, rotated)
    assert tuple(None if pd.isna(v) else v for v in got) == want
    if error is None:
        assert pd.isna(row["decode_error"])
        stats = row[[c for c in COLUMNS if c.startswith("stat_")]].astype(float)
        assert np.isfinite(stats).all()
        assert bool(row["stat_colorfulness"] > 0.01) is colourful
        for col in ("pixel_sha256", "phash", "dhash"):
            assert isinstance(row[col], str)
        assert len(row["phash"]) == len(row["dhash"]) == 16
    else:
        assert row["decode_error"].split(":")[0] == error
        assert row[[c for c in COLUMNS if c.startswith("stat_")]].isna().all()
        assert row[["pixel_sha256", "phash", "dhash"]].isna().all()


def test_bytes_and_sha256_are_of_the_file(manifest: pd.DataFrame, source: Path) -> None:
    for path, size, digest in manifest[["path", "bytes", "sha256"]].itertuples(index=False):
        data = (source / path).read_bytes()
        assert size == len(data)
        assert digest == hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize(
    ("a", "b", "same_file", "same_pixels"),
    [
        ("good/gray.png", "good/gray_copy.bmp", False, True),  # PNG and BMP of the same pixels
        ("good/gray.png", "odd/png_named.jpg", True, True),  # a byte copy under another name
        ("good/big.jpg", "good/big_with_exif.jpg", False, True),  # JPEG with a comment added
        ("good/gray.png", "good/gray_as_rgb.png", False, False),  # same grey, other mode
    ],
)
def test_duplicate_hashes(manifest: pd.DataFrame, a: str, b: str, same_file: bool,
                          same_pixels: bool) -> None:
    rows = manifest.set_index("path")
    assert (rows.at[a, "sha256"] == rows.at[b, "sha256"]) is same_file
    assert (rows.at[a, "pixel_sha256"] == rows.at[b, "pixel_sha256"]) is same_pixels
    if same_pixels:
        assert rows.at[a, "phash"] == rows.at[b, "phash"]


def test_grayscale_saved_as_rgb_has_the_statistics_of_the_grayscale(
        manifest: pd.DataFrame) -> None:
    rows = manifest.set_index("path")
    stats = [c for c in COLUMNS if c.startswith("stat_")]
    assert rows.loc["good/gray_as_rgb.png", stats].tolist() == rows.loc["good/gray.png", stats].tolist()


def test_ids_follow_sorted_paths(manifest: pd.DataFrame) -> None:
    assert manifest["path"].tolist() == sorted(EXPECTED)
    assert manifest["id"].tolist() == list(range(len(EXPECTED)))
    assert set(manifest["label"]) == {"good", "odd", "bad"}
    assert set(manifest["split"]) == {"train"}


def stat_tree(root: Path) -> dict[str, tuple[str, int, int]]:
    """Every file's content hash, mtime (ns) and mode."""
    out = {}
    for path in sorted(root.rglob("*")):
        st = path.lstat()
        digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else ""
        out[str(path.relative_to(root))] = (digest, st.st_mtime_ns, st.st_mode)
    return out


def test_stage_with_workers_writes_the_same_manifest_and_leaves_the_source_alone(
        source: Path, manifest: pd.DataFrame, tmp_path: Path) -> None:
    before = stat_tree(source)
    params = Params(data=DataParams(source=str(source)),
                    scan=ScanParams(workers=2, chunk_size=4, max_pixels=MAX_PIXELS),
                    root=tmp_path)
    assert run_stage(params) == 0
    written = read_manifest(params.path("manifest"))
    assert stat_tree(source) == before  # byte-identical, same mtimes, nothing added
    # the Parquet schema: every column, in order, with its dtype
    assert list(written.columns) == list(COLUMNS)
    assert {c: str(t) for c, t in written.dtypes.items()} == COLUMNS
    # 2 workers in chunks of 4 == 0 workers in one process
    pd.testing.assert_frame_equal(written, manifest)
    leftovers = [p.name for p in params.path("manifest").parent.iterdir()]
    assert leftovers == ["manifest.parquet"]  # atomic write: no temp file left


def test_csv_source_with_splits(source: Path, tmp_path: Path) -> None:
    csv = source.parent / "list.csv"
    csv.write_text("path,label,split\nimages/good/gray.png,digit,val\n"
                   "images/bad/zero.png,digit,\n")
    frame = scan_source(csv, params=ScanParams(workers=0), default_split="train",
                        progress=False)
    assert frame[["path", "label", "split"]].values.tolist() == [
        ["images/bad/zero.png", "digit", "train"], ["images/good/gray.png", "digit", "val"]]
    assert frame["decode_error"].tolist()[0] == "zero-byte file"


def test_unusable_source_is_an_error(tmp_path: Path) -> None:
    params = Params(data=DataParams(source="nowhere"), root=tmp_path)
    with pytest.raises(SourceError, match="source not found"):
        run_stage(params)
    assert not params.path("manifest").exists()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"workers": -1}, r"scan.workers: expected a value in \[0, 256\], got -1"),  # negative workers
        ({"chunk_size": 0}, r"scan.chunk_size: expected a value in \[1, "),  # empty chunks
        ({"max_pixels": 0}, r"scan.max_pixels: expected a value in \[1, "),  # no image could pass
        ({"extensions": ["png"]}, "scan.extensions"),  # missing dot
    ],
)
def test_scan_params_are_checked(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ParamsError, match=message):
        ScanParams().replace(**change)


def test_folder_named_like_an_image_is_walked_and_links_inside_are_read(
        tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.png").write_bytes(png_bytes(Image.new("L", (4, 4))))
    (tmp_path / "a" / "y.png").mkdir()  # a folder, not a file to read
    os.symlink(tmp_path / "a" / "x.png", tmp_path / "a" / "z.png")
    frame = scan_source(tmp_path, params=ScanParams(workers=0), default_split="train",
                        progress=False)
    assert frame["path"].tolist() == ["a/x.png", "a/z.png"]
    assert frame["decode_error"].isna().all()
    assert frame["pixel_sha256"].nunique() == 1


def test_file_that_vanished_after_listing_is_a_row(tmp_path: Path) -> None:
    head, reduced = scan_file(str(tmp_path / "gone.png"), max_pixels=100)
    row = dict(zip(ROW_FIELDS, head, strict=False))
    assert reduced is None
    assert row["decode_error"].startswith("cannot read: ")
    assert row["bytes"] == -1 and row["sha256"] is None and row["ext_format"] == "PNG"
