"""Pretrained backbones the torchvision way (issue 12, item 1): torchvision weights
names through torchvision's own cache under TORCH_HOME (pre-seeded here with a
generated state_dict under the file name torchvision expects, so the real loading path
runs offline), a local file, the offline error, and the weights' own preprocessing."""

from __future__ import annotations

import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision

from dataqa.engine import backbones
from dataqa.engine.backbones import cache_file, preprocessing, weights_entry
from dataqa.engine.checkpoint import sha256_of
from dataqa.engine.data import DeviceData
from dataqa.engine.fit import TrainConfig, new_model
from dataqa.errors import EngineError


def seed_torch_home(home: Path, arch: str, monkeypatch, weights: str = "DEFAULT", *,
                    seed: int = 0) -> dict:
    """Write a random ImageNet-shaped state_dict of ``arch`` where torchvision looks for
    ``weights`` under ``home``; returns it. The generated file cannot carry the SHA-256
    prefix of the published file's name, so the published hash of that one entry is
    made the generated file's (the comparison itself still runs)."""
    torch.manual_seed(seed)
    state = torchvision.models.get_model(arch, weights=None).state_dict()
    entry = weights_entry(arch, weights)
    target = home / "hub" / "checkpoints" / Path(entry.url).name
    target.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, target)
    trust(monkeypatch, entry, target)
    return state


def trust(monkeypatch, entry, path: Path) -> None:
    """Make ``path``'s digest the published hash of ``entry`` (others unchanged)."""
    real = backbones.published_hash
    digest = sha256_of(path)[:8]
    monkeypatch.setattr(backbones, "published_hash",
                        lambda e: digest if e == entry else real(e))


def _data(n: int = 4, size: int = 32, channels: int = 3) -> DeviceData:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n, size, size, channels), dtype=np.uint8)
    return DeviceData.from_arrays(images, np.arange(n) % 2, device=torch.device("cpu"))


