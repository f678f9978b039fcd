"""Shared fixtures: small datasets with planted problems whose truth is known.

- ``image_folder``: factory writing a tiny ImageFolder with one file per integrity
  problem plus hostile file/label names; returns a :class:`PlantedFolder`.
- ``manifest_for``: factory building the manifest of such a folder (a deliberate
  mini-scan: real decoding through ``dataqa.dataset.imageio.open_image``, statistics left NaN),
  so audit/report/gate tests do not depend on the scan stage's internals.
- ``audit_context``: factory of a synthetic :class:`AuditContext` (N rows, K classes)
  with every manifest column filled plausibly and consistent pred_probs, embeddings and
  tensors, with planted flipped labels, outliers and duplicates (truth returned).
- ``params_for``: factory of :class:`Params` rooted in a tmp folder.
- ``hostile``: the hostile file and label names planted by ``image_folder``.

Use the fixtures, not ``from conftest import``: sub-folders have their own conftest.py
and the module name ``conftest`` is ambiguous.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from dataqa.checks.base import AuditContext
from dataqa.dataset.imageio import ImageDecodeError, open_image
from dataqa.dataset.manifest import COLUMNS
from dataqa.params import Params

HOSTILE_NAME = "<script>x</script>.png"  # the HTML-escaping canary of issue 2
HOSTILE_LABEL = "<img src=x onerror=alert(1)>"  # a class folder name (no '/': legal)
SMALL_MAX_PIXELS = 4096  # the fixture's pixel limit: 64x64; 'huge' files exceed it


# --------------------------------------------------------------------------- folders
@dataclass
class PlantedFolder:
    root: Path
    truth: dict[str, str] = field(default_factory=dict)  # relpath -> planted kind
    splits: dict[str, str] = field(default_factory=dict)  # relpath -> split

    def paths(self, kind: str) -> list[str]:
        return sorted(p for p, k in self.truth.items() if k == kind)


def _encode(arr: np.ndarray, fmt: str, **kw: Any) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, fmt, **kw)
    return buf.getvalue()


def _clean_image(rng: np.random.Generator, cls: int, h: int, w: int) -> np.ndarray:
    base = rng.integers(0, 256, size=3)
    noise = rng.integers(0, 40, size=(h, w, 3))
    return np.clip(base + noise + 30 * cls, 0, 255).astype(np.uint8)


def write_image_folder(root: Path, *, classes: tuple[str, ...] = ("cat", "dog"),
                       per_class: int = 4, planted: bool = True, seed: int = 0
                       ) -> PlantedFolder:
    """Clean PNGs (sizes vary, first of each class in split 'test') plus, when
    ``planted``, one file per integrity problem and the hostile names."""
    rng = np.random.default_rng(seed)
    pf = PlantedFolder(root)

    def put(rel: str, data: bytes, kind: str, split: str = "train") -> None:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        pf.truth[rel] = kind
        pf.splits[rel] = split

    for ci, cls in enumerate(classes):
        for i in range(per_class):
            h, w = (24, 24) if i % 2 == 0 else (16, 40)
            put(f"{cls}/c{i}.png", _encode(_clean_image(rng, ci, h, w), "PNG"), "clean",
                "test" if i == 0 else "train")
    if not planted:
        return pf
    a, b = classes[0], classes[-1]
    png = _encode(_clean_image(rng, 0, 32, 32), "PNG")
    put(f"{a}/zero.png", b"", "zero_byte")
    put(f"{a}/truncated.png", png[: len(png) // 2], "truncated")
    put(f"{b}/notes.png", b"this is a text file, not an image\n" * 4, "not_an_image")
    put(f"{a}/huge.png", _encode(_clean_image(rng, 0, 80, 80), "PNG"), "over_pixel_limit")
    # the hostile name is on a flagged file, so tables and galleries must show it
    put(f"{b}/{HOSTILE_NAME}", _encode(_clean_image(rng, 1, 24, 24), "JPEG"),
        "wrong_extension")
    frames = [Image.fromarray(_clean_image(rng, 1, 20, 20)) for _ in range(3)]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:], duration=100)
    put(f"{b}/anim.gif", buf.getvalue(), "multi_frame")
    put(f"{HOSTILE_LABEL}/h0.png", _encode(_clean_image(rng, 2, 24, 24), "PNG"), "clean")
    return pf


def build_manifest(pf: PlantedFolder, *, max_pixels: int = SMALL_MAX_PIXELS) -> pd.DataFrame:
    """Manifest rows for ``pf`` (sorted by path, ``id`` = position), every COLUMNS column
    present. Label = first path component (ImageFolder)."""
    ext_formats = Image.registered_extensions()
    rows = []
    for rel in sorted(pf.truth):
        path = pf.root / rel
        data = path.read_bytes()
        row: dict[str, Any] = {c: None for c in COLUMNS}
        row.update(path=rel, label=rel.split("/")[0], split=pf.splits[rel],
                   sha256=hashlib.sha256(data).hexdigest(), bytes=len(data),
                   ext_format=ext_formats.get(path.suffix.lower()))
        try:
            with Image.open(io.BytesIO(data)) as im:
                row.update(format=im.format, mode=im.mode, width=im.width,
                           height=im.height, n_frames=getattr(im, "n_frames", 1))
        except Exception:  # noqa: BLE001 - header unreadable: format stays unknown
            pass
        try:
            img = open_image(path, max_pixels, data=data)
            row["pixel_sha256"] = hashlib.sha256(img.tobytes()).hexdigest()
            row["exif_rotated"] = False
        except ImageDecodeError as exc:
            row["decode_error"] = str(exc)
            row.update(width=row["width"] if "pixel limit" in str(exc) else None,
                       height=row["height"] if "pixel limit" in str(exc) else None)
        rows.append(row)
    frame = pd.DataFrame(rows, columns=list(COLUMNS))
    frame["id"] = np.arange(len(frame))
    return frame.astype(COLUMNS)


@pytest.fixture
def hostile() -> dict[str, str]:
    """The user-data names that must come out HTML-escaped: ``name`` (a file planted by
    ``image_folder`` as ``dog/<name>``, wrong extension) and ``label`` (a class folder)."""
    return {"name": HOSTILE_NAME, "label": HOSTILE_LABEL}


@pytest.fixture
def image_folder(tmp_path: Path) -> Callable[..., PlantedFolder]:
    def make(**kw: Any) -> PlantedFolder:
        return write_image_folder(tmp_path / "images", **kw)
    return make


@pytest.fixture
def manifest_for() -> Callable[..., pd.DataFrame]:
    return build_manifest


@pytest.fixture
def params_for(tmp_path: Path) -> Callable[..., Params]:
    """``params_for(source=..., audit={...}, gate={...}, report={...})``: Params rooted
    in tmp_path, sections given as keyword dicts (validated like params.yaml)."""
    from dataqa.params import validate

    def make(**sections: Any) -> Params:
        params = validate(Params, sections)
        return params.replace(root=tmp_path)
    return make


# --------------------------------------------------------------------------- contexts
@dataclass
class PlantedContext:
    ctx: AuditContext
    flipped: np.ndarray  # (N,) bool: label differs from the true class
    outliers: np.ndarray  # (N,) bool: embedding far from every class
    duplicate_of: dict[int, int]  # row -> earlier row with identical content


def make_audit_context(n: int = 60, k: int = 3, *, dim: int = 8, size: int = 16,
                       seed: int = 0, requires: frozenset[str] | None = None
                       ) -> PlantedContext:
    """Synthetic, internally consistent audit inputs. Rows 0 and 1 are undecodable
    (NaN predictions/embeddings, zero tensors); ~10% of labels are flipped (the
    predictions keep the true class); 3 embeddings are far outliers; the last two rows
    are exact copies of rows 2 and 3. ``requires`` limits which arrays are set
    (None = all)."""
    rng = np.random.default_rng(seed)
    true = np.arange(n) % k
    labels = true.copy()
    flipped = np.zeros(n, dtype=bool)
    flip_idx = rng.choice(np.arange(4, n - 2), size=max(1, n // 10), replace=False)
    labels[flip_idx] = (true[flip_idx] + 1) % k
    flipped[flip_idx] = True
    classes = [f"class_{i}" for i in range(k)]

    logits = rng.normal(0, 1, (n, k))
    logits[np.arange(n), true] += 4.0
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    centers = rng.normal(0, 5, (k, dim))
    emb = centers[true] + rng.normal(0, 1, (n, dim))
    outliers = np.zeros(n, dtype=bool)
    out_idx = rng.choice(np.setdiff1d(np.arange(4, n - 2), flip_idx), size=3, replace=False)
    emb[out_idx] = rng.normal(0, 1, (3, dim)) + 40.0
    outliers[out_idx] = True
    tensors = (rng.integers(0, 60, (n, size, size, 3)) + 60 * true[:, None, None, None]
               ).astype(np.uint8)
    dup = {n - 2: 2, n - 1: 3}
    for j, i in dup.items():
        tensors[j], emb[j], probs[j], labels[j] = tensors[i], emb[i], probs[i], labels[i]
        true[j], flipped[j] = true[i], flipped[i]

    manifest = _synthetic_manifest(rng, n, labels, classes, dup)
    broken = np.array([0, 1])
    manifest.loc[broken, "decode_error"] = "cannot decode: image file is truncated"
    probs[broken] = np.nan
    emb[broken] = np.nan
    tensors[broken] = 0
    arrays = {"pred_probs": probs.astype(np.float32), "embeddings": emb.astype(np.float32),
              "tensors": tensors}
    keep = set(arrays) if requires is None else set(requires)
    ctx = AuditContext(manifest=manifest, classes=classes, labels=labels.astype(np.int64),
                       seed=seed, **{k_: (v if k_ in keep else None)
                                     for k_, v in arrays.items()})
    return PlantedContext(ctx, flipped, outliers, dup)


def _synthetic_manifest(rng: np.random.Generator, n: int, labels: np.ndarray,
                        classes: list[str], dup: dict[int, int]) -> pd.DataFrame:
    def hexes(bits: int) -> list[str]:
        return [f"{v:0{bits // 4}x}" for v in rng.integers(0, 2**62, n)]

    values: dict[str, Any] = {
        "id": np.arange(n), "path": [f"{classes[c]}/img{i:04d}.png" for i, c in
                                     enumerate(labels)],
        "label": [classes[c] for c in labels],
        "split": np.where(np.arange(n) % 5 == 0, "test", "train"),
        "sha256": [hashlib.sha256(str(i).encode()).hexdigest() for i in range(n)],
        "bytes": rng.integers(500, 5000, n), "format": "PNG", "ext_format": "PNG",
        "mode": "RGB", "width": rng.integers(20, 40, n), "height": rng.integers(20, 40, n),
        "n_frames": 1, "exif_rotated": False, "decode_error": None,
        "pixel_sha256": [hashlib.sha256(f"px{i}".encode()).hexdigest() for i in range(n)],
        "phash": hexes(64), "dhash": hexes(64),
        "stat_mean": rng.uniform(0.3, 0.7, n), "stat_std": rng.uniform(0.1, 0.3, n),
        "stat_p05": rng.uniform(0.0, 0.2, n), "stat_p95": rng.uniform(0.8, 1.0, n),
        "stat_entropy": rng.uniform(5, 7.5, n), "stat_colorfulness": rng.uniform(0.05, 0.3, n),
        "stat_blur": rng.uniform(200, 800, n), "stat_gradient": rng.uniform(0.05, 0.2, n),
        "stat_bpp": rng.uniform(2, 5, n),
    }
    frame = pd.DataFrame({c: values.get(c, _default_column(rng, c, dtype, n))
                          for c, dtype in COLUMNS.items()})
    for j, i in dup.items():  # exact copies share every content column
        for c in COLUMNS:
            if c not in ("id", "path", "split"):
                frame.at[j, c] = frame.at[i, c]
    return frame.astype(COLUMNS)


def _default_column(rng: np.random.Generator, name: str, dtype: str, n: int) -> Any:
    """Plausible values for a manifest column added after this fixture was written."""
    if dtype.startswith("float"):
        return rng.uniform(0, 1, n)
    if dtype.lower().startswith("int"):
        return rng.integers(1, 100, n)
    if dtype == "boolean":
        return False
    return None


@pytest.fixture
def audit_context() -> Callable[..., PlantedContext]:
    return make_audit_context


@pytest.fixture(scope="session")
def ray_cluster():  # type: ignore[no-untyped-def]
    """A real two-node Ray cluster on loopback (tests/raycluster.py), joined by this
    process; started on first use, stopped at the end of the session."""
    from tests.raycluster import start_cluster

    yield from start_cluster()
