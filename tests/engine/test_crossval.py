"""Cross-validation: out-of-fold predictions on a planted easy task, the fallbacks
(class smaller than folds, single class, NaN), and the stage's aligned outputs."""

from __future__ import annotations

import dataclasses
import importlib
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from dataqa.engine.crossval import cross_val_predict, crossval_config
from dataqa.engine.fit import TrainConfig
from dataqa.errors import EngineError, StageInputError
from dataqa.io import write_parquet
from dataqa.params import Params

crossval_module = importlib.import_module("dataqa.engine.crossval")
crossval_step = importlib.import_module("dataqa.steps.crossval")
CFG = TrainConfig(epochs=8, batch_size=8, lr=0.1, width=8, depth=1, stall_epochs=99)


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # see tests/test_engine.py: shared cores, tiny convs
    yield
    torch.set_num_threads(before)


def stripes(n: int, k: int = 3, size: int = 16, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Class c = a bright bar at rows 4c+2..4c+5 on noise: (n, size, size, 1), (n,)."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % k
    x = rng.integers(0, 60, (n, size, size, 1)).astype(np.uint8)
    for c in range(k):
        x[y == c, 4 * c + 2:4 * c + 6, 2:size - 2] = 250
    return x, y


def test_oof_predictions_on_planted_task() -> None:
    x, y = stripes(90)
    probs, emb, info = cross_val_predict(x, y, folds=3, config=CFG, seed=0, device="cpu")
    assert probs.shape == (90, 3) and emb.shape == (90, 32)
    assert np.isfinite(probs).all() and np.allclose(probs.sum(1), 1, atol=1e-5)
    assert (probs.argmax(1) == y).mean() >= 0.95
    assert info["folds"] == 3 and len(info["fold_details"]) == 3 and not info["warnings"]
    assert sum(f["n_holdout"] for f in info["fold_details"]) == 90  # every row held out once


def test_oof_is_deterministic() -> None:
    x, y = stripes(45)
    cfg = dataclasses.replace(CFG, epochs=2)
    a = cross_val_predict(x, y, folds=3, config=cfg, seed=3, device="cpu")
    b = cross_val_predict(x, y, folds=3, config=cfg, seed=3, device="cpu")
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])


@pytest.mark.parametrize("counts,folds,outcome", [
    ((10, 10, 2), 5, 2),  # smallest class has 2 (< 5 folds): folds reduced to 2, loudly
    ((10, 10, 4), 5, 4),  # smallest has 4: 4 folds
    ((10, 10, 1), 5, "class 'c2' has 1 image"),  # 1 image: no fold can hold it out and train
    ((12, 0, 0), 3, "every labelled image is 'c0'"),  # a single class cannot train
])
def test_fold_fallbacks(counts: tuple[int, ...], folds: int, outcome: int | str,
                        caplog: pytest.LogCaptureFixture) -> None:
    y = np.concatenate([np.full(c, i) for i, c in enumerate(counts)])
    x, _ = stripes(len(y))
    cfg = dataclasses.replace(CFG, epochs=1)
    names = [f"c{i}" for i in range(len(counts))]
    if isinstance(outcome, str):
        with pytest.raises(EngineError, match=outcome):
            cross_val_predict(x, y, folds=folds, config=cfg, device="cpu", class_names=names)
        return
    with caplog.at_level(logging.WARNING, logger="dataqa.engine"):
        probs, _, info = cross_val_predict(x, y, folds=folds, config=cfg, device="cpu",
                                           class_names=names)
    assert info["folds"] == outcome and info["folds_requested"] == folds
    assert f"using {outcome} folds" in info["warnings"][0] and "WARNING" in caplog.text
    assert np.isfinite(probs).all()


def test_nan_predictions_name_the_fold(monkeypatch: pytest.MonkeyPatch) -> None:
    real = crossval_module.predict
    calls: list[int] = []

    def poisoned(*args: Any, **kw: Any) -> tuple[np.ndarray, np.ndarray]:
        probs, emb = real(*args, **kw)
        calls.append(1)
        if len(calls) == 2:
            probs[0, 0] = np.nan
        return probs, emb

    monkeypatch.setattr(crossval_module, "predict", poisoned)
    x, y = stripes(30)
    with pytest.raises(EngineError, match="fold 2: non-finite predictions"):
        cross_val_predict(x, y, folds=3, config=dataclasses.replace(CFG, epochs=1),
                          device="cpu")


def test_diverged_fold_is_an_error() -> None:
    x, y = stripes(30)
    cfg = dataclasses.replace(CFG, epochs=3, lr=1e4, schedule="constant")
    with pytest.raises(EngineError, match="fold 1: training diverged"):
        cross_val_predict(x, y, folds=3, config=cfg, device="cpu")


