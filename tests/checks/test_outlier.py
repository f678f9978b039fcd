"""outlier: real photos planted among real MNIST digits, a placeholder picture among
real photos, far embeddings; digits that are only darker, blurrier or larger are the
image-quality checks' and must not be flagged here."""

from __future__ import annotations

import numpy as np
import pytest
from imagesets import MNIST_MISSING, base_photos, load_mnist, manifest_of, photo_crops, placeholder
from PIL import Image, ImageFilter

from dataqa.checks import AuditContext, get_check
from dataqa.errors import ParamsError

PER_CLASS = 30


def run(ctx: AuditContext, settings: dict | None = None):
    return get_check("outlier")(settings).find(ctx)


def flagged(ctx: AuditContext, settings: dict | None = None) -> list[int]:
    return np.flatnonzero(run(ctx, settings).frame["is_outlier_issue"]).tolist()


def small(photo: np.ndarray, side: int) -> np.ndarray:
    im = Image.fromarray(photo)
    return np.asarray(im.resize((side, round(side * im.height / im.width)),
                                Image.Resampling.LANCZOS))


@pytest.fixture(scope="module")
def digits_with_photos():
    data = load_mnist()
    if data is None:
        pytest.skip(MNIST_MISSING)
    x, y = data
    idx = np.concatenate([np.flatnonzero(y == c)[:PER_CLASS] for c in range(10)])
    images = [x[i] for i in idx]
    labels = [str(y[i]) for i in idx]
    photos = base_photos()
    planted = {  # row -> what it is
        len(images): "photo", len(images) + 1: "photo", len(images) + 2: "photo"}
    images += [small(photos[0], 90), small(photos[1], 64), small(photos[4], 120)]
    labels += ["3", "5", "8"]
    quality = [  # a digit's own problems: not outliers
        (x[idx[5]] * 0.15).astype(np.uint8),  # dark
        np.asarray(Image.fromarray(x[idx[40]]).filter(ImageFilter.GaussianBlur(1.5))),  # blurry
        np.asarray(Image.fromarray(x[idx[70]]).resize((84, 84))),  # upscaled x3
        np.asarray(Image.fromarray(x[idx[100]]).resize((56, 28))),  # stretched 2:1
    ]
    images += quality
    labels += ["0", "1", "2", "3"]
    return manifest_of(images, labels, broken=[7]), planted


def test_photos_among_digits(digits_with_photos):
    manifest, planted = digits_with_photos
    res = run(AuditContext(manifest=manifest))
    f = res.frame
    assert np.flatnonzero(f["is_outlier_issue"]).tolist() == sorted(planted)
    assert (f.loc[sorted(planted), "outlier_score"] < 0.5).all()
    assert f.loc[7, "outlier_score"] == 1.0  # undecodable: integrity's, never flagged
    assert all(r.startswith("statistics unlike the rest")
               for r in f.loc[sorted(planted), "outlier_reason"])
    assert f["outlier_reason"].isna().sum() == len(f) - len(planted)
    assert res.summary["by_evidence"] == {"stats": 3}


def test_placeholder_among_photos():
    photos = photo_crops(40, seed=1)
    images = photos + [placeholder()]
    manifest = manifest_of(images, ["photo"] * len(images))
    assert flagged(AuditContext(manifest=manifest)) == [40]


def test_screenshot_among_photos_but_not_a_photo_with_one_problem():
    """A screenshot differs from photos in entropy, compressed size and brightness at
    once: flagged. A washed-out photo (its contrast x 0.6: brighter, the rest dragged
    along a little) or one of another size and aspect is the image-quality checks'
    business. (At contrast x 0.25 a photo is as flat as the screenshot, and flagged.)"""
    from tests.photoset import screenshot

    photos = photo_crops(40, seed=2)
    washed = (255 - (255 - photos[3].astype(np.float64)) * 0.6).astype(np.uint8)
    wide = np.asarray(Image.fromarray(photos[4]).resize((photos[4].shape[1] * 3,
                                                          photos[4].shape[0])))
    images = photos + [np.asarray(screenshot()), washed, wide]
    manifest = manifest_of(images, ["photo"] * len(images))
    assert flagged(AuditContext(manifest=manifest)) == [40]


@pytest.mark.parametrize("far, expected", [
    ([], []),  # tight clusters: nothing flagged
    ([11, 42], [11, 42]),  # two embeddings far from every other
    ([3, 4, 5, 6, 7], [3, 4, 5, 6, 7]),  # a small far-away clump: still far from the rest
])
def test_embedding_evidence(far, expected):
    rng = np.random.default_rng(0)
    n, k = 90, 3
    labels = np.arange(n) % k
    centers = rng.normal(0, 1, (k, 16)) * 10
    emb = centers[labels] + rng.normal(0, 1, (n, 16))
    emb[far] = rng.normal(0, 1, (len(far), 16)) * 10 + 40 * rng.normal(0, 1, 16)
    manifest = manifest_of([np.full((8, 8), 9, np.uint8)] * n, [str(v) for v in labels])
    ctx = AuditContext(manifest=manifest, labels=labels, embeddings=emb.astype(np.float32))
    assert flagged(ctx, {"use_stats": False}) == expected


def test_rows_without_embeddings_are_not_flagged():
    rng = np.random.default_rng(1)
    emb = (np.eye(8)[0] * 10 + rng.normal(0, 1, (40, 8))).astype(np.float32)
    emb[:3] = np.nan  # undecodable rows carry NaN embeddings
    emb[10] = np.eye(8)[1] * 10  # cosine distance: another direction is far
    manifest = manifest_of([np.zeros((4, 4), np.uint8)] * 40, ["a"] * 40, broken=[0, 1, 2])
    res = run(AuditContext(manifest=manifest, embeddings=emb), {"use_stats": False})
    assert np.flatnonzero(res.frame["is_outlier_issue"]).tolist() == [10]
    assert res.frame.loc[[0, 1, 2], "outlier_score"].tolist() == [1.0, 1.0, 1.0]


@pytest.mark.parametrize("settings, key", [
    ({"threshold": 0}, "threshold"),  # every image would be an outlier
    ({"stats_threshold": -1.0}, "stats_threshold"),
    ({"neighbors": 0}, "neighbors"),
    ({"use_embeddings": False, "use_stats": False}, "outlier"),  # no evidence left
])
def test_settings_validated(settings, key):
    with pytest.raises(ParamsError, match=key):
        get_check("outlier")(settings)
