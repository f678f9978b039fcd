"""dataqa side by side with its peers: CleanVision and cleanlab's Datalab (issue 25).

Both tools run on the same files, each as fresh Python processes (imports included on
both sides), in alternating rounds (odd rounds run the peer first); the table gives the
median wall time of each side over ``--rounds`` rounds, dataqa ÷ peer, and the peak
memory of each side (RSS of the process and its children together, sampled every 20 ms
with psutil; for dataqa the largest over its stages, and the audit stage's own peak).

Three comparisons:

- ``digits``: the 10,000 real MNIST test digits as PNG files in class folders
  (``../shared/datasets/mnist-test``; the benchmark exits with a message when absent).
  dataqa: the ``scan``, ``tensors`` and ``audit`` stages with the 11 image checks
  (integrity, exact and near duplicates, dark, light, blurry, low information,
  grayscale, odd aspect ratio, odd size, complexity), no model. CleanVision:
  ``Imagelab(data_path).find_issues()`` (its 9 default issue types).
- ``photos``: ``--photos`` (default 400) real photos: the colour and grey photos that ship
  with scikit-image and scikit-learn, randomly cropped, mirrored and resized to a
  longer side of 256-1024 px, two thirds JPEG, one third PNG, one class folder per
  source photo. Same two sides as ``digits`` (dataqa with the ``photos`` preset).
- ``datalab``: the audit of given predictions. Out-of-sample predicted probabilities
  and features for the 10,000 digits (5-fold logistic regression on 64 PCA components
  of the pixels, computed once and cached); dataqa: the ``crossval`` stage in
  ``external`` mode (reads the Parquet files, aligns them with the manifest) and the
  ``audit`` stage with the checks that use predictions and features (label, outlier,
  near duplicate; the manifest and tensors are made once beforehand, untimed). Datalab:
  ``Datalab(data={"label": ...}).find_issues(pred_probs=..., features=...)`` with its
  default issue types (label, outlier, near duplicate, non-iid, class imbalance,
  underperforming group, null). ``datalab3`` restricts Datalab to the three types
  dataqa runs (for information; no goal).

dataqa's modules are byte-compiled first (``compileall``), as ``pip install`` leaves an
installed package and the peers' environment. The peers are installed once in their own
virtual environment,
``benchmarks/cache/peers-venv`` (git-ignored; pinned versions below); data and
predictions are cached under ``benchmarks/cache/peers-data``. Run::

    python benchmarks/bench_peers.py                       # all, 3 rounds
    python benchmarks/bench_peers.py --only digits --rounds 5

Goals (issue 25): dataqa ÷ CleanVision <= 0.35 on the digits and <= 0.8 on the photos,
dataqa ÷ Datalab <= 0.8 on given predictions, and the peak memory of the audit without a
model <= 500 MB on the 10,000 digits.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "benchmarks" / "cache"
VENV = CACHE / "peers-venv"
DATA = CACHE / "peers-data"
PEERS = ("cleanvision==0.3.7", "cleanlab[datalab]==2.9.0", "psutil")
MNIST_CANDIDATES = (ROOT.parent / "shared/datasets/mnist-test",
                    ROOT / "shared/datasets/mnist-test",
                    ROOT.parents[1] / "shared/datasets/mnist-test")
IMAGE_CHECKS = ["integrity", "exact_duplicate", "near_duplicate", "dark", "light", "blurry",
                "low_information", "grayscale", "odd_aspect_ratio", "odd_size", "complexity"]
GIVEN_CHECKS = ["label", "outlier", "near_duplicate"]
GOALS = {"digits": 0.35, "photos": 0.8, "datalab": 0.8}
AUDIT_PEAK_GOAL_MB = 500
PHOTOS = ["astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry",
          "hubble_deep_field", "retina", "colorwheel", "camera", "moon", "coins", "grass",
          "gravel", "brick", "clock", "page"]

CLEANVISION = """
import sys, contextlib, io
from cleanvision import Imagelab
with contextlib.redirect_stdout(io.StringIO()):
    lab = Imagelab(data_path=sys.argv[1])
    lab.find_issues()
print(int(lab.issues.filter(like="is_").any(axis=1).sum()), "images flagged")
"""

DATALAB = """
import sys, contextlib, io
import numpy as np
from cleanlab import Datalab
d = sys.argv[1]
labels = np.load(d + "/labels.npy")
lab = Datalab(data={"label": labels}, label_name="label", verbosity=0)
types = None if sys.argv[2] == "default" else {t: {} for t in sys.argv[2].split(",")}
with contextlib.redirect_stdout(io.StringIO()):
    lab.find_issues(pred_probs=np.load(d + "/pred_probs.npy"),
                    features=np.load(d + "/features.npy"), issue_types=types)