@pytest.mark.parametrize("device,section,expect", [
    ("cpu", {}, {k: "budget" for k in ("epochs", "batch_size", "lr", "width", "depth")}),
    # nulls: the CPU budget
    ("cuda", {}, {k: "budget" for k in ("epochs", "batch_size", "lr", "width", "depth")}),
    # nulls: the GPU budget
    ("cpu", {"epochs": 3, "width": 64, "lr": 0.5, "depth": 2},
     {"epochs": 3, "width": 64, "lr": 0.5, "depth": 2, "batch_size": "budget"}),
    # explicit values always win, nulls beside them still come from the budget
])
def test_crossval_config_budgets(params_for: Any, device: str, section: dict[str, Any],
                                 expect: dict[str, Any]) -> None:
    params = params_for(crossval=section)
    cfg = crossval_config(params, torch.device(device))
    budget = crossval_module.DEVICE_BUDGETS[device]
    for key, value in expect.items():
        assert getattr(cfg, key) == (budget[key] if value == "budget" else value)
    assert cfg.width != params.engine.width or device == "cpu"  # its own net, not tuning's


# --------------------------------------------------------------------------- stage
def _write_source(root: Path) -> None:
    """3 classes x 9 stripe images (varied sizes), one truncated file, one unlabelled."""
    rng = np.random.default_rng(0)
    for c in range(3):
        for i in range(9):
            h, w = (20, 20) if i % 2 else (20, 30)
            img = rng.integers(0, 60, (h, w), dtype=np.uint8)
            img[round(h * (4 * c + 2) / 16):round(h * (4 * c + 6) / 16), 2:w - 2] = 250
            path = root / f"k{c}/{i}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(img).save(path)
    (root / "k0/broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")


def test_run_stage_writes_aligned_outputs(tmp_path: Path, params_for: Any,
                                          manifest_for: Any) -> None:
    from dataqa.steps.tensors import run_stage as tensors_stage

    src = tmp_path / "images"
    _write_source(src)

    @dataclasses.dataclass
    class Folder:
        root: Path
        truth: dict[str, str]
        splits: dict[str, str]

    rels = sorted(p.relative_to(src).as_posix() for p in src.rglob("*.png"))
    manifest = manifest_for(Folder(src, {r: "x" for r in rels}, {r: "train" for r in rels}))
    manifest["stat_colorfulness"] = 0.0
    manifest.loc[manifest["path"] == "k2/8.png", "label"] = pd.NA  # a row without label
    params = params_for(data={"source": str(src)}, engine={"image_size": 16, "device": "cpu"},
                        tensors={"workers": 0},
                        crossval={"folds": 3, "epochs": 10, "batch_size": 4, "lr": 0.05,
                                  "width": 8, "depth": 1, "crop_padding": 0})
    write_parquet(params.path("manifest"), manifest)
    tensors_stage(params)
    assert crossval_step.run_stage(params) == 0
    probs = np.load(params.path("pred_probs"))
    emb = np.load(params.path("embeddings"))
    metrics = json.loads(params.path("crossval_metrics").read_text())
    broken = (manifest["path"] == "k0/broken.png").to_numpy()
    unlabelled = manifest["label"].isna().to_numpy()
    assert probs.shape == (len(manifest), 3) and emb.shape == (len(manifest), 32)
    assert np.isnan(probs[broken | unlabelled]).all() and np.isnan(emb[broken]).all()
    assert np.isfinite(probs[~(broken | unlabelled)]).all()
    assert metrics["classes"] == ["k0", "k1", "k2"]
    assert metrics["n_used"] == 26 and metrics["n_undecodable"] == 1
    assert metrics["n_unlabelled"] == 1 and metrics["folds"] == 3
    assert metrics["oof_accuracy"] >= 0.9 and set(metrics["per_class_accuracy"]) == {
        "k0", "k1", "k2"}
    assert metrics["device"].startswith("cpu")


def test_run_stage_detects_stale_tensors(tmp_path: Path, params_for: Any) -> None:
    manifest = pd.DataFrame({"id": [0, 1], "path": ["a/0.png", "a/1.png"], "label": ["a", "b"],
                             "split": ["train"] * 2, "decode_error": [None, None]})
    params: Params = params_for()
    write_parquet(params.path("manifest"), manifest)
    with pytest.raises(StageInputError, match="run the 'tensors' stage first"):
        crossval_step.run_stage(params)
    np.save(params.path("tensors"), np.zeros((3, 8, 8, 1), np.uint8))
    write_parquet(params.path("tensor_index"), pd.DataFrame({"id": [0, 1, 2],
                                                             "decoded": [True] * 3}))
    with pytest.raises(StageInputError, match="with the manifest's 2 rows"):
        crossval_step.run_stage(params)
