"""Image-quality checks (dark, light, blurry, low_information, grayscale,
odd_aspect_ratio, odd_size): planted truth on real photos and real digits, and the
rules (relative thresholds, floors, absolute bounds, per class) on exact statistics."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest
from imagesets import MNIST_MISSING, manifest_of, mnist_manifest, photo_crops, placeholder
from PIL import Image, ImageFilter

from dataqa.checks import AuditContext, get_check
from dataqa.dataset.manifest import COLUMNS

QUALITY = ["dark", "light", "blurry", "low_information", "grayscale", "odd_aspect_ratio",
           "odd_size"]
N_PHOTOS = 48


def run(manifest: pd.DataFrame, name: str, settings: dict | None = None):
    return get_check(name)(settings).find(AuditContext(manifest=manifest))


def flagged(manifest: pd.DataFrame, name: str, settings: dict | None = None) -> list[int]:
    res = run(manifest, name, settings)
    return np.flatnonzero(res.frame[f"is_{name}_issue"].to_numpy()).tolist()


# --------------------------------------------------------------------------- real photos
def _scale(a: np.ndarray, f: float) -> np.ndarray:
    return (a.astype(np.float64) * f).round().astype(np.uint8)


def _resize(a: np.ndarray, w: int, h: int) -> np.ndarray:
    return np.asarray(Image.fromarray(a).resize((w, h), Image.Resampling.LANCZOS))


# (name, how to make it from the photo crops, the checks that must flag it)
PHOTO_PLANTS: list[tuple[str, Callable[[list[np.ndarray]], np.ndarray], set[str]]] = [
    # a placeholder picture carries no information, and it is grey among colour photos
    ("placeholder", lambda ph: placeholder(), {"low_information", "grayscale"}),
    # a copy at 30% brightness is dark against its peers (and nothing else)
    ("darkened", lambda ph: _scale(ph[1], 0.3), {"dark"}),
    # washed out: shadows lifted to 60% grey
    ("brightened", lambda ph: (ph[2] * 0.4 + 153).astype(np.uint8), {"light"}),
    # a blur of ~2.5% of the width is visible at the 64 px statistics size
    ("blurred", lambda ph: np.asarray(Image.fromarray(ph[3]).filter(
        ImageFilter.GaussianBlur(8))), {"blurry"}),
    # a grey copy in a colour dataset
    ("grey", lambda ph: np.asarray(Image.fromarray(ph[4]).convert("L").convert("RGB")),
     {"grayscale"}),
    # a 5:1 strip among 4:3..3:2 landscapes
    ("strip", lambda ph: _resize(ph[5], 400, 80), {"odd_aspect_ratio"}),
    # a 64x48 thumbnail among ~300 px photos (not enlarged past 64 px: not blurry)
    ("thumbnail", lambda ph: _resize(ph[6], 64, 48), {"odd_size"}),
]


@pytest.fixture(scope="module")
def photo_set() -> pd.DataFrame:
    crops = photo_crops(N_PHOTOS, seed=0)
    images = crops + [make(crops) for _, make, _ in PHOTO_PLANTS]
    return manifest_of(images, ["photo"] * len(images))


@pytest.mark.parametrize("name", QUALITY)
def test_photo_plants_found_exactly(photo_set, name):
    expected = [N_PHOTOS + i for i, (_, _, checks) in enumerate(PHOTO_PLANTS)
                if name in checks]
    assert flagged(photo_set, name) == expected  # every planted row, no real photo


def test_photo_scores_below_half_exactly_when_flagged(photo_set):
    for name in QUALITY:
        frame = run(photo_set, name).frame
        assert ((frame[f"{name}_score"] < 0.5) == frame[f"is_{name}_issue"]).all(), name


# --------------------------------------------------------------------------- real digits
@pytest.mark.slow  # ~15 s: the scan statistics of 10,000 digits
def test_mnist_digits_rarely_flagged():
    m = mnist_manifest(10_000)
    if m is None:
        pytest.skip(MNIST_MISSING)
    any_flag = np.zeros(len(m), dtype=bool)
    for name in QUALITY:
        res = run(m, name)
        any_flag |= res.frame[f"is_{name}_issue"].to_numpy()
        # grayscale never fires in a grayscale dataset; geometry is uniform
        if name in ("grayscale", "odd_aspect_ratio", "odd_size", "light"):
            assert res.n_issues == 0, name
    # CleanVision 0.3.7 flags all 10,000 as low_information and grayscale
    assert any_flag.mean() < 0.02
    assert any_flag.sum() < 50  # measured: 0 of 10,000


# --------------------------------------------------------------------------- exact rules
def stat_manifest(labels: list[str] | None = None, *, broken: tuple[int, ...] = (),
                  **columns: list[float] | np.ndarray) -> pd.DataFrame:
    """A manifest whose statistics are given exactly; unspecified ones are those of a
    plain mid-grey-ish photo."""
    n = len(next(iter(columns.values())))
    base = {"stat_mean": 0.45, "stat_std": 0.22, "stat_p05": 0.1, "stat_p95": 0.85,
            "stat_entropy": 7.0, "stat_colorfulness": 0.08, "stat_blur": 0.02,
            "stat_gradient": 0.05, "stat_bpp": 4.0, "width": 300, "height": 225}
    frame = pd.DataFrame({c: None for c in COLUMNS}, index=range(n))
    for key, value in base.items():
        frame[key] = columns.get(key, [value] * n)
    frame["id"] = np.arange(n)
    frame["bytes"] = 1
    frame["path"] = [f"{i}.png" for i in range(n)]
    frame["label"] = labels if labels is not None else ["a"] * n
    frame["split"] = "train"
    frame.loc[list(broken), "decode_error"] = "truncated: planted"
    return frame.astype(COLUMNS)


def _spread(n: int, center: float, rel: float, seed: int = 0) -> np.ndarray:
    """n values around ``center``, multiplicative spread ``rel`` (reproducible)."""
    return center * np.exp(np.random.default_rng(seed).uniform(-rel, rel, n))


N = 40
DIM = _spread(N, 0.05, 0.2)  # highlight levels of a near-black dataset (~13/255)


@pytest.mark.parametrize(("name", "settings", "columns", "expected"), [
    # near-black dataset: every image is dark by the absolute bound, none relatively
    ("dark", None, {"stat_p95": DIM, "stat_mean": DIM / 4, "stat_std": DIM / 4,
                    "stat_p05": 0 * DIM}, list(range(N))),
    # same dataset with the absolute bound switched off: relative only, nothing
    ("dark", {"absolute_max": None}, {"stat_p95": DIM, "stat_mean": DIM / 4,
                                      "stat_std": DIM / 4, "stat_p05": 0 * DIM}, []),
    # near-white dataset: light by the absolute bound
    ("light", None, {"stat_p05": 1 - DIM / 4, "stat_mean": 1 - DIM / 8,
                     "stat_std": DIM / 10, "stat_p95": 1 - 0 * DIM}, list(range(N))),
    ("light", {"absolute_min": None}, {"stat_p05": 1 - DIM / 4, "stat_mean": 1 - DIM / 8,
                                       "stat_std": DIM / 10, "stat_p95": 1 - 0 * DIM}, []),
    # flat frames (std 0) carry nothing in any dataset
    ("low_information", None, {"stat_std": [0.0] * N, "stat_entropy": [0.0] * N},
     list(range(N))),
    ("low_information", {"absolute_max_std": None},
     {"stat_std": [0.0] * N, "stat_entropy": [0.0] * N}, []),
    # a dataset of 12:1 strips: odd by the absolute bound; without it, uniform, nothing
    ("odd_aspect_ratio", None, {"width": [1200] * N, "height": [100] * N}, list(range(N))),
    ("odd_aspect_ratio", {"absolute_max_ratio": None},
     {"width": [1200] * N, "height": [100] * N}, []),
])
def test_absolute_bounds(name, settings, columns, expected):
    assert flagged(stat_manifest(**columns), name, settings) == expected


def _uniform_columns() -> dict[str, np.ndarray]:
    # 40 near-identical images: every statistic within +-2% of one value
    return {k: _spread(N, v, 0.02, seed=i) for i, (k, v) in enumerate(
        {"stat_mean": 0.45, "stat_std": 0.22, "stat_p05": 0.1, "stat_p95": 0.85,
         "stat_entropy": 7.0, "stat_blur": 0.02, "stat_gradient": 0.05,
         "stat_colorfulness": 0.08}.items())}


@pytest.mark.parametrize("name", QUALITY)
def test_uniform_dataset_not_flagged(name):
    # MAD is tiny here: without the floor, +-2% would read as many sigmas
    assert flagged(stat_manifest(**_uniform_columns()), name) == []


LEVELS = ("stat_mean", "stat_std", "stat_p05", "stat_p95")


def _darken(f: float) -> dict[str, Callable[[float], float]]:
    return {c: (lambda v, f=f: v * f) for c in LEVELS}  # every level scales


def _wash_out(f: float) -> dict[str, Callable[[float], float]]:
    # x -> f x + (1 - f): levels move towards white, the spread shrinks
    return {c: (lambda v, f=f: v * f) if c == "stat_std" else (lambda v, f=f: v * f + 1 - f)
            for c in LEVELS}


def _set(column: str, value: float) -> dict[str, Callable[[float], float]]:
    return {column: lambda v: value}


@pytest.mark.parametrize(("name", "change", "expected_flag"), [
    ("dark", _darken(0.25), True),  # a copy at 25% brightness
    ("light", _wash_out(0.4), True),  # shadows lifted to 60% grey
    ("blurry", _set("stat_blur", 0.002), True),  # a tenth of the Laplacian energy
    ("low_information", _set("stat_entropy", 1.0), True),  # 1 bit against 7: a placeholder
    ("grayscale", _set("stat_colorfulness", 0.0), True),  # grey among colour
    # 30x225 is not enlarged (its longer side is the usual one): not odd_size...
    ("odd_size", _set("width", 30), False),
    ("odd_aspect_ratio", _set("width", 30), True),  # ...but a 2:15 portrait among 4:3
    ("odd_size", _set("width", 100), False),  # 100x225: longer side 225, not enlarged
    ("odd_aspect_ratio", _set("width", 150), False),  # 2:3 portrait among 4:3: normal
    ("dark", _darken(0.85), False),  # 15% dimmer: within the floor
    ("light", _wash_out(0.9), False),  # slightly washed out: ordinary
    ("blurry", _set("stat_blur", 0.015), False),  # 25% less Laplacian energy: ordinary
    ("low_information", _set("stat_entropy", 6.5), False),  # half a bit less: ordinary
    ("low_information", _set("stat_entropy", 3.0), False),  # 3 bits (posterised): 43%, kept
    ("odd_size", _set("width", 260), False),  # 260x225 vs 300x225: ordinary
])
def test_one_planted_row(name, change, expected_flag):
    cols = _uniform_columns()
    cols["width"], cols["height"] = np.full(N, 300.0), np.full(N, 225.0)
    for column, fn in change.items():
        cols[column] = np.asarray(cols[column], dtype=float).copy()
        cols[column][5] = fn(cols[column][5])
    assert flagged(stat_manifest(**cols), name) == ([5] if expected_flag else [])


def test_per_class_reference():
    # class "night" is uniformly dim (highlight ~0.3), class "day" bright (~0.9);
    # nothing is dark within its class. A dim image filed under "day" is.
    night, day = _spread(30, 0.3, 0.1, 1), _spread(30, 0.9, 0.05, 2)
    p95 = np.concatenate([night, day, [0.3]])
    labels = ["night"] * 30 + ["day"] * 30 + ["day"]
    m = stat_manifest(labels, stat_p95=p95, stat_mean=p95 / 2, stat_std=p95 / 4,
                      stat_p05=p95 / 10)
    assert flagged(m, "dark") == [60]


def test_small_class_uses_the_whole_dataset():
    # class "rare" has 5 images (< min_class_size 20): compared with all 45, its dim
    # images stand out; with min_class_size 5 it is its own reference and they do not
    p95 = np.concatenate([_spread(40, 0.9, 0.05, 3), _spread(5, 0.3, 0.05, 4)])
    labels = ["common"] * 40 + ["rare"] * 5
    m = stat_manifest(labels, stat_p95=p95, stat_mean=p95 / 2, stat_std=p95 / 4,
                      stat_p05=p95 / 10)
    assert flagged(m, "dark") == [40, 41, 42, 43, 44]
    assert flagged(m, "dark", {"min_class_size": 5}) == []


@pytest.mark.parametrize("name", QUALITY)
def test_undecodable_rows_never_flagged(name):
    # rows 3 and 7 did not decode; their (NaN) statistics are not judged
    cols = _uniform_columns()
    m = stat_manifest(broken=(3, 7), **cols)
    for c in cols:
        m.loc[[3, 7], c] = np.nan
    res = run(m, name)
    assert not res.frame[f"is_{name}_issue"].iloc[[3, 7]].any()
    assert (res.frame[f"{name}_score"].iloc[[3, 7]] == 1.0).all()


@pytest.mark.parametrize(("n_grey", "expected"), [
    (4, [0, 1, 2, 3]),  # 36 of 40 colour (90% >= 80%): the grey ones are flagged
    (8, [0, 1, 2, 3, 4, 5, 6, 7]),  # exactly 80% colour: still a colour dataset
    (9, []),  # 77.5% colour: a mixed dataset, grey is normal
    (40, []),  # all grey (MNIST): never flagged
])
def test_grayscale_only_in_a_colour_dataset(n_grey, expected):
    colour = np.where(np.arange(N) < n_grey, 0.002, 0.08)  # 0.002: JPEG-grey noise
    assert flagged(stat_manifest(stat_colorfulness=colour), "grayscale") == expected


def test_summary_explains_thresholds():
    m = stat_manifest(**_uniform_columns())
    summary = run(m, "dark").summary
    ref = summary["reference"]
    assert ref["below"] < ref["median"] and ref["scale_is_floor"]
    assert "highlight level" in summary["formula"] and "3.5" in summary["rule"]


# --------------------------------------------------------------------------- photo geometry
def _geometry(widths: list[float], heights: list[float]) -> pd.DataFrame:
    return stat_manifest(width=np.asarray(widths, float), height=np.asarray(heights, float))


def test_aspect_ratio_is_orientation_symmetric_and_flags_wasted_padding():
    rng = np.random.default_rng(0)
    # 30 landscape 3:2 and 4:3 photos, 12 of them turned to portrait; one 3.2:1 banner
    w = rng.choice([1500.0, 1600.0], 30)
    h = np.where(w == 1500.0, 1000.0, 1200.0)
    w[:12], h[:12] = h[:12].copy(), w[:12].copy()
    w, h = np.r_[w, 1600.0], np.r_[h, 500.0]
    res = get_check("odd_aspect_ratio")().find(AuditContext(manifest=_geometry(w, h),
                                                            image_size=224))
    assert np.flatnonzero(res.frame["is_odd_aspect_ratio_issue"]).tolist() == [30]
    reason = res.frame["odd_aspect_ratio_reason"].iloc[30]
    assert "3.2:1" in reason and "69% of the 224 px training square is padding" in reason


def test_panorama_dataset_is_reported_not_flagged_wholesale():
    res = run(_geometry([3000.0] * N, [1000.0] * N), "odd_aspect_ratio")
    assert res.n_issues == 0
    assert "padding" in res.summary["warnings"][0]


def test_odd_size_flags_only_what_the_training_size_enlarges():
    # photos from 200 to 2592 px: ordinary variation at any training size
    sides = np.geomspace(200, 2592, 40)
    m = _geometry(list(sides.round()), list((sides * 0.75).round()))
    for size in (32, 224):
        assert get_check("odd_size")().find(AuditContext(manifest=m, image_size=size)
                                            ).n_issues == 0
    # photos from 300 to 1200 px and one 96x72 thumbnail
    sides = np.r_[np.geomspace(300, 1200, 40), 96.0]
    m = _geometry(list(sides.round()), list((sides * 0.75).round()))
    flagged_at = {}
    for size in (32, 224):
        res = get_check("odd_size")().find(AuditContext(manifest=m, image_size=size))
        flagged_at[size] = np.flatnonzero(res.frame["is_odd_size_issue"]).tolist()
    assert flagged_at[32] == []  # 64 px shrinks to 32: nothing lost
    assert flagged_at[224] == [40]  # enlarged 3.5x
    res = get_check("odd_size")().find(AuditContext(manifest=m, image_size=224))
    assert "enlarged 2.3x to the 224 px training size" in res.frame["odd_size_reason"].iloc[40]
    # a 280 px image among 28 px ones is extreme whatever the training size
    extreme = get_check("odd_size")().find(AuditContext(
        manifest=_geometry([28.0] * N + [280.0], [28.0] * N + [280.0]), image_size=32))
    assert np.flatnonzero(extreme.frame["is_odd_size_issue"]).tolist() == [N]


def test_small_dataset_at_a_large_training_size_is_one_warning():
    res = get_check("odd_size")().find(AuditContext(manifest=_geometry([32.0] * N, [32.0] * N),
                                                    image_size=224))
    assert res.n_issues == 0 and "engine.image_size" in res.summary["warnings"][0]