print(int(lab.get_issues().filter(like="is_").any(axis=1).sum()), "rows flagged")
"""


# ----------------------------------------------------------------------------- peers
def peer_python() -> Path:
    """The peers' interpreter, installing them on first use."""
    python = VENV / "bin" / "python"
    stamp = VENV / ".installed"
    if stamp.is_file() and stamp.read_text() == "\n".join(PEERS):
        return python
    print(f"installing {', '.join(PEERS)} into {VENV} (once)", file=sys.stderr)
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "--quiet",
                    "--disable-pip-version-check", *PEERS], check=True)
    stamp.write_text("\n".join(PEERS))
    return python


# ------------------------------------------------------------------------------ data
def mnist() -> tuple[np.ndarray, np.ndarray]:
    for folder in MNIST_CANDIDATES:
        images = folder / "t10k-images-idx3-ubyte.gz"
        if images.is_file():
            raw = gzip.decompress(images.read_bytes())
            labels = gzip.decompress((folder / "t10k-labels-idx1-ubyte.gz").read_bytes())
            return (np.frombuffer(raw, np.uint8, offset=16).reshape(-1, 28, 28),
                    np.frombuffer(labels, np.uint8, offset=8))
    sys.exit("bench_peers: the MNIST test set is not here (looked in "
             + ", ".join(str(p) for p in MNIST_CANDIDATES) + "); nothing measured")


def make_digits(n: int) -> Path:
    out = DATA / f"digits-{n}"
    if (out / ".done").is_file():
        return out
    from PIL import Image

    images, labels = mnist()
    for i in range(n):
        folder = out / "images" / str(labels[i])
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(images[i]).save(folder / f"{i:05d}.png")
    (out / ".done").write_text("")
    return out


def make_photos(n: int, seed: int = 0) -> Path:
    out = DATA / f"photos-{n}"
    if (out / ".done").is_file():
        return out
    import skimage.data
    from PIL import Image
    from sklearn.datasets import load_sample_images

    sources: dict[str, Image.Image] = {}
    for name in PHOTOS:
        arr = getattr(skimage.data, name)()
        sources[name] = Image.fromarray(arr).convert("RGB" if arr.ndim == 3 else "L")
    for name, arr in zip(("china", "flower"), load_sample_images().images, strict=True):
        sources[name] = Image.fromarray(arr)
    rng = np.random.default_rng(seed)
    names = sorted(sources)
    for i in range(n):
        name = names[i % len(names)]
        im = sources[name]
        w, h = im.size
        f = rng.uniform(0.6, 1.0)
        cw, ch = int(w * f * rng.uniform(0.8, 1.0)), int(h * f * rng.uniform(0.8, 1.0))
        x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
        crop = im.crop((x, y, x + cw, y + ch))
        if rng.random() < 0.5:
            crop = crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        side = int(rng.integers(256, 1025))
        scale = side / max(crop.size)
        crop = crop.resize((max(1, round(crop.width * scale)), max(1, round(crop.height * scale))),
                           Image.Resampling.BILINEAR)
        folder = out / "images" / name
        folder.mkdir(parents=True, exist_ok=True)
        if i % 3 == 2:
            crop.save(folder / f"{i:04d}.png")
        else:
            crop.save(folder / f"{i:04d}.jpg", quality=int(rng.integers(75, 96)))
    (out / ".done").write_text("")
    return out


def make_given(digits: Path) -> Path:
    """Out-of-sample predictions and features of the digits, in the manifest's path
    order: npy files for Datalab, Parquet files (``path`` + columns) for dataqa."""
    out = digits / "given"
    if (out / ".done").is_file():
        return out
    import pandas as pd
    from PIL import Image
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_predict

    paths = sorted(p.relative_to(digits / "images").as_posix()
                   for p in (digits / "images").rglob("*.png"))
    labels = np.array([int(p.split("/")[0]) for p in paths])
    pixels = np.stack([np.asarray(Image.open(digits / "images" / p), dtype=np.float32).ravel()
                       for p in paths]) / 255.0
    features = PCA(64, random_state=0).fit_transform(pixels).astype(np.float32)
    probs = cross_val_predict(LogisticRegression(max_iter=300), features, labels, cv=5,
                              method="predict_proba").astype(np.float64)
    probs /= probs.sum(axis=1, keepdims=True)
    out.mkdir(parents=True, exist_ok=True)
    np.save(out / "labels.npy", labels)
    np.save(out / "pred_probs.npy", probs)
    np.save(out / "features.npy", features)
    frame = pd.DataFrame(probs, columns=[str(c) for c in range(10)])
    frame.insert(0, "path", paths)
    frame.to_parquet(out / "pred_probs.parquet", index=False)
    emb = pd.DataFrame(features, columns=[f"f{i}" for i in range(features.shape[1])])
    emb.insert(0, "path", paths)
    emb.to_parquet(out / "embeddings.parquet", index=False)
    (out / ".done").write_text("")
    return out


