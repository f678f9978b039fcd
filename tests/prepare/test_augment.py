"""The augment stage: aspect kept (measured on the pixels), crop bound, determinism,
balancing to the target, and the recorded transform reproducing every copy."""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from skimage import data as skdata

from dataqa.augmentation import apply_transform, build_transform, from_dict
from dataqa.params import AugmentParams
from dataqa.prepare import augment as aug
from dataqa.prepare import subsample as sub
from dataqa.report.augment_grid import get_augmentation_grid
from dataqa.steps import augment as augment_step
from dataqa.steps import filter as filter_step

S = 64


def photo(name: str) -> np.ndarray:
    """A real photo from skimage.data with 0 lifted to 1, so padding (0) is measurable."""
    return np.maximum(getattr(skdata, name)(), 1)


def planted(h: int, w: int) -> np.ndarray:
    rng = np.random.default_rng(h * 1000 + w)
    return rng.integers(1, 256, (h, w, 3), dtype=np.uint8)


def content_box(img: np.ndarray) -> tuple[int, int, int, int]:
    nz = img.reshape(img.shape[0], img.shape[1], -1).max(axis=2) > 0
    rows, cols = np.flatnonzero(nz.any(1)), np.flatnonzero(nz.any(0))
    return int(rows[0]), int(cols[0]), int(rows[-1] - rows[0] + 1), int(cols[-1] - cols[0] + 1)


IMAGES = [
    ("astronaut", lambda: photo("astronaut")),  # real photo, square RGB 512x512
    ("coffee", lambda: photo("coffee")),  # real photo, wide 400x600
    ("chelsea", lambda: photo("chelsea")),  # real photo, wide with odd width 300x451
    ("rocket", lambda: photo("rocket")),  # real photo, wide 427x640
    ("camera", lambda: photo("camera")),  # real photo, grayscale 2-D 512x512
    ("tall", lambda: planted(90, 30)),  # planted: tall 3:1
    ("wide", lambda: planted(20, 100)),  # planted: wide 5:1
    ("square", lambda: planted(50, 50)),  # planted: square, upscaled
    ("sliver", lambda: planted(3, 100)),  # planted: extreme 1:33
]


@pytest.mark.parametrize("name, make", IMAGES)
def test_longest_geometry_keeps_the_aspect_ratio_exactly(name, make):
    """No crop, no rotation: the non-padded content box of the copy is the source scaled
    by S / longer side (rounded like the letterbox), centred."""
    src = make()
    h, w = src.shape[:2]
    params = AugmentParams(geometry="longest", min_area=1.0, rotate_limit=0,
                           brightness_contrast=0.0, hflip=True)
    out = apply_transform(build_transform(params, size=S, source_shape=(h, w)), src, seed=1)
    ch, cw = max(1, round(h * S / max(h, w))), max(1, round(w * S / max(h, w)))
    top, left = (S - ch) // 2, (S - cw) // 2
    flipped = S - cw - left  # a horizontal flip mirrors the odd padding column
    assert content_box(out.image) in {(top, left, ch, cw), (top, flipped, ch, cw)}
    assert abs(cw / ch - w / h) <= (w / h) * (1 / ch + 1 / cw)  # aspect within rounding
    assert out.aspect_change < 1e-5  # the measured pixel scale is isotropic
    assert out.padding == pytest.approx(1 - ch * cw / S**2)


@pytest.mark.parametrize("name, make", IMAGES)
def test_full_policy_never_distorts(name, make):
    """Zoom, rotation, flip and brightness: the measured scale stays isotropic and the
    crops keep at least min_area (rotation off here: its corners are not a crop)."""
    src = make()
    for rotate, check_area in ((20.0, False), (0.0, True)):
        params = AugmentParams(min_area=0.6, rotate_limit=rotate, hflip=True)
        t = build_transform(params, size=S, source_shape=src.shape[:2])
        for seed in range(4):
            out = apply_transform(t, src, seed=seed)
            assert out.aspect_change < 1e-5
            if check_area:
                assert out.area_kept >= 0.6 - 2 / S