@pytest.mark.parametrize("arch", ["resnet18", "mobilenet_v3_small"])
def test_torchvision_weights_name_loads_from_the_torch_home_cache(arch, tmp_path,
                                                                  monkeypatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    state = seed_torch_home(tmp_path, arch, monkeypatch)
    assert cache_file(weights_entry(arch, "DEFAULT")).is_file()
    data = _data()
    model = new_model(data, TrainConfig(arch=arch, weights="DEFAULT"))
    own = model.state_dict()
    body = [k for k in state if not k.startswith(("fc.", "classifier."))
            and state[k].dtype.is_floating_point]
    assert all(torch.equal(own[k], state[k]) for k in body)
    head = "fc.weight" if arch == "resnet18" else "classifier.3.weight"
    assert own[head].shape[0] == 2  # the dataset's classes, not ImageNet's 1000
    # the weights' own normalisation replaced the dataset's statistics
    assert torch.allclose(data.mean, torch.tensor([0.485, 0.456, 0.406]) * 255)
    assert torch.allclose(data.std, torch.tensor([0.229, 0.224, 0.225]) * 255)


def test_full_enum_name_and_preprocessing() -> None:
    assert weights_entry("resnet50", "ResNet50_Weights.IMAGENET1K_V2").name == "IMAGENET1K_V2"
    prep = preprocessing("convnext_tiny", "DEFAULT")
    assert prep is not None and prep.crop_size == 224 and len(prep.mean) == 3
    assert preprocessing("resnet18", None) is None
    for arch in ("resnet18", "resnet50", "mobilenet_v3_large", "efficientnet_b0",
                 "convnext_tiny"):
        assert Path(weights_entry(arch, "DEFAULT").url).suffix == ".pth"


def test_offline_without_a_cached_file_names_the_file_and_folder(tmp_path,
                                                                 monkeypatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(EngineError) as err:
        new_model(_data(), TrainConfig(arch="resnet18", weights="IMAGENET1K_V1"))
    msg = str(err.value)
    assert "resnet18-f37072fd.pth" in msg and str(tmp_path / "hub" / "checkpoints") in msg
    assert "https://download.pytorch.org/models/resnet18-f37072fd.pth" in msg


def test_bad_weights_names_are_clear_errors() -> None:
    with pytest.raises(EngineError, match="IMAGENET1K_V1, DEFAULT"):
        weights_entry("resnet18", "IMAGENET22K")
    with pytest.raises(EngineError, match="small_resnet"):
        new_model(_data(), TrainConfig(arch="small_resnet", weights="DEFAULT"))


def test_local_state_dict_file(tmp_path) -> None:
    torch.manual_seed(1)
    state = torchvision.models.resnet18(num_classes=7).state_dict()
    path = tmp_path / "my_resnet18.pth"
    torch.save(state, path)
    data = _data(channels=1)
    model = new_model(data, TrainConfig(arch="resnet18", weights=str(path)))
    own = model.state_dict()
    assert torch.equal(own["layer1.0.conv1.weight"], state["layer1.0.conv1.weight"])
    # grey input: the first conv's colour weights are summed
    assert torch.allclose(own["conv1.weight"], state["conv1.weight"].sum(1, keepdim=True))
    assert data.mean.shape == (1,)  # a local file carries no preprocessing: the dataset's


@pytest.mark.parametrize("arch", ["resnet18", "resnet50", "mobilenet_v3_large",
                                  "efficientnet_b0", "convnext_tiny"])
def test_issue_archs_build_for_small_inputs_with_an_embedding_head(arch) -> None:
    from dataqa.engine.nets import build_net, head_of

    model = build_net(arch, num_classes=3, in_channels=3, image_size=32)
    assert head_of(model).out_features == 3


class _Payload:
    """Unpickling this runs ``touch <marker>``: what a planted cache file would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        import os
        return (os.system, (f"touch {self.marker}",))


def _plant_payload(tmp_path: Path, arch: str = "resnet18") -> tuple[Path, Path]:
    marker = tmp_path / "pwned"
    target = cache_file(weights_entry(arch, "DEFAULT"))
    target.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"conv1.weight": _Payload(marker)}, target)  # a pickle that runs code
    return target, marker


def test_a_pickle_payload_in_the_torchvision_cache_is_refused_by_its_hash(
        tmp_path, monkeypatch) -> None:
    """Issue 26: a payload under the real file name of engine.weights never runs; the
    cached file's SHA-256 does not match the prefix in its published name."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    target, marker = _plant_payload(tmp_path)
    with pytest.raises(EngineError) as err:
        new_model(_data(), TrainConfig(arch="resnet18", weights="DEFAULT"))
    assert not marker.exists()
    msg = str(err.value)
    assert str(target) in msg and "f37072fd" in msg and "not the published" in msg


def test_a_pickle_payload_never_runs_even_when_its_hash_is_trusted(tmp_path,
                                                                   monkeypatch) -> None:
    """weights_only=True holds on its own: with the hash check passed, loading the
    payload fails as a named error and the code inside never runs."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    target, marker = _plant_payload(tmp_path)
    trust(monkeypatch, weights_entry("resnet18", "DEFAULT"), target)
    with pytest.raises(EngineError, match="not a loadable state_dict") as err:
        new_model(_data(), TrainConfig(arch="resnet18", weights="DEFAULT"))
    assert not marker.exists() and str(target) in str(err.value)
    local = tmp_path / "local.pth"  # the same payload as a local engine.weights file
    local.write_bytes(target.read_bytes())
    with pytest.raises(EngineError, match="not a loadable state_dict"):
        new_model(_data(), TrainConfig(arch="resnet18", weights=str(local)))
    assert not marker.exists()


def test_a_download_goes_through_torch_hub_with_the_hash_and_then_the_one_loader(
        tmp_path, monkeypatch) -> None:
    """Not cached: the file is fetched with its hash prefix (torch.hub verifies it while
    downloading), then read by the same checked loader as a cached file."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    torch.manual_seed(3)
    state = torchvision.models.resnet18().state_dict()
    calls = []

    def fake_download(url, dst, hash_prefix=None, progress=True):
        calls.append((url, hash_prefix))
        torch.save(state, dst)

    monkeypatch.setattr(torch.hub, "download_url_to_file", fake_download)
    entry = weights_entry("resnet18", "IMAGENET1K_V1")
    with pytest.raises(EngineError, match="not the published"):  # the fake's hash differs
        new_model(_data(), TrainConfig(arch="resnet18", weights="IMAGENET1K_V1"))
    assert calls == [(entry.url, "f37072fd")]
    trust(monkeypatch, entry, cache_file(entry))
    model = new_model(_data(), TrainConfig(arch="resnet18", weights="IMAGENET1K_V1"))
    assert torch.equal(model.state_dict()["layer1.0.conv1.weight"],
                       state["layer1.0.conv1.weight"])
