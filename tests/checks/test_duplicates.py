"""exact_duplicate and near_duplicate, and the neighbour search under them: planted
copies of real photos and real MNIST digits with exact expected groups."""

from __future__ import annotations

import hashlib
import io

import numpy as np
import pandas as pd
import pytest
from imagesets import MNIST_MISSING, base_photos, load_mnist
from PIL import Image

from dataqa.checks import AuditContext, get_check
from dataqa.checks.neighbors import get_groups, get_hamming_knn, get_hamming_pairs, get_knn
from dataqa.dataset.imageio import letterbox
from dataqa.dataset.imagestats import get_image_stats
from dataqa.dataset.manifest import COLUMNS
from dataqa.errors import ParamsError

SIZE = 32  # tensor side, as engine.image_size


# --------------------------------------------------------------------------- helpers
def encode(arr: np.ndarray, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, fmt, **kw)
    return buf.getvalue()


def decode(data: bytes) -> np.ndarray:
    im = Image.open(io.BytesIO(data))
    return np.asarray(im.convert("RGB" if im.mode not in ("L", "RGB") else im.mode))


def dataset(files: list[tuple[str, bytes, str]]) -> AuditContext:
    """Manifest + gray tensors of ``(path, file bytes, split)``, as scan and tensors
    would make them (statistics and hashes from the scan's own code)."""
    rows, tensors = [], []
    for i, (path, data, split) in enumerate(sorted(files)):
        img = Image.open(io.BytesIO(data))
        img.load()
        stats = get_image_stats(img)
        rows.append({c: None for c in COLUMNS} | stats | {
            "id": i, "path": path, "label": path.split("/")[0], "split": split,
            "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data),
            "width": img.width, "height": img.height, "mode": img.mode})
        tensors.append(letterbox(np.asarray(img.convert("L")), SIZE)[0][..., None])
    manifest = pd.DataFrame(rows, columns=list(COLUMNS)).astype(COLUMNS)
    return AuditContext(manifest=manifest, tensors=np.stack(tensors))


def groups_of(result, ctx: AuditContext) -> set[frozenset[str]]:
    """The groups of a result as sets of paths."""
    out: dict[int, set[str]] = {}
    for path, g in zip(ctx.manifest["path"], result.frame[f"{result.name}_group"]):
        if g >= 0:
            out.setdefault(int(g), set()).add(path)
    return {frozenset(v) for v in out.values()}


def run(name: str, ctx: AuditContext, settings: dict | None = None):
    return get_check(name)(settings).find(ctx)


# --------------------------------------------------------------------------- neighbours
def _brute_hamming(words: np.ndarray) -> np.ndarray:
    d = np.zeros((len(words), len(words)), dtype=np.int64)
    for w in range(words.shape[1]):
        d += np.bitwise_count(words[:, w, None] ^ words[None, :, w])
    return d


@pytest.mark.parametrize("exact_max_rows", [10_000, 0])  # exact index, then HNSW
def test_hamming_knn_finds_planted_pairs(exact_max_rows):
    rng = np.random.default_rng(0)
    codes = rng.integers(0, 2**63, size=(3000, 2), dtype=np.int64).astype(np.uint64)
    for i, bits in enumerate([0, 1, 3, 5, 6, 7, 9, 12]):  # planted pairs at known distances
        flip = sum(1 << int(b) for b in rng.choice(64, bits, replace=False))
        codes[100 + i] = codes[i] ^ np.array([flip, 0], dtype=np.uint64)
    dist, idx = get_hamming_knn(codes, k=4, exact_max_rows=exact_max_rows)
    full = _brute_hamming(codes)
    np.fill_diagonal(full, 10**6)
    assert (idx != np.arange(3000)[:, None]).all()
    assert (dist == full[np.arange(3000)[:, None], idx]).all()  # true distances
    assert (np.diff(dist, axis=1) >= 0).all()
    for i in range(8):  # each planted copy is its original's nearest
        assert idx[i, 0] == 100 + i and idx[100 + i, 0] == i
    if exact_max_rows:
        np.testing.assert_array_equal(dist, np.sort(full, axis=1)[:, :4])