SHORTEST = [
    # (H, W), min_area, share the fill crop keeps, padded?
    ((60, 60), 0.6, 1.0, False),  # square: nothing to crop, zoom alone
    ((40, 60), 0.6, 64 / 96, False),  # 3:2 fills the square keeping 2/3 >= 0.6
    ((20, 80), 0.6, 154 / 256, True),  # 4:1: crop stops at 0.6, the rest is padded
    ((80, 20), 0.6, 154 / 256, True),  # 1:4, the same standing up
    ((30, 90), 0.5, 96 / 192, True),  # 3:1 with min_area 0.5: exactly half kept
]


@pytest.mark.parametrize("shape, min_area, fill_kept, padded", SHORTEST)
def test_shortest_geometry_respects_the_crop_area_bound(shape, min_area, fill_kept, padded):
    params = AugmentParams(geometry="shortest", min_area=min_area, rotate_limit=0,
                           brightness_contrast=0.0)
    t = build_transform(params, size=S, source_shape=shape)
    src = planted(*shape)
    kept = []
    for seed in range(12):
        out = apply_transform(t, src, seed=seed)
        assert out.aspect_change < 1e-5
        assert out.area_kept >= min_area - 2 / S  # a pixel of rounding per side
        assert (out.padding > 0) == padded
        kept.append(out.area_kept)
    assert max(kept) <= fill_kept + 2 / S  # the fill crop bounds what zoom can keep


def test_same_seed_same_bytes_and_record_reproduces():
    src = photo("coffee")
    t = build_transform(AugmentParams(hflip=True, min_area=0.6), size=S)
    a = aug.encode_png(apply_transform(t, src, seed=5).image)
    b = aug.encode_png(apply_transform(t, src, seed=5).image)
    c = aug.encode_png(apply_transform(t, src, seed=6).image)
    rebuilt = from_dict(json.loads(json.dumps(aug.to_dict(t))))
    assert a == b and a != c
    assert aug.encode_png(apply_transform(rebuilt, src, seed=5).image) == a


PLANS = [
    # counts, review ids, params, copies per class, sources used
    ({"a": 6, "b": 2, "c": 1}, [], dict(balance_target=1.0),
     {"b": 4, "c": 5}, {"b": 2, "c": 1}),  # everyone up to 6; b's two images twice each
    ({"a": 6, "b": 2, "c": 1}, [], dict(balance_target=0.5),
     {"b": 1, "c": 2}, {"b": 1, "c": 1}),  # target ceil(0.5 * 6) = 3: b +1, c +2
    ({"a": 6, "b": 2, "c": 1}, [], dict(balance_target=1.0, max_copies_per_source=2),
     {"b": 4, "c": 2}, {"b": 2, "c": 1}),  # the cap stops c at 1 + 2 (target missed)
    ({"a": 4, "b": 3}, [4], dict(balance_target=1.0),
     {"b": 1}, {"b": 1}),  # b's reviewed image (id 4) is no source when others exist
    ({"a": 3, "b": 3}, [], dict(balance_target=1.0), {}, {}),  # balanced: nothing to do
]


@pytest.mark.parametrize("counts, review, kw, copies, n_sources", PLANS)
def test_plan_copies(counts, review, kw, copies, n_sources):
    labels = [c for c, n in counts.items() for _ in range(n)]
    train = pd.DataFrame({"id": np.arange(len(labels)), "label": labels,
                          "review": np.isin(np.arange(len(labels)), review)})
    plan = aug.plan_copies(train, params=AugmentParams(**kw))
    assert plan.groupby("label").size().to_dict() == copies
    assert plan.groupby("label")["source_id"].nunique().to_dict() == n_sources
    assert not plan["source_id"].isin(review).any()
    for _, group in plan.groupby("label"):  # round-robin: each class's sources used evenly
        used = group.groupby("source_id").size()
        assert used.max() - used.min() <= 1
    assert plan["id"].tolist() == list(range(len(plan)))
    again = aug.plan_copies(train, params=AugmentParams(**kw))
    assert again.equals(plan)  # seeded


