"""Scale benchmark (issues 16, 23): per-stage wall time, peak RSS and growth exponent at
125k / 250k / 500k / 1M images, and the near-duplicate recall on planted near copies.

Datasets are synthetic and distinct: 10 classes of 28 x 28 grey images, each a random
7 x 7 pattern (bilinear up) plus a class pattern and fine noise; ``--copies`` (1 %) of
them get a planted near copy (JPEG re-encode q 70-90, a 4 % crop resized back, or a
brightness shift of 6 grey levels). Two modes, both run the real stage code in a child
process per stage (peak RSS = that process tree's largest ``ru_maxrss``):

- **files** (``--sizes``): writes the ImageFolder (PNG, copies PNG/JPEG), then runs
  ``dataqa scan``, ``dataqa tensors``, optionally ``dataqa crossval`` (``--crossval``;
  without it the embeddings (64-d) and out-of-fold probabilities are synthetic, aligned
  with the manifest: class centre + noise, copies next to their original), then
  ``dataqa audit``;
- **audit-only** (``--audit-sizes``): no files; the manifest, tensors, embeddings and
  probabilities are written directly (hashes computed from the synthetic pixels by
  imagehash's phash/dhash algorithms in numpy; image statistics random around fixed
  values), then ``dataqa audit``. This is how the 1M audit is measured on a small box.

Each audit runs three ways where feasible: the new path (faiss, HNSW above 25k rows),
the new path forced exact (``EXACT_MAX_ROWS`` raised: the recall reference), and the
old path (``--baseline-src``: a source tree of the code before this issue, e.g.
``git archive 2fdbd6b | tar -x -C /tmp/base``) with its ratio. ``--max-exact`` /
``--max-baseline`` cap the sizes where those run (both grow as N^2).

    python benchmarks/bench_scale.py --sizes 10000 100000 --audit-sizes 1000000 \\
        --baseline-src /tmp/base --out /tmp/scale.json

The million (issue 23), files mode, image-level checks (``--checks image``: every check
that needs no model, near_duplicate included), in two phases so that the audit can be
rerun on the same files: ``--phase build`` writes the files and runs scan and tensors in
``--keep DIR/files-N``; ``--phase audit`` runs the audit there; ``--phase all`` does both.
Each stage row carries the 1-minute load average before and after it (the box is
shared), and the run ends with the growth exponent between successive sizes.

    nice -n 10 python benchmarks/bench_scale.py --sizes 125000 250000 500000 1000000 \\
        --audit-sizes --checks image --keep /work/bench1m --out /work/bench1m.json
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
SIDE, LOW, CLASSES, EMB_DIM, TENSOR = 28, 7, 10, 64, 32


# --------------------------------------------------------------------------- images
def _up(n_out: int, n_in: int) -> np.ndarray:
    """(n_out, n_in) bilinear interpolation matrix."""
    pos = (np.arange(n_out) + 0.5) * n_in / n_out - 0.5
    lo = np.clip(np.floor(pos).astype(int), 0, n_in - 1)
    hi = np.clip(lo + 1, 0, n_in - 1)
    w = np.clip(pos - lo, 0, 1)
    m = np.zeros((n_out, n_in))
    m[np.arange(n_out), lo] += 1 - w
    m[np.arange(n_out), hi] += w
    return m


def make_images(start: int, stop: int, labels: np.ndarray, seed: int) -> np.ndarray:
    """(stop - start, 28, 28) uint8 distinct images (deterministic per index range)."""
    rng = np.random.default_rng([seed, start])
    n = stop - start
    u = _up(SIDE, LOW).astype(np.float32)
    cls = np.random.default_rng(seed).normal(0, 40, size=(CLASSES, LOW, LOW))
    z = rng.normal(0, 45, size=(n, LOW, LOW)) + cls[labels[start:stop]]
    img = u @ z.astype(np.float32) @ u.T + 128
    img += rng.normal(0, 6, size=img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def make_copy(img: np.ndarray, kind: int, rng: np.random.Generator) -> tuple[np.ndarray, bytes]:
    """A near copy of one image: (pixels as decoded, file bytes)."""
    pil = Image.fromarray(img)
    buf = io.BytesIO()
    if kind == 0:  # JPEG re-encode
        pil.save(buf, "JPEG", quality=int(rng.integers(70, 91)))
    elif kind == 1:  # 4 % crop, resized back
        c = max(1, round(SIDE * 0.04))
        pil.crop((c, c, SIDE - c, SIDE - c)).resize((SIDE, SIDE), Image.BILINEAR).save(buf, "PNG")
    else:  # brightness shift
        Image.fromarray(np.clip(img.astype(int) + 6, 0, 255).astype(np.uint8)).save(buf, "PNG")
    data = buf.getvalue()
    return np.asarray(Image.open(io.BytesIO(data)).convert("L")), data


class Plan:
    """Who is who in a synthetic set of ``n`` rows: originals, then planted copies."""

    def __init__(self, n: int, copies: float, seed: int) -> None:
        rng = np.random.default_rng(seed)
        self.n_copies = max(20, int(n * copies))
        self.n_orig = n - self.n_copies
        self.labels = rng.integers(0, CLASSES, size=n)
        self.source = rng.choice(self.n_orig, self.n_copies, replace=False)  # copy -> orig
        self.labels[self.n_orig:] = self.labels[self.source]
        self.kinds = rng.integers(0, 3, size=self.n_copies)
        self.split = np.where(rng.random(n) < 0.1, "test", "train")
        self.seed = seed

    def blocks(self, step: int = 50_000):
        """(start, originals (B, 28, 28), {copy j: (pixels, bytes)}) per block of
        originals; each copy is made from its original's block."""
        rng = np.random.default_rng(self.seed + 1)
        for s in range(0, self.n_orig, step):
            e = min(self.n_orig, s + step)
            imgs = make_images(s, e, self.labels, self.seed)
            mine = np.flatnonzero((self.source >= s) & (self.source < e))
            yield s, imgs, {int(j): make_copy(imgs[self.source[j] - s], int(self.kinds[j]), rng)
                            for j in mine}

    def name(self, i: int) -> str:
        c = self.labels[i]
        if i < self.n_orig:
            return f"c{c}/img{i:07d}.png"
        ext = "jpg" if self.kinds[i - self.n_orig] == 0 else "png"
        return f"c{c}/img{self.source[i - self.n_orig]:07d}_copy.{ext}"