@pytest.mark.parametrize("t", [0, 2, 4, 5])
def test_hamming_pairs_are_every_pair_within_t_on_both_codes(t):
    """Multi-index hashing finds exactly the pairs a brute force finds: within t bits
    on phash *and* on dhash (clusters of near codes, so many pairs sit near t)."""
    rng = np.random.default_rng(t)
    base = rng.integers(0, 2**63, size=(60, 2), dtype=np.int64).astype(np.uint64)
    codes = np.repeat(base, 25, axis=0)  # 60 clusters of 25 rows, 0..~2t bits apart
    for row in codes:
        for w in range(2):
            for b in rng.choice(64, rng.integers(0, t + 2), replace=False):
                row[w] ^= np.uint64(1) << np.uint64(int(b))
    codes = codes[rng.permutation(len(codes))]
    report: dict = {}
    keys = get_hamming_pairs(codes[:, 0], codes[:, 1], max_distance=t, k=64, report=report)
    n = len(codes)
    within = np.maximum(_brute_hamming(codes[:, :1]), _brute_hamming(codes[:, 1:])) <= t
    i, j = np.nonzero(np.triu(within, 1))
    assert report["rows_in_capped_runs"] == 0 and report["keys"] == (t + 1) ** 2
    assert len(i) > 100  # the test is not vacuous
    np.testing.assert_array_equal(keys, np.sort(i * n + j))


