"""Device choice and the few device-dependent switches, in one place.

The engine has one code path; what differs on CUDA is decided here: bf16 autocast,
channels_last memory format, cudnn autotuning, fused optimizers.
"""

from __future__ import annotations

import contextlib
from typing import Literal

import torch

from dataqa.errors import EngineError

DeviceChoice = Literal["auto", "cpu", "cuda"]
# cudnn autotuning: each new conv shape is timed once per process. Worth it for long
# runs; for K-fold passes of a few seconds the tuning itself can dominate (measured in
# benchmarks/README.md), hence a switch.
CUDNN_BENCHMARK = True


def pick_device(choice: str = "auto", *, cpu_threads: int | None = None) -> torch.device:
    """``auto``: CUDA when present, else CPU. ``cuda`` without a GPU is an error.

    ``cpu_threads`` (CPU only) sets torch's intra-op threads: on a machine shared with
    other jobs, OpenMP threads that wait for each other made small convs up to 100x
    slower with 2 threads than with 1 (measured on a loaded 2-core box)."""
    if choice == "auto":
        choice = "cuda" if torch.cuda.is_available() else "cpu"
    if choice == "cuda":
        if not torch.cuda.is_available():
            raise EngineError("engine.device is 'cuda' but no CUDA device is available")
        torch.backends.cudnn.benchmark = CUDNN_BENCHMARK
        return torch.device("cuda", torch.cuda.current_device())
    if choice == "cpu":
        if cpu_threads:
            torch.set_num_threads(cpu_threads)
        return torch.device("cpu")
    raise EngineError(f"engine.device: {choice!r} is not one of 'auto', 'cpu', 'cuda'")


def describe(device: torch.device) -> str:
    """A short human name: ``cuda: NVIDIA H100 80GB HBM3`` or ``cpu (2 threads)``."""
    if device.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(device)}"
    return f"cpu ({torch.get_num_threads()} threads)"


def autocast(device: torch.device) -> contextlib.AbstractContextManager[object]:
    """bf16 autocast on CUDA (tensor cores, no loss scaling needed); fp32 on CPU,
    where bf16 matmuls are slow on most processors and would break determinism tests."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def memory_format(device: torch.device) -> torch.memory_format:
    """channels_last on every device: what cudnn's tensor-core kernels want, and on CPU
    oneDNN's convolutions are faster with it too (one training step, batch 64, 32 x 32,
    2 threads, 2-core box: small_cnn w16 50 -> 40 ms, small_resnet w16 34 -> 26 ms,
    resnet18 1.77 -> 1.52 s; the bundled sample's crossval 69 -> ~55 s)."""
    del device  # one answer for now; kept per device (a device may come to differ)
    return torch.channels_last


def is_oom(exc: BaseException) -> bool:
    return isinstance(exc, torch.OutOfMemoryError)


def free_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
