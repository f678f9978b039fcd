"""Trainer efficiency: images/s achieved inside ``fit`` ÷ images/s of the bare training
step (forward + backward + optimizer step) on a batch already resident and normalised
on the device, same model, same batch size, same process.

The difference is everything ``fit`` adds: shuffling, gathering batches by index,
uint8 -> float normalisation, augmentation, the schedule, loss/accuracy bookkeeping
and the once-per-epoch synchronisation. Goal: >= 0.9 on one H100/H200.

    python benchmarks/bench_engine.py                 # CUDA when present
    python benchmarks/bench_engine.py --device cpu --n 2048 --epochs 2

Data are synthetic uint8 images: the cost of a step does not depend on pixel values.
Timings: wall clock after ``cuda.synchronize``, median of ``--repeats`` runs.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dataqa.engine import device as dev  # noqa: E402
from dataqa.engine.crossval import DEVICE_BUDGETS  # noqa: E402
from dataqa.engine.data import DeviceData  # noqa: E402
from dataqa.engine.fit import TrainConfig, fit, make_optimizer, new_model  # noqa: E402


def bare_step_rate(data: DeviceData, config: TrainConfig, steps: int) -> float:
    """Images/s of forward+backward+step on fixed, pre-normalised device batches."""
    device = data.device
    torch.manual_seed(config.seed)
    model = new_model(data, config)
    if config.compile and device.type == "cuda":
        model = torch.compile(model)  # type: ignore[assignment]
    opt = make_optimizer(model, config, device)
    b = config.batch_size
    batches = []
    for i in range(4):  # rotate a few batches so caches do not flatter the step
        idx = torch.arange(i * b, (i + 1) * b, device=device) % data.n
        batches.append((data.batch(idx).contiguous(memory_format=dev.memory_format(device)),
                        data.labels[idx]))

    def step(x: torch.Tensor, y: torch.Tensor) -> None:
        with dev.autocast(device):
            logits = model(x)
        loss = F.cross_entropy(logits.float(), y, label_smoothing=config.label_smoothing)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for i in range(10):  # warm-up: cudnn autotuning, lazy init, compile
        step(*batches[i % 4])
    dev.synchronize(device)
    t0 = time.perf_counter()
    for i in range(steps):
        step(*batches[i % 4])
    dev.synchronize(device)
    return steps * b / (time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    ap.add_argument("--n", type=int, default=8000, help="training images (one 5-fold fold of 10k)")
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--channels", type=int, default=1)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--batch-size", type=int, default=None, help="default: crossval budget")
    ap.add_argument("--width", type=int, default=None)
    ap.add_argument("--depth", type=int, default=None)
    ap.add_argument("--crop-padding", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--stem-pool", type=int, choices=[0, 1], default=None)
    ap.add_argument("--cudnn-benchmark", type=int, choices=[0, 1], default=1)
    ap.add_argument("--compile", action="store_true", help="torch.compile the model (CUDA)")
    ap.add_argument("--threads", type=int, default=None, help="CPU threads (torch)")
    ap.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    dev.CUDNN_BENCHMARK = bool(args.cudnn_benchmark)
    device = dev.pick_device(args.device)
    budget = DEVICE_BUDGETS["cuda" if device.type == "cuda" else "cpu"]
    config = TrainConfig(epochs=args.epochs,
                         batch_size=args.batch_size or budget["batch_size"],
                         lr=budget["lr"], width=args.width or budget["width"] or 32,
                         depth=args.depth or budget["depth"] or 2,
                         crop_padding=args.crop_padding, compile=args.compile,
                         stem_pool=None if args.stem_pool is None else bool(args.stem_pool),
                         stall_epochs=10**6)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (args.n, args.size, args.size, args.channels), np.uint8)
    labels = rng.integers(0, args.classes, args.n)
    data = DeviceData.from_arrays(images, labels, device=device, num_classes=args.classes)
    train_idx = np.arange(args.n)
    steps_per_epoch = args.n // config.batch_size

    t0 = time.perf_counter()
    cold = fit(data, train_idx, None, dataclasses.replace(config, epochs=1))
    cold_s = time.perf_counter() - t0
    fit_rates, bare_rates, val_rates = [], [], []
    for r in range(args.repeats):
        res = fit(data, train_idx, None, dataclasses.replace(config, seed=r))
        fit_rates.append(res.train_images_per_s)
        bare_rates.append(bare_step_rate(data, config, steps=steps_per_epoch * args.epochs))
    # secondary: with a validation pass of n/4 images after every epoch, as in tuning
    val_idx = np.arange(args.n // 4)
    res = fit(data, train_idx, val_idx, config)
    val_rates.append(steps_per_epoch * config.batch_size * len(res.history)
                     / sum(h.seconds for h in res.history))
    fit_rate = statistics.median(fit_rates)
    bare_rate = statistics.median(bare_rates)
    # runs alternate fit / bare step, so clock and thermal drift hit both alike: the
    # median of the paired ratios is the efficiency
    efficiency = statistics.median(f / b for f, b in zip(fit_rates, bare_rates))
    out = {
        "device": dev.describe(device), "torch": torch.__version__,
        "images": [args.n, args.size, args.size, args.channels],
        "batch_size": config.batch_size, "arch": config.arch, "width": config.width,
        "depth": config.depth, "epochs": args.epochs, "crop_padding": config.crop_padding,
        "compile": config.compile,
        "fit_images_per_s": fit_rate, "bare_step_images_per_s": bare_rate,
        "efficiency": efficiency,
        "fit_runs": fit_rates, "bare_runs": bare_rates,
        "efficiency_with_val_every_epoch": val_rates[0] / bare_rate,
        "first_fit_1_epoch_seconds": cold_s, "first_fit_images_per_s": cold.train_images_per_s,
    }
    print(f"device            {out['device']}  (torch {torch.__version__})")
    print(f"model             {config.arch} width {config.width} depth {config.depth}, "
          f"batch {config.batch_size}, {args.n} x {args.size}x{args.size}x{args.channels}, "
          f"crop_padding {config.crop_padding}, compile {config.compile}, "
          f"stem_pool {config.stem_pool}, cudnn.benchmark {dev.CUDNN_BENCHMARK}")
    print(f"bare step         {bare_rate:10.0f} images/s   (runs {[round(x) for x in bare_rates]})")
    print(f"fit               {fit_rate:10.0f} images/s   (runs {[round(x) for x in fit_rates]})")
    print(f"efficiency        {efficiency:10.3f}        (median of paired ratios "
          f"{[round(f / b, 3) for f, b in zip(fit_rates, bare_rates)]}; goal >= 0.9)")
    print(f"with val / epoch  {out['efficiency_with_val_every_epoch']:10.3f}")
    print(f"first fit, 1 epoch {cold_s:9.2f} s (autotuning and lazy init included)")
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
