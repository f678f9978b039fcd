"""Benchmark of the scan stage against plain PIL decoding of the same files.

Generates a dataset (default 20,000 files) into a temporary ImageFolder: real MNIST test
digits as PNG (from ``../shared/datasets/mnist-test``, next to the repository) and real
photos from ``skimage.data`` at 256-1024 px (two thirds JPEG, one third PNG), 85% digits
and 15% photos by default. Then, for a quarter of the files and for all of them, prints:

- plain decode throughput: ``Image.open(path).load()`` for every file, in one process,
  and in ``--workers`` spawned processes fed the same chunks the scan uses;
- scan throughput: :func:`dataqa.dataset.scan.scan_source` with ``--workers`` workers (listing,
  reading, hashing, decoding, statistics, building the manifest frame);
- the headline ratio: scan files/s / plain parallel decode files/s, same worker count;
- peak memory: RSS of the main process plus its workers, sampled every 20 ms (psutil),
  or the rusage maxima when psutil is missing.

Each timing is the best of ``--repeats`` alternating runs (the dev box is shared; the
best run is the one least disturbed by other processes). Run::

    .venv/bin/python benchmarks/bench_scan.py [--n 20000] [--workers 2]
"""

from __future__ import annotations

# Only the standard library at module level: spawned workers import this file again as
# __mp_main__, and anything heavy here would be charged to both measurements.
import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

MNIST = Path(__file__).resolve().parents[1] / ".." / "shared" / "datasets" / "mnist-test"
PHOTOS = ["astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry",
          "hubble_deep_field", "retina", "colorwheel", "camera", "moon", "coins", "grass",
          "gravel", "brick", "clock", "page"]


def plain_decode_chunk(root: str, paths: list[str]) -> int:
    """The baseline worker task: what any image loader must do at least."""
    from PIL import Image

    for p in paths:
        try:
            with Image.open(os.path.join(root, p)) as im:
                im.load()
        except OSError:
            pass
    return len(paths)


# --------------------------------------------------------------------------- data
def load_mnist() -> object:
    import gzip

    import numpy as np

    path = MNIST / "t10k-images-idx3-ubyte.gz"
    if not path.is_file():
        sys.exit(f"bench_scan: MNIST test images not found at {path.resolve()}; this "
                 f"benchmark needs the real digits (see issue 2)")
    raw = gzip.decompress(path.read_bytes())
    return np.frombuffer(raw, np.uint8, offset=16).reshape(-1, 28, 28)


def make_photo_pool(out: Path, n_variants: int, seed: int) -> list[Path]:
    """Distinct real photos at random sizes (longer side 256-1024 px), crops and flips,
    two thirds JPEG (quality 75-95), one third PNG."""
    import numpy as np
    import skimage.data
    from PIL import Image

    rng = np.random.default_rng(seed)
    sources = []
    for name in PHOTOS:
        arr = getattr(skimage.data, name)()
        sources.append(Image.fromarray(arr).convert("RGB" if arr.ndim == 3 else "L"))
    out.mkdir(parents=True, exist_ok=True)
    files = []
    for i in range(n_variants):
        im = sources[i % len(sources)]
        w, h = im.size
        cw, ch = int(w * rng.uniform(0.7, 1.0)), int(h * rng.uniform(0.7, 1.0))
        x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
        im = im.crop((x, y, x + cw, y + ch))
        if rng.random() < 0.5:
            im = im.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        side = int(rng.integers(256, 1025))
        scale = side / max(im.size)
        im = im.resize((max(1, round(im.width * scale)), max(1, round(im.height * scale))),
                       Image.Resampling.LANCZOS)
        if i % 3 == 2:
            path = out / f"photo_{i:04d}.png"
            im.save(path, compress_level=6)
        else:
            path = out / f"photo_{i:04d}.jpg"
            im.save(path, quality=int(rng.integers(75, 96)))
        files.append(path)
    return files


def make_dataset(root: Path, n: int, photo_share: float, seed: int) -> list[str]:
    """ImageFolder ``root/<digit>/...``; returns the relative paths in a random order."""
    import shutil

    import numpy as np
    from PIL import Image

    digits = load_mnist()
    labels_path = MNIST / "t10k-labels-idx1-ubyte.gz"
    import gzip
    labels = np.frombuffer(gzip.decompress(labels_path.read_bytes()), np.uint8, offset=8)
    rng = np.random.default_rng(seed)
    n_photos = round(n * photo_share)
    n_digits = n - n_photos
    pool = make_photo_pool(root / ".pool", min(n_photos, 240), seed)  # hidden: not listed
    rel: list[str] = []
    for i in range(n_digits):
        k = i % len(digits)  # past 10,000 the digits repeat (same decode cost)
        label = int(labels[k])
        (root / str(label)).mkdir(exist_ok=True)
        name = f"{label}/mnist_{i:06d}.png"
        Image.fromarray(digits[k]).save(root / name)  # type: ignore[index]
        rel.append(name)
    for i in range(n_photos):
        src = pool[i % len(pool)]  # beyond the pool, byte copies (same decode cost)
        label = int(rng.integers(0, 10))
        name = f"{label}/photo_{i:06d}{src.suffix}"
        shutil.copyfile(src, root / name)
        rel.append(name)
    order = rng.permutation(len(rel))
    return [rel[i] for i in order]