def test_stage_balances_reproduces_and_leaves_sources_alone(prep_project):
    proj = prep_project({"cat": 8, "dog": 3, "owl": 2}, image_size=16,
                        augment={"balance_target": 1.0, "size": 24, "hflip": True},
                        split={"val_fraction": 0.25})
    p = proj.params
    before = proj.tree_digest()
    filter_step.run_stage(p)
    assert augment_step.run_stage(p) == 0
    metrics = json.loads(p.path("augment_metrics").read_text())
    # training pool: cat 8 - 2 val = 6, dog 3 - 1 = 2, owl 2 - 1 = 1; target 6
    assert metrics["per_class"] == {"cat": {"before": 6, "copies": 0, "after": 6},
                                    "dog": {"before": 2, "copies": 4, "after": 6},
                                    "owl": {"before": 1, "copies": 5, "after": 6}}
    assert metrics["target_reached"] and metrics["imbalance_ratio_after"] == 1.0
    assert metrics["imbalance_ratio_before"] == 6.0
    assert metrics["distortion"]["aspect_change_max"] < 1e-5
    man = pd.read_parquet(p.path("augmented_manifest"))
    assert len(man) == 9 and man["id"].tolist() == list(range(9))
    tensors = np.load(p.path("augmented_tensors"))
    assert tensors.shape == (9, 16, 16, 3) and tensors.dtype == np.uint8
    clean = pd.read_parquet(p.path("clean"))
    val_ids = clean.loc[sub.find_validation(clean, params=p.split), "id"]
    assert not man["source_id"].isin(val_ids).any()  # no copy of a validation image
    folder = p.path("augmented_dir")
    files = {r: (folder / r).read_bytes() for r in man["path"]}
    assert all(Image.open(io.BytesIO(b)).size == (24, 24) for b in files.values())
    # the record (transform + seed) reproduces a copy from the raw source, byte for byte
    rec = man.iloc[3]
    src = np.asarray(Image.open(proj.source / rec["source_path"]).convert("RGB"))
    again = apply_transform(from_dict(json.loads(rec["transform"])), src, seed=int(rec["seed"]))
    assert aug.encode_png(again.image) == files[rec["path"]]
    # rerunning gives the same bytes, and no leftovers of the temporary folders
    augment_step.run_stage(p)
    assert {r: (folder / r).read_bytes() for r in man["path"]} == files
    assert not [x for x in folder.parent.iterdir() if x.name.startswith(".augmented")]
    assert proj.tree_digest() == before  # raw files byte-identical


def test_augmentation_grid_for_the_report(prep_project):
    proj = prep_project({"cat": 5, "dog": 2}, broken=False,
                        augment={"balance_target": 1.0}, split={"val_fraction": 0.2})
    p = proj.params
    filter_step.run_stage(p)
    augment_step.run_stage(p)
    grid = get_augmentation_grid(p, per_class=2, thumb_size=48)
    assert [g["label"] for g in grid] == ["dog"] and grid[0]["copies"] == 3
    assert len(grid[0]["items"]) == 2
    for item in grid[0]["items"]:
        for key in ("before", "after"):
            im = Image.open(io.BytesIO(base64.b64decode(item[key])))
            assert im.format == "PNG" and max(im.size) <= 48
        assert item["caption"].startswith("copy ")


def test_copy_seeds_do_not_depend_on_other_classes():
    a = aug.copy_seed(0, 17, 2)
    assert a == aug.copy_seed(0, 17, 2)
    assert len({a, aug.copy_seed(1, 17, 2), aug.copy_seed(0, 18, 2), aug.copy_seed(0, 17, 3)}) == 4
