"""``near_duplicate``: the same picture re-encoded, resized or slightly cropped.

Candidates come from three cheap sources, none of which builds an N x N matrix:

1. perceptual hashes in the manifest: every pair within ``hash_max_distance`` bits on
   both ``phash`` and ``dhash``, found by multi-index hashing
   (:func:`dataqa.checks.neighbors.get_hamming_pairs`: exact for the radius, linear
   sorts, no graph; at most ``neighbors`` pairs a row in a dense bucket of look-alike
   hashes, never all its pairs); a ``hash_max_distance`` above 5 makes its chunks too
   short, and then each image's ``neighbors`` nearest by the Hamming distance of both
   hashes together are searched instead (:func:`~dataqa.checks.neighbors.get_hamming_knn`);
2. the k nearest neighbours of each image's thumbnail (16 x 16 grey, from the tensors);
3. the k nearest neighbours of each image's embedding, when the audit has embeddings.

Every candidate is then *verified* on the thumbnails, because hashes and embeddings
alone cannot tell a copy from a look-alike: on the 10,000 MNIST test digits 237
distinct digits share their exact 64-bit phash with another digit, and a CNN embedding
puts all same-class digits close. Verification = the cosine distance of the two
thumbnails, best over small central crops of either side (so a cropped copy aligns),
must be (a) at most ``max_distance`` and (b) at most ``ratio`` times the distance of
the nearer image's *nearest distinct neighbour* (a ratio test, as in SIFT matching).
(b) is what keeps a dense cluster of look-alikes (MNIST '1's) apart while a JPEG copy,
far closer to its original than to anything else, is accepted. The nearest distinct
neighbour of an image is found in its k aligned thumbnail neighbours: the one right
after the last gap (a distance jump by at least 1/``ratio``) among those within
``max_distance``, so groups of up to ``neighbors`` copies are found.

Accepted pairs and exact copies are merged into groups (connected components); in
each group the first file by path is kept; the others are issues unless they are exact
copies of another member (``exact_duplicate`` reports those). Pairs across splits are
leakage (``cross_split_pairs``; pairs of exact copies not counted again).

Cost (N images, D embedding size): thumbnails O(N), stored as uint8 (768 bytes an
image); the hash pairs in 25 numpy sorts of N keys (multi-index hashing); two k-NN
searches through faiss (:mod:`dataqa.checks.neighbors`: exact below 25,000 rows, HNSW
above, about O(N log N)) on 64 numbers per thumbnail and on the embeddings (cached for
the outlier check); verification
O(candidates * 768). Every chunk is sized from ``audit.memory_mb``, not from N; no
torch import.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from pydantic import Field

from dataqa.checks import register
from dataqa.checks.base import AuditContext, Check, CheckResult
from dataqa.checks.exact_duplicate import find_exact_groups, kept_rows, path_order, summarize_groups
from dataqa.checks.neighbors import (
    DEFAULT_MEMORY_MB,
    get_groups,
    get_hamming_knn,
    get_hamming_pairs,
    get_knn,
    hex_to_uint64,
    number_groups,
    rows_per_chunk,
    unique_sorted,
)
from dataqa.errors import StageInputError
from dataqa.io import release_pages
from dataqa.params.base import Section

CROPS = (0.0, 0.04, 0.08)  # share of each side cut away when aligning a cropped copy


class NearDuplicateSettings(Section):
    """``audit.settings.near_duplicate``."""

    hash_max_distance: int = Field(4, ge=0, le=16, description="bits, phash and dhash: candidate pairs from the hashes")
    neighbors: int = Field(16, ge=1, le=10_000, description="k of the thumbnail and embedding k-NN (largest group found)")
    max_distance: float = Field(0.1, gt=0, le=1, description="thumbnail cosine distance never accepted above (sim 0.9)")
    ratio: float = Field(0.1, gt=0, lt=1, description="a copy must be this much closer than the nearest distinct image")
    thumb_size: int = Field(16, ge=4, le=64, description="side of the grey thumbnail, px")
    use_embeddings: bool = Field(True, description="embedding k-NN as a third source of candidates")
    max_examples: int = Field(20, ge=0, le=1_000_000, description="cross-split pairs listed in the summary (all are counted)")


def letterbox_boxes(heights: np.ndarray, widths: np.ndarray, size: int) -> np.ndarray:
    """(N, 4) float content boxes ``(top, left, h, w)`` of images letterboxed to ``size``:
    the same arithmetic as :func:`dataqa.dataset.imageio.letterbox`."""
    h, w = heights.astype(float), widths.astype(float)
    scale = size / np.maximum(np.maximum(h, w), 1.0)
    nh = np.maximum(1, np.round(h * scale))
    nw = np.maximum(1, np.round(w * scale))
    return np.stack([(size - nh) // 2, (size - nw) // 2, nh, nw], axis=1)


def get_thumbnails(tensors: np.ndarray, boxes: np.ndarray, *, size: int,
                   rows: np.ndarray | None = None, crops: tuple[float, ...] = CROPS,
                   memory_mb: float = DEFAULT_MEMORY_MB) -> np.ndarray:
    """Grey thumbnails of each tensor's content box, stored as uint8 (a thumbnail is
    768 bytes with the default 3 crops of 16 x 16; float32 would be 3 KB an image).

    ``tensors`` (N, H, W[, C]) uint8 letterboxed images (may be memory-mapped: read in
    chunks sized from ``memory_mb``), ``rows`` (M,) the positions to use (default all),
    ``boxes`` (M, 4) their content boxes. Returns (M, len(crops), size * size) uint8:
    one thumbnail per central crop (the share of each side in ``crops`` cut away);
    :func:`unit_thumbnails` turns them into the vectors that are compared.

    numpy only (no torch in a check that does not train): the image is averaged down
    to twice the thumbnail side first (``adaptive_avg_pool`` weights: sampling alone
    would alias), then each crop box is sampled bilinearly at the thumbnail's pixel
    centres with zero padding, as torch's ``affine_grid`` + ``grid_sample``
    (``align_corners=False``) did before. Bilinear sampling is separable: each crop is
    two small matrix products per image (rows, then columns), batched.
    """
    rows = np.arange(len(tensors)) if rows is None else np.asarray(rows)
    n = len(rows)
    out = np.zeros((n, len(crops), size * size), dtype=np.uint8)
    side = tensors.shape[1]
    channels = tensors.shape[3] if tensors.ndim == 4 else 1
    work = min(side, 2 * size)
    pool = _pool_matrix(side, work)
    # at most 1,024 rows a chunk: the buffers (a few MB) are then reused from chunk to
    # chunk; fresh large ones cost a page fault per 4 KB (measured: 0.35 s of 0.6 s for
    # 10,000 digits in one chunk)
    step = min(1024, rows_per_chunk(side * side * (channels + 2) * 4 + work * work * 40,
                                    memory_mb))
    for start in range(0, n, step):
        x = np.asarray(tensors[rows[start:start + step]]).astype(np.float32)
        if x.ndim == 4:
            x = (x @ np.array([0.299, 0.587, 0.114], np.float32) if x.shape[3] == 3
                 else x[..., 0])
        if work < side:
            x = np.einsum("ih,bhw,jw->bij", pool, x, pool, optimize=True)
        box = boxes[start:start + step].astype(np.float64) / side
        top, left, h, w = box.T
        base = (2 * np.arange(size) + 1) / size - 1  # output pixel centres in [-1, 1]
        # separable: rows then columns, every crop at once, as batched matrix products
        wy = np.concatenate([_interp_matrix(
            ((h[:, None] * (1 - 2 * crop) * base + ((top + h / 2) * 2 - 1)[:, None]) + 1)
            * work / 2 - 0.5, work) for crop in crops], axis=1)  # (B, crops * size, work)
        wx = np.stack([_interp_matrix(
            ((w[:, None] * (1 - 2 * crop) * base + ((left + w / 2) * 2 - 1)[:, None]) + 1)
            * work / 2 - 0.5, work) for crop in crops], axis=1)  # (B, crops, size, work)
        rows_done = np.matmul(wy, x).reshape(len(x), len(crops), size, work)
        v = np.matmul(rows_done, np.ascontiguousarray(wx.transpose(0, 1, 3, 2)))  # (B, crops, size, size)
        out[start:start + len(x)] = np.clip(np.rint(v), 0, 255).astype(np.uint8).reshape(
            len(x), len(crops), size * size)
        release_pages(tensors)  # a memory-mapped file: its rows are done with
    return out


def _pool_matrix(side: int, work: int) -> np.ndarray:
    """(work, side) averaging weights of adaptive average pooling from ``side`` to
    ``work`` pixels (torch's ``interpolate(mode="area")``)."""
    m = np.zeros((work, side), dtype=np.float32)
    for i in range(work):
        lo, hi = (i * side) // work, -((-(i + 1) * side) // work)
        m[i, lo:hi] = 1.0 / (hi - lo)
    return m


def _interp_matrix(p: np.ndarray, n: int) -> np.ndarray:
    """(B, s, n) float32 linear-interpolation weights of the pixel coordinates ``p``
    (B, s) over ``n`` pixels, zero outside them (``grid_sample``'s zero padding): row
    ``[b, i]`` holds ``1 - f`` at ``floor(p)`` and ``f`` at ``floor(p) + 1``."""
    b, s = p.shape
    p0 = np.floor(p)
    f = (p - p0).astype(np.float32)
    m = np.zeros((b, s, n + 2), dtype=np.float32)  # columns 0 and n + 1: outside
    bb, ii = np.arange(b)[:, None], np.arange(s)[None, :]
    i0 = np.clip(p0.astype(np.int64) + 1, 0, n + 1)
    i1 = np.clip(p0.astype(np.int64) + 2, 0, n + 1)
    m[bb, ii, i0] = 1 - f
    m[bb, ii, i1] += f
    return np.ascontiguousarray(m[:, :, 1:n + 1])


def unit_thumbnails(thumbs: np.ndarray) -> np.ndarray:
    """Zero-mean, unit-norm float32 vectors of uint8 thumbnails (..., size * size). A
    flat thumbnail gives a zero vector (distance 1 to everything: blank frames are not
    duplicates of each other here)."""
    v = thumbs.astype(np.float32)
    v -= v.mean(axis=-1, keepdims=True)
    norm = np.sqrt(np.einsum("...d,...d->...", v, v))[..., None]
    scale = np.where(norm <= 1e-3 * np.sqrt(thumbs.shape[-1]), 0.0, 1.0 / np.maximum(norm, 1e-12))
    v *= scale.astype(np.float32)
    return v


def get_aligned_distances(thumbs: np.ndarray, pairs: np.ndarray, *,
                          memory_mb: float = DEFAULT_MEMORY_MB) -> np.ndarray:
    """(P,) cosine distance of each pair's thumbnails, the best over aligning a crop of
    either side with the other's whole thumbnail. ``thumbs`` from :func:`get_thumbnails`;
    ``pairs`` (P, 2) rows, or (P,) keys ``i * len(thumbs) + j`` (:func:`_pair_keys`)."""
    m = len(thumbs)
    dist = np.empty(len(pairs), dtype=np.float32)
    # each row made a unit vector once (not once per pair end: the audit has ~20
    # candidate pairs a row) when its float32 copy fits the budget; else per chunk.
    # unit_thumbnails works row by row, so both give the same numbers.
    unit = (unit_thumbnails(thumbs)
            if len(thumbs) < 2 * len(pairs) and thumbs.size * 4 * 3 <= memory_mb * 2**20
            else None)
    # per pair: two uint8 gathers, two float32 copies and their temporaries; at most
    # 8192 pairs (12 MB a side): larger fresh blocks only add page faults
    step = min(8192, rows_per_chunk(thumbs.shape[1] * thumbs.shape[2] * 2 * 10, memory_mb))
    for start in range(0, len(pairs), step):
        chunk = pairs[start:start + step]
        i, j = (chunk // m, chunk % m) if chunk.ndim == 1 else chunk.T
        a, b = ((unit[i], unit[j]) if unit is not None  # (n, crops, d)
                else (unit_thumbnails(thumbs[i]), unit_thumbnails(thumbs[j])))
        best = np.maximum(np.einsum("ncd,nd->nc", a, b[:, 0]).max(1),
                          np.einsum("nd,ncd->nc", a[:, 0], b).max(1))
        dist[start:start + len(i)] = 1.0 - best
    return np.clip(dist, 0.0, 2.0, out=dist)


def get_distinct_scales(neighbor_dist: np.ndarray, *, ratio: float, max_distance: float,
                        complete: bool) -> np.ndarray:
    """Distance of each row's nearest *distinct* neighbour, (N,) float.

    ``neighbor_dist`` (N, k) aligned distances to the k nearest neighbours, sorted.
    The copies of a row are the neighbours before the last gap, i.e. the last ``j``
    with ``d[j-1] <= max_distance`` and ``d[j] >= d[j-1] / ratio``; the scale is
    ``d[j]`` (``d[0]`` when there is no gap). ``complete``: the k neighbours are the
    whole dataset, so a gap after the last one is real (infinite scale).
    """
    n, k = neighbor_dist.shape
    if k == 0:
        return np.full(n, np.inf)
    tail = np.full((n, 1), np.inf if complete else -np.inf)
    d = np.concatenate([neighbor_dist.astype(np.float64), tail], axis=1)
    gap = (d[:, :-1] <= max_distance) & (d[:, 1:] * ratio >= d[:, :-1])
    last = np.where(gap.any(1), k - np.argmax(gap[:, ::-1], axis=1), 0)
    return d[np.arange(n), last]


@register
class NearDuplicateCheck(Check):
    name = "near_duplicate"
    Settings = NearDuplicateSettings
    requires = frozenset({"tensors"})
    description = ("the same picture as an earlier file (by path) re-encoded, resized or "
                   "slightly cropped; the earlier file is kept")

    def find(self, ctx: AuditContext) -> CheckResult:
        s: NearDuplicateSettings = self.settings
        manifest = ctx.manifest
        n = len(manifest)
        if ctx.tensors is None or len(ctx.tensors) != n:
            raise StageInputError("near_duplicate: the tensors are missing or not aligned "
                                  "with the manifest; run the 'tensors' stage")
        order = path_order(manifest)
        exact = find_exact_groups(manifest, ctx.decoded)
        exact_kept = kept_rows(exact, order)
        # one representative per exact group: its copies add nothing to the search
        rows = np.flatnonzero(ctx.decoded & ((exact < 0) | (exact_kept == np.arange(n))))
        accepted, dist, candidates, sources = self._find_pairs(ctx, rows)

        # groups over the accepted pairs plus the exact copies of their members
        near_edges = rows[accepted]
        exact_edges = np.stack([np.arange(n), exact_kept], axis=1)[exact >= 0]
        groups = get_groups(n, np.concatenate([near_edges, exact_edges]), order=order)
        has_near = np.zeros(n + 1, dtype=bool)  # by group id: holds a near pair
        has_near[groups[near_edges[:, 0]]] = True
        groups = number_groups(np.where(has_near[np.maximum(groups, 0)] & (groups >= 0),
                                        groups, -1), order=order)
        kept = kept_rows(groups, order)
        is_copy_of_exact = (exact >= 0) & (exact_kept != np.arange(n))
        is_issue = (groups >= 0) & (kept != np.arange(n)) & ~is_copy_of_exact

        # score: 0.5 x (thumbnail distance to the nearest copy / max_distance), < 0.5
        nearest = np.full(n, np.inf)
        np.minimum.at(nearest, near_edges.ravel(), np.repeat(dist, 2))
        score = np.where(is_issue, 0.5 * np.minimum(nearest / s.max_distance, 1.0), 1.0)

        summary = summarize_groups(manifest, groups, max_examples=s.max_examples,
                                   exclude=np.where(groups >= 0, exact, -1))
        summary["redundant"] = int(is_issue.sum())
        summary["candidate_pairs"] = candidates
        summary["accepted_pairs"] = int(len(accepted))
        summary["pairs_by_source"] = {name: v["accepted_pairs"] for name, v in sources.items()}
        # how each k-NN search ran: exact or approximate by measured cost, with the
        # approximate one's recall of the exact neighbours on a sample
        summary["search"] = {name: {k: v for k, v in info.items() if k != "accepted_pairs"}
                             for name, info in sources.items()}
        ids = manifest["id"].to_numpy(dtype=np.int64)
        return self.result(ctx, is_issue, score, summary, group=groups,
                           kept_id=np.where(kept >= 0, ids[kept], -1))

    def _find_pairs(self, ctx: AuditContext, rows: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray, int, dict[str, Any]]:
        """Accepted pairs (A, 2) (positions in ``rows``), their thumbnail distances (A,),
        the number of candidates, and per source its accepted pairs and search plan.

        Pairs travel as sorted 1-D int64 keys ``i * m + j`` (i < j; half the memory of
        (P, 2) rows, and a sort without argsort); every step over them is chunked."""
        s: NearDuplicateSettings = self.settings
        manifest, tensors = ctx.manifest, ctx.tensors
        assert tensors is not None  # find() checked
        boxes = letterbox_boxes(manifest["height"].to_numpy(dtype=float, na_value=1)[rows],
                                manifest["width"].to_numpy(dtype=float, na_value=1)[rows],
                                tensors.shape[1])
        mb = ctx.memory_mb
        thumbs = get_thumbnails(tensors, boxes, rows=rows, size=s.thumb_size, memory_mb=mb)
        m = len(rows)
        plans: dict[str, dict[str, Any]] = {"thumbnail": {}, "hash": {}}
        _, knn_idx = get_knn(_search_vectors(thumbs[:, 0], s.thumb_size, mb), k=s.neighbors,
                             memory_mb=mb, report=plans["thumbnail"], overwrite=True)
        sources = {"thumbnail": _pair_keys(knn_idx, m),
                   "hash": self._hash_pairs(manifest, rows, memory_mb=mb,
                                            report=plans["hash"])}
        if s.use_embeddings and ctx.embeddings is not None:
            plans["embedding"] = {}
            sources["embedding"] = self._embedding_pairs(ctx.embeddings, ctx.decoded, rows,
                                                         memory_mb=mb,
                                                         report=plans["embedding"])
        candidates = unique_sorted(np.concatenate(list(sources.values())))
        found_by = np.zeros(len(candidates), dtype=np.uint8)  # bit per source
        for bit, keys in enumerate(sources.values()):
            found_by[np.searchsorted(candidates, keys)] |= np.uint8(1 << bit)
        names = list(sources)
        del sources
        dist = get_aligned_distances(thumbs, candidates, memory_mb=mb)
        del thumbs

        # each row's distinct-neighbour scale, from its k thumbnail neighbours (which are
        # all candidates: their distances are looked up, not recomputed)
        k = knn_idx.shape[1]
        neighbor_dist = np.empty(knn_idx.shape, dtype=np.float32)
        step = rows_per_chunk(k * 40, mb)
        for a in range(0, m, step):
            i = np.arange(a, min(m, a + step), dtype=np.int64)[:, None]
            j = knn_idx[a:a + step].astype(np.int64)
            where = np.searchsorted(candidates, np.minimum(i, j) * m + np.maximum(i, j))
            neighbor_dist[a:a + step] = np.sort(dist[where], axis=1)
        del knn_idx
        scale = get_distinct_scales(neighbor_dist, ratio=s.ratio, max_distance=s.max_distance,
                                    complete=k >= m - 1)
        del neighbor_dist
        ok = np.zeros(len(candidates), dtype=bool)
        step = rows_per_chunk(40, mb)
        for a in range(0, len(candidates), step):
            c = candidates[a:a + step]
            limit = np.minimum(s.max_distance,
                               s.ratio * np.maximum(scale[c // m], scale[c % m]))
            ok[a:a + step] = dist[a:a + step] <= limit
        accepted, bits = candidates[ok], found_by[ok]
        by_source = {name: {"accepted_pairs": int(((bits >> b) & 1).sum()), **plans.get(name, {})}
                     for b, name in enumerate(names)}
        return (np.stack([accepted // m, accepted % m], axis=1), dist[ok],
                int(len(candidates)), by_source)

    def _hash_pairs(self, manifest: pd.DataFrame, rows: np.ndarray, *,
                    memory_mb: float = DEFAULT_MEMORY_MB,
                    report: dict[str, Any] | None = None) -> np.ndarray:
        """Candidate pair keys (positions in ``rows``) close on both phash and dhash."""
        m = len(rows)
        if "phash" not in manifest or "dhash" not in manifest:
            return np.zeros(0, dtype=np.int64)
        s: NearDuplicateSettings = self.settings
        phash, p_ok = hex_to_uint64(manifest["phash"].to_numpy(dtype=object)[rows])
        dhash, d_ok = hex_to_uint64(manifest["dhash"].to_numpy(dtype=object)[rows])
        ok = np.flatnonzero(p_ok & d_ok)
        # every pair within t bits on both hashes, by multi-index hashing (exact for the
        # radius, k per row in a degenerate bucket); k-NN for a large t
        close_keys = get_hamming_pairs(phash[ok], dhash[ok], max_distance=s.hash_max_distance,
                                       k=s.neighbors, memory_mb=memory_mb, report=report)
        if close_keys is not None:
            i, j = ok[close_keys // max(len(ok), 1)], ok[close_keys % max(len(ok), 1)]
            return i.astype(np.int64) * m + j
        # k nearest on both hashes (128 bits): a pair within t bits on each is within 2t
        _, idx = get_hamming_knn(np.stack([phash[ok], dhash[ok]], axis=1), k=s.neighbors,
                                 memory_mb=memory_mb, report=report)
        keys = _pair_keys(idx, len(ok))
        del idx
        out = []
        step = rows_per_chunk(64, memory_mb)
        for a in range(0, len(keys), step):
            c = keys[a:a + step]
            i, j = ok[c // len(ok)], ok[c % len(ok)]
            close = np.maximum(np.bitwise_count(phash[i] ^ phash[j]),
                               np.bitwise_count(dhash[i] ^ dhash[j])) <= s.hash_max_distance
            out.append(i[close].astype(np.int64) * m + j[close])
        return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)

    def _embedding_pairs(self, embeddings: np.ndarray, decoded: np.ndarray,
                         rows: np.ndarray, *, memory_mb: float = DEFAULT_MEMORY_MB,
                         report: dict[str, Any] | None = None) -> np.ndarray:
        """Candidate pair keys (positions in ``rows``) from the embeddings' k-NN. The
        search runs over every decodable row, the same array the outlier check searches,
        so :func:`get_knn` answers the second time from its cache."""
        emb = np.asarray(embeddings, dtype=np.float32)
        ok = np.flatnonzero(decoded & np.isfinite(emb).all(axis=1))
        _, idx = get_knn(emb[ok], k=self.settings.neighbors, memory_mb=memory_mb,
                         report=report, cache=True, overwrite=True)
        position = np.full(len(emb), -1, dtype=np.int64)
        position[rows] = np.arange(len(rows))
        keys = _pair_keys(idx, len(ok))
        i, j = position[ok[keys // len(ok)]], position[ok[keys % len(ok)]]
        both = (i >= 0) & (j >= 0)
        lo, hi = np.minimum(i[both], j[both]), np.maximum(i[both], j[both])
        return unique_sorted(lo * len(rows) + hi)


def _search_vectors(thumbs: np.ndarray, size: int, memory_mb: float) -> np.ndarray:
    """Unit thumbnails (N, size * size) uint8 averaged 2 x 2 (a quarter of the numbers)
    as float32 for the k-NN search; candidates are then verified on the full
    thumbnails."""
    half = size // 2 if size % 2 == 0 else size
    out = np.empty((len(thumbs), half * half), dtype=np.float32)
    step = rows_per_chunk(size * size * 12, memory_mb)
    for s in range(0, len(thumbs), step):
        t = unit_thumbnails(thumbs[s:s + step])
        if size % 2 == 0:
            t = t.reshape(len(t), half, 2, half, 2).mean(axis=(2, 4)).reshape(len(t), -1)
        out[s:s + step] = t
    return out


def _pair_keys(idx: np.ndarray, m: int) -> np.ndarray:
    """Sorted unique pair keys ``i * m + j`` (i < j) int64 of a k-NN table (m, k),
    built in row chunks and sorted in place (no (P, 2) array, no argsort)."""
    k = idx.shape[1]
    keys = np.empty(m * k, dtype=np.int64)
    step = max(1, (1 << 20) // max(k, 1))
    for a in range(0, m, step):
        i = np.arange(a, min(m, a + step), dtype=np.int64)[:, None]
        j = idx[a:a + step].astype(np.int64)
        keys[a * k:(a + len(j)) * k] = (np.minimum(i, j) * m + np.maximum(i, j)).ravel()
    return unique_sorted(keys, overwrite=True)
