"""The ``augment`` stage: aspect-preserving copies that balance the small classes.

Classes of the training pool (clean rows of ``split.train_splits`` outside the fixed
validation split, so no copy is ever made of a validation image) whose count is below
``ceil(balance_target * largest)`` get copies until they reach it, at most
``max_copies_per_source`` per image. Sources are the class's images not marked for
review (all of them when every one is), taken round-robin in a seeded order so each
is used as evenly as possible.

Each copy is made by :func:`dataqa.augmentation.build_transform` from the **raw file**
(decoded once per source with :func:`dataqa.dataset.reopen.reopen`), not from the
tensors: the tensors are already letterboxed and downscaled, so zooming or rotating them
would resample twice and rotate their padding; the raw file gives the full resolution
and a true content box. Each copy records its source id, the serialized transform
(``A.to_dict``) and its seed: the same seed gives the same bytes.

Outputs, in ``augmented_dir`` (built in a temporary folder, then renamed into place):
``images/<id>.png``, ``augmented_manifest`` (one row per copy, with the geometry
measured on it) and ``augmented_tensors`` (A, H, W, C) uint8, the copies letterboxed
like ``tensors`` (same size and channels) so the tuning run indexes them directly.
``augment_metrics``: counts per class before/after, imbalance ratios, and the
distortion figures measured on the copies (aspect change, area cropped, padding).
"""

from __future__ import annotations

import io
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

from dataqa.augmentation import apply_transform, build_transform, get_policy, to_dict
from dataqa.dataset.balance import class_counts, imbalance_ratio
from dataqa.dataset.imageio import letterbox
from dataqa.dataset.reopen import Limits, optional, optional_int, reopen
from dataqa.dataset.splits import class_rng
from dataqa.errors import StageInputError
from dataqa.params import AugmentParams

IMAGES = "images"  # folder of the PNG copies inside augmented_dir
_WHERE = "params.yaml: augment"


