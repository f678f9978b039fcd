"""Checks benchmark: a generated dataset with planted truth, run through the real
pipeline (scan -> tensors -> crossval -> audit), scored per check.

The dataset: real MNIST test digits (one class, '7', kept rare) written as PNG files
listed in a CSV source (path, label, split; ~20 % 'test'), plus planted problems. Each
row of :data:`PLANTS` is one planted-truth generator: ``(kind, check, count, make)``;
``make(builder, count)`` writes ``count`` planted files (or changes existing ones) and
records which check must flag which file. Precision and recall are computed per check
over the union of its rows; add a row to plant a new problem for a new check.

Printed: per check, planted / flagged / true positives / precision / recall; the
cross-split (leakage) pairs planted vs. reported by the duplicate checks; each
stage's wall time and the audit stage's throughput (images/s, per check).

    python benchmarks/bench_checks.py                      # ~3,000 images
    python benchmarks/bench_checks.py --per-class 1000 --device cuda --out results.json

Goals (issue 4): precision and recall >= 0.95 for integrity and exact duplicates (1.0
expected), >= 0.9 for near duplicates and planted irrelevant photos (outlier).
"""

from __future__ import annotations

import argparse
import csv
import gzip
import io
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageFilter

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MNIST_CANDIDATES = (ROOT / "shared/datasets/mnist-test", ROOT.parent / "shared/datasets/mnist-test")
RARE_CLASS = 7
RARE_COUNT = 25
TEST_SHARE = 0.2


# --------------------------------------------------------------------------- builder
@dataclass
class Builder:
    """Collects the dataset's files and the planted truth while generators run."""

    root: Path
    images: np.ndarray  # (10000, 28, 28) MNIST test digits
    labels: np.ndarray  # (10000,)
    rng: np.random.Generator
    files: dict[str, tuple[str, str]] = field(default_factory=dict)  # path -> (label, split)
    truth: dict[str, set[str]] = field(default_factory=dict)  # check -> planted paths
    leaks: dict[str, int] = field(default_factory=dict)  # check -> planted cross-split pairs
    unused: list[int] = field(default_factory=list)  # base digits no generator used yet

    def write(self, path: str, data: bytes, label: str, split: str) -> None:
        target = self.root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        self.files[path] = (label, split)

    def plant(self, check: str, path: str) -> None:
        self.truth.setdefault(check, set()).add(path)

    def take(self) -> tuple[str, int]:
        """A base digit no other generator touched: (its path, its MNIST index)."""
        idx = self.unused.pop()
        return base_path(idx, self.labels), idx

    def other_split(self, path: str) -> str:
        return "test" if self.files[path][1] == "train" else "train"


def base_path(idx: int, labels: np.ndarray) -> str:
    return f"{labels[idx]}/mnist_{idx:05d}.png"


def encode(arr: np.ndarray, fmt: str = "PNG", **kw: Any) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, fmt, **kw)
    return buf.getvalue()


def resize(arr: np.ndarray, w: int, h: int) -> np.ndarray:
    return np.asarray(Image.fromarray(arr).resize((w, h), Image.Resampling.BICUBIC))


# --------------------------------------------------------------------------- generators
def plant_zero_byte(b: Builder, count: int) -> None:
    for i in range(count):
        path = f"{i % 10}/empty_{i}.png"
        b.write(path, b"", str(i % 10), "train")
        b.plant("integrity", path)


