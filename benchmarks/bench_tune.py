"""Tuning that pays: the default search (``tune.budget_seconds`` 90) on several datasets,
the tuned configuration against the known-good start at equal budget, with times; and
(``--mnist10k``) the GPU goal on the 10,000 MNIST test digits with the engine's
efficiency inside the trials.

    python benchmarks/bench_tune.py                        # tuned vs start, every dataset
    python benchmarks/bench_tune.py --datasets sample photos --budget 90
    python benchmarks/bench_tune.py --mnist10k             # CUDA: <= 90 s, best >= 99.4 %
    python benchmarks/bench_tune.py --mnist10k --quick     # CPU smoke run of that

Datasets (built here, no download): ``sample`` (the bundled data/sample, 32 x 32 grey),
``mnist3k`` (3,000 other MNIST test digits, padded to 32 x 32), ``digits8x8``
(scikit-learn's 1,797 8 x 8 digits upscaled x4), ``photos`` (600 crops of the 7 colour
photos shipped with scikit-image / scikit-learn, two classes by source photo, 32 x 32
RGB, from scratch). Each gets the ``subsample`` stage's subsets (a stratified 20 %
validation split, ``p100`` the rest, ``p10`` nested in it) and the default params; the
cleaning comparison is off (nothing was filtered). Per dataset: wall time, trials, the
final epochs, the start and the best tuned configuration over the comparison's seeds
(mean ± std), their difference against the seed spread, which one best_params.yaml
holds, and "no worse" (exit 1 if any dataset would hand back a configuration worse than
its start).

MNIST test from ``shared/datasets/mnist-test`` (IDX gz), ``../shared/...`` or
``.whl/mnist-test``. ``--mnist10k``: the images stay 28x28x1; efficiency inside trials =
sum over trials of (training images / bare-step images/s of that trial's model and
batch) / sum of the trials' training seconds (the engine's ``train_images_per_s``:
validation excluded).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_engine import bare_step_rate  # noqa: E402
from bench_label_issues import DATA_CANDIDATES, load_mnist  # noqa: E402

from dataqa.engine import device as dev  # noqa: E402
from dataqa.params import Params, validate  # noqa: E402
from dataqa.tune.data import assemble  # noqa: E402
from dataqa.tune.search import search  # noqa: E402
from dataqa.tune.space import plan_rounds  # noqa: E402
from dataqa.tune.start import train_config  # noqa: E402

QUICK_ROUNDS = {"lr": {"trials": 3, "epochs": 2}, "joint": {"trials": 4, "epochs": 2},
                "fine": {"trials": 3, "epochs": 3, "top_k": 2}}


def subsets(labels: np.ndarray, *, seed: int = 0) -> dict[str, pd.DataFrame]:
    """Stratified ``val`` (20%), ``p100`` (the rest) and ``p10`` (10% of it, nested)."""
    rng = np.random.default_rng(seed)
    val, p100, p10 = [], [], []
    for k in np.unique(labels):
        rows = rng.permutation(np.flatnonzero(labels == k))
        n_val = int(round(0.2 * len(rows)))
        train = rows[n_val:]
        val += rows[:n_val].tolist()
        p100 += train.tolist()
        p10 += train[:max(int(round(0.1 * len(train))), 2)].tolist()

    def frame(ids: list[int]) -> pd.DataFrame:
        ids_a = np.sort(np.array(ids))
        return pd.DataFrame({"row": ids_a, "augmented": False,
                             "label": labels[ids_a].astype(str)})

    return {"val": frame(val), "p100": frame(p100), "p10": frame(p10)}


def efficiency(trials: list[dict[str, Any]], data: Any, params: Params,
               max_configs: int) -> dict[str, Any]:
    """Bare-step rates for the configurations that took most training time (at most
    ``max_configs``; covering the bulk of it) and the time-weighted efficiency."""
    rows = []
    for t in trials:
        if not t["history"] or not t.get("images_per_s"):
            continue
        c = t["config"]
        b = t["history"][0]["batch_size"]
        seen = (t["n_train"] // b) * b * len(t["history"])
        key = (str(c["arch"]), int(c["width"]), int(c["depth"]), int(b), c["optimizer"])
        rows.append((key, seen, seen / t["images_per_s"], c))
    if not rows:
        return {"efficiency": None}
    by_key: dict[tuple[Any, ...], list[float]] = {}
    for key, seen, secs, _ in rows:
        acc = by_key.setdefault(key, [0.0, 0.0])
        acc[0] += seen
        acc[1] += secs
    ranked = sorted(by_key, key=lambda k: -by_key[k][1])[:max_configs]
    bare = {}
    for key in ranked:
        cfg = next(c for k, _, _, c in rows if k == key)
        tc = train_config(dict(cfg, batch_size=key[3]), epochs=1, seed=0,
                          stopping=params.tune.stopping, engine=params.engine)
        bare[key] = bare_step_rate(data, tc, steps=max(30, 2000 // key[3]))
    ideal = sum(by_key[k][0] / bare[k] for k in ranked)
    actual = sum(by_key[k][1] for k in ranked)
    train_s = sum(v[1] for v in by_key.values())
    covered = actual / train_s
    return {"efficiency": ideal / actual, "train_seconds_covered": covered,
            "train_seconds_sum": train_s,
            "configs": [{"arch": k[0], "width": k[1], "depth": k[2], "batch_size": k[3],
                         "optimizer": k[4],
                         "train_seconds": by_key[k][1],
                         "fit_images_per_s": by_key[k][0] / by_key[k][1],
                         "bare_images_per_s": bare[k]} for k in ranked]}


DATASETS = ("sample", "mnist3k", "digits8x8", "photos")


def sample_images(n: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The bundled sample (data/sample/<class>/*): grey, letterboxed to 32 x 32 as the
    tensors stage does; undecodable files skipped."""
    from PIL import Image, ImageOps

    xs, ys = [], []
    folders = sorted(p for p in (ROOT / "data/sample").iterdir() if p.is_dir())
    for k, folder in enumerate(folders):
        for f in sorted(folder.rglob("*")):
            try:
                with Image.open(f) as im:
                    xs.append(np.asarray(ImageOps.pad(im.convert("L"), (32, 32))))
                    ys.append(k)
            except (OSError, ValueError, Image.DecompressionBombError):
                continue
    return np.stack(xs)[..., None], np.array(ys)