# --------------------------------------------------------------------------- plan
def plan_copies(train: pd.DataFrame, *, params: AugmentParams) -> pd.DataFrame:
    """One row per copy to make: ``id`` (0..A-1), ``label``, ``source_id``, ``copy``
    (index among the copies of that source) and ``seed``.

    ``train``: the training pool's rows with ``id``, ``label`` and optionally ``review``.
    """
    counts = class_counts(train["label"])
    target = balance_target_count(counts, params.balance_target)
    labels = train["label"].astype(str).to_numpy()
    ids = train["id"].to_numpy(dtype=np.int64)
    review = (train["review"].fillna(False).to_numpy(dtype=bool, copy=True) if "review" in train
              else np.zeros(len(train), dtype=bool))
    rows: list[tuple[str, int, int]] = []
    for label, n in counts.items():
        need = target - n
        if need <= 0:
            continue
        mine = labels == label
        pick = mine & ~review if (mine & ~review).any() else mine
        sources = np.sort(ids[pick])
        sources = sources[class_rng(params.seed, label).permutation(len(sources))]
        need = min(need, params.max_copies_per_source * len(sources))
        for j in range(need):
            rows.append((label, int(sources[j % len(sources)]), j // len(sources)))
    plan = pd.DataFrame(rows, columns=["label", "source_id", "copy"])
    plan.insert(0, "id", np.arange(len(plan), dtype=np.int64))
    plan["seed"] = [copy_seed(params.seed, s, k) for s, k in
                    zip(plan["source_id"], plan["copy"])]
    return plan.astype({"source_id": "int64", "copy": "int64", "seed": "int64"})


def balance_target_count(counts: dict[str, int], balance_target: float) -> int:
    """The count every class is brought up to: ``ceil(balance_target * largest)``."""
    return math.ceil(balance_target * max(counts.values()) - 1e-9) if counts else 0


def copy_seed(seed: int, source_id: int, copy: int) -> int:
    """The seed of copy ``copy`` of ``source_id``: independent of the order copies are
    made in, so adding a class does not change the other copies' bytes."""
    return int(np.random.SeedSequence([seed, source_id, copy]).generate_state(1)[0])


# --------------------------------------------------------------------------- make
@dataclass
class Copies:
    """The copies made: ``records`` (one row per copy), ``png`` (encoded files, same
    order), ``tensors`` (A, H, W, C) uint8."""

    records: pd.DataFrame
    png: list[bytes]
    tensors: np.ndarray


def make_copies(plan: pd.DataFrame, sources: pd.DataFrame, *, root: Path,
                params: AugmentParams, size: int, tensor_size: int, channels: int,
                max_pixels: int, limits: Limits | None = None) -> Copies:
    """Decode each source once from ``root / path`` and make its copies.

    ``sources``: clean rows with ``id`` and ``path`` (and the manifest's ``bytes`` and
    ``sha256``: each file is reopened through :func:`dataqa.dataset.reopen.reopen`, so a
    file changed since the scan is an error naming it); ``size``: side of the PNG
    copies; ``tensor_size``/``channels``: the geometry of ``tensors`` the copies must
    match. ``limits`` default to ``max_pixels`` alone.
    """
    limits = limits or Limits(max_pixels)
    root = root.resolve()
    get_policy(params, size=size)  # a bad key fails before any decoding
    mode = {1: "L", 3: "RGB"}.get(channels)
    if mode is None:
        raise StageInputError(f"tensors have {channels} channels; expected 1 or 3")
    path_of = dict(zip(sources["id"].astype(int), sources["path"].astype(str)))
    ids = sources["id"].astype(int)
    size_of = dict(zip(ids, (optional_int(v) for v in sources["bytes"]))) \
        if "bytes" in sources else {}
    sha_of = dict(zip(ids, (optional(v) for v in sources["sha256"]))) \
        if "sha256" in sources else {}
    n = len(plan)
    tensors = np.zeros((n, tensor_size, tensor_size, channels), dtype=np.uint8)
    png: list[bytes] = [b""] * n
    measured = np.zeros((n, 5))
    transforms: list[str] = [""] * n
    cache: dict[tuple[int, int], tuple[Any, str]] = {}
    for source_id, group in plan.groupby("source_id", sort=True):
        rel = path_of[int(source_id)]
        image = _decode(root, rel, mode=mode, limits=limits,
                        size=size_of.get(int(source_id)), sha256=sha_of.get(int(source_id)))
        shape = image.shape[:2]
        key = shape if params.geometry == "shortest" else (0, 0)
        if key not in cache:  # "longest" needs one Compose for all sources
            t = build_transform(params, size=size, source_shape=shape)
            cache[key] = (t, json.dumps(to_dict(t), sort_keys=True))
        transform, serial = cache[key]
        for i, seed in zip(group.index, group["seed"]):
            out = apply_transform(transform, image, seed=int(seed))
            png[i] = encode_png(out.image)
            boxed, _ = letterbox(out.image, tensor_size)
            tensors[i] = boxed.reshape(tensor_size, tensor_size, channels)
            measured[i] = (out.scale_x, out.scale_y, out.aspect_change, out.area_kept,
                           out.padding)
            transforms[i] = serial
    records = plan.copy()
    records["path"] = [f"{IMAGES}/{i:07d}.png" for i in records["id"]]
    records["source_path"] = records["source_id"].map(path_of).astype("string")
    records["transform"] = pd.Series(transforms, dtype="string")
    records["width"] = size
    records["height"] = size
    for k, col in enumerate(("scale_x", "scale_y", "aspect_change", "area_kept", "padding")):
        records[col] = measured[:, k]
    records["row"] = records["id"]  # row of augmented_tensors
    return Copies(records, png, tensors)


def _decode(root: Path, rel: str, *, mode: str, limits: Limits, size: int | None,
            sha256: str | None) -> np.ndarray:
    im = reopen(root, rel, size=size, sha256=sha256, limits=limits)
    return np.asarray(im.convert(mode) if im.mode != mode else im)


def encode_png(image: np.ndarray) -> bytes:
    """PNG bytes of an (H, W[, 1 | 3]) uint8 array; deterministic (no timestamps)."""
    arr = image[..., 0] if image.ndim == 3 and image.shape[2] == 1 else image
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG", compress_level=6)
    return buf.getvalue()


# --------------------------------------------------------------------------- metrics
def summarize(plan: pd.DataFrame, train: pd.DataFrame, records: pd.DataFrame, *,
              params: AugmentParams, size: int, seconds: float) -> dict[str, Any]:
    """The ``augment_metrics`` document."""
    before = class_counts(train["label"])
    copies = class_counts(plan["label"], before)
    after = {c: before[c] + copies[c] for c in before}
    target = balance_target_count(before, params.balance_target)
    below = [c for c, n in after.items() if n < target]

    def stat(col: str, how: str) -> float | None:
        if records.empty:
            return None
        return float(getattr(records[col], how)())

    return {
        "n_copies": len(plan),
        "size": size,
        "balance_target": params.balance_target,
        "target_count": target,
        "target_reached": not below,
        "classes_below_target": below,
        "per_class": {c: {"before": before[c], "copies": copies[c], "after": after[c]}
                      for c in before},
        "imbalance_ratio_before": imbalance_ratio(before, skip_empty=False),
        "imbalance_ratio_after": imbalance_ratio(after, skip_empty=False),
        "distortion": {
            "aspect_change_max": stat("aspect_change", "max"),
            "aspect_change_mean": stat("aspect_change", "mean"),
            "area_cropped_mean": None if records.empty else float(1 - records["area_kept"].mean()),
            "area_cropped_max": None if records.empty else float(1 - records["area_kept"].min()),
            "padding_mean": stat("padding", "mean"),
        },
        "policy": {"geometry": params.geometry, "min_area": params.min_area,
                   "rotate_limit": params.rotate_limit, "hflip": params.hflip,
                   "brightness_contrast": params.brightness_contrast, "seed": params.seed},
        "seconds": round(seconds, 3),
    }
