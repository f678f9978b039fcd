"""small_cnn (the K-fold pass's default net) and how crossval_config picks the net: the
device budget's, an explicit crossval.arch, or engine.arch when engine.weights is set."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from dataqa.engine.crossval import DEVICE_BUDGETS, crossval_config
from dataqa.engine.nets import build_net, head_of
from dataqa.errors import EngineError


@pytest.mark.parametrize("channels,size,width", [(1, 32, 16), (3, 28, 8), (1, 16, 4)])
def test_shapes_and_embedding(channels: int, size: int, width: int) -> None:
    net = build_net("small_cnn", num_classes=7, in_channels=channels, image_size=size,
                    width=width)
    out = net(torch.zeros(3, channels, size, size))
    assert out.shape == (3, 7)
    assert head_of(net).in_features == 4 * width  # the embedding size
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    gelus = [m for m in net.modules() if isinstance(m, torch.nn.GELU)]
    norms = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert len(convs) == len(gelus) == len(norms) == 5


def test_bad_width_is_an_error() -> None:
    with pytest.raises(EngineError, match="small_cnn needs width >= 1"):
        build_net("small_cnn", num_classes=3, in_channels=1, image_size=16, width=0)


@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_budget_recipe(params_for: Any, device: str) -> None:
    cfg = crossval_config(params_for(), torch.device(device))
    budget = DEVICE_BUDGETS[device]
    for key in ("arch", "optimizer", "lr", "weight_decay", "label_smoothing", "epochs",
                "width"):
        assert getattr(cfg, key) == budget[key], key
    assert cfg.arch == "small_cnn" and cfg.optimizer == "adamw"


def test_explicit_values_and_weights(params_for: Any, tmp_path: Path) -> None:
    cfg = crossval_config(params_for(crossval={"arch": "small_resnet", "optimizer": "sgd",
                                               "label_smoothing": 0.0, "lr": 0.1}),
                          torch.device("cpu"))
    assert (cfg.arch, cfg.optimizer, cfg.label_smoothing, cfg.lr) == (
        "small_resnet", "sgd", 0.0, 0.1)
    # a weights file belongs to engine.arch: the K-fold pass fine-tunes that net
    cfg = crossval_config(params_for(engine={"arch": "resnet18", "weights": "w.pt"}),
                          torch.device("cpu"))
    assert cfg.arch == "resnet18" and cfg.weights == "w.pt"


@pytest.mark.parametrize("unfreeze", [0.0, 0.5, 1.0])
def test_unfreeze_trains_only_the_top_of_the_net(unfreeze: float) -> None:
    """TrainConfig.unfreeze (searched by the tuning run for pretrained backbones): the
    bottom (1 - unfreeze) share of the parameter tensors keeps its initial values, the
    head always trains."""
    import numpy as np

    from dataqa.engine.data import DeviceData
    from dataqa.engine.fit import TrainConfig, fit, new_model

    rng = np.random.default_rng(0)
    x = rng.integers(0, 255, (64, 16, 16, 1)).astype(np.uint8)
    y = rng.integers(0, 3, 64)
    data = DeviceData.from_arrays(x, y, device=torch.device("cpu"), num_classes=3)
    cfg = TrainConfig(epochs=1, batch_size=16, lr=0.05, arch="small_cnn", width=4,
                      unfreeze=unfreeze, seed=0)
    torch.manual_seed(cfg.seed)
    fresh = new_model(data, cfg)
    before = [p.detach().clone() for p in fresh.parameters()]
    head = len(list(head_of(fresh).parameters()))
    after = list(fit(data, np.arange(64), None, cfg).model.parameters())
    body = len(before) - head
    moved = [not torch.equal(a, b) for a, b in zip(after, before, strict=True)]
    frozen = body - int(round(unfreeze * body))
    assert moved[:frozen] == [False] * frozen and all(moved[-head:])
    assert all(moved[frozen:])
    with pytest.raises(EngineError, match="unfreeze"):
        TrainConfig(unfreeze=1.5)