def mnist_images(n: int, *, offset: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` MNIST-test digits from position ``offset`` of a fixed permutation (the
    bundled sample is not among them), padded to 32 x 32."""
    folder = next((p for p in DATA_CANDIDATES if p.is_dir()), None)
    if folder is None:
        raise SystemExit("bench_tune: MNIST test set not found in "
                         + ", ".join(map(str, DATA_CANDIDATES)))
    images, labels = load_mnist(folder)
    pick = np.random.default_rng(1).permutation(len(images))[offset:offset + n]
    return np.pad(images[pick], ((0, 0), (2, 2), (2, 2)))[..., None], labels[pick]


def digits8_images() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 1,797 8 x 8 digits (16 grey levels), upscaled to 32 x 32."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.images * (255.0 / 16.0)).astype(np.uint8)
    x = np.kron(x, np.ones((4, 4), dtype=np.uint8))  # nearest-neighbour x4
    return x[..., None], d.target.astype(np.int64)


def photo_images(n: int = 600, size: int = 32, seed: int = 0
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Real photos from scratch: random crops (20-45 % of the side) of the 7 colour
    photos shipped with scikit-image and scikit-learn, two classes by source photo as
    in tests/photoset.py (indoor: astronaut, coffee, rocket, china; outdoor: chelsea,
    flower, immunohistochemistry), ``size`` x ``size`` RGB."""
    from PIL import Image
    from skimage import data as sk
    from sklearn.datasets import load_sample_images

    china, flower = load_sample_images().images
    groups = [[sk.astronaut(), sk.coffee(), sk.rocket(), china],
              [sk.chelsea(), flower, sk.immunohistochemistry()]]
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for i in range(n):
        k = i % 2
        photo = groups[k][rng.integers(len(groups[k]))]
        h, w = photo.shape[:2]
        side = int(min(h, w) * rng.uniform(0.2, 0.45))
        r, c = rng.integers(0, h - side), rng.integers(0, w - side)
        crop = Image.fromarray(np.ascontiguousarray(photo[r:r + side, c:c + side, :3]))
        xs.append(np.asarray(crop.resize((size, size), Image.BILINEAR)))
        ys.append(k)
    return np.stack(xs), np.array(ys)


def load_dataset(name: str) -> tuple[np.ndarray, np.ndarray]:
    if name == "sample":
        return sample_images()
    if name == "mnist3k":
        return mnist_images(3000, offset=5000)
    if name == "digits8x8":
        return digits8_images()
    if name == "photos":
        return photo_images()
    raise SystemExit(f"bench_tune: unknown dataset {name!r}; known: {', '.join(DATASETS)}")


def tuned_vs_start(name: str, *, device: torch.device, budget: float,
                   quiet: bool) -> dict[str, Any]:
    """The default search (params defaults, ``tune.budget_seconds`` = ``budget``) on one
    dataset: subsets as the subsample stage makes them (val 20 %, p100, p10), no
    cleaning comparison (nothing was filtered). Returns the row of the table."""
    images, labels = load_dataset(name)
    size = images.shape[1]
    with tempfile.TemporaryDirectory(prefix="bench-tune-") as tmp:
        params = validate(Params, {
            "tune": {"budget_seconds": budget, "cleaning": {"enabled": False}},
            "engine": {"image_size": size, "device": device.type},
            "augment": {"hflip": name == "photos"}}, where="bench params").replace(
                root=Path(tmp))
        td = assemble(tensors=images, aug_tensors=None, frames=subsets(labels), device=device)
        t0 = time.perf_counter()
        summary = search(td, params, plans=plan_rounds(params.tune), device=device,
                         progress=(lambda s: None) if quiet else
                         (lambda s: print(f"  [{name}] {s}", flush=True)))
        seconds = time.perf_counter() - t0
    assert summary is not None
    d, bl = summary["decision"], summary.get("baseline") or {}
    start_arm, tuned_arm = bl.get("a") or {}, bl.get("b") or {}
    return {"dataset": name, "images": int(len(labels)), "shape": list(images.shape[1:]),
            "classes": int(len(np.unique(labels))), "seconds": seconds, "budget": budget,
            "trials": len(summary["trials"]), "final_epochs": summary["budget"]["final_epochs"],
            "best_trial": (summary["best"] or {}).get("key"),
            "best_is_start": bool(bl.get("same")),
            "start_mean": start_arm.get("mean"), "start_std": start_arm.get("std"),
            "tuned_mean": tuned_arm.get("mean"), "tuned_std": tuned_arm.get("std"),
            "difference": bl.get("difference"), "spread": bl.get("spread"),
            "choice": d["choice"], "headline": summary["headline"],
            # never worse: what best_params.yaml holds against the start, at equal budget
            "no_worse": d["choice"] == "start" or bool(bl.get("better"))}


def compare_main(args: argparse.Namespace, device: torch.device) -> int:
    rows = []
    for name in args.datasets:
        print(f"== {name}: default search, budget {args.budget:.0f} s", flush=True)
        rows.append(tuned_vs_start(name, device=device, budget=args.budget, quiet=args.quiet))
        r = rows[-1]
        print(f"   {r['headline']}", flush=True)
    print(f"\ndevice {dev.describe(device)} (torch {torch.__version__}), "
          f"{torch.get_num_threads()} threads")
    print(f"{'dataset':10s} {'images':>7s} {'shape':>10s} {'time s':>7s} {'trials':>6s} "
          f"{'epochs':>6s} {'start':>15s} {'tuned':>15s} {'diff':>7s} {'spread':>6s} "
          f"{'use':>6s} no-worse")

    def ms(m: float | None, s: float | None) -> str:
        return "-" if m is None else f"{m:.4f}±{s:.4f}"

    for r in rows:
        shape = "x".join(map(str, r["shape"]))
        diff = "-" if r["difference"] is None else f"{r['difference']:+.4f}"
        spread = "-" if r["spread"] is None else f"{r['spread']:.4f}"
        tuned = "=start" if r["best_is_start"] else ms(r["tuned_mean"], r["tuned_std"])
        print(f"{r['dataset']:10s} {r['images']:7d} {shape:>10s} {r['seconds']:7.1f} "
              f"{r['trials']:6d} {r['final_epochs']:6d} {ms(r['start_mean'], r['start_std']):>15s} "
              f"{tuned:>15s} {diff:>7s} {spread:>6s} {r['choice']:>6s} "
              f"{'yes' if r['no_worse'] else 'NO'}")
    if args.json:
        args.json.write_text(json.dumps({"device": dev.describe(device), "rows": rows},
                                        indent=2) + "\n")
    return 0 if all(r["no_worse"] for r in rows) else 1


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    ap.add_argument("--mnist10k", action="store_true",
                    help="the GPU goal: the default search on the 10,000 MNIST test digits, "
                         "timed, with the engine's efficiency inside the trials")
    ap.add_argument("--datasets", nargs="+", default=list(DATASETS),
                    help=f"tuned vs start per dataset (default all: {', '.join(DATASETS)})")
    ap.add_argument("--budget", type=float, default=90.0, help="tune.budget_seconds")
    ap.add_argument("--quiet", action="store_true", help="no per-trial lines")
    ap.add_argument("--quick", action="store_true",
                    help="with --mnist10k: CPU smoke run, 2,000 images, 3+4+3 short trials")
    ap.add_argument("--n", type=int, default=None, help="images (default 10000; quick 2000)")
    ap.add_argument("--threads", type=int, default=None, help="CPU threads (torch)")
    ap.add_argument("--max-configs", type=int, default=6,
                    help="bare-step measurements for the efficiency (most-used configs)")
    ap.add_argument("--no-augment", action="store_true",
                    help="train without the augmentation policy (tune.augment: false)")
    ap.add_argument("--no-baseline", action="store_true",
                    help="skip the crossval-configuration baseline (tune.baseline.enabled)")
    ap.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if not args.mnist10k:
        return compare_main(args, dev.pick_device(args.device))
    folder = next((p for p in DATA_CANDIDATES if p.is_dir()), None)
    if folder is None:
        print("bench_tune: MNIST test set not found in " + ", ".join(map(str, DATA_CANDIDATES)))
        return 2
    images, labels = load_mnist(folder)
    n = args.n or (2000 if args.quick else 10_000)
    pick = np.random.default_rng(0).permutation(len(images))[:n]
    images, labels = images[pick][..., None], labels[pick]
    device = dev.pick_device(args.device)
    tune_raw: dict[str, Any] = {"cleaning": {"enabled": False},
                                "augment": not args.no_augment,
                                "budget_seconds": args.budget,
                                "baseline": {"enabled": not args.no_baseline}}
    if args.quick:
        tune_raw["rounds"] = QUICK_ROUNDS
    with tempfile.TemporaryDirectory(prefix="bench-tune-") as tmp:
        params = validate(Params, {"tune": tune_raw, "engine": {
            "image_size": 28, "device": args.device}}, where="bench params").replace(
                root=Path(tmp))
        plans = plan_rounds(params.tune)
        t0 = time.perf_counter()
        td = assemble(tensors=images, aug_tensors=None, frames=subsets(labels), device=device)
        dev.synchronize(device)
        upload_s = time.perf_counter() - t0
        lines: list[str] = []
        t0 = time.perf_counter()
        summary = search(td, params, plans=plans, device=device,
                         progress=lambda s: (lines.append(s), print(s, flush=True)))
        dev.synchronize(device)
        search_s = time.perf_counter() - t0
        assert summary is not None
        trials = summary["trials"]
        n_train = {r["name"]: r["n_train"] for r in summary["rounds"]}
        sized = {r["name"]: (r["subset"], r["trials_planned"], r["epochs"])
                 for r in summary["rounds"]}
        plans = [dataclasses.replace(p, subset=sized[p.name][0], trials=sized[p.name][1],
                                     epochs=sized[p.name][2]) if p.name in sized else p
                 for p in plans]
        baseline = summary.get("baseline") or {}
        baseline_s = float(baseline.get("seconds") or 0.0)
        for t in trials:
            t["n_train"] = n_train[t["round"]]
        eff = efficiency(trials, td.data, params, args.max_configs)
    states = Counter(t["state"] for t in trials)
    trial_s = sum(t["seconds"] or 0.0 for t in trials)
    out = {
        "device": dev.describe(device), "torch": torch.__version__,
        "images": [n, 28, 28, 1], "rounds": [dataclasses.asdict(p) for p in plans],
        "trials": len(trials), "states": dict(states),
        "statuses": dict(Counter(t["status"] for t in trials)),
        "search_seconds": search_s, "upload_seconds": upload_s,
        "baseline_seconds": baseline_s, "search_seconds_without_baseline": search_s - baseline_s,
        "baseline_verdict": baseline.get("verdict"),
        "decision": summary["headline"],
        "trial_seconds_sum": trial_s,
        "best_val_acc": None if summary["best"] is None else summary["best"]["value"],
        "best_trial": None if summary["best"] is None else summary["best"]["key"],
        "fidelity_rho": (summary.get("fidelity") or {}).get("rho"),
        **eff,
    }
    print(f"device            {out['device']}  (torch {torch.__version__})")
    print(f"data              {n} x 28x28x1; rounds " + ", ".join(
        f"{p.name} {p.trials}x{p.epochs}ep on {p.subset} ({n_train.get(p.name, 0)} train)"
        for p in plans))
    print(f"trials            {len(trials)}  states {dict(states)}  statuses {out['statuses']}")
    print(f"search wall time  {search_s:8.1f} s   (goal <= 90 s for the 32-trial default on "
          "one H100/H200)")
    print(f"  in trials       {trial_s:8.1f} s   (the rest: storage, sampling, round setup)")
    if baseline_s:
        print(f"  baseline        {baseline_s:8.1f} s   (crossval config vs best, "
              f"{params.tune.baseline.seeds} seeds each; search without it "
              f"{search_s - baseline_s:.1f} s)")
        print(f"  verdict         {baseline.get('verdict')}")
    if eff.get("train_seconds_sum"):
        print(f"  training steps  {eff['train_seconds_sum']:8.1f} s   (the rest of the trials: "
              "validation every epoch, model set-up)")
    if eff.get("efficiency") is not None:
        print(f"engine efficiency {eff['efficiency']:8.3f}     inside trials (goal >= 0.85), "
              f"{eff['train_seconds_covered']:.0%} of training time measured")
        for c in eff["configs"]:
            print(f"    {c['arch']} width {c['width']:3d} depth {c['depth']} "
                  f"batch {c['batch_size']:4d} "
                  f"{c['optimizer']:5s}: fit {c['fit_images_per_s']:9.0f} img/s, bare "
                  f"{c['bare_images_per_s']:9.0f} img/s, {c['train_seconds']:6.1f} s")
    print(f"best              {out['best_trial']} val_acc {out['best_val_acc']}")
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
