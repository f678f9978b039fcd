"""Neighbour search through a vector index (faiss), and groups from pairs.

Every k-nearest-neighbour query of the audit goes through :func:`get_knn` (cosine, on
float vectors: thumbnails, embeddings) or :func:`get_hamming_knn` (Hamming, on 64-bit
perceptual hashes). Both use faiss (``faiss-cpu``), the field's library for it:

- up to ``exact_max_rows`` rows an exact search (``IndexFlatIP`` / ``IndexBinaryFlat``:
  blocked BLAS or popcount scans, O(N^2 D) but with a small constant);
- above it, whichever is measured to cost less on this machine and data (issue 23:
  approximate was slower than exact at 100k on a loaded box): exact search timed on
  256 random rows, or an HNSW graph (``IndexHNSWSQ`` with 8-bit codes /
  ``IndexBinaryHNSW``, M=16, efConstruction=40, efSearch=max(64, 4k), about O(N log N))
  timed on 20,000 rows; after an approximate search, its recall of the exact k nearest
  on those 256 rows is reported (the near_duplicate check's ``summary.search``).
- float rows in the graph are 8-bit codes (a quarter of the bytes): at 1M rows of 64
  numbers the graph's random reads are the cost, and 64-byte codes (one cache line)
  made build + search 1.5x faster (148 -> 97 s, recall@16 0.875 -> 0.855; 125k: 8.0 ->
  6.5 s). The neighbours found are then rescored exactly on the float rows, so every
  returned distance is exact.

Measured on the shared 2-core dev box (load 5-8, random 64-d vectors): exact and HNSW cost the same near 25,000 rows of 64 numbers (0.5 s vs 2 s at
  10k, 2.8 s vs 1.9 s at 30k, 57 s vs 30 s at 100k), hence the default of 25,000. HNSW
  is approximate: on structured data its recall of the true 17 nearest was 0.99 (1.000
  for the nearest one, which is what a copy is), and the benchmark checks that planted
  near copies are found as by the exact search. The graph is built by several threads,
  so above the threshold a rerun may differ in the last neighbours of a few rows.

The previous search (torch matrix products over N x N in row chunks, and all pairs of
each dense 16-bit hash bucket) grew as N^1.95 and N^2.1: 30 minutes at 1M images.

- :func:`get_hamming_pairs`: every pair within t bits on each of two 64-bit hashes, by
  multi-index hashing in numpy sorts (exact for the radius; at 1M synthetic digits 5 s
  where the binary HNSW took ~84 s at recall@16 0.66, and a superset of its pairs).
- :func:`get_groups`: connected components of a pair graph, numbered by their first row.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

# faiss's OpenMP threads spin while they wait by default: on a CPU shared with other
# jobs (CI, a dev box, the scan's workers) that made a 3,000-row search 10-80x slower
# (measured at load 14: 0.9-8 s vs 0.09 s). Passive waiting costs nothing on a quiet
# machine. Only effective before the OpenMP runtime starts (the audit imports no torch).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

EXACT_MAX_ROWS = 25_000  # exact search up to this many rows unmeasured; above: by measured cost
HNSW_M = 16  # graph degree
HNSW_EF_CONSTRUCTION = 40
DEFAULT_MEMORY_MB = 512  # audit.memory_mb: working memory of one step, beyond its inputs


def rows_per_chunk(bytes_per_row: int, memory_mb: float = DEFAULT_MEMORY_MB, *,
                   minimum: int = 64) -> int:
    """How many rows of ``bytes_per_row`` working memory fit in a budget of
    ``memory_mb`` megabytes (at least ``minimum``, so a tiny budget still progresses)."""
    return max(minimum, int(memory_mb * 2**20 // max(1, bytes_per_row)))


def hex_to_uint64(values: Sequence[object] | pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Parse 64-bit hex hashes. Returns ``(codes (N,) uint64, valid (N,) bool)``; missing
    or malformed values are invalid (code 0)."""
    codes = np.zeros(len(values), dtype=np.uint64)
    valid = np.zeros(len(values), dtype=bool)
    for i, value in enumerate(values):
        if isinstance(value, str) and 0 < len(value) <= 16:
            try:
                codes[i] = np.uint64(int(value, 16))
                valid[i] = True
            except ValueError:
                pass
    return codes, valid


