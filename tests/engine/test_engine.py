"""The training engine: device data and augmentation, nets and weights, the fit loop's
determinism, statuses, schedules and out-of-memory halving. CPU, tiny nets; GPU-only
tests carry the ``gpu`` marker."""

from __future__ import annotations

import dataclasses
import importlib
import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from dataqa.engine.data import DeviceData, FlipCrop
from dataqa.engine.fit import TrainConfig, fit, predict
from dataqa.engine.nets import build_net, head_of, load_weights
from dataqa.errors import EngineError

CPU = torch.device("cpu")
fit_module = importlib.import_module("dataqa.engine.fit")  # the package re-exports fit()
TINY = TrainConfig(epochs=4, batch_size=16, lr=0.05, width=8, depth=1, stall_epochs=99)


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """One CPU thread: on a shared 2-core box, OpenMP threads that wait for each other
    make small convs up to 100x slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def stripes(n: int = 96, k: int = 3, size: int = 16, channels: int = 1,
            seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """An easy planted task: class c = a bright horizontal bar at rows 4c+2..4c+5 on
    noise. (n, size, size, channels) uint8 and (n,) labels."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % k
    x = rng.integers(0, 60, (n, size, size, channels)).astype(np.uint8)
    for c in range(k):
        x[y == c, 4 * c + 2:4 * c + 6, 2:size - 2] = 250
    return x, y


def tiny_data(**kw: int) -> DeviceData:
    x, y = stripes(**kw)
    return DeviceData.from_arrays(x, y, device=CPU)


# --------------------------------------------------------------------------- data
def test_device_data_normalises_and_keeps_uint8() -> None:
    data = tiny_data(n=64)
    assert data.images.dtype == torch.uint8 and data.images.shape == (64, 16, 16, 1)
    batch = data.batch(torch.arange(64))
    assert batch.shape == (64, 1, 16, 16) and batch.dtype == torch.float32
    assert abs(float(batch.mean())) < 1e-4 and abs(float(batch.std()) - 1.0) < 1e-2


@pytest.mark.parametrize("flip,padding", [
    (True, 0),  # flip only: every image is itself or its mirror
    (False, 2),  # translation only: a shift within +-2 px with zero fill
    (True, 3),  # both, in one gather
])
def test_flipcrop_is_a_mirror_and_or_shift(flip: bool, padding: int) -> None:
    rng = np.random.default_rng(1)
    x = torch.as_tensor(rng.integers(1, 255, (32, 3, 10, 12), dtype=np.uint8))
    out = FlipCrop(flip, padding)(x, torch.Generator().manual_seed(0))
    assert out.shape == x.shape and out.dtype == torch.uint8
    for i in range(len(x)):
        matches = [(f, dy, dx) for f in ((0, 1) if flip else (0,))
                   for dy in range(-padding, padding + 1) for dx in range(-padding, padding + 1)
                   if torch.equal(out[i], _shift(x[i].flip(2) if f else x[i], dy, dx))]
        assert matches, f"image {i} is not a mirror/shift of its source"
    again = FlipCrop(flip, padding)(x, torch.Generator().manual_seed(0))
    assert torch.equal(out, again)  # same generator seed -> same batch


