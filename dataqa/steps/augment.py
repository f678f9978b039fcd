"""DVC stage ``augment``: balanced, aspect-preserving copies of the training pool into
``paths.augmented_dir`` (the plan and the copies are :mod:`dataqa.prepare.augment`)."""

from __future__ import annotations

import time

import pandas as pd

from dataqa.dataset.reopen import Limits
from dataqa.dataset.splits import find_training_rows, find_validation
from dataqa.dataset.tensors import open_tensors
from dataqa.errors import StageInputError
from dataqa.io import write_json, write_npy, write_parquet
from dataqa.params import Params
from dataqa.prepare.augment import IMAGES, Copies, make_copies, plan_copies, summarize
from dataqa.prepare.common import atomic_dir, inside, read_table
from dataqa.text import say


def training_pool(params: Params) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(clean table, its training-pool rows): training splits minus the fixed
    validation split that the subsample stage will draw (same params, same rows)."""
    clean = read_table(params.path("clean"), stage="filter",
                       required=["id", "path", "label", "split"])
    mask = find_training_rows(clean, params=params.split)
    mask &= ~find_validation(clean, params=params.split)
    return clean, clean[mask].reset_index(drop=True)


def run_stage(params: Params) -> int:
    start = time.perf_counter()
    clean, train = training_pool(params)
    if train.empty:
        raise StageInputError("augment: the training pool is empty (no clean rows of "
                              f"split.train_splits {params.split.train_splits} outside validation)")
    aug = params.augment
    size = aug.size or params.engine.image_size
    shape = open_tensors(params.path("tensors")).shape
    plan = plan_copies(train, params=aug)
    from dataqa.dataset.sources import source_root

    copies = make_copies(plan, train, root=source_root(params.resolve(params.data.source)),
                         params=aug, size=size, tensor_size=int(shape[1]),
                         channels=int(shape[3]), max_pixels=params.scan.max_pixels,
                         limits=Limits.of(params.scan))
    write_augmented(params, copies)
    summary = summarize(plan, train, copies.records, params=aug, size=size,
                        seconds=time.perf_counter() - start)
    write_json(params.path("augment_metrics"), summary)
    d = summary["distortion"]
    say(f"augment: {summary['n_copies']} copies to reach {summary['target_count']} per "
          f"class; imbalance {summary['imbalance_ratio_before']} -> "
          f"{summary['imbalance_ratio_after']}")
    if summary["n_copies"]:
        say(f"  aspect change max {d['aspect_change_max']:.2e}, area cropped mean "
              f"{d['area_cropped_mean']:.3f} (max {d['area_cropped_max']:.3f}), padding "
              f"mean {d['padding_mean']:.3f}")
    return 0


def write_augmented(params: Params, copies: Copies) -> None:
    """Build ``augmented_dir`` atomically; the manifest and tensors go inside it when
    their paths lie there (the default), else next to it, atomically too."""
    folder = params.path("augmented_dir")
    outputs = {"augmented_manifest": lambda p: write_parquet(p, copies.records),
               "augmented_tensors": lambda p: write_npy(p, copies.tensors)}
    outside = []
    with atomic_dir(folder) as tmp:
        (tmp / IMAGES).mkdir()
        for rel, data in zip(copies.records["path"], copies.png):
            (tmp / rel).write_bytes(data)
        for name, write in outputs.items():
            rel_out = inside(params.path(name), folder)
            if rel_out is None:
                outside.append((name, write))
            else:
                write(tmp / rel_out)
    for name, write in outside:
        write(params.path(name))
