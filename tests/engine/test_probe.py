"""``crossval.mode: linear_probe | finetune`` (issue 12, item 2): a pretrained backbone
pre-seeded in a temporary TORCH_HOME (tests/test_backbones.py), embeddings read batch
by batch from the memory-mapped tensors, K-fold logistic regression, and both modes end
to end in `dvc repro`."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torchvision

from dataqa.engine import probe
from dataqa.errors import EngineError
from tests.engine.test_backbones import seed_torch_home
from tests.pipeline.workspace import make_workspace, read_params, run, stages_run


def test_probe_predict_is_out_of_fold_and_accurate_on_separable_features() -> None:
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), 40)
    centres = rng.normal(0, 1, (3, 16)) * 4
    x = (centres[labels] + rng.normal(0, 1, (120, 16))).astype(np.float32)
    probs, info = probe.probe_predict(x, labels, folds=5, class_names=["a", "b", "c"])
    assert probs.shape == (120, 3) and np.allclose(probs.sum(1), 1, atol=1e-5)
    assert (probs.argmax(1) == labels).mean() > 0.95
    assert info["folds"] == 5 and len(info["fold_details"]) == 5
    # a label the features cannot explain is not memorised: out-of-fold, it is doubted
    flipped = labels.copy()
    flipped[0] = 2
    p2, _ = probe.probe_predict(x, flipped, folds=5)
    assert p2[0].argmax() == labels[0]


def test_folds_drop_to_the_smallest_class_with_a_warning() -> None:
    x = np.random.default_rng(0).normal(size=(23, 4)).astype(np.float32)
    labels = np.r_[np.zeros(20, np.int64), np.ones(3, np.int64)]
    _, info = probe.probe_predict(x, labels, folds=5)
    assert info["folds"] == 3 and "only 3 images" in info["warnings"][0]
    with pytest.raises(EngineError, match="at least 2 per class"):
        probe.probe_predict(x[:21], labels[:21], folds=5)


def test_embed_streams_batches_from_a_memory_map(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    seed_torch_home(tmp_path / "torch", "resnet18", monkeypatch)
    images = np.random.default_rng(0).integers(0, 256, (10, 32, 32, 3), dtype=np.uint8)
    np.save(tmp_path / "t.npy", images)
    mm = np.load(tmp_path / "t.npy", mmap_mode="r")
    seen: list[int] = []
    real = torch.from_numpy

    def spy(a):
        seen.append(len(a))
        return real(a)

    monkeypatch.setattr(torch, "from_numpy", spy)
    rows = np.array([7, 1, 3, 0, 9, 2])
    emb, info = probe.embed(mm, rows, arch="resnet18", weights="DEFAULT",
                            device=torch.device("cpu"), batch_size=4)
    monkeypatch.setattr(torch, "from_numpy", real)
    assert emb.shape == (6, 512) and info["embedding_dim"] == 512
    assert max(seen) <= 4  # never more than one batch of images in memory
    one, _ = probe.embed(mm, np.array([3]), arch="resnet18", weights="DEFAULT",
                         device=torch.device("cpu"), batch_size=4)
    assert np.allclose(one[0], emb[2], atol=1e-4)  # rows come back in the asked order


def test_modes_need_a_pretrained_backbone() -> None:
    with pytest.raises(EngineError, match="needs a pretrained backbone"):
        probe.require_backbone("small_resnet", None, "linear_probe")
    with pytest.raises(EngineError, match="needs a pretrained backbone"):
        probe.require_backbone("resnet18", None, "finetune")


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize("mode", ["linear_probe", "finetune"])
def test_backbone_modes_end_to_end_in_dvc_repro(mode, tmp_path, monkeypatch) -> None:
    # a dvc subprocess cannot be told a generated file's hash: a local state_dict file
    # (the torchvision-cache path is covered in-process in test_backbones.py)
    weights = tmp_path / "resnet18_random.pth"
    torch.manual_seed(0)
    torch.save(torchvision.models.resnet18().state_dict(), weights)
    over = {"engine": {"arch": "resnet18", "weights": str(weights), "image_size": 16},
            "crossval": {"mode": mode, "epochs": 1}}
    root = make_workspace(tmp_path / "ws", overrides=over)
    proc = run(["dvc", "repro"], root, timeout=840)
    assert "crossval" in stages_run(proc.stdout + proc.stderr)
    params = read_params(root)
    cv = json.loads((root / params["paths"]["crossval_metrics"]).read_text())
    assert cv["mode"] == mode and cv["weights"] == str(weights) and cv["arch"] == "resnet18"
    emb = np.load(root / params["paths"]["embeddings"])
    assert emb.shape[1] == 512  # resnet18's features feed the duplicate/outlier checks
    probs = np.load(root / params["paths"]["pred_probs"])
    assert np.isfinite(probs).all() and np.allclose(probs.sum(1), 1, atol=1e-4)
    lc = json.loads((root / params["paths"]["learning_curve"]).read_text())
    assert len(lc["points"]) == 2
    audit = json.loads((root / params["paths"]["audit_metrics"]).read_text())
    assert "model" in audit and (root / params["paths"]["tuning_html"]).is_file()