def plant_truncated(b: Builder, count: int) -> None:
    for _ in range(count):
        path, idx = b.take()
        data = encode(b.images[idx])
        b.write(path, data[: len(data) * 6 // 10], *b.files[path])
        b.plant("integrity", path)


def plant_not_an_image(b: Builder, count: int) -> None:
    for i in range(count):
        path = f"{i % 10}/notes_{i}.png"
        b.write(path, b"these are not pixels\n" * 20, str(i % 10), "train")
        b.plant("integrity", path)


def plant_wrong_extension(b: Builder, count: int) -> None:
    for _ in range(count):
        path, idx = b.take()
        label, split = b.files.pop(path)
        (b.root / path).unlink()
        new = path[:-4] + ".jpg"  # PNG bytes under a .jpg name
        b.write(new, encode(b.images[idx]), label, split)
        b.plant("integrity", new)


def plant_exact_copies(b: Builder, count: int) -> None:
    """Byte copies (half of them in the other split) and pixel copies re-saved as BMP."""
    for i in range(count):
        path, idx = b.take()
        label, split = b.files[path]
        if i % 3 == 2:
            copy, data = path[:-4] + "_copy.bmp", encode(b.images[idx], "BMP")
        else:
            copy, data = path[:-4] + "_copy.png", (b.root / path).read_bytes()
        copy_split = b.other_split(path) if i % 2 else split
        b.write(copy, data, label, copy_split)
        b.plant("exact_duplicate", copy)
        b.leaks["exact_duplicate"] = b.leaks.get("exact_duplicate", 0) + (copy_split != split)


NEAR_OPS: list[tuple[str, str, Callable[[np.ndarray], bytes]]] = [
    ("q85", "jpg", lambda a: encode(a, "JPEG", quality=85)),  # re-encoded
    ("q60", "jpg", lambda a: encode(a, "JPEG", quality=60)),
    ("36px", "png", lambda a: encode(resize(a, 36, 36))),  # resized
    ("56px_q75", "jpg", lambda a: encode(resize(a, 56, 56), "JPEG", quality=75)),
    ("crop", "png", lambda a: encode(resize(a[1:-1, 1:-1], 28, 28))),  # 1-px border cut
]


def plant_near_copies(b: Builder, count: int) -> None:
    for i in range(count):
        path, idx = b.take()
        label, split = b.files[path]
        name, ext, make = NEAR_OPS[i % len(NEAR_OPS)]
        copy = f"{path[:-4]}_{name}.{ext}"
        copy_split = b.other_split(path) if i % 4 == 3 else split
        b.write(copy, make(b.images[idx]), label, copy_split)
        b.plant("near_duplicate", copy)
        b.leaks["near_duplicate"] = b.leaks.get("near_duplicate", 0) + (copy_split != split)


def real_photos() -> list[np.ndarray]:
    """Real photos shipped with scikit-image and scikit-learn (no download)."""
    from skimage import data
    from sklearn.datasets import load_sample_images

    names = ("astronaut", "coffee", "chelsea", "rocket", "camera", "coins", "moon",
             "page", "text", "clock", "horse", "immunohistochemistry", "hubble_deep_field",
             "retina", "colorwheel", "logo", "brick", "grass", "gravel")
    out = []
    for name in names:
        arr = np.asarray(getattr(data, name)())
        if arr.dtype != np.uint8:
            arr = (arr.astype(float) / max(float(arr.max()), 1.0) * 255).astype(np.uint8)
        out.append(arr[..., :3] if arr.ndim == 3 else arr)
    return out + list(load_sample_images().images)


def plant_photos(b: Builder, count: int) -> None:
    """Irrelevant photos inside digit classes: RGB JPEGs of 50..120 px, each a
    different real photo; the last one also gets a near copy (both must be flagged as
    outliers)."""
    photos = real_photos()
    if count > len(photos):  # two sizes of one photo would be near duplicates
        raise ValueError(f"plant_photos: at most {len(photos)} distinct photos, got {count}")
    for i in range(count):
        arr = photos[i]
        if arr.ndim == 2:
            arr = np.repeat(arr[..., None], 3, axis=2)
        side = int(b.rng.integers(50, 121))
        h, w = arr.shape[:2]
        small = resize(arr, side, max(8, round(side * h / w)))
        label = str(i % 10)
        path = f"{label}/photo_{i:02d}.jpg"
        b.write(path, encode(small, "JPEG", quality=90), label, "train")
        b.plant("outlier", path)
        if i == count - 1:
            copy = f"{label}/photo_{i:02d}_small.jpg"
            b.write(copy, encode(resize(small, small.shape[1] * 3 // 4, small.shape[0] * 3 // 4),
                                 "JPEG", quality=80), label, "train")
            b.plant("outlier", copy)
            b.plant("near_duplicate", copy)


def plant_flipped_labels(b: Builder, count: int) -> None:
    """Digits moved to another class's folder (symmetric noise)."""
    for _ in range(count):
        path, idx = b.take()
        label, split = b.files.pop(path)
        (b.root / path).unlink()
        wrong = (int(label) + int(b.rng.integers(1, 10))) % 10
        new = f"{wrong}/mnist_{idx:05d}.png"
        b.write(new, encode(b.images[idx]), str(wrong), split)
        b.plant("label", new)


def plant_dark(b: Builder, count: int) -> None:
    for _ in range(count):
        path, idx = b.take()
        b.write(path, encode((b.images[idx] * 0.15).astype(np.uint8)), *b.files[path])
        b.plant("dark", path)


def plant_blurry(b: Builder, count: int) -> None:
    for _ in range(count):
        path, idx = b.take()
        big = Image.fromarray(b.images[idx]).resize((112, 112), Image.Resampling.BICUBIC)
        blurred = big.filter(ImageFilter.GaussianBlur(6)).resize((28, 28), Image.Resampling.BICUBIC)
        b.write(path, encode(np.asarray(blurred)), *b.files[path])
        b.plant("blurry", path)


def plant_textures(b: Builder, count: int) -> None:
    """Very busy synthetic textures (noise, noisy checkerboards) in digit classes: too
    complex, and not digits at all, so ``outlier`` must flag them too."""
    for i in range(count):
        if i % 2:
            checker = (np.indices((28, 28)).sum(0) % 2) * 255.0
            arr = np.clip(checker + b.rng.normal(0, 60, (28, 28)), 0, 255).astype(np.uint8)
        else:
            arr = b.rng.integers(0, 256, (28, 28), dtype=np.uint8)
        label = str(i % 10)
        path = f"{label}/texture_{i}.png"
        b.write(path, encode(arr), label, "train")
        b.plant("complexity", path)
        b.plant("outlier", path)


def plant_light(b: Builder, count: int) -> None:
    """Washed-out copies: a white page with faint grey strokes."""
    for _ in range(count):
        path, idx = b.take()
        arr = (255 - (b.images[idx].astype(np.float64) * 0.15).round()).astype(np.uint8)
        b.write(path, encode(arr), *b.files[path])
        b.plant("light", path)


def plant_blank(b: Builder, count: int) -> None:
    """Placeholder frames: black 28x28 with a tiny 3x3 mark, nothing to learn."""
    for i in range(count):
        arr = np.zeros((28, 28), dtype=np.uint8)
        y, x = (int(v) for v in b.rng.integers(4, 22, 2))
        arr[y:y + 3, x:x + 3] = 255
        label = str(i % 10)
        path = f"{label}/blank_{i}.png"
        b.write(path, encode(arr), label, "train")
        b.plant("low_information", path)


def plant_odd_aspect(b: Builder, count: int) -> None:
    """Digits squashed to 56x14 (w x h): a 4:1 strip of the usual area."""
    for _ in range(count):
        path, idx = b.take()
        b.write(path, encode(resize(b.images[idx], 56, 14)), *b.files[path])
        b.plant("odd_aspect_ratio", path)


def plant_odd_size(b: Builder, count: int) -> None:
    """Digits upscaled to 112x112 among 28x28 ones."""
    for _ in range(count):
        path, idx = b.take()
        b.write(path, encode(resize(b.images[idx], 112, 112)), *b.files[path])
        b.plant("odd_size", path)


@dataclass(frozen=True)
class Plant:
    kind: str  # what is planted
    check: str  # the check that must flag it
    count: int  # how many, at the default size
    make: Callable[[Builder, int], None]


# One row per planted problem; precision/recall are per check over its rows.
PLANTS: list[Plant] = [
    Plant("zero_byte", "integrity", 4, plant_zero_byte),
    Plant("truncated", "integrity", 4, plant_truncated),
    Plant("not_an_image", "integrity", 4, plant_not_an_image),
    Plant("wrong_extension", "integrity", 4, plant_wrong_extension),
    Plant("exact_copy", "exact_duplicate", 24, plant_exact_copies),
    Plant("near_copy", "near_duplicate", 30, plant_near_copies),
    Plant("irrelevant_photo", "outlier", 20, plant_photos),
    Plant("flipped_label", "label", 60, plant_flipped_labels),
    Plant("dark", "dark", 6, plant_dark),
    Plant("blurry", "blurry", 6, plant_blurry),
    Plant("texture", "complexity", 6, plant_textures),
    Plant("washed_out", "light", 6, plant_light),
    Plant("blank_frame", "low_information", 6, plant_blank),
    Plant("squashed", "odd_aspect_ratio", 6, plant_odd_aspect),
    Plant("upscaled", "odd_size", 6, plant_odd_size),
]
# checks run by the audit, in the pipeline's order (others follow, as planted)
FIRST_CHECKS = ["integrity", "exact_duplicate", "near_duplicate", "label", "outlier"]


def build_dataset(root: Path, images: np.ndarray, labels: np.ndarray, *, per_class: int,
                  seed: int) -> Builder:
    """Write the base digits and every planted problem under ``root``; the CSV source
    is ``root / 'source.csv'``."""
    rng = np.random.default_rng(seed)
    b = Builder(root, images, labels, rng)
    chosen = []
    for c in range(10):
        idx = np.flatnonzero(labels == c)
        chosen += list(rng.choice(idx, RARE_COUNT if c == RARE_CLASS else per_class,
                                  replace=False))
    for idx in chosen:
        split = "test" if rng.random() < TEST_SHARE else "train"
        b.write(base_path(idx, labels), encode(images[idx]), str(labels[idx]), split)
    rare = {int(i) for i in chosen if labels[i] == RARE_CLASS}
    b.unused = [int(i) for i in rng.permutation(chosen) if int(i) not in rare]
    for plant in PLANTS:
        plant.make(b, plant.count)
    with open(root / "source.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "label", "split"])
        for path, (label, split) in sorted(b.files.items()):
            w.writerow([path, label, split])
    return b


# --------------------------------------------------------------------------- pipeline
def run_pipeline(work: Path, *, device: str, extra_checks: list[str],
                 audit_only: bool = False) -> dict[str, Any]:
    """scan -> tensors -> crossval -> audit with the real stage functions (only the
    audit with ``audit_only``: the earlier stages' outputs in ``work`` are reused);
    returns per-stage seconds and per-check audit seconds."""
    from dataqa.params import Params, validate
    from dataqa.steps import audit, crossval, scan, tensors

    checks = FIRST_CHECKS + [c for c in extra_checks if c not in FIRST_CHECKS]
    params = validate(Params, {"data": {"source": str(work / "images" / "source.csv")},
                               "engine": {"device": device},
                               "audit": {"checks": checks}},
                      where="bench params").model_copy(update={"root": work})
    times: dict[str, float] = {}
    for name, stage in (("scan", scan.run_stage), ("tensors", tensors.run_stage),
                        ("crossval", crossval.run_stage), ("audit", audit.run_stage)):
        if audit_only and name != "audit":
            continue
        t0 = time.perf_counter()
        stage(params)
        times[name] = time.perf_counter() - t0
    # per-check times: the audit's own pieces, each check timed alone
    manifest = audit.read_manifest(params.path("manifest"))
    built = audit.build_checks(params.audit)
    ctx = audit.load_inputs(params, manifest, built)
    per_check = {}
    for check in built:
        t0 = time.perf_counter()
        audit.run_checks([check], ctx)
        per_check[check.name] = time.perf_counter() - t0
    return {"params": params, "stage_seconds": times, "check_seconds": per_check}


def score(b: Builder, params: Any) -> dict[str, Any]:
    """Precision and recall per check, and planted vs. reported leakage."""
    import pandas as pd

    issues = pd.read_parquet(params.path("issues"))
    metrics = json.loads(params.path("audit_metrics").read_text())
    out: dict[str, Any] = {"checks": {}, "leaks": {}}
    for check in dict.fromkeys(p.check for p in PLANTS):
        col = f"is_{check}_issue"
        if col not in issues:
            continue
        flagged = set(issues.loc[issues[col].astype(bool), "path"])
        truth = b.truth.get(check, set())
        tp = len(flagged & truth)
        out["checks"][check] = {
            "planted": len(truth), "flagged": len(flagged), "true_positives": tp,
            "precision": tp / len(flagged) if flagged else 1.0,
            "recall": tp / len(truth) if truth else 1.0,
            "false_positives": sorted(flagged - truth)[:20],
            "missed": sorted(truth - flagged)[:20]}
    for check, planted in b.leaks.items():
        reported = metrics["checks"].get(check, {}).get("cross_split_pairs")
        out["leaks"][check] = {"planted": planted, "reported": reported}
    out["n_images"] = len(issues)
    return out


def other_planted(b: Builder, check: str) -> set[str]:
    """Paths planted for any other check (an image-quality outlier flagged by
    ``outlier`` too is reported apart from plain false positives)."""
    return set().union(*(paths for c, paths in b.truth.items() if c != check))


def run_scale(images: np.ndarray, labels: np.ndarray, n: int, seed: int) -> None:
    """Time near_duplicate and outlier on ``n`` synthetic rows: MNIST digits shifted by
    up to 2 px (so near copies exist), their real hashes with 3 bits flipped, random
    128-d class-clustered embeddings. No files, no crossval: the checks' cost only."""
    import pandas as pd

    from dataqa.checks import AuditContext, get_check
    from dataqa.dataset.imageio import letterbox
    from dataqa.dataset.imagestats import get_image_stats
    from dataqa.dataset.manifest import COLUMNS

    rng = np.random.default_rng(seed)
    base = np.stack([letterbox(x, 32)[0] for x in images])
    hashes = [get_image_stats(Image.fromarray(x)) for x in images]
    src = rng.integers(0, len(images), n)
    shift = rng.integers(-2, 3, (n, 2))
    tensors = np.empty((n, 32, 32, 1), np.uint8)
    for i in range(n):
        tensors[i, :, :, 0] = np.roll(base[src[i]], tuple(shift[i]), (0, 1))

    def flipped(key: str) -> list[str]:
        bits = rng.integers(0, 64, (n, 3))
        return [f"{int(hashes[s][key], 16) ^ sum(1 << int(b) for b in bb):016x}"
                for s, bb in zip(src, bits)]

    manifest = pd.DataFrame({c: pd.Series([None] * n, dtype="object") for c in COLUMNS})
    manifest = manifest.assign(
        id=np.arange(n), path=[f"{labels[s]}/{i:07d}.png" for i, s in enumerate(src)],
        label=[str(labels[s]) for s in src], split="train",
        sha256=[f"{i:064x}" for i in range(n)], width=28, height=28,
        phash=flipped("phash"), dhash=flipped("dhash"),
        **{k: [hashes[s][k] for s in src] for k in hashes[0] if k.startswith("stat_")})
    manifest["pixel_sha256"] = manifest["sha256"]
    emb = (rng.normal(0, 1, (n, 128)) + 5 * np.eye(10, 128)[labels[src]]).astype(np.float32)
    ctx = AuditContext(manifest=manifest, tensors=tensors, embeddings=emb,
                       labels=labels[src].astype(np.int64), classes=[str(c) for c in range(10)])
    for name in ("near_duplicate", "outlier"):
        t0 = time.perf_counter()
        result = get_check(name)().find(ctx)
        extra = {k: result.summary[k] for k in ("candidate_pairs", "accepted_pairs")
                 if k in result.summary}
        print(f"{name}: {n} rows in {time.perf_counter() - t0:.1f} s, "
              f"{result.n_issues} flagged {extra}", flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--per-class", type=int, default=300, help="digits per class (not '7')")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    ap.add_argument("--mnist", type=Path, default=None, help="folder of the MNIST IDX files")
    ap.add_argument("--work", type=Path, default=None, help="work folder (default: a temp dir)")
    ap.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    ap.add_argument("--scale", type=int, default=None, metavar="N",
                    help="instead: time near_duplicate and outlier on N synthetic rows")
    ap.add_argument("--audit-only", action="store_true",
                    help="rerun only the audit in --work (after a full run there with the "
                         "same --per-class and --seed): for tuning check settings")
    args = ap.parse_args(argv)

    folder = args.mnist or next((p for p in MNIST_CANDIDATES if p.is_dir()), None)
    if folder is None or not (folder / "t10k-images-idx3-ubyte.gz").is_file():
        raise SystemExit(f"MNIST test files not found (looked in {MNIST_CANDIDATES}); "
                         "pass --mnist")
    images = np.frombuffer(gzip.decompress((folder / "t10k-images-idx3-ubyte.gz").read_bytes()),
                           np.uint8, offset=16).reshape(-1, 28, 28)
    labels = np.frombuffer(gzip.decompress((folder / "t10k-labels-idx1-ubyte.gz").read_bytes()),
                           np.uint8, offset=8).astype(np.int64)

    if args.scale:
        run_scale(images, labels, args.scale, args.seed)
        return 0
    work = args.work or Path(tempfile.mkdtemp(prefix="bench_checks_"))
    if args.audit_only and not (args.work and (work / "data" / "interim").is_dir()):
        raise SystemExit("--audit-only needs --work with a full run's outputs")
    if (work / "images").exists():
        shutil.rmtree(work / "images")
    t0 = time.perf_counter()
    b = build_dataset(work / "images", images, labels, per_class=args.per_class, seed=args.seed)
    print(f"dataset: {len(b.files)} files in {work / 'images'} "
          f"({time.perf_counter() - t0:.1f} s)", flush=True)

    from dataqa.checks import REGISTRY, get_check

    get_check("integrity")  # loads the registry
    planted_checks = [p.check for p in PLANTS if p.check in REGISTRY]
    run = run_pipeline(work, device=args.device, extra_checks=planted_checks,
                       audit_only=args.audit_only)
    result = score(b, run["params"])
    n = result["n_images"]

    print(f"\n{'check':<16}{'planted':>8}{'flagged':>8}{'TP':>6}{'precision':>11}{'recall':>8}")
    for check, r in result["checks"].items():
        print(f"{check:<16}{r['planted']:>8}{r['flagged']:>8}{r['true_positives']:>6}"
              f"{r['precision']:>11.3f}{r['recall']:>8.3f}")
    for check, r in result["checks"].items():
        if r["false_positives"] or r["missed"]:
            others = [p for p in r["false_positives"] if p in other_planted(b, check)]
            print(f"  {check}: false positives {r['false_positives'][:8]}"
                  f"{' (planted for other checks: ' + str(len(others)) + ')' if others else ''}"
                  f"; missed {r['missed'][:8]}")
    if "outlier" in result["checks"]:
        r = result["checks"]["outlier"]
        issues_path = run["params"].path("issues")
        import pandas as pd

        flagged = set(pd.read_parquet(issues_path, columns=["path", "is_outlier_issue"])
                      .query("is_outlier_issue")["path"])
        anomalous = b.truth.get("outlier", set()) | other_planted(b, "outlier") - b.truth.get(
            "label", set()) - b.truth.get("exact_duplicate", set()) - b.truth.get(
            "near_duplicate", set())
        r["precision_counting_planted_anomalies"] = (
            len(flagged & anomalous) / len(flagged) if flagged else 1.0)
        print(f"  outlier precision when flags on other planted image anomalies (dark, "
              f"blurry, texture, broken) count as right: "
              f"{r['precision_counting_planted_anomalies']:.3f}")
    for check, r in result["leaks"].items():
        print(f"leakage {check}: planted {r['planted']} cross-split pairs, reported {r['reported']}")
    times = run["stage_seconds"]
    print("\nstage seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in times.items()))
    print(f"audit: {n} images in {times['audit']:.2f} s = {n / times['audit']:.0f} images/s")
    print("per check (s): " + ", ".join(f"{k} {v:.2f}" for k, v in run["check_seconds"].items()))
    if args.out:
        result.update(stage_seconds=times, check_seconds=run["check_seconds"],
                      audit_images_per_s=n / times["audit"])
        args.out.write_text(json.dumps(result, indent=2, default=str))
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
