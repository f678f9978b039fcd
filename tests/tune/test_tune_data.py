"""The tuning data: subsets and the validation split as index arrays into one resident
array, augmented copies from their own tensors, the unfiltered arm, clear errors."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest
import torch

from dataqa.errors import StageInputError
from dataqa.io import write_parquet
from dataqa.params import Params
from dataqa.tune.data import assemble
from dataqa.tune.load import load_tune_data

CPU = torch.device("cpu")


def rows(ids: list[int], labels: list[str], aug: bool = False) -> pd.DataFrame:
    return pd.DataFrame({"row": ids, "augmented": aug, "label": labels})


def test_assemble_gathers_each_image_once() -> None:
    tensors = np.arange(6, dtype=np.uint8).reshape(6, 1, 1, 1) * 10  # pixel = 10 x row
    aug = np.full((2, 1, 1, 1), 200, dtype=np.uint8)
    td = assemble(tensors=tensors, aug_tensors=aug, device=CPU, frames={
        "val": rows([0, 1], ["a", "b"]),
        "small": rows([2, 3], ["a", "b"]),
        "big": pd.concat([rows([2, 3, 4], ["a", "b", "a"]), rows([1], ["b"], aug=True)]),
    })
    assert td.data.n == 6  # rows 0-4 once each, plus one augmented copy
    pix = td.data.images[:, 0, 0, 0].numpy()
    assert pix[td.val].tolist() == [0, 10]
    assert pix[td.train_idx("big")].tolist() == [20, 30, 40, 200]
    assert td.augmented[td.train_idx("big")].tolist() == [False, False, False, True]
    assert td.classes == ["a", "b"]
    assert td.class_counts(td.train_idx("big")) == {"a": 2, "b": 2}


@pytest.mark.parametrize(("frames", "message"), [
    ({"small": rows([0], ["a"])}, "no validation split"),  # val missing
    ({"val": rows([0], ["a"]), "small": rows([0], ["a"])},
     "share images with the validation split"),  # leakage
    ({"val": rows([0], ["a"]), "small": rows([9], ["a"])}, "tensors row 9"),  # out of range
    ({"val": rows([0], ["a"]), "small": rows([0], ["a"], aug=True)},
     "augmented tensors are missing"),  # copies without their tensors
])
def test_assemble_errors(frames: dict, message: str) -> None:
    with pytest.raises(StageInputError, match=message):
        assemble(tensors=np.zeros((3, 2, 2, 1), np.uint8), aug_tensors=None, frames=frames,
                 device=CPU)


def test_relabelled_image_keeps_its_old_label_in_the_unfiltered_arm() -> None:
    tensors = np.arange(4, dtype=np.uint8).reshape(4, 1, 1, 1)
    td = assemble(tensors=tensors, aug_tensors=None, device=CPU,
                  frames={"val": rows([0], ["a"]), "small": rows([1, 2], ["a", "b"])},
                  raw=rows([0, 1, 2, 3], ["a", "a", "a", "b"]))  # row 2 was relabelled a -> b
    labels = td.data.labels.numpy()
    pix = td.data.images[:, 0, 0, 0].numpy()
    assert [(int(pix[i]), td.classes[labels[i]]) for i in td.train_idx("small")] == \
        [(1, "a"), (2, "b")]
    assert td.raw is not None  # validation row 0 left out; image 2 under its old label
    assert [(int(pix[i]), td.classes[labels[i]]) for i in td.raw] == [(1, "a"), (2, "a"),
                                                                      (3, "b")]


def test_class_subset_validates_on_its_classes() -> None:
    td = assemble(tensors=np.zeros((8, 2, 2, 1), np.uint8), aug_tensors=None, device=CPU,
                  frames={"val": rows([0, 1, 2], ["a", "b", "c"]),
                          "two": rows([3, 4], ["a", "b"]), "all": rows([5, 6, 7], ["a", "b", "c"])})
    assert td.val_for("all").tolist() == td.val.tolist()
    assert sorted(td.data.labels[td.val_for("two")].tolist()) == [0, 1]  # no class c


def test_load_reads_the_preparation_outputs(tune_files: Callable[..., Params]) -> None:
    params = tune_files(n=100, n_small=10, n_val=20, n_aug=5, quarantined=8)
    td = load_tune_data(params, ["small", "large"], device=CPU, with_raw=True)
    assert len(td.val) == 20 and len(td.train_idx("small")) == 10
    assert len(td.train_idx("large")) == 100 - 8 - 20 + 5
    assert td.raw is not None and len(td.raw) == 100 - 20  # quarantined rows included
    aug = td.train_idx("large")[td.augmented[td.train_idx("large")]]
    x = np.load(params.path("tensors"))
    assert (td.data.images[aug].numpy() == 255 - x[20:25]).all()  # copies of rows 20-24


def test_unfiltered_arm_drops_exact_copies_of_validation_images(
        tune_files: Callable[..., Params]) -> None:
    params = tune_files(n=60, n_small=10, n_val=10, quarantined=4)
    m = pd.read_parquet(params.path("manifest"))
    m.loc[59, "sha256"] = m.loc[3, "sha256"]  # a quarantined byte-copy of val image 3
    write_parquet(params.path("manifest"), m)
    td = load_tune_data(params, ["small"], device=CPU, with_raw=True)
    assert td.raw is not None and len(td.raw) == 60 - 10 - 1


def test_missing_files_say_which_stage_to_run(tune_files: Callable[..., Params]) -> None:
    params = tune_files(n=60, n_small=10, n_val=10)
    params.path("tensors").unlink()
    with pytest.raises(StageInputError, match="tensors not found"):
        load_tune_data(params, ["small"], device=CPU)