# --------------------------------------------------------------------------- writing
def write_files(plan: Plan, root: Path) -> None:
    """The ImageFolder of ``plan`` under ``root``."""
    for c in range(CLASSES):
        (root / f"c{c}").mkdir(parents=True, exist_ok=True)
    for s, imgs, copies in plan.blocks():
        for k, img in enumerate(imgs):
            Image.fromarray(img).save(root / plan.name(s + k), "PNG", compress_level=1)
        for j, (_, data) in copies.items():
            (root / plan.name(plan.n_orig + j)).write_bytes(data)


def synthetic_model_outputs(plan: Plan, manifest: pd.DataFrame, ws: Path) -> None:
    """Embeddings and out-of-fold probabilities aligned with ``manifest`` (synthetic:
    class centre + noise; a copy's embedding next to its original's)."""
    rng = np.random.default_rng(plan.seed + 2)
    n = plan.n_orig + plan.n_copies
    centres = rng.normal(0, 1, size=(CLASSES, EMB_DIM))
    emb = (centres[plan.labels] + rng.normal(0, 0.8, size=(n, EMB_DIM))).astype(np.float32)
    emb[plan.n_orig:] = emb[plan.source] + rng.normal(0, 0.05, size=(plan.n_copies, EMB_DIM))
    logits = 3 * np.eye(CLASSES)[plan.labels] + rng.normal(0, 1, size=(n, CLASSES))
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    order = _rows_of(plan, manifest)  # manifest row -> plan index
    np.save(out_path(ws, "embeddings"), emb[order])
    np.save(out_path(ws, "pred_probs"), probs[order].astype(np.float32))
    out_path(ws, "crossval_metrics").parent.mkdir(parents=True, exist_ok=True)
    out_path(ws, "crossval_metrics").write_text(
        json.dumps({"classes": [f"c{c}" for c in range(CLASSES)]}))