def get_knn(features: np.ndarray, *, k: int, exact_max_rows: int | None = None,
            memory_mb: float = DEFAULT_MEMORY_MB, report: dict[str, Any] | None = None,
            cache: bool = False, overwrite: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """k nearest neighbours of every row of ``features`` (N, D) among the other rows,
    by cosine distance. Returns ``(distances (N, k') float32 in [0, 2], indices (N, k')
    int32)``, sorted by distance, ``k' = min(k, N - 1)``; read-only arrays.

    Rows must be finite. A zero row has distance 1 to everything. Exact up to
    ``exact_max_rows`` rows (default :data:`EXACT_MAX_ROWS`); above, exact or HNSW,
    whichever is measured to cost less (:func:`_plan`; ``report`` receives the plan and
    the recall against exact search on a sample). Queries run in chunks sized from
    ``memory_mb``. ``cache``: keep this result for the next call on the same features
    (the audit asks for the embeddings' neighbours twice: near_duplicate, outlier).
    ``overwrite``: ``features`` (float32) may be normalised in place (no copy of N x D).
    """
    features = np.ascontiguousarray(features, dtype=np.float32)
    exact_max_rows = EXACT_MAX_ROWS if exact_max_rows is None else exact_max_rows
    key = (features.shape, exact_max_rows, METHOD,
           hashlib.blake2b(features.data, digest_size=16).digest())
    kk = min(k, len(features) - 1)
    cached = _KNN_CACHE.get(key)
    if cached is not None and cached[0].shape[1] >= kk:
        if report is not None:
            report.update(cached[2])
        return cached[0][:, :kk], cached[1][:, :kk]
    plan: dict[str, Any] = {}
    # cached: at least SHARED_K, so outlier (k=10) and near_duplicate (k=16) share a search
    dist, idx = _float_knn(features, max(k, SHARED_K) if cache else k, exact_max_rows,
                           memory_mb, plan, overwrite)
    dist.flags.writeable = idx.flags.writeable = False
    if report is not None:
        report.update(plan)
    if cache:
        _KNN_CACHE.clear()
        _KNN_CACHE[key] = (dist, idx, plan)
    return dist[:, :kk], idx[:, :kk]


SHARED_K = 16  # neighbours searched at least when cached (the checks' defaults: 10 and 16)
_KNN_CACHE: dict[tuple[object, ...], tuple[np.ndarray, np.ndarray, dict[str, Any]]] = {}
# "auto": exact or HNSW by measured cost above EXACT_MAX_ROWS; "exact" / "approximate"
# force one (the scale benchmark's reference run, tests)
METHOD = "auto"
PROBE_QUERIES = 256  # rows searched exactly to time exact search (and to measure recall)
PROBE_SAMPLE = 20_000  # rows of the HNSW graph built to time the approximate search


def _unit_rows(x: np.ndarray, memory_mb: float, out: np.ndarray | None = None) -> np.ndarray:
    """Rows scaled to unit L2 norm (zero rows stay zero), in chunks (no float64 copy),
    into ``out`` (may be ``x``)."""
    out = np.empty_like(x, dtype=np.float32) if out is None else out
    step = rows_per_chunk(x.shape[1] * 8, memory_mb)
    for s in range(0, len(x), step):
        c = x[s:s + step]
        norm = np.sqrt(np.einsum("nd,nd->n", c, c))[:, None]
        out[s:s + step] = c / np.maximum(norm, 1e-12)
    return out


def _float_knn(features: np.ndarray, k: int, exact_max_rows: int, memory_mb: float,
               plan: dict[str, Any], overwrite: bool = False
               ) -> tuple[np.ndarray, np.ndarray]:
    import faiss

    n, d = features.shape
    k = min(k, n - 1)
    if k <= 0:
        return np.zeros((n, 0), np.float32), np.zeros((n, 0), np.int32)
    x = _unit_rows(features, memory_mb, out=features if overwrite else None)
    sim, idx = _knn(x, k, exact_max_rows, memory_mb, plan,
                    flat=lambda: faiss.IndexFlatIP(d),
                    hnsw=lambda: _tune(_hnsw_sq8(faiss, d), k))
    if plan.get("method") == "approximate":  # 8-bit scores: rescore the found rows exactly
        _rescore(x, sim, idx, memory_mb)
    dist = np.clip(1.0 - sim, 0.0, 2.0, out=sim)
    return dist, idx


def _hnsw_sq8(faiss: Any, d: int) -> Any:
    """An HNSW graph over 8-bit scalar-quantized rows, inner product. (``faiss`` passed
    as ``Any``: its stubs type the quantizer-type argument as a ``ScalarQuantizer``,
    where faiss takes the ``QT_8bit`` enum value.)"""
    return faiss.IndexHNSWSQ(d, faiss.ScalarQuantizer.QT_8bit, HNSW_M,
                             faiss.METRIC_INNER_PRODUCT)


def _rescore(x: np.ndarray, sim: np.ndarray, idx: np.ndarray, memory_mb: float) -> None:
    """Exact inner products of each row with its found neighbours (the graph stores
    8-bit codes), each row's neighbours re-sorted by them; in place, in row chunks."""
    n, k = idx.shape
    # 8,192 rows at most (4 MB of gathered rows at k=16, d=64): the budget is a
    # ceiling, and a larger chunk only raised the peak (+220 MB at 125k)
    step = min(8192, rows_per_chunk(k * x.shape[1] * 8, memory_mb))
    for a in range(0, n, step):
        j = idx[a:a + step]
        s = np.einsum("nkd,nd->nk", x[j], x[a:a + len(j)])
        order = np.argsort(-s, axis=1, kind="stable")
        sim[a:a + len(j)] = np.take_along_axis(s, order, axis=1)
        idx[a:a + len(j)] = np.take_along_axis(j, order, axis=1)


def _knn(x: np.ndarray, k: int, exact_max_rows: int, memory_mb: float,
         plan: dict[str, Any], *, flat: Any, hnsw: Any) -> tuple[np.ndarray, np.ndarray]:
    """Search every row of ``x`` for its ``k`` nearest other rows through the index the
    plan picks: exact (``flat()``) or HNSW (``hnsw()``). Returns the index's scores and
    int32 row numbers. Fills ``plan`` (see :func:`_plan`)."""
    method, exact, probe = _plan(x, k, exact_max_rows, memory_mb, plan, flat=flat, hnsw=hnsw)
    if method == "exact":
        index = exact if exact is not None else flat()
        if exact is None:
            index.add(x)
        return _search(index, x, k, memory_mb)
    index = _trained(hnsw(), x)
    index.add(x)
    del exact
    scores, idx = _search(index, x, k, memory_mb)
    del index
    missing = np.flatnonzero((idx < 0).any(axis=1))
    if len(missing):  # HNSW found fewer than k: those rows exactly
        index = flat()
        index.add(x)
        scores[missing], idx[missing] = _search(index, x[missing], k, memory_mb, rows=missing)
    if probe is not None:  # recall of the approximate neighbours against exact search
        rows, truth = probe
        hits = sum(len(np.intersect1d(a, b)) for a, b in zip(idx[rows], truth))
        plan["recall_at_k"] = round(hits / max(1, truth.size), 4)
        plan["recall_queries"] = len(rows)
    return scores, idx


def _plan(x: np.ndarray, k: int, exact_max_rows: int, memory_mb: float,
          plan: dict[str, Any], *, flat: Any, hnsw: Any
          ) -> tuple[str, Any, tuple[np.ndarray, np.ndarray] | None]:
    """Exact or approximate search for ``x``, by measured cost.

    Up to ``exact_max_rows`` rows: exact, unmeasured (it costs well under a second).
    Above: exact search is timed on :data:`PROBE_QUERIES` random rows against the whole
    index (its cost is linear in the queries: x N / queries), and an HNSW graph is
    built and searched on :data:`PROBE_SAMPLE` random rows (x N / sample x log N / log
    sample: a graph's cost per row grows as log N). The cheaper one is used; the
    probe's exact answers later give the approximate search's recall.

    Returns ``(method, the exact index already built or None, (probe rows, their exact
    neighbours) or None)``; ``plan`` receives ``method``, ``rows``, the two estimates
    in seconds (when measured) and, after an approximate search, ``recall_at_k``."""
    import time

    n = len(x)
    plan.update(rows=n, k=k)
    forced = METHOD if METHOD in ("exact", "approximate") else None
    if forced == "exact" or (forced is None and n <= exact_max_rows):
        plan["method"] = "exact"
        return "exact", None, None
    rng = np.random.default_rng(n)
    rows = np.sort(rng.choice(n, min(n, PROBE_QUERIES), replace=False))
    exact = flat()
    exact.add(x)
    t0 = time.perf_counter()
    _, truth = _search(exact, x[rows], k, memory_mb, rows=rows)
    exact_s = (time.perf_counter() - t0) * n / len(rows)
    sample = np.sort(rng.choice(n, min(n, PROBE_SAMPLE), replace=False))
    t0 = time.perf_counter()
    graph = _trained(hnsw(), x[sample])
    graph.add(x[sample])
    graph.search(x[sample], k + 1)
    del graph
    m = len(sample)
    approx_s = (time.perf_counter() - t0) * n / m * math.log(max(n, 2)) / math.log(max(m, 2))
    method = forced or ("exact" if exact_s <= approx_s else "approximate")
    plan.update(method=method, estimated_exact_s=round(exact_s, 2),
                estimated_approximate_s=round(approx_s, 2))
    if method == "exact":
        return "exact", exact, None
    return "approximate", None, (rows, truth)


def _trained(index: Any, x: np.ndarray) -> Any:
    """The index, its quantizer trained on ``x`` when it has one (per-dimension ranges
    of the 8-bit codes: one pass, O(N D))."""
    if not index.is_trained:
        index.train(x)
    return index


def _tune(index: Any, k: int) -> Any:
    """Set an HNSW index's build and search breadth (module docstring)."""
    index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
    index.hnsw.efSearch = max(64, 4 * (k + 1))
    return index


def _search(index: Any, queries: np.ndarray, k: int, memory_mb: float,
            rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Top ``k`` neighbours of each query other than itself (``rows``: the queries'
    own row numbers, default 0..Q-1), searched in chunks; similarities or distances
    as the index returns them (best first), row numbers as int32."""
    q = len(queries)
    rows = np.arange(q) if rows is None else np.asarray(rows)
    out_s = np.empty((q, k), dtype=np.float32)
    out_i = np.empty((q, k), dtype=np.int32)
    step = rows_per_chunk((k + 1) * 64, memory_mb, minimum=1024)
    for s in range(0, q, step):
        sim, idx = index.search(queries[s:s + step], k + 1)
        own = rows[s:s + step, None]
        drop = idx == own
        # not found among its k+1 (ties with more than k exact copies): drop the last
        drop[~drop.any(axis=1), -1] = True
        drop &= np.cumsum(drop, axis=1) == 1  # one column per row
        keep = ~drop
        out_s[s:s + len(idx)] = sim[keep].reshape(len(idx), k)
        out_i[s:s + len(idx)] = idx[keep].reshape(len(idx), k)
    return out_s, out_i


def get_hamming_knn(codes: np.ndarray, *, k: int, exact_max_rows: int | None = None,
                    memory_mb: float = DEFAULT_MEMORY_MB, report: dict[str, Any] | None = None
                    ) -> tuple[np.ndarray, np.ndarray]:
    """k nearest neighbours of every row by Hamming distance. ``codes`` (N,) uint64 or
    (N, W) uint64 (W words concatenated, e.g. phash and dhash). Returns ``(distances
    (N, k') int32 in bits, indices (N, k') int32)``, ``k' = min(k, N - 1)``.

    The index answers k neighbours per row, never all pairs of a dense bucket: a
    degenerate hash shared by thousands of images (blank frames) gives N * k pairs.
    Exact (``IndexBinaryFlat``) up to ``exact_max_rows``; above, exact or
    ``IndexBinaryHNSW`` by measured cost, as :func:`get_knn` (``report`` alike).
    """
    import faiss

    exact_max_rows = EXACT_MAX_ROWS if exact_max_rows is None else exact_max_rows
    codes = np.asarray(codes, dtype=np.uint64)
    n = len(codes)
    words = np.ascontiguousarray(codes.reshape(n, codes.size // n if n else 1))
    k = min(k, n - 1)
    if k <= 0:
        return np.zeros((n, 0), np.int32), np.zeros((n, 0), np.int32)
    x = words.view(np.uint8).reshape(n, -1)
    bits = x.shape[1] * 8
    plan: dict[str, Any] = {}
    dist, idx = _knn(x, k, exact_max_rows, memory_mb, plan,
                     flat=lambda: faiss.IndexBinaryFlat(bits),
                     hnsw=lambda: _tune(faiss.IndexBinaryHNSW(bits, HNSW_M), k))
    if report is not None:
        report.update(plan)
    return dist.astype(np.int32), idx


def unique_sorted(values: np.ndarray, *, return_index: bool = False,
                  return_inverse: bool = False, overwrite: bool = False):  # type: ignore[no-untyped-def]
    """``np.unique`` for 1-D integer arrays by sorting. numpy 2.4's ``np.unique`` takes a
    hash-based path for integers that ran 80x slower here (16 s vs 0.2 s for 2M values);
    same results, first occurrence for ``return_index``. Without index or inverse the
    values are sorted without an argsort (``overwrite``: in place, no copy)."""
    values = np.asarray(values)
    if not (return_index or return_inverse):
        ordered = values if overwrite else values.copy()
        ordered.sort()
        first = np.ones(len(ordered), dtype=bool)
        np.not_equal(ordered[1:], ordered[:-1], out=first[1:])
        return ordered[first]
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    first = np.ones(len(values), dtype=bool)
    first[1:] = ordered[1:] != ordered[:-1]
    out = [ordered[first]]
    if return_index:
        out.append(order[first])
    if return_inverse:
        inverse = np.empty(len(values), dtype=np.int64)
        inverse[order] = np.cumsum(first) - 1
        out.append(inverse)
    return out[0] if len(out) == 1 else tuple(out)


def get_groups(n: int, pairs: np.ndarray, *,
               order: np.ndarray | None = None) -> np.ndarray:
    """Connected components of the graph on ``n`` rows with edges ``pairs`` (P, 2).

    Returns ``(n,)`` int64 group ids: -1 for rows without any edge, else 0..G-1
    numbered by the group's first row in ``order`` (a permutation of rows, e.g. rows
    sorted by path; default row order).
    """
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    if n == 0 or len(pairs) == 0:
        return np.full(n, -1, dtype=np.int64)
    comp = _components(n, pairs)
    sizes = np.bincount(comp)
    return number_groups(np.where(sizes[comp] > 1, comp, -1), order=order)


def _components(n: int, pairs: np.ndarray) -> np.ndarray:
    """(n,) int64 component label of each row (its smallest member) under the edges
    ``pairs``: hook every edge's larger root under its smaller one, then compress the
    paths (pointer jumping), until every edge lies within one component. numpy only:
    scipy.sparse.csgraph gave the same components but cost ~0.3 s of import per audit."""
    parent = np.arange(n, dtype=np.int64)
    a, b = pairs[:, 0], pairs[:, 1]
    while True:
        ra, rb = parent[a], parent[b]
        split = ra != rb
        if not split.any():
            return parent
        np.minimum.at(parent, np.maximum(ra, rb)[split], np.minimum(ra, rb)[split])
        while True:  # roots only decrease, so this ends with every row on its root
            up = parent[parent]
            if np.array_equal(up, parent):
                break
            parent = up


def number_groups(labels: np.ndarray, *, order: np.ndarray | None = None) -> np.ndarray:
    """Renumber group labels (N,) (-1 = no group) as 0..G-1 by each group's first row
    in ``order`` (default row order)."""
    labels = np.asarray(labels, dtype=np.int64)
    n = len(labels)
    out = np.full(n, -1, dtype=np.int64)
    member = labels >= 0
    if not member.any():
        return out
    rank = np.empty(n, dtype=np.int64)
    rank[np.arange(n) if order is None else np.asarray(order)] = np.arange(n)
    uniq, inverse = unique_sorted(labels[member], return_inverse=True)
    first = np.full(len(uniq), n, dtype=np.int64)
    np.minimum.at(first, inverse, rank[member])
    new_id = np.empty(len(uniq), dtype=np.int64)
    new_id[np.argsort(first, kind="stable")] = np.arange(len(uniq))
    out[member] = new_id[inverse]
    return out


MULTI_INDEX_MIN_KEY_BITS = 20  # below: chunks too short, buckets too full (k-NN instead)


def get_hamming_pairs(a: np.ndarray, b: np.ndarray, *, max_distance: int, k: int,
                      memory_mb: float = DEFAULT_MEMORY_MB,
                      report: dict[str, Any] | None = None) -> np.ndarray | None:
    """Every pair of rows within ``max_distance`` bits on both 64-bit codes ``a`` and
    ``b`` (N,) uint64 (phash and dhash), as sorted unique keys ``i * N + j`` (i < j);
    ``None`` when ``max_distance`` is too large for it (the caller then takes the k-NN
    of :func:`get_hamming_knn`).

    Multi-index hashing (pigeonhole): split each code into ``t + 1`` chunks (t =
    ``max_distance``); a pair within t bits agrees exactly on at least one chunk of each
    code, so on at least one of the ``(t + 1)^2`` keys (a-chunk, b-chunk). Rows are
    sorted by each key and every run of equal keys gives its pairs: exact for the
    radius, O(N log N) per key in numpy sorts, no graph. faiss has no index for this
    "within t on each of two codes" condition (``IndexBinaryMultiHash`` bounds the
    total over the 128 bits: 9 keys of 14 bits, ~60 candidates a row by chance at 1M).
    A run longer than ``k + 1`` (a degenerate hash shared by many images: blank frames)
    pairs each row with its next ``k`` in the run only, never all its pairs; those
    runs are counted in ``report``."""
    a = np.asarray(a, dtype=np.uint64)
    b = np.asarray(b, dtype=np.uint64)
    n, t = len(a), int(max_distance)
    bounds = np.linspace(0, 64, t + 2).astype(int)
    if 2 * int(np.diff(bounds).min()) < MULTI_INDEX_MIN_KEY_BITS:
        return None

    def chunk(code: np.ndarray, i: int) -> np.ndarray:
        lo, hi = bounds[i], bounds[i + 1]
        return (code >> np.uint64(lo)) & np.uint64((1 << (hi - lo)) - 1)

    out: list[np.ndarray] = []
    candidates = capped = 0
    for i in range(t + 1):
        ca = chunk(a, i)
        for j in range(t + 1):
            key = (ca << np.uint64(bounds[j + 1] - bounds[j])) | chunk(b, j)
            order = np.argsort(key, kind="stable")
            ks = key[order]
            del key
            # rows whose (k+1)-th follower in the sort still shares their key
            capped += int(np.count_nonzero(ks[k + 1:] == ks[:-k - 1])) if n > k + 1 else 0
            for d in range(1, min(k, n - 1) + 1):
                hit = np.flatnonzero(ks[d:] == ks[:-d])
                if not len(hit):
                    break
                candidates += len(hit)
                for s in range(0, len(hit), rows_per_chunk(64, memory_mb)):
                    h = hit[s:s + rows_per_chunk(64, memory_mb)]
                    p, q = order[h].astype(np.int64), order[h + d].astype(np.int64)
                    close = np.maximum(np.bitwise_count(a[p] ^ a[q]),
                                       np.bitwise_count(b[p] ^ b[q])) <= t
                    p, q = p[close], q[close]
                    out.append(np.minimum(p, q) * n + np.maximum(p, q))
    keys = unique_sorted(np.concatenate(out), overwrite=True) if out \
        else np.zeros(0, dtype=np.int64)
    if report is not None:
        report.update(rows=n, method="multi-index", max_distance=t, keys=(t + 1) ** 2,
                      candidates=candidates, pairs=int(len(keys)),
                      rows_in_capped_runs=capped)
    return keys