def _shift(img: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """out[r, c] = img[r + dy, c + dx], zero outside."""
    _, h, w = img.shape
    out = torch.zeros_like(img)
    r0, r1 = max(0, -dy), min(h, h - dy)
    c0, c1 = max(0, -dx), min(w, w - dx)
    out[:, r0:r1, c0:c1] = img[:, r0 + dy:r1 + dy, c0 + dx:c1 + dx]
    return out


# --------------------------------------------------------------------------- nets
@pytest.mark.parametrize("arch,channels,size,dim", [
    ("small_resnet", 1, 16, 32),  # default net, gray, no stem pool below 24 px: D = 4*width
    ("small_resnet", 3, 32, 32),  # rgb with the stem pool
    ("resnet18", 1, 32, 512),  # torchvision, first conv adapted to 1 channel, small stem
])
def test_build_net_shapes(arch: str, channels: int, size: int, dim: int) -> None:
    net = build_net(arch, num_classes=5, in_channels=channels, image_size=size, width=8,
                    depth=1).eval()
    out = net(torch.zeros(2, channels, size, size))
    assert out.shape == (2, 5)
    assert head_of(net).in_features == dim and head_of(net).out_features == 5


@pytest.mark.parametrize("arch,kwargs,words", [
    ("no_such_net", {}, "unknown arch 'no_such_net'"),  # names the bad arch
    ("small_resnet", {"depth": 0}, "depth >= 1"),  # names the bad size
    ("small_resnet", {"num_classes": 1}, "at least 2 classes"),  # one class cannot train
])
def test_build_net_rejects(arch: str, kwargs: dict[str, int], words: str) -> None:
    base = {"num_classes": 3, "in_channels": 1, "image_size": 16, "width": 8, "depth": 1}
    with pytest.raises(EngineError, match=words):
        build_net(arch, **{**base, **kwargs})  # type: ignore[arg-type]


def test_weights_round_trip(tmp_path: Path) -> None:
    torch.manual_seed(0)
    a = build_net("small_resnet", num_classes=3, in_channels=1, image_size=16, width=8, depth=1)
    torch.save(a.state_dict(), tmp_path / "w.pt")
    torch.manual_seed(1)
    b = build_net("small_resnet", num_classes=3, in_channels=1, image_size=16, width=8, depth=1)
    assert load_weights(b, tmp_path / "w.pt") == []
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb and torch.equal(va, vb)


def test_weights_head_mismatch_loads_body_only(tmp_path: Path,
                                               caplog: pytest.LogCaptureFixture) -> None:
    src = build_net("small_resnet", num_classes=3, in_channels=1, image_size=16, width=8,
                    depth=1)
    torch.save({"state_dict": src.state_dict()}, tmp_path / "w.pt")  # a common wrapper
    dst = build_net("small_resnet", num_classes=5, in_channels=1, image_size=16, width=8,
                    depth=1)
    head_before = dst.fc.weight.clone()
    with caplog.at_level(logging.WARNING, logger="dataqa.engine"):
        skipped = load_weights(dst, tmp_path / "w.pt")
    assert skipped == ["fc.weight", "fc.bias"]
    assert torch.equal(dst.fc.weight, head_before)  # head untouched
    assert torch.equal(dst.stem[0].weight, src.stem[0].weight)  # body loaded
    assert "3 outputs in the file, 5 in the model" in caplog.text


def test_weights_rgb_into_gray_sums_first_conv(tmp_path: Path) -> None:
    rgb = build_net("resnet18", num_classes=4, in_channels=3, image_size=32)
    torch.save(rgb.state_dict(), tmp_path / "rgb.pt")
    gray = build_net("resnet18", num_classes=4, in_channels=1, image_size=32)
    load_weights(gray, tmp_path / "rgb.pt")
    assert torch.allclose(gray.conv1.weight, rgb.conv1.weight.sum(1, keepdim=True))


@pytest.mark.parametrize("content,words", [
    (None, "weights file not found"),  # missing file
    (b"not a torch file at all", "not a loadable state_dict"),  # garbage bytes
    ("list", "expected a state_dict"),  # loads, but is no mapping of tensors
    ("other_arch", "do not fit the model"),  # a state_dict of another net
])
def test_weights_bad_file_names_it(tmp_path: Path, content: object, words: str) -> None:
    path = tmp_path / "bad.pt"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content == "list":
        torch.save([torch.zeros(2)], path)
    elif content == "other_arch":
        torch.save(build_net("small_resnet", num_classes=3, in_channels=1, image_size=16,
                             width=16, depth=1).state_dict(), path)
    net = build_net("small_resnet", num_classes=3, in_channels=1, image_size=16, width=8,
                    depth=1)
    with pytest.raises(EngineError, match=words) as info:
        load_weights(net, path)
    assert str(path) in str(info.value)


# --------------------------------------------------------------------------- fit
def test_fit_is_deterministic_on_cpu() -> None:
    data = tiny_data()
    cfg = dataclasses.replace(TINY, crop_padding=1, flip=True, dropout=0.1)
    runs = [fit(data, np.arange(64), np.arange(64, 96), cfg) for _ in range(2)]
    strip = [[dataclasses.replace(h, seconds=0.0) for h in r.history] for r in runs]
    assert strip[0] == strip[1]
    p0, e0 = predict(runs[0].model, data, np.arange(96))
    p1, e1 = predict(runs[1].model, data, np.arange(96))
    assert np.array_equal(p0, p1) and np.array_equal(e0, e1)
    other = fit(data, np.arange(64), np.arange(64, 96), dataclasses.replace(cfg, seed=1))
    assert other.history[0].train_loss != runs[0].history[0].train_loss


def test_fit_learns_and_predict_shapes() -> None:
    data = tiny_data()
    res = fit(data, np.arange(72), np.arange(72, 96),
              dataclasses.replace(TINY, epochs=8, lr=0.1))
    assert res.status == "completed" and len(res.history) == 8
    assert res.history[-1].val_acc >= 0.9
    probs, emb = predict(res.model, data, np.arange(72, 96), batch_size=7)
    assert probs.shape == (24, 3) and emb.shape == (24, 32)
    assert probs.dtype == np.float32 and np.allclose(probs.sum(1), 1.0, atol=1e-5)
    h = res.history[0]
    assert h.train_loss_std > 0 and h.batch_size == 16 and h.seconds > 0


def test_predict_tta_averages_the_shifted_images() -> None:
    """tta: the mean softmax over the image and its four 1-pixel shifts (zero fill);
    embeddings stay those of the image itself."""
    from dataqa.engine.data import normalise
    from dataqa.engine.fit import TTA_SHIFTS, shift

    x = torch.arange(1, 10, dtype=torch.uint8).reshape(1, 1, 3, 3)
    assert shift(x, 1, 0)[0, 0].tolist() == [[0, 0, 0], [1, 2, 3], [4, 5, 6]]
    assert shift(x, 0, -1)[0, 0].tolist() == [[2, 3, 0], [5, 6, 0], [8, 9, 0]]
    data = tiny_data()
    res = fit(data, np.arange(72), None, dataclasses.replace(TINY, epochs=2))
    rows = np.arange(72, 96)
    plain, emb = predict(res.model, data, rows, batch_size=7)
    tta, emb_tta = predict(res.model, data, rows, batch_size=7, tta=True)
    raw = data.images[torch.as_tensor(rows)].permute(0, 3, 1, 2)
    with torch.no_grad():
        views = [torch.softmax(res.model(normalise(shift(raw, dy, dx), data.mean,
                                                   data.std)), 1)
                 for dy, dx in ((0, 0), *TTA_SHIFTS)]
    np.testing.assert_allclose(tta, torch.stack(views).mean(0).numpy(), atol=1e-5)
    np.testing.assert_allclose(plain, views[0].numpy(), atol=1e-5)
    np.testing.assert_array_equal(emb, emb_tta)
    assert not np.allclose(plain, tta)


@pytest.mark.parametrize("change,status", [
    ({"lr": 1e4, "schedule": "constant"}, "diverged"),  # far too high: loss explodes
    ({"lr": 1e-9, "stall_epochs": 2}, "stalled"),  # far too low: loss does not move
])
def test_fit_status_verdicts(change: dict[str, object], status: str) -> None:
    res = fit(tiny_data(), np.arange(96), None, dataclasses.replace(TINY, epochs=5, **change))
    assert res.status == status and len(res.history) < 5


def test_fit_callback_prunes() -> None:
    res = fit(tiny_data(), np.arange(96), None, TINY, callback=lambda e: e.epoch == 2)
    assert res.status == "pruned" and [h.epoch for h in res.history] == [1, 2]


def test_fit_early_stops_on_unlearnable_val() -> None:
    x, y = stripes(n=96)
    y_val = y.copy()
    y_val[64:] = (y_val[64:] + 1) % 3  # val labels contradict train: val loss rises
    data = DeviceData.from_arrays(x, y_val, device=CPU)
    cfg = dataclasses.replace(TINY, epochs=12, lr=0.1, early_stopping_patience=2,
                              min_epochs=3, schedule="constant")
    res = fit(data, np.arange(64), np.arange(64, 96), cfg)
    assert res.status == "early_stopped" and 3 <= len(res.history) < 12
    assert res.best_epoch == int(np.nanargmin([h.val_loss for h in res.history])) + 1


@pytest.mark.parametrize("schedule,check", [
    ("onecycle", lambda lrs, peak: max(lrs) <= peak and lrs[-1] < peak / 100),  # ends low
    ("cosine", lambda lrs, peak: lrs[-1] < peak / 100),  # anneals to ~0
    ("constant", lambda lrs, peak: lrs == [peak] * len(lrs)),  # never moves
])
def test_schedules(schedule: str, check: object) -> None:
    res = fit(tiny_data(), np.arange(96), None,
              dataclasses.replace(TINY, schedule=schedule))  # type: ignore[arg-type]
    assert check([h.lr for h in res.history], TINY.lr)  # type: ignore[operator]


def test_plateau_decays_by_factor() -> None:
    x, y = stripes(n=96)
    rng = np.random.default_rng(0)
    data = DeviceData.from_arrays(x, rng.permutation(y), device=CPU)  # val loss can't improve
    cfg = dataclasses.replace(TINY, epochs=6, schedule="plateau", plateau_factor=0.5,
                              plateau_patience=0, lr=0.01)
    res = fit(data, np.arange(64), np.arange(64, 96), cfg)
    lrs = [h.lr for h in res.history]
    assert lrs[-1] < lrs[0] and all(np.isclose(b / a, 1.0) or np.isclose(b / a, 0.5)
                                    for a, b in zip(lrs, lrs[1:]))


def test_oom_halves_batch_and_retries(monkeypatch: pytest.MonkeyPatch,
                                      caplog: pytest.LogCaptureFixture) -> None:
    real = fit_module._fit_once
    seen: list[int] = []

    def flaky(data, train_t, val_t, config, batch, callback, prefix):  # type: ignore[no-untyped-def]
        seen.append(batch)
        if len(seen) == 1:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return real(data, train_t, val_t, config, batch, callback, prefix)

    monkeypatch.setattr(fit_module, "_fit_once", flaky)
    with caplog.at_level(logging.WARNING, logger="dataqa.engine"):
        res = fit(tiny_data(), np.arange(96), None, dataclasses.replace(TINY, epochs=1))
    assert seen == [16, 8] and res.batch_size == 8 and res.history[0].batch_size == 8
    assert "out of memory at batch size 16: retrying with 8" in caplog.text


def test_fit_rejects_unlabelled_rows() -> None:
    x, y = stripes(n=32)
    y[3] = -1
    data = DeviceData.from_arrays(x, y, device=CPU, num_classes=3)
    with pytest.raises(EngineError, match="without a label"):
        fit(data, np.arange(32), None, TINY)


# --------------------------------------------------------------------------- gpu
@pytest.mark.gpu
def test_fit_on_cuda_resident_uint8_bf16() -> None:
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    device = torch.device("cuda")
    x, y = stripes(n=512, size=32, channels=3)
    data = DeviceData.from_arrays(x, y, device=device)
    assert data.images.is_cuda and data.images.dtype == torch.uint8
    assert data.batch(torch.arange(8, device=device)).is_contiguous(
        memory_format=torch.channels_last)
    res = fit(data, np.arange(384), np.arange(384, 512),
              dataclasses.replace(TINY, epochs=6, batch_size=64, lr=0.1, crop_padding=2,
                                  width=16, depth=2))
    assert res.status == "completed" and res.history[-1].val_acc >= 0.95
    assert next(res.model.parameters()).is_cuda
    probs, emb = predict(res.model, data, np.arange(384, 512))
    assert np.isfinite(probs).all() and np.isfinite(emb).all() and emb.shape == (128, 64)


@pytest.mark.gpu
def test_cuda_oom_is_halved_for_real() -> None:
    """A batch too big for GPU memory is halved until it fits (a real OOM, not a fake).
    4096 images at 224 px need ~150 GB of activations at width 64: more than an H100
    or H200 has; 1024 fit on both."""
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    free, _total = torch.cuda.mem_get_info()
    if free > 150 * 2**30:
        pytest.skip(f"this GPU has {free / 2**30:.0f} GiB free: batch 4096 would fit")
    n, side = 4096, 224
    data = DeviceData.from_arrays(torch.zeros(n, side, side, 3, dtype=torch.uint8),
                                  torch.arange(n) % 2, device=torch.device("cuda"))
    res = fit(data, np.arange(n), None,
              TrainConfig(epochs=1, batch_size=n, width=64, depth=2, stall_epochs=99))
    assert res.batch_size < n and len(res.history) == 1
    del data, res
    torch.cuda.empty_cache()
