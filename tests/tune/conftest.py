"""Fixtures of the tuning tests: tiny synthetic image sets with known difficulty, and the
files the preparation stages would write (tensors, manifest, subsets), so that the
``tune`` stage runs end to end in seconds on CPU.

- ``quadrants(n, k, size, signal, seed)``: class k = a bright quadrant (easy when the
  signal is strong); ``labels="random"`` gives labels independent of the pixels (nothing
  to learn: memorised by a big net, not fitted by a tiny one).
- ``tune_files(tmp_path, ...)``: writes ``tensors.npy``, ``tensor_index``, a manifest,
  subsets ``small``/``large``/``val`` and optionally augmented copies; returns Params.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from dataqa.engine.data import DeviceData
from dataqa.io import write_npy, write_parquet
from dataqa.params import Params, validate


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    """One torch thread: the dev box has 2 shared cores; 2 threads under contention
    are several times slower than one."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def quadrant_images(n: int, k: int = 4, size: int = 8, *, signal: float = 150.0,
                    seed: int = 0, labels: str = "signal") -> tuple[np.ndarray, np.ndarray]:
    """(n, size, size, 1) uint8 images and (n,) labels in [0, k). Class j brightens
    block j of a grid of ceil(sqrt(k))^2 blocks by ``signal`` grey levels over noise."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    x = rng.integers(0, 60, (n, size, size, 1)).astype(np.float32)
    g = int(np.ceil(np.sqrt(k)))
    b = size // g
    for j in range(k):
        r, c = divmod(j, g)
        x[y == j, r * b:(r + 1) * b, c * b:(c + 1) * b, 0] += signal
    if labels == "random":
        y = rng.integers(0, k, n)
    return np.clip(x, 0, 255).astype(np.uint8), y


@pytest.fixture
def quadrants() -> Callable[..., DeviceData]:
    def make(n: int = 200, k: int = 4, size: int = 8, **kw: Any) -> DeviceData:
        x, y = quadrant_images(n, k, size, **kw)
        return DeviceData.from_arrays(x, y, device=torch.device("cpu"), num_classes=k)
    return make


def make_params(root: Path, **sections: Any) -> Params:
    params = validate(Params, sections)
    return params.replace(root=root)


# small, fast defaults for stage-level tests: 2+2+2 one-epoch trials on 8x8 images; the
# default sizing (20 training images per class) moves rounds off 'small' (12 per class)
FAST_TUNE: dict[str, Any] = {
    "rounds": {"lr": {"trials": 2, "epochs": 1, "subset": "small"},
               "joint": {"trials": 2, "epochs": 1, "subset": "small"},
               "fine": {"trials": 2, "epochs": 2, "subset": "large", "top_k": 2}},
    # width 4 is left out: torch 2.14's CPU kernels corrupt the heap in some small_resnet
    # width-4 fits on 8 x 8 images (on main too; reproduced outside dataqa's tune code)
    "space": {"widths": [8, 16], "depths": [1], "batch_size_min": 8, "batch_size_max": 32},
    "stopping": {"patience": 2, "min_epochs": 1},
    "cleaning": {"seeds": 2, "subset": "large"},
    "baseline": {"seeds": 2},
    "augment": False,
}
# the start: crossval's configuration with a small net (small_cnn width 8, 4 epochs)
FAST_CROSSVAL: dict[str, Any] = {"width": 8, "epochs": 4, "batch_size": 16}


def merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``base`` updated with ``over``, nested mappings merged key by key."""
    out = dict(base)
    for k, v in over.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) \
            else v
    return out


def write_tune_files(root: Path, *, n: int = 240, k: int = 4, size: int = 8,
                     n_small: int = 48, n_val: int = 60, n_aug: int = 0,
                     quarantined: int = 12, seed: int = 0, tune: dict[str, Any] | None = None,
                     engine: dict[str, Any] | None = None,
                     crossval: dict[str, Any] | None = None) -> Params:
    """Write what tensors/filter/augment/subsample would: the manifest (n rows; the last
    ``quarantined`` get random labels and are left out of every subset), tensors,
    subsets ``small`` (n_small), ``large`` (all clean non-val rows, plus ``n_aug``
    augmented copies) and ``val`` (n_val), and ``root/params.yaml`` with the ``tune``,
    ``engine`` and ``crossval`` sections. Returns Params rooted at ``root``."""
    x, y = quadrant_images(n, k, size, seed=seed)
    rng = np.random.default_rng(seed + 1)
    labels = np.array([f"c{j}" for j in y], dtype=object)
    noisy = np.arange(n - quarantined, n)
    labels[noisy] = [f"c{j}" for j in rng.integers(0, k, quarantined)]
    manifest = pd.DataFrame({
        "id": np.arange(n), "path": [f"img/{i:05d}.png" for i in range(n)],
        "label": labels, "split": "train",
        "sha256": [f"{i:064x}" for i in range(n)], "decode_error": pd.NA})
    sections = {"tune": merge(FAST_TUNE, tune or {}),
                "engine": dict({"image_size": size, "device": "cpu"}, **(engine or {})),
                "crossval": merge(FAST_CROSSVAL, crossval or {})}
    (root / "params.yaml").write_text(yaml.safe_dump(sections))  # for CLI workers
    params = make_params(root, **sections)
    write_parquet(params.path("manifest"), manifest)
    write_npy(params.path("tensors"), x)
    write_parquet(params.path("tensor_index"),
                  pd.DataFrame({"id": np.arange(n), "decoded": np.ones(n, dtype=bool)}))
    clean = np.arange(n - quarantined)
    val = clean[:n_val]
    train = clean[n_val:]
    sdir = params.path("subsets_dir")

    def subset(ids: np.ndarray) -> pd.DataFrame:
        return pd.DataFrame({"id": ids, "label": labels[ids], "augmented": False})

    large = subset(train)
    if n_aug:
        src = train[:n_aug]
        aug_ids = np.arange(n_aug)
        write_npy(params.path("augmented_tensors"), 255 - x[src])
        write_parquet(params.path("augmented_manifest"),
                      pd.DataFrame({"id": aug_ids, "source_id": src, "label": labels[src],
                                    "row": aug_ids}))
        large = pd.concat([large, pd.DataFrame({"id": aug_ids, "label": labels[src],
                                                "augmented": True})], ignore_index=True)
    write_parquet(sdir / "val.parquet", subset(val))
    write_parquet(sdir / "small.parquet", subset(train[:n_small]))
    write_parquet(sdir / "large.parquet", large)
    return params


@pytest.fixture
def tune_files(tmp_path: Path) -> Callable[..., Params]:
    def make(**kw: Any) -> Params:
        return write_tune_files(tmp_path, **kw)
    return make