def _rows_of(plan: Plan, manifest: pd.DataFrame) -> np.ndarray:
    index = {plan.name(i): i for i in range(plan.n_orig + plan.n_copies)}
    return manifest["path"].astype(str).map(index).to_numpy(dtype=np.int64)


def _hashes(img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """imagehash's phash (32 x 32 DCT, top-left 8 x 8 > median) and dhash (9 x 8,
    left < right) of (N, 28, 28) uint8 images, as uint64, bilinear resizing."""
    from scipy.fft import dct

    x = img.astype(np.float32)
    u32 = _up(32, SIDE).astype(np.float32)
    big = u32 @ x @ u32.T
    d = dct(dct(big, axis=1, norm=None), axis=2, norm=None)[:, :8, :8].reshape(len(x), 64)
    pbits = d > np.median(d, axis=1, keepdims=True)
    small = _up(8, SIDE).astype(np.float32) @ x @ _up(9, SIDE).astype(np.float32).T
    dbits = (small[:, :, 1:] > small[:, :, :-1]).reshape(len(x), 64)
    w = (1 << np.arange(63, -1, -1, dtype=np.uint64))
    return ((pbits * w).sum(1, dtype=np.uint64), (dbits * w).sum(1, dtype=np.uint64))


def write_audit_inputs(plan: Plan, ws: Path) -> None:
    """Manifest, tensors, embeddings and probabilities of ``plan`` without any file."""
    from dataqa.dataset.manifest import COLUMNS

    n = plan.n_orig + plan.n_copies
    names = [plan.name(i) for i in range(n)]
    order = np.argsort(np.array(names), kind="stable")  # manifest rows sorted by path
    out_path(ws, "tensors").parent.mkdir(parents=True, exist_ok=True)
    tensors = np.lib.format.open_memmap(out_path(ws, "tensors"), mode="w+",
                                        dtype=np.uint8, shape=(n, TENSOR, TENSOR, 1))
    pos = np.empty(n, dtype=np.int64)
    pos[order] = np.arange(n)  # plan index -> manifest row
    phash = np.zeros(n, dtype=np.uint64)
    dhash = np.zeros(n, dtype=np.uint64)
    pad = (TENSOR - SIDE) // 2  # letterbox 28 -> 32 keeps the scale: 2 px border

    def put(rows: np.ndarray, imgs: np.ndarray) -> None:
        phash[rows], dhash[rows] = _hashes(imgs)
        block = np.zeros((len(imgs), TENSOR, TENSOR, 1), np.uint8)
        block[:, pad:pad + SIDE, pad:pad + SIDE, 0] = imgs
        order_ = np.argsort(pos[rows])
        tensors[pos[rows][order_]] = block[order_]

    for s, imgs, copies in plan.blocks():
        put(np.arange(s, s + len(imgs)), imgs)
        if copies:
            js = np.array(sorted(copies))
            put(plan.n_orig + js, np.stack([copies[int(j)][0] for j in js]))
    tensors.flush()

    srng = np.random.default_rng(plan.seed + 3)
    frame = pd.DataFrame({
        "id": np.arange(n), "path": np.array(names)[order],
        "label": np.array([f"c{c}" for c in plan.labels])[order],
        "split": plan.split[order],
        "sha256": [f"{i:064x}" for i in order], "bytes": 600, "format": "PNG",
        "ext_format": "PNG", "mode": "L", "width": SIDE, "height": SIDE, "n_frames": 1,
        "exif_rotated": False, "decode_error": None,
        "pixel_sha256": [f"{i + n:064x}" for i in order],
        "phash": [f"{v:016x}" for v in phash[order]],
        "dhash": [f"{v:016x}" for v in dhash[order]],
    })
    for col, mean, sd in (("stat_mean", 0.5, 0.03), ("stat_std", 0.18, 0.02),
                          ("stat_p05", 0.2, 0.03), ("stat_p95", 0.8, 0.03),
                          ("stat_entropy", 6.5, 0.2), ("stat_colorfulness", 0.0, 0.0),
                          ("stat_blur", 0.02, 0.002), ("stat_gradient", 0.1, 0.01),
                          ("stat_bpp", 4.0, 0.2)):
        frame[col] = mean + sd * srng.standard_normal(n)
    frame = frame[list(COLUMNS)].astype(COLUMNS)
    frame.to_parquet(out_path(ws, "manifest"), index=False)
    synthetic_model_outputs(plan, frame, ws)


# --------------------------------------------------------------------------- running
PARAMS = """\
data: {{source: {source}}}
scan: {{workers: 2, chunk_size: 64}}
tensors: {{workers: 2, chunk_size: 256}}
engine: {{image_size: {tensor}, channels: gray}}
crossval: {{folds: 5, epochs: 1}}
audit:
  checks: [{checks}]
"""
ALL_CHECKS = ("integrity, exact_duplicate, near_duplicate, label, outlier, dark, light, "
              "blurry, low_information, grayscale, odd_aspect_ratio, odd_size, complexity")
# every check that looks at the images only (no crossval model): issue 23's audit
IMAGE_CHECKS = ("integrity, exact_duplicate, near_duplicate, dark, light, blurry, "
                "low_information, grayscale, odd_aspect_ratio, odd_size, complexity")


def out_path(ws: Path, key: str) -> Path:
    """Where the stages of workspace ``ws`` read/write ``paths.<key>`` (params defaults)."""
    from dataqa.params import Paths

    return ws / getattr(Paths(), key)

CHILD = """\
import resource, subprocess, sys, json, time
t = time.perf_counter()
rc = subprocess.run(sys.argv[1:]).returncode
u = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"rc": rc, "wall_s": time.perf_counter() - t, "cpu_s": u.ru_utime + u.ru_stime,
                  "peak_mb": u.ru_maxrss / 1024}))
"""

OLD = ("import sys; sys.path.insert(0, {src!r}); "
       "sys.meta_path[:] = [f for f in sys.meta_path if 'editable' not in repr(f).lower()]; "
       "import dataqa; assert dataqa.__file__.startswith({src!r}), dataqa.__file__; "
       "from dataqa.cli import main; sys.exit(main(sys.argv[1:]))")

EXACT = ("import sys; from dataqa.checks import neighbors; neighbors.EXACT_MAX_ROWS = 10**12; "
         "from dataqa.cli import main; sys.exit(main(sys.argv[1:]))")


def run_stage(ws: Path, stage: str, *, variant: str = "new", baseline: Path | None = None,
              timeout: float = 3600) -> dict:
    """Run one stage in a child; wall time and the largest process's peak RSS."""
    env = dict(os.environ)
    if variant == "old":  # the old tree first, past the editable install's finder
        cmd = [sys.executable, "-c", OLD.format(src=str(baseline))]
    elif variant == "exact":
        cmd = [sys.executable, "-c", EXACT]
    else:
        cmd = [sys.executable, "-c", "import sys; from dataqa.cli import main; "
               "sys.exit(main(sys.argv[1:]))"]
    cmd += [stage, "--params", str(ws / "params.yaml")]
    load_before = _load()
    proc = subprocess.Popen([sys.executable, "-c", CHILD, *cmd], env=env, cwd=ws,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)  # the stage too, not only the wrapper (issue 23)
        proc.communicate()
        return {"rc": None, "wall_s": None, "peak_mb": None, "note": f"timeout {timeout}s",
                "load": [load_before, _load()]}
    out = subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
    try:
        res = json.loads(out.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        res = {"rc": -1}
    if res.get("rc"):
        res["stderr"] = out.stderr[-1500:]
    res["load"] = [load_before, _load()]
    return res


def recall(plan: Plan, ws: Path) -> float:
    """Share of planted copies that the audit groups with their original."""
    issues = pd.read_parquet(out_path(ws, "issues"),
                             columns=["path", "near_duplicate_group"])
    group = dict(zip(issues["path"], issues["near_duplicate_group"]))
    hits = 0
    for j in range(plan.n_copies):
        a = group.get(plan.name(plan.n_orig + j), -1)
        b = group.get(plan.name(int(plan.source[j])), -1)
        hits += int(a >= 0 and a == b)
    return hits / plan.n_copies


def _load() -> float:
    return round(os.getloadavg()[0], 1)


def measure(n: int, mode: str, args: argparse.Namespace) -> dict:
    plan = Plan(n, args.copies, args.seed)
    out: dict = {"n": n, "mode": mode, "planted": plan.n_copies, "stages": {}}
    image_only = args.checks == "image"
    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        ws = Path(tmp)
        if args.keep:
            ws = args.keep / f"{mode}-{n}"
            ws.mkdir(parents=True, exist_ok=True)
        source = ws / "images"
        build = args.phase in ("build", "all")
        audit = args.phase in ("audit", "all")
        (ws / "params.yaml").write_text(PARAMS.format(
            source=source, tensor=TENSOR, checks=IMAGE_CHECKS if image_only else ALL_CHECKS))
        if build:
            t = time.perf_counter()
            if mode == "files" and args.reuse_files and _file_count(source) == plan.n_orig + plan.n_copies:
                print(n, mode, "files kept from an earlier build:", source, flush=True)
            elif mode == "files":
                write_files(plan, source)
            else:
                write_audit_inputs(plan, ws)
            out["build_s"] = round(time.perf_counter() - t, 1)
            print(n, mode, "build", out["build_s"], "s", flush=True)
            stages = ["scan", "tensors"] + (["crossval"] if args.crossval else []) \
                if mode == "files" else []
            for stage in stages:
                out["stages"][stage] = run_stage(ws, stage, timeout=args.timeout)
                print(n, mode, stage, out["stages"][stage], flush=True)
            if mode == "files" and not args.crossval and not image_only:
                synthetic_model_outputs(plan, pd.read_parquet(out_path(ws, "manifest")), ws)
        if audit:
            variants = ["new"]
            if n <= args.max_exact:
                variants.append("exact")
            if args.baseline_src and n <= args.max_baseline:
                variants.append("old")
            for variant in variants:
                res = run_stage(ws, "audit", variant=variant, baseline=args.baseline_src,
                                timeout=args.timeout)
                if res.get("rc") == 0:
                    res["recall"] = round(recall(plan, ws), 4)
                    res["search"] = _search_summary(ws)
                out["stages"][f"audit:{variant}"] = res
                print(n, mode, variant, res, flush=True)
    return out


def _file_count(root: Path) -> int:
    return sum(len(os.listdir(d)) for d in root.glob("c*") if d.is_dir()) if root.is_dir() else 0


def _search_summary(ws: Path) -> dict:
    """How near_duplicate searched (exact or approximate, by measured cost) and the
    recall of its neighbours against an exact search on a sample, from audit.json."""
    try:
        checks = json.loads(out_path(ws, "audit_metrics").read_text())["checks"]
        return checks["near_duplicate"].get("search", {})
    except (OSError, KeyError, ValueError):
        return {}


def exponents(results: list[dict]) -> list[dict]:
    """Growth exponent log(t2/t1) / log(n2/n1) of each stage between successive sizes,
    of the wall time and of the CPU time (user + system of the stage's processes)."""
    rows = []
    by_mode: dict[str, list[dict]] = {}
    for r in results:
        by_mode.setdefault(r["mode"], []).append(r)
    for mode, rs in by_mode.items():
        rs = sorted(rs, key=lambda r: r["n"])
        for a, b in zip(rs, rs[1:]):
            for stage in a["stages"]:
                row = {"mode": mode, "stage": stage, "from": a["n"], "to": b["n"]}
                for key in ("wall_s", "cpu_s"):  # CPU seconds: less sensitive to the load
                    ta = a["stages"][stage].get(key)
                    tb = b["stages"].get(stage, {}).get(key)
                    if ta and tb:
                        row[f"exponent_{key[:-2]}"] = round(
                            math.log(tb / ta) / math.log(b["n"] / a["n"]), 2)
                if len(row) > 4:
                    rows.append(row)
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", type=int, nargs="*",
                   default=[125_000, 250_000, 500_000, 1_000_000],
                   help="file-mode sizes (ImageFolder written, scan + tensors + audit)")
    p.add_argument("--audit-sizes", type=int, nargs="*", default=[],
                   help="audit-only sizes (synthetic manifest and tensors, no files)")
    p.add_argument("--checks", choices=["image", "all"], default="image",
                   help="image: the checks that need no model (issue 23); all: every "
                        "check, with synthetic embeddings and probabilities")
    p.add_argument("--phase", choices=["build", "audit", "all"], default="all",
                   help="build: files + scan + tensors; audit: the audit on kept "
                        "workspaces (--keep); all: both")
    p.add_argument("--crossval", action="store_true", help="run the real crossval stage")
    p.add_argument("--baseline-src", type=Path, default=None,
                   help="source tree of the old code, for the old path's ratio")
    p.add_argument("--max-exact", type=int, default=0,
                   help="also run the audit forced exact up to this size")
    p.add_argument("--max-baseline", type=int, default=200_000)
    p.add_argument("--copies", type=float, default=0.01)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--timeout", type=float, default=4 * 3600,
                   help="seconds per stage (a loaded box needs hours at 1M)")
    p.add_argument("--tmp", default=None, help="folder for the generated workspaces")
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--keep", type=Path, default=None, help="keep the workspaces here")
    p.add_argument("--reuse-files", action="store_true",
                   help="files mode: keep a kept workspace's images when all are there "
                        "(scan and tensors still run)")
    args = p.parse_args()
    if args.phase != "all" and not args.keep:
        p.error("--phase build/audit needs --keep DIR (the workspaces between phases)")
    sys.path.insert(0, str(ROOT))
    print(f"machine: {os.cpu_count()} cores, load {os.getloadavg()}", flush=True)
    results = [measure(n, "files", args) for n in args.sizes]
    results += [measure(n, "audit-only", args) for n in args.audit_sizes]
    growth = exponents(results)
    for g in growth:
        print("exponent", g)
    for r in results:
        for stage, s in r["stages"].items():
            old, new = r["stages"].get("audit:old"), r["stages"].get("audit:new")
            ratio = (f" old/new {old['wall_s'] / new['wall_s']:.2f}x"
                     if stage == "audit:new" and old and old.get("wall_s") and new.get("wall_s")
                     else "")
            print(f"{r['mode']:>10} {r['n']:>8} {stage:<12} wall {s.get('wall_s') or 0:8.1f} s"
                  f"  cpu {s.get('cpu_s') or 0:8.1f} s"
                  f"  peak {s.get('peak_mb') or 0:7.0f} MB  load {s.get('load')}  "
                  f"recall {s.get('recall', '-')}{ratio}")
    if args.out:
        args.out.write_text(json.dumps({"results": results, "growth": growth}, indent=1))


if __name__ == "__main__":
    main()
