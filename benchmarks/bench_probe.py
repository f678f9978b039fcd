"""Linear probe cost (``crossval.mode: linear_probe``): embeddings/s of a frozen
torchvision backbone, and seconds of the K-fold logistic regression on 10k embeddings,
against the from-scratch crossval pass measured in the same run (images/s of one
training epoch of the CPU/GPU budget's net, extrapolated to its folds x epochs).

    python benchmarks/bench_probe.py                    # CUDA when present
    python benchmarks/bench_probe.py --device cpu --n 10000 --size 64

Images: the real MNIST test digits (../shared/datasets/mnist-test) letterboxed to
``--size`` and repeated to RGB when present, else synthetic uint8 (a forward pass does
not depend on pixel values). Weights: random, ImageNet-shaped (no download here);
speed does not depend on weight values, but the probe accuracy printed with random
weights says nothing about a pretrained backbone (it is printed, labelled as such).
"""

from __future__ import annotations

import argparse
import gzip
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dataqa.engine import device as dev  # noqa: E402
from dataqa.engine import probe  # noqa: E402
from dataqa.engine.crossval import DEVICE_BUDGETS  # noqa: E402
from dataqa.engine.data import DeviceData  # noqa: E402
from dataqa.engine.fit import TrainConfig, fit  # noqa: E402

MNIST = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "mnist-test"


def load_images(n: int, size: int) -> tuple[np.ndarray, np.ndarray, str]:
    path = MNIST / "t10k-images-idx3-ubyte.gz"
    if path.is_file():
        from PIL import Image

        x = np.frombuffer(gzip.decompress(path.read_bytes()), np.uint8, offset=16)
        x = x.reshape(-1, 28, 28)
        y = np.frombuffer(gzip.decompress((MNIST / "t10k-labels-idx1-ubyte.gz")
                                          .read_bytes()), np.uint8, offset=8).astype(np.int64)
        reps = -(-n // len(x))
        x, y = np.tile(x, (reps, 1, 1))[:n], np.tile(y, reps)[:n]
        out = np.stack([np.asarray(Image.fromarray(a).resize((size, size))) for a in x])
        return np.repeat(out[..., None], 3, axis=3), y, "MNIST test digits"
    rng = np.random.default_rng(0)
    return (rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8),
            rng.integers(0, 10, n), "synthetic")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="auto")
    ap.add_argument("--arch", default="resnet18")
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    device = dev.pick_device(args.device, cpu_threads=args.threads)
    images, labels, what = load_images(args.n, args.size)
    print(f"{args.n} {what} at {args.size} px, {args.arch} (random weights) on "
          f"{dev.describe(device)}")

    # a random ImageNet-shaped state_dict under a temporary TORCH_HOME: the real path
    import os
    import tempfile

    import torchvision

    from dataqa.engine import backbones
    from dataqa.engine.backbones import cache_file, weights_entry
    from dataqa.engine.checkpoint import sha256_of
    home = tempfile.mkdtemp()
    os.environ["TORCH_HOME"] = home
    target = cache_file(weights_entry(args.arch, "DEFAULT"))
    target.parent.mkdir(parents=True)
    torch.save(torchvision.models.get_model(args.arch, weights=None).state_dict(), target)
    # random weights cannot carry the published SHA-256 prefix of the file's name
    digest = sha256_of(target)[:8]
    backbones.published_hash = lambda entry: digest  # type: ignore[assignment]

    rows = np.arange(args.n)
    emb, info = probe.embed(images, rows, arch=args.arch, weights="DEFAULT", device=device,
                            batch_size=args.batch)
    t0 = time.perf_counter()
    probs, pinfo = probe.probe_predict(emb, labels, folds=args.folds)
    probe_s = time.perf_counter() - t0
    acc = float((probs.argmax(1) == labels).mean())
    print(f"embed: {info['embed_images_per_s']:.0f} images/s ({info['embed_seconds']:.1f} s, "
          f"{emb.shape[1]}-d)")
    print(f"{args.folds}-fold logistic regression on {emb.shape}: {probe_s:.1f} s "
          f"(out-of-fold accuracy {acc:.3f} with RANDOM backbone weights)")
    total = info["embed_seconds"] + probe_s

    # baseline: one epoch of the from-scratch crossval budget's net, same images
    budget = DEVICE_BUDGETS["cuda" if device.type == "cuda" else "cpu"]
    data = DeviceData.from_arrays(images, labels, device=device, num_classes=10)
    cfg = TrainConfig(epochs=1, batch_size=budget["batch_size"], lr=budget["lr"],
                      width=budget["width"], depth=budget["depth"], crop_padding=2)
    train_n = args.n * (args.folds - 1) // args.folds
    result = fit(data, np.arange(train_n), None, cfg)
    scratch = args.folds * budget["epochs"] * train_n / result.train_images_per_s
    print(f"from-scratch crossval (small_resnet w{budget['width']} d{budget['depth']}, "
          f"{budget['epochs']} epochs x {args.folds} folds at {result.train_images_per_s:.0f} "
          f"train images/s): ~{scratch:.0f} s")
    print(f"linear probe total {total:.1f} s = {total / scratch:.2f} x the from-scratch pass")


if __name__ == "__main__":
    main()
