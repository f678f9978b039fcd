"""The default tuning search, timed: 3 rounds (lr, joint, fine) with the default params on
a 10,000-image subset of 28x28 images (the MNIST test set), and the engine's efficiency
inside the trials.

Goals (one H100/H200): the default 32-trial search finishes in <= 90 s, and inside the
trials the trainer reaches >= 0.85 of the bare training step's images/s (the step of
``bench_engine.py``: forward + backward + optimizer step on resident, normalised
batches, same model and batch size).

    python benchmarks/bench_tune.py              # CUDA when present, the default budgets
    python benchmarks/bench_tune.py --quick      # CPU smoke run: 2,000 images, 3+4+3 trials

Data: MNIST test from ``shared/datasets/mnist-test`` (IDX gz), ``../shared/...`` or
``.whl/mnist-test``; the images stay 28x28x1 (tensors of ``engine.image_size`` 28). The
subsets mimic the ``subsample`` stage: a stratified 20% validation split and the
training subsets ``p10`` (10%) and ``p100`` (the rest), so the default rounds apply
unchanged. Efficiency inside trials = sum over trials of (training images / bare-step
images/s of that trial's model and batch) / sum of the trials' training seconds (the
engine's ``train_images_per_s``: validation excluded; the time validation and set-up
take is printed beside it).
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
from dataqa.params import Params, build  # noqa: E402
from dataqa.steps.tune import search  # noqa: E402
from dataqa.tune.data import assemble  # noqa: E402
from dataqa.tune.space import plan_rounds  # noqa: E402
from dataqa.tune.trial import train_config  # noqa: E402

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
        key = (int(c["width"]), int(c["depth"]), int(b), c["optimizer"])
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
        tc = train_config(dict(cfg, batch_size=key[2]), epochs=1, seed=0,
                          stopping=params.tune.stopping, engine=params.engine)
        bare[key] = bare_step_rate(data, tc, steps=max(30, 2000 // key[2]))
    ideal = sum(by_key[k][0] / bare[k] for k in ranked)
    actual = sum(by_key[k][1] for k in ranked)
    train_s = sum(v[1] for v in by_key.values())
    covered = actual / train_s
    return {"efficiency": ideal / actual, "train_seconds_covered": covered,
            "train_seconds_sum": train_s,
            "configs": [{"width": k[0], "depth": k[1], "batch_size": k[2], "optimizer": k[3],
                         "train_seconds": by_key[k][1],
                         "fit_images_per_s": by_key[k][0] / by_key[k][1],
                         "bare_images_per_s": bare[k]} for k in ranked]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    ap.add_argument("--quick", action="store_true",
                    help="CPU smoke run: 2,000 images and 3+4+3 short trials")
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
                                "baseline": {"enabled": not args.no_baseline}}
    if args.quick:
        tune_raw["rounds"] = QUICK_ROUNDS
    with tempfile.TemporaryDirectory(prefix="bench-tune-") as tmp:
        params = dataclasses.replace(
            build(Params, {"tune": tune_raw, "engine": {"image_size": 28,
                                                        "device": args.device}},
                  where="bench params"), root=Path(tmp))
        plans = plan_rounds(params.tune, device.type)
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
        sized = {r["name"]: r["subset"] for r in summary["rounds"]}
        plans = [dataclasses.replace(p, subset=sized.get(p.name, p.subset)) for p in plans]
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
            print(f"    width {c['width']:3d} depth {c['depth']} batch {c['batch_size']:4d} "
                  f"{c['optimizer']:5s}: fit {c['fit_images_per_s']:9.0f} img/s, bare "
                  f"{c['bare_images_per_s']:9.0f} img/s, {c['train_seconds']:6.1f} s")
    print(f"best              {out['best_trial']} val_acc {out['best_val_acc']}")
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