def test_hamming_pairs_cap_a_dense_bucket_and_keep_it_connected():
    """1000 blank frames share one hash: each row is paired with its next k only (not
    1000 choose 2 pairs), the bucket stays one group; a radius too wide for the chunks
    hands back None (the check then takes the k-NN)."""
    codes = np.zeros(1000, dtype=np.uint64)
    report: dict = {}
    keys = get_hamming_pairs(codes, codes, max_distance=4, k=4, report=report)
    assert 1000 <= len(keys) <= 1000 * 4
    pairs = np.stack([keys // 1000, keys % 1000], axis=1)
    assert (get_groups(1000, pairs) == 0).all()
    assert report["rows_in_capped_runs"] > 0
    assert get_hamming_pairs(codes, codes, max_distance=12, k=4) is None


def test_hamming_knn_dense_bucket_gives_k_pairs_per_row():
    """1000 blank frames share one hash: k neighbours each, never 1000 choose 2 pairs."""
    codes = np.zeros(1000, dtype=np.uint64)
    dist, idx = get_hamming_knn(codes, k=4)
    assert idx.shape == (1000, 4) and (dist == 0).all()
    assert (idx != np.arange(1000)[:, None]).all()


@pytest.mark.parametrize("n, pairs, order, expected", [
    (5, [], None, [-1, -1, -1, -1, -1]),  # no edges: no groups
    (5, [(3, 4), (0, 1)], None, [0, 0, -1, 1, 1]),  # numbered by first row
    (5, [(3, 4), (0, 1)], [4, 3, 2, 1, 0], [1, 1, -1, 0, 0]),  # ... in the given order
    (6, [(0, 2), (2, 5), (1, 4)], None, [0, 1, 0, -1, 1, 0]),  # chains are one group
])
def test_get_groups(n, pairs, order, expected):
    order = None if order is None else np.array(order)
    assert get_groups(n, np.array(pairs).reshape(-1, 2), order=order).tolist() == expected


@pytest.mark.parametrize("exact_max_rows", [10_000, 0, -1])  # exact; by cost; HNSW forced
def test_knn_matches_brute_force_and_excludes_self(exact_max_rows, monkeypatch):
    """Every returned distance is exact (the graph's 8-bit scores are rescored on the
    float rows) and each row's neighbours are sorted by it."""
    from dataqa.checks import neighbors

    if exact_max_rows < 0:
        monkeypatch.setattr(neighbors, "METHOD", "approximate")
        exact_max_rows = 0
    rng = np.random.default_rng(1)
    z = rng.normal(size=(2000, 4)).astype(np.float32)  # low intrinsic dimension, as images
    x = np.tanh(z @ rng.normal(size=(4, 12)).astype(np.float32))
    x[7] = x[3] * 2.0  # same direction: cosine distance 0
    x[11] = 0.0  # a zero row: distance 1 to everything
    dist, idx = get_knn(x, k=4, exact_max_rows=exact_max_rows, memory_mb=1)
    xn = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    full = np.clip(1 - xn @ xn.T, 0, 2)
    np.fill_diagonal(full, np.inf)
    assert (idx != np.arange(2000)[:, None]).all()
    np.testing.assert_allclose(dist, full[np.arange(2000)[:, None], idx], atol=1e-5)
    assert idx[3, 0] == 7 and idx[7, 0] == 3 and dist[3, 0] < 1e-6
    np.testing.assert_allclose(dist[11], 1.0, atol=1e-6)
    assert (np.diff(dist, axis=1) >= 0).all()
    best = np.sort(full, axis=1)[:, :4]
    if exact_max_rows:
        np.testing.assert_allclose(dist, best, atol=1e-5)
    else:  # HNSW: approximate, but the nearest is nearly always the true nearest
        assert np.mean(np.abs(dist[:, 0] - best[:, 0]) < 1e-5) > 0.98


def test_search_method_is_chosen_by_measured_cost(monkeypatch):
    """Above EXACT_MAX_ROWS both searches are timed and the cheaper one runs; the
    result is the exact one when exact is chosen, and an approximate one reports its
    recall of the exact neighbours (measured on the probe's rows)."""
    from dataqa.checks import neighbors

    rng = np.random.default_rng(2)
    x = np.tanh(rng.normal(size=(3000, 4)) @ rng.normal(size=(4, 16))).astype(np.float32)
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    full = 1 - xn @ xn.T
    np.fill_diagonal(full, np.inf)
    best = np.sort(full, axis=1)[:, :5]
    neighbors._KNN_CACHE.clear()
    plan: dict = {}
    dist, idx = get_knn(x, k=5, exact_max_rows=100, report=plan)
    assert plan["rows"] == 3000 and plan["method"] in ("exact", "approximate")
    assert plan["estimated_exact_s"] > 0 and plan["estimated_approximate_s"] > 0
    cheaper = min(("exact", "approximate"),
                  key=lambda m: plan[f"estimated_{m}_s"])
    assert plan["method"] == cheaper
    if plan["method"] == "exact":
        np.testing.assert_allclose(dist, best, atol=1e-5)
    else:
        assert 0.9 <= plan["recall_at_k"] <= 1.0
    monkeypatch.setattr(neighbors, "METHOD", "approximate")
    forced: dict = {}
    get_knn(x, k=5, exact_max_rows=100, report=forced)
    assert forced["method"] == "approximate" and forced["recall_queries"] == 256
    found = np.mean([len(np.intersect1d(a, b)) / 5 for a, b in
                     zip(get_knn(x, k=5, exact_max_rows=100)[1], np.argsort(full, axis=1)[:, :5])])
    assert abs(found - forced["recall_at_k"]) < 0.05  # the sample's recall is the whole's
    monkeypatch.setattr(neighbors, "METHOD", "exact")
    exact: dict = {}
    dist, _ = get_knn(x, k=5, exact_max_rows=100, report=exact)
    assert exact["method"] == "exact"
    np.testing.assert_allclose(dist, best, atol=1e-5)


def test_knn_many_identical_rows():
    """More exact copies than k: a row's own index may not come back first."""
    x = np.ones((50, 8), dtype=np.float32)
    dist, idx = get_knn(x, k=3)
    assert (idx != np.arange(50)[:, None]).all() and np.allclose(dist, 0.0, atol=1e-6)


# --------------------------------------------------------------------------- exact
def test_exact_groups_issues_and_leakage():
    a = np.full((8, 8), 10, np.uint8)
    b = np.arange(64, dtype=np.uint8).reshape(8, 8)
    png_a = encode(a)
    ctx = dataset([
        ("x/a1.png", png_a, "train"),  # kept: first path of the group
        ("x/a2.png", png_a, "test"),  # byte copy in another split: leakage
        ("y/a3.bmp", encode(a, "BMP"), "train"),  # same pixels, other bytes: re-saved
        ("y/b.png", encode(b), "train"),  # unique
        ("z/b_q.tif", encode(b, "TIFF"), "val"),  # pixel copy of y/b.png in 'val'
    ])
    res = run("exact_duplicate", ctx)
    f = res.frame
    assert f["is_exact_duplicate_issue"].tolist() == [False, True, True, False, True]
    assert f["exact_duplicate_score"].tolist() == [1.0, 0.0, 0.0, 1.0, 0.0]
    assert f["exact_duplicate_group"].tolist() == [0, 0, 0, 1, 1]
    assert f["exact_duplicate_kept_id"].tolist() == [0, 0, 0, 3, 3]
    s = res.summary
    assert (s["groups"], s["redundant"], s["largest_group"], s["pixel_only"]) == (2, 3, 3, 2)
    # a1-a2 (train/test), a2-a3 (test/train), b-b_q (train/val); a1-a3 both train
    assert s["cross_split_pairs"] == 3
    assert s["cross_split_examples"] == [
        {"group": 0, "paths": ["x/a1.png", "x/a2.png"], "splits": ["train", "test"]},
        {"group": 1, "paths": ["y/b.png", "z/b_q.tif"], "splits": ["train", "val"]}]


def test_exact_ignores_undecodable_and_missing_pixel_hash():
    ctx = dataset([(f"c/{i}.png", encode(np.full((4, 4), i, np.uint8)), "train")
                   for i in range(4)])
    m = ctx.manifest
    m.loc[[0, 1], "sha256"] = hashlib.sha256(b"").hexdigest()  # two zero-byte files...
    m.loc[[0, 1], "decode_error"] = "zero-byte file"  # ...are integrity's, not copies
    m.loc[[2, 3], "pixel_sha256"] = None
    res = run("exact_duplicate", ctx)
    assert not res.frame["is_exact_duplicate_issue"].any()
    assert res.summary["groups"] == 0 and res.summary["cross_split_pairs"] == 0


# --------------------------------------------------------------------------- near
def jpeg(arr: np.ndarray, q: int) -> bytes:
    return encode(arr, "JPEG", quality=q)


def resized(arr: np.ndarray, factor: float) -> np.ndarray:
    im = Image.fromarray(arr)
    size = (round(im.width * factor), round(im.height * factor))
    return np.asarray(im.resize(size, Image.Resampling.BICUBIC))


def cropped(arr: np.ndarray, share: float) -> np.ndarray:
    h, w = arr.shape[:2]
    dy, dx = max(1, round(h * share)), max(1, round(w * share))
    return arr[dy:h - dy, dx:w - dx]


def small_photos() -> list[np.ndarray]:
    from skimage import data

    out = [np.asarray(Image.fromarray(p).reduce(3)) for p in base_photos()]
    out += [np.asarray(Image.fromarray(getattr(data, n)()).reduce(3))
            for n in ("camera", "moon", "coins", "page", "text", "clock")]
    return out


# name, make(original) -> file bytes; each row plants one copy of a different original
DIGIT_COPIES = [
    ("q75", lambda a: jpeg(a, 75)),  # re-encoded as JPEG quality 75
    ("q40", lambda a: jpeg(a, 40)),  # heavy JPEG
    ("up42", lambda a: encode(resized(a, 1.5))),  # enlarged to 42 px
    ("up56q75", lambda a: jpeg(resized(a, 2.0), 75)),  # enlarged and re-encoded
    ("crop1", lambda a: encode(cropped(a, 0.036))),  # 1-px border cut: 26x26
    ("crop1back", lambda a: encode(resized(cropped(a, 0.036), 28 / 26))),  # ...back to 28
]
PHOTO_COPIES = [
    ("q50", lambda a: jpeg(a, 50)),  # re-encoded
    ("half", lambda a: encode(resized(a, 0.5))),  # halved
    ("crop4", lambda a: encode(cropped(a, 0.04))),  # 4% of each side cut
    ("small_q70", lambda a: jpeg(resized(a, 0.7), 70)),  # smaller and re-encoded
    ("crop3", lambda a: jpeg(cropped(a, 0.03), 90)),  # cut and re-encoded
]


@pytest.fixture(scope="module")
def near_set():
    data = load_mnist()
    if data is None:
        pytest.skip(MNIST_MISSING)
    x, y = data
    ones = np.flatnonzero(y == 1)[:160]  # MNIST's look-alike '1's: the hard negatives
    others = np.flatnonzero(y != 1)[:80]
    files = [(f"{y[i]}/d{i:05d}.png", encode(x[i]), "train") for i in [*ones, *others]]
    planted: list[frozenset[str]] = []
    for k, (name, make) in enumerate(DIGIT_COPIES * 2):
        i = int(ones[k] if k % 2 == 0 else others[k])  # copies of '1's and of others
        orig = f"{y[i]}/d{i:05d}.png"
        copy = f"{y[i]}/d{i:05d}_{name}.{'jpg' if 'q' in name else 'png'}"
        files.append((copy, make(x[i]), "test" if k < 3 else "train"))
        planted.append(frozenset({orig, copy}))
    for k, photo in enumerate(small_photos()):
        orig = f"photo/p{k:02d}.png"
        files.append((orig, encode(photo), "train"))
        name, make = PHOTO_COPIES[k % len(PHOTO_COPIES)]
        copy = f"photo/p{k:02d}_{name}.{'jpg' if 'q' in name else 'png'}"
        files.append((copy, make(photo), "train"))
        planted.append(frozenset({orig, copy}))
    # an exact copy of a planted digit: exact_duplicate's, but in the same near group
    i = int(ones[0])
    exact = (f"{y[i]}/d{i:05d}_same.png", encode(x[i]), "val")
    files.append(exact)
    planted[0] = planted[0] | {exact[0]}
    return dataset(files), planted, exact[0]


def test_near_duplicates_found_and_lookalikes_not(near_set):
    ctx, planted, exact_copy = near_set
    res = run("near_duplicate", ctx)
    assert groups_of(res, ctx) == set(planted)
    f = res.frame.assign(path=ctx.manifest["path"].to_numpy())
    issues = set(f.loc[f["is_near_duplicate_issue"], "path"])
    copies = {p for g in planted for p in sorted(g)[1:]}  # all but the first by path
    assert issues == copies - {exact_copy}  # exact copies are exact_duplicate's issues
    kept = f.loc[f["near_duplicate_group"] >= 0].groupby("near_duplicate_group")["path"].min()
    ids = ctx.manifest.set_index("path")["id"]
    for g, path in kept.items():
        assert (f.loc[f["near_duplicate_group"] == g, "near_duplicate_kept_id"]
                == ids[path]).all()
    assert (f.loc[f["is_near_duplicate_issue"], "near_duplicate_score"] < 0.5).all()
    assert (f.loc[~f["is_near_duplicate_issue"], "near_duplicate_score"] == 1.0).all()
    # leakage: 3 copies in 'test' with originals in 'train'; the 'val' exact copy
    # pairs with the train original (exact: not counted) and with the 'test' copy
    assert res.summary["cross_split_pairs"] == 3 + 1
    assert res.summary["redundant"] == len(copies) - 1


def test_near_duplicates_by_hash_alone_would_group_lookalikes(near_set):
    """Why candidates are verified: distinct MNIST '1's share perceptual hashes."""
    ctx, _, _ = near_set
    from dataqa.checks.neighbors import hex_to_uint64

    m = ctx.manifest
    ones = m[(m["label"] == "1") & ~m["path"].str.contains("_")]  # distinct '1's only
    phash, _ = hex_to_uint64(ones["phash"].tolist())
    dist, idx = get_hamming_knn(phash, k=4)
    assert len(ones) == 160 and (dist[:, 0] <= 2).sum() > 50


def test_near_duplicates_with_embeddings(near_set):
    """Embeddings add candidates; verification keeps the groups exact even when the
    embedding says every '1' is alike (here: one embedding per class)."""
    ctx, planted, _ = near_set
    labels = ctx.manifest["label"].to_numpy()
    classes = sorted(set(labels))
    emb = np.eye(len(classes), dtype=np.float32)[[classes.index(v) for v in labels]]
    with_emb = AuditContext(manifest=ctx.manifest, tensors=ctx.tensors, embeddings=emb)
    res = run("near_duplicate", with_emb)
    assert groups_of(res, with_emb) == set(planted)
    assert res.summary["pairs_by_source"]["embedding"] > 0


def test_near_duplicate_skips_undecodable():
    photo = small_photos()[0]
    ctx = dataset([
        ("p/a.png", encode(photo), "train"),
        ("p/b.jpg", jpeg(photo, 60), "train"),
        ("p/c.png", encode(resized(photo, 0.5)), "test"),
        *[(f"q/{k}.png", encode(p), "train") for k, p in enumerate(small_photos()[1:])],
    ])
    m = ctx.manifest
    m.loc[m["path"] == "p/b.jpg", "decode_error"] = "cannot decode: planted"
    res = run("near_duplicate", ctx)
    f = res.frame.set_axis(m["path"])
    assert f["near_duplicate_group"].to_dict() == {p: (0 if p in ("p/a.png", "p/c.png") else -1)
                                                    for p in m["path"]}
    assert f["is_near_duplicate_issue"].sum() == 1 and f.loc["p/c.png", "is_near_duplicate_issue"]
    assert res.summary["cross_split_pairs"] == 1


@pytest.mark.parametrize("settings, key", [
    ({"ratio": 1.5}, "ratio"),  # a ratio >= 1 would accept look-alikes
    ({"max_distance": 0}, "max_distance"),
    ({"hash_max_distance": 20}, "hash_max_distance"),  # too many probes
    ({"neighbors": 0}, "neighbors"),
])
def test_near_duplicate_settings_validated(settings, key):
    with pytest.raises(ParamsError, match=f"near_duplicate.{key}"):
        get_check("near_duplicate")(settings)


def test_near_duplicate_needs_aligned_tensors():
    from dataqa.errors import StageInputError

    ctx = dataset([("a/x.png", encode(np.zeros((4, 4), np.uint8)), "train")])
    with pytest.raises(StageInputError, match="tensors"):
        get_check("near_duplicate")().find(AuditContext(manifest=ctx.manifest))



@pytest.mark.parametrize("n_files, broken", [
    (1, []),  # a single image: nothing to compare
    (2, [0, 1]),  # nothing decodable
    (2, [1]),  # one decodable image
])
@pytest.mark.parametrize("name", ["exact_duplicate", "near_duplicate"])
def test_tiny_inputs_flag_nothing(name, n_files, broken):
    files = [(f"a/{i}.png", encode(np.full((6, 6), 40 * i, np.uint8)), "train")
             for i in range(n_files)]
    ctx = dataset(files)
    ctx.manifest.loc[broken, "decode_error"] = "cannot decode: planted"
    res = run(name, ctx)
    assert not res.frame[f"is_{name}_issue"].any() and res.summary["groups"] == 0


def test_near_duplicates_through_the_approximate_index(near_set, monkeypatch):
    """Every search forced through an HNSW graph: the same groups, and the summary says
    how each search ran and the graph's recall of the exact neighbours."""
    from dataqa.checks import neighbors

    ctx, planted, _ = near_set
    monkeypatch.setattr(neighbors, "EXACT_MAX_ROWS", 0)
    monkeypatch.setattr(neighbors, "METHOD", "approximate")
    neighbors._KNN_CACHE.clear()
    res = run("near_duplicate", ctx)
    assert groups_of(res, ctx) == set(planted)
    search = res.summary["search"]
    assert search["thumbnail"]["method"] == "approximate"
    assert 0.9 <= search["thumbnail"]["recall_at_k"] <= 1.0
    assert search["thumbnail"]["estimated_exact_s"] >= 0


@pytest.mark.parametrize("seed", range(6))
def test_groups_are_the_connected_components_of_the_pairs(seed: int) -> None:
    """get_groups (numpy union-find) against scipy's connected components: random
    sparse graphs, long chains and self-loops."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 400))
    pairs = rng.integers(0, n, size=(int(rng.integers(0, 2 * n)), 2))
    chain = rng.permutation(n)[: n // 2]
    pairs = np.concatenate([pairs, np.stack([chain[:-1], chain[1:]], axis=1)]).astype(np.int64)
    groups = get_groups(n, pairs)
    if len(pairs) == 0:
        assert (groups == -1).all()
        return
    _, comp = connected_components(coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])),
                                              shape=(n, n)), directed=False)
    sizes = np.bincount(comp)
    expected = np.where(sizes[comp] > 1, comp, -1)
    assert ((groups == -1) == (expected == -1)).all()
    member = groups >= 0
    # the same partition: a bijection between the two labellings of the members
    pairs_seen = set(zip(groups[member].tolist(), expected[member].tolist(), strict=True))
    assert len(pairs_seen) == len(set(groups[member].tolist())) == len(set(expected[member].tolist()))