# --------------------------------------------------------------------------- measuring
class PeakMemory:
    """Peak of (RSS of this process + RSS of its children), sampled in a thread, and the
    peak RSS of the largest child (a worker)."""

    def __init__(self, interval: float = 0.02) -> None:
        self.interval = interval
        self.peak = 0
        self.worker_peak = 0
        self._stop = threading.Event()
        try:
            import psutil
            self._proc: object | None = psutil.Process()
        except ImportError:
            self._proc = None

    def _sample(self) -> int:
        proc = self._proc
        total = proc.memory_info().rss  # type: ignore[attr-defined]
        for child in proc.children(recursive=True):  # type: ignore[attr-defined]
            try:
                rss = child.memory_info().rss
            except Exception:  # a worker that just exited
                continue
            total += rss
            self.worker_peak = max(self.worker_peak, int(rss))
        return int(total)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._sample())
            time.sleep(self.interval)

    def __enter__(self) -> PeakMemory:
        if self._proc is not None:
            self.peak = self._sample()
            self._thread = threading.Thread(target=self._run, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._proc is not None:
            self._stop.set()
            self._thread.join()
        else:  # rusage: max RSS of this process + of the largest finished child (KiB)
            import resource
            self.worker_peak = 1024 * resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
            self.peak = 1024 * resource.getrusage(resource.RUSAGE_SELF).ru_maxrss + (
                self.worker_peak)


def plain_serial(root: Path, paths: list[str]) -> None:
    plain_decode_chunk(str(root), paths)


def plain_parallel(root: Path, paths: list[str], workers: int, chunk_size: int) -> None:
    """Same pool type, chunking and in-flight bound as the scan: like with like."""
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    chunks = [paths[i:i + chunk_size] for i in range(0, len(paths), chunk_size)]
    todo = iter(chunks)
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        pending = {pool.submit(plain_decode_chunk, str(root), c)
                   for c in [next(todo) for _ in range(min(len(chunks), 2 * workers))]}
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for _ in done:
                nxt = next(todo, None)
                if nxt is not None:
                    pending.add(pool.submit(plain_decode_chunk, str(root), nxt))


def run_scan(source: Path, workers: int, chunk_size: int) -> int:
    from dataqa.dataset.scan import scan_source
    from dataqa.params import ScanParams

    frame = scan_source(source, params=ScanParams(workers=workers, chunk_size=chunk_size),
                        default_split="train", progress=False)
    bad = int(frame["decode_error"].notna().sum())
    if bad:
        raise SystemExit(f"bench_scan: {bad} generated files failed to decode")
    return len(frame)


def timed(fn: object, *args: object) -> tuple[float, int, int]:
    with PeakMemory() as mem:
        start = time.perf_counter()
        fn(*args)  # type: ignore[operator]
        seconds = time.perf_counter() - start
    return seconds, mem.peak, mem.worker_peak


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=20_000, help="files in the largest run")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--chunk-size", type=int, default=64)
    ap.add_argument("--photo-share", type=float, default=0.15)
    ap.add_argument("--repeats", type=int, default=2, help="alternating runs; best is kept")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    load_mnist()  # fail fast with a clear message

    with tempfile.TemporaryDirectory(prefix="bench_scan_") as tmp:
        root = Path(tmp) / "images"
        root.mkdir()
        t0 = time.perf_counter()
        rel = make_dataset(root, args.n, args.photo_share, args.seed)
        total_mb = sum((root / p).stat().st_size for p in rel) / 1e6
        print(f"generated {len(rel)} files ({total_mb:.0f} MB) in "
              f"{time.perf_counter() - t0:.0f} s under {root}", flush=True)
        print(f"cpus: {os.cpu_count()}, load average before: "
              f"{', '.join(f'{x:.1f}' for x in os.getloadavg())}", flush=True)

        results = []
        for n in sorted({max(1, args.n // 4), args.n}):
            subset = sorted(rel[:n])  # a random subset of the same mix
            if n == len(rel):
                source = root
            else:  # a CSV source listing the subset (also exercises the CSV path)
                source = root / f"subset_{n}.csv"
                source.write_text("path,label\n" + "".join(
                    f"{p},{p.split('/')[0]}\n" for p in subset))
            plain_serial(root, subset)  # warm the page cache: every run reads from RAM
            best: dict[str, tuple[float, int, int]] = {}
            for _ in range(args.repeats):
                for name, fn, fargs in (
                        ("plain_1", plain_serial, (root, subset)),
                        ("plain_w", plain_parallel, (root, subset, args.workers,
                                                     args.chunk_size)),
                        ("scan_w", run_scan, (source, args.workers, args.chunk_size))):
                    seconds, peak, worker = timed(fn, *fargs)
                    old = best.get(name, (seconds, peak, worker))
                    best[name] = (min(seconds, old[0]), max(peak, old[1]), max(worker, old[2]))
            results.append((n, best))

        w = args.workers
        print(f"\n| files | plain 1 proc files/s | plain {w} workers files/s | scan {w} "
              f"workers files/s | scan / plain ({w} workers) | scan / plain 1 proc | "
              f"peak MB plain {w}w | peak MB scan {w}w | of which largest scan worker |")
        print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for n, best in results:
            rate = {k: n / v[0] for k, v in best.items()}
            print(f"| {n} | {rate['plain_1']:.0f} | {rate['plain_w']:.0f} | "
                  f"{rate['scan_w']:.0f} | **{rate['scan_w'] / rate['plain_w']:.2f}** | "
                  f"{rate['scan_w'] / rate['plain_1']:.2f} | {best['plain_w'][1] / 1e6:.0f} | "
                  f"{best['scan_w'][1] / 1e6:.0f} | {best['scan_w'][2] / 1e6:.0f} |")
        print(f"\nheadline: scan files/s / plain parallel decode files/s with {w} workers "
              f"(same spawn pool, chunks of {args.chunk_size}); goal >= 0.8")
        print(f"load average after: {', '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
