"""Which ``is_label_issue`` rule holds across noise rates: every cleanlab rule (with and
without dataqa's score threshold) on real out-of-fold probabilities, against injected
symmetric and class-pair label noise at 2, 5, 20 and 40 %, and on the clean set.

Probabilities (computed once, cached under ``benchmarks/cache/``, gitignored):

- ``engine``: 5-fold out-of-fold ``pred_probs`` of the MNIST test digits (10,000) from
  dataqa's engine with the default crossval budget, as written by
  ``bench_label_issues.py --save`` (that run trains on its own 5 % symmetric noise);
  given ``--engine FILE.npz`` (keys ``pred_probs``, ``true``). Noise is injected into
  the labels *after* training, so this model is not weakened by the injected noise: it
  measures the rules at a strong, noise-robust model.
- ``pixels``: a weak model retrained on each noisy labelling (so the noise does
  weaken it, as real noise does): 5-fold out-of-fold predictions of a multinomial
  logistic regression on 50 PCA components of the pixels (sklearn), ~90 % accurate.

For each (model, noise kind, rate) the given labels are the original MNIST labels with
``round(rate * n)`` of them moved: ``symmetric`` to one of the other classes uniformly,
``pair`` from class c to (c + 1) mod K (the pair-flip of Han et al. 2018). Precision and
recall are against the injected flips (MNIST's own few wrong labels count as false
positives); on the clean set (no injection) only the flag count is meaningful.

The chosen default maximises the mean F1 over every noisy setting of both models
among the rules whose flag count on the clean set (engine model) is a short review
list (``--max-clean-flags``, default 50 of 10,000); the minimum F1 is printed beside it.

    python benchmarks/bench_operating_point.py --engine benchmarks/cache/mnist5.0.npz
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.bench_label_issues import DATA_CANDIDATES, load_mnist  # noqa: E402
from dataqa.labels import label_issues  # noqa: E402

RATES = (0.02, 0.05, 0.20, 0.40)
RULES: list[tuple[str, float | None]] = [
    (f, t) for f in ("prune_by_class", "prune_by_noise_rate", "both", "confident_learning",
                     "predicted_neq_given", "low_self_confidence", "low_normalized_margin")
    for t in (None, 0.02)]


def inject(labels: np.ndarray, rate: float, kind: str, k: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noisy = labels.copy()
    idx = rng.choice(len(labels), size=round(rate * len(labels)), replace=False)
    shift = rng.integers(1, k, size=len(idx)) if kind == "symmetric" else 1
    noisy[idx] = (labels[idx] + shift) % k
    return noisy


def pixel_oof(images: np.ndarray, labels: np.ndarray, seed: int) -> np.ndarray:
    """5-fold out-of-fold probabilities of logistic regression on 50 PCA components."""
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_predict
    from sklearn.pipeline import make_pipeline

    x = images.reshape(len(images), -1).astype(np.float32) / 255.0
    model = make_pipeline(PCA(50, random_state=seed), LogisticRegression(max_iter=300))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # lbfgs convergence chatter
        return cross_val_predict(model, x, labels, cv=5, method="predict_proba")


def score(flags: np.ndarray, planted: np.ndarray) -> dict[str, float]:
    tp = int((flags & planted).sum())
    p = tp / max(int(flags.sum()), 1)
    r = tp / max(int(planted.sum()), 1) if planted.any() else float("nan")
    f1 = 2 * p * r / (p + r) if planted.any() and p + r > 0 else float("nan")
    return {"flagged": int(flags.sum()), "precision": p, "recall": r, "f1": f1}


def rule_name(rule: tuple[str, float | None]) -> str:
    return rule[0] + ("" if rule[1] is None else f" + score<{rule[1]:g}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--engine", type=Path, default=None, help=".npz with pred_probs, true")
    ap.add_argument("--data", type=Path, default=None)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--no-pixels", action="store_true", help="skip the retrained weak model")
    ap.add_argument("--max-clean-flags", type=int, default=50)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    folder = args.data or next((p for p in DATA_CANDIDATES if p.is_dir()), None)
    if folder is None:
        print("MNIST test set not found; skipping")
        return 1
    images, true = load_mnist(folder)
    k = 10
    settings = [("clean", 0.0)] + [(kind, r) for kind in ("symmetric", "pair") for r in RATES]
    models: dict[str, Any] = {}
    if args.engine:
        cached = np.load(args.engine)
        if not np.array_equal(cached["true"], true):
            raise SystemExit(f"{args.engine}: 'true' labels differ from the MNIST test set")
        probs = cached["pred_probs"].astype(np.float64)
        acc = float((probs.argmax(1) == true).mean())
        models["engine"] = lambda labels, p=probs: p
        print(f"engine: {args.engine} (accuracy vs original labels {acc:.4f})")
    if not args.no_pixels:
        cache = ROOT / "benchmarks/cache"
        cache.mkdir(parents=True, exist_ok=True)

        def pixels(labels: np.ndarray, tag: str) -> np.ndarray:
            path = cache / f"pixels_oof_{tag}.npy"
            if not path.is_file():
                t0 = time.perf_counter()
                np.save(path, pixel_oof(images, labels, args.seed))
                print(f"pixels: {tag} in {time.perf_counter() - t0:.0f} s", flush=True)
            return np.load(path)
        models["pixels"] = pixels
    rows = []
    for kind, rate in settings:
        given = true if kind == "clean" else inject(true, rate, kind, k, args.seed)
        planted = given != true
        tag = f"{kind}_{rate:g}_s{args.seed}"
        for model, get in models.items():
            probs = get(given) if model == "engine" else get(given, tag)
            probs = probs / probs.sum(axis=1, keepdims=True)
            acc = float((probs.argmax(1) == true).mean())
            for rule in RULES:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    frame = label_issues(given, probs, filter_by=rule[0],  # type: ignore[arg-type]
                                         threshold=rule[1])
                flags = frame["is_label_issue"].to_numpy(bool)
                rows.append({"model": model, "kind": kind, "rate": rate, "accuracy": acc,
                             "rule": rule_name(rule), **score(flags, planted)})
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    noisy = [r for r in rows if r["kind"] != "clean"]
    names = [rule_name(r) for r in RULES]
    print("\nF1 per setting (model/kind/rate), flag count on the clean set:")
    cols = sorted({(r["model"], r["kind"], r["rate"]) for r in noisy})
    print("| rule | " + " | ".join(f"{m[:3]} {k[:3]} {r:.0%}" for m, k, r in cols)
          + " | mean F1 | min F1 | clean flags (" + ", ".join(models) + ") |")
    print("|---" * (len(cols) + 4) + "|")
    summary = []
    for name in names:
        f1 = {(r["model"], r["kind"], r["rate"]): r["f1"] for r in noisy if r["rule"] == name}
        clean = {r["model"]: r["flagged"] for r in rows
                 if r["kind"] == "clean" and r["rule"] == name}
        vals = [f1[c] for c in cols]
        summary.append((name, float(np.mean(vals)), float(np.min(vals)), clean))
        print(f"| {name} | " + " | ".join(f"{v:.3f}" for v in vals)
              + f" | {np.mean(vals):.3f} | {np.min(vals):.3f} | "
              + ", ".join(str(clean[m]) for m in models) + " |")
    print("\nPrecision / recall / flags per setting:")
    print("| model | kind | rate | acc | rule | flagged | P | R | F1 |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | {r['kind']} | {r['rate']:.0%} | {r['accuracy']:.4f} | "
              f"{r['rule']} | {r['flagged']} | {r['precision']:.3f} | {r['recall']:.3f} | "
              f"{r['f1']:.3f} |")
    ref = "engine" if "engine" in models else next(iter(models))
    ok = [s for s in summary if s[3][ref] <= args.max_clean_flags]
    best = max(ok or summary, key=lambda s: s[1])
    print(f"\nchosen (best mean F1 with <= {args.max_clean_flags} flags on the clean set, "
          f"{ref} model): {best[0]}  mean F1 {best[1]:.3f}, min F1 {best[2]:.3f}, "
          f"clean flags {best[3]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