# ------------------------------------------------------------------------- workspaces
DATAQA_ROOT = ROOT  # --dataqa-root: the checkout whose dataqa runs (e.g. main, to compare)


def dataqa_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(DATAQA_ROOT) + (os.pathsep + env["PYTHONPATH"]
                                            if env.get("PYTHONPATH") else "")
    return env


def workspace(name: str, images: Path, preset: str, edit: dict[str, Any]) -> Path:
    """A dataqa project (``dataqa init``) over ``images`` with ``edit`` merged into its
    params (one level of sections)."""
    import yaml

    ws = DATA / "ws" / f"{name}-{DATAQA_ROOT.name}"
    ws.mkdir(parents=True, exist_ok=True)
    link = ws / "images"
    if not link.exists():
        link.symlink_to(images)
    subprocess.run([sys.executable, "-m", "dataqa.cli", "init", "--source", "images",
                    "--preset", preset, "--force"], cwd=ws, env=dataqa_env(), check=True,
                   stdout=subprocess.DEVNULL)
    params = yaml.safe_load((ws / "params.yaml").read_text())
    for section, values in edit.items():
        params.setdefault(section, {}).update(values)
    (ws / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return ws


# --------------------------------------------------------------------------- running
class Peak:
    """Largest RSS of a process and its children together, sampled every 20 ms."""

    def __init__(self, pid: int) -> None:
        import psutil

        self.proc = psutil.Process(pid)
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                total = self.proc.memory_info().rss
                for child in self.proc.children(recursive=True):
                    try:
                        total += child.memory_info().rss
                    except Exception:  # a worker that just exited
                        continue
            except Exception:  # the process itself exited
                return
            self.peak = max(self.peak, total)
            self._stop.wait(0.02)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak


def run(cmd: Sequence[str], *, cwd: Path, env: dict[str, str] | None = None
        ) -> tuple[float, int]:
    """Wall seconds and peak RSS (bytes) of one command; its output is kept only when
    it fails."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(list(cmd), cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    peak = Peak(proc.pid)
    out, _ = proc.communicate()
    seconds = time.perf_counter() - t0
    mem = peak.stop()
    if proc.returncode != 0:
        sys.exit(f"bench_peers: {' '.join(cmd)} (in {cwd}) exited {proc.returncode}:\n"
                 + out.decode(errors="replace")[-3000:])
    return seconds, mem


def run_dataqa(ws: Path, stages: Sequence[str]) -> dict[str, Any]:
    env = dataqa_env()
    total, peak, per_stage = 0.0, 0, {}
    for stage in stages:
        seconds, mem = run([sys.executable, "-m", "dataqa.cli", stage], cwd=ws, env=env)
        total += seconds
        peak = max(peak, mem)
        per_stage[stage] = (seconds, mem)
    return {"seconds": total, "peak": peak, "stages": per_stage}


# ------------------------------------------------------------------------------ main
def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--n", type=int, default=10_000, help="MNIST digits (<= 10,000)")
    ap.add_argument("--photos", type=int, default=400)
    ap.add_argument("--only", default="digits,photos,datalab,datalab3",
                    help="comma-separated: digits, photos, datalab, datalab3")
    ap.add_argument("--out", type=Path, help="also write the results as JSON here")
    ap.add_argument("--dataqa-root", type=Path, default=ROOT,
                    help="checkout whose dataqa package runs (default: this one)")
    args = ap.parse_args(argv)
    global DATAQA_ROOT
    DATAQA_ROOT = args.dataqa_root.resolve()
    only = args.only.split(",")
    peer = str(peer_python())
    # dataqa's modules byte-compiled, as `pip install` leaves an installed package (and
    # the peers' in their venv): with PYTHONDONTWRITEBYTECODE set, as on the dev box, a
    # source checkout would otherwise recompile ~100 modules in every stage (~0.3 s)
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(DATAQA_ROOT / "dataqa")],
                   check=True)
    digits = make_digits(args.n)

    tasks: dict[str, tuple[Any, Any]] = {}
    if "digits" in only:
        ws = workspace("digits", digits / "images", "digits", {"audit": {"checks": IMAGE_CHECKS}})
        tasks["digits"] = (lambda ws=ws: run_dataqa(ws, ["scan", "tensors", "audit"]),
                           lambda: run([peer, "-c", CLEANVISION, str(digits / "images")],
                                       cwd=DATA))
    if "photos" in only:
        photos = make_photos(args.photos)
        ws = workspace("photos", photos / "images", "photos", {"audit": {"checks": IMAGE_CHECKS}})
        tasks["photos"] = (lambda ws=ws: run_dataqa(ws, ["scan", "tensors", "audit"]),
                           lambda: run([peer, "-c", CLEANVISION, str(photos / "images")],
                                       cwd=DATA))
    if "datalab" in only or "datalab3" in only:
        given = make_given(digits)
        ws = workspace("given", digits / "images", "digits", {
            "audit": {"checks": GIVEN_CHECKS},
            "crossval": {"mode": "external", "external": {
                "pred_probs": "predictions/pred_probs.parquet",
                "embeddings": "predictions/embeddings.parquet"}}})
        for name in ("pred_probs.parquet", "embeddings.parquet"):
            target = ws / "predictions" / name
            target.unlink(missing_ok=True)
            target.symlink_to(given / name)
        run_dataqa(ws, ["scan", "tensors"])  # inputs of the audit, untimed
        for key, types in (("datalab", "default"), ("datalab3", "label,outlier,near_duplicate")):
            if key in only:
                tasks[key] = (lambda ws=ws: run_dataqa(ws, ["crossval", "audit"]),
                              lambda types=types: run([peer, "-c", DATALAB, str(given), types],
                                                      cwd=DATA))

    results: dict[str, dict[str, list[Any]]] = {k: {"dataqa": [], "peer": []} for k in tasks}
    load0 = os.getloadavg()
    for r in range(args.rounds):
        for name, (ours, theirs) in tasks.items():
            order = [("dataqa", ours), ("peer", theirs)]
            for side, fn in (order if r % 2 == 0 else order[::-1]):
                out = fn()
                if side == "peer":
                    out = {"seconds": out[0], "peak": out[1]}
                results[name][side].append(out)
                print(f"round {r + 1} {name:<9} {side:<6} {out['seconds']:7.2f} s "
                      f"{out['peak'] / 2**20:7.0f} MB", file=sys.stderr, flush=True)
    load1 = os.getloadavg()

    print(f"\n{os.cpu_count()} cores; load average {load0[0]:.1f} at the start, "
          f"{load1[0]:.1f} at the end; {args.rounds} alternating rounds, medians")
    print(f"{'comparison':<10} {'dataqa s':>9} {'peer s':>8} {'ratio':>6} {'goal':>5} "
          f"{'dataqa MB':>10} {'peer MB':>8}  stages (s / MB)")
    summary: dict[str, Any] = {"cores": os.cpu_count(), "load": [load0[0], load1[0]]}
    for name, sides in results.items():
        ours = statistics.median(x["seconds"] for x in sides["dataqa"])
        theirs = statistics.median(x["seconds"] for x in sides["peer"])
        ratios = [a["seconds"] / b["seconds"] for a, b in zip(sides["dataqa"], sides["peer"],
                                                               strict=True)]
        peak_ours = max(x["peak"] for x in sides["dataqa"]) / 2**20
        peak_theirs = max(x["peak"] for x in sides["peer"]) / 2**20
        stages = {s: (statistics.median(x["stages"][s][0] for x in sides["dataqa"]),
                      max(x["stages"][s][1] for x in sides["dataqa"]) / 2**20)
                  for s in sides["dataqa"][0]["stages"]}
        goal = GOALS.get(name)
        print(f"{name:<10} {ours:9.2f} {theirs:8.2f} {ours / theirs:6.2f} "
              f"{'' if goal is None else f'{goal:.2f}':>5} {peak_ours:10.0f} {peak_theirs:8.0f}  "
              + ", ".join(f"{s} {t:.1f}/{m:.0f}" for s, (t, m) in stages.items())
              + f"  (per-round ratios {', '.join(f'{x:.2f}' for x in ratios)})")
        summary[name] = {"dataqa_s": ours, "peer_s": theirs, "ratio": ours / theirs,
                         "round_ratios": ratios, "goal": goal, "dataqa_peak_mb": peak_ours,
                         "peer_peak_mb": peak_theirs, "stages": stages}
    if "digits" in summary:
        audit_mb = summary["digits"]["stages"]["audit"][1]
        print(f"audit without a model, {args.n} digits: peak {audit_mb:.0f} MB "
              f"(goal <= {AUDIT_PEAK_GOAL_MB} MB)")
    if args.out:
        args.out.write_text(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
