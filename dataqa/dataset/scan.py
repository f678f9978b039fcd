"""Stage ``scan``: decode every file of the source once and write the manifest.

One row per listed file (see :mod:`dataqa.dataset.sources`) with every column of
:data:`dataqa.dataset.manifest.COLUMNS`: byte hash and size, real and claimed format, stored
mode, frames, upright size, ``decode_error`` and the per-image statistics and hashes
(:mod:`dataqa.dataset.imagestats`) that the audit checks use instead of decoding again.

Decoding runs in ``scan.workers`` processes (``spawn``: safe next to torch and threads;
workers import only numpy and PIL, see :mod:`dataqa.dataset.scan_worker`, and use one BLAS
thread each). Files go out in chunks of ``scan.chunk_size`` with at most two chunks per
worker in flight; a worker holds one decoded image at a time and sends back small rows,
never pixels, so worker memory does not grow with the number of images. This process
turns each chunk's rows into an Arrow batch on arrival (about 300 bytes a file).
``workers: 0`` runs the same code in this process, with identical results. Raw files are
only opened ``rb``; a progress bar goes to stderr when it is a terminal.

Workers run in a :class:`dataqa.workers.WorkerPool`: Ctrl-C stops the scan within a
second (exit 130), never deadlocks it, and prints no worker traceback.

A worker that dies (a decoder crash, the out-of-memory killer) stops the scan with a
SourceError naming the files of the chunks in flight; ``scan.workers: 0`` then shows
which file it was.

``cluster.backend: ray``: the same chunks run as Ray tasks on the cluster
(:func:`dataqa.cluster.map_tasks`; every node must see ``data.source`` at the same
path) and land at the same positions: the same manifest, byte for byte.
"""

from __future__ import annotations

import logging
import multiprocessing
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from tqdm import tqdm

from dataqa.dataset.manifest import COLUMNS
from dataqa.dataset.scan_worker import (
    ROW_FIELDS,
    init_worker,
    scan_chunk,
    scan_chunk_on_node,
    worker_settings,
)
from dataqa.dataset.sources import list_source
from dataqa.errors import SourceError
from dataqa.params import ClusterParams, ScanParams
from dataqa.workers import WorkerPool

log = logging.getLogger(__name__)

IN_FLIGHT_PER_WORKER = 2  # chunks queued per worker: one decoding, one waiting
_ARROW_TYPES = {"string": pa.string(), "int64": pa.int64(), "Int64": pa.int64(),
                "boolean": pa.bool_(), "float64": pa.float64()}
ROW_SCHEMA = pa.schema([(name, _ARROW_TYPES[COLUMNS[name]]) for name in ROW_FIELDS])
_PANDAS_TYPES = {pa.string(): pd.StringDtype("pyarrow"), pa.int64(): pd.Int64Dtype(),
                 pa.bool_(): pd.BooleanDtype()}  # float64 stays numpy, nulls -> NaN


def scan_source(source: Path, *, params: ScanParams, default_split: str,
                progress: bool = True, layout: str = "auto",
                check_listing: Callable[[Path, pd.DataFrame], list[str]] | None = None,
                cluster: ClusterParams | None = None) -> pd.DataFrame:
    """List ``source`` and scan every file: the manifest, N rows x :data:`COLUMNS`,
    sorted by ``path`` with ``id`` = row position. Raises SourceError for an unusable
    source (see :func:`dataqa.dataset.sources.list_source`); a bad file is a row, not an
    error. ``check_listing(root, listing)`` runs before any file is read: it raises to
    stop, and returns warnings to add (logged and kept with the listing's)."""
    root, files = list_source(source, default_split=default_split,
                              extensions=params.extensions, layout=layout)
    if check_listing is not None:
        for message in check_listing(root, files):
            log.warning("%s: %s", source, message)
            files.attrs.setdefault("warnings", []).append(message)
    rows = scan_files(root, files["path"].tolist(), params=params, progress=progress,
                      cluster=cluster)
    frame = build_manifest(files, rows)
    # kept in the Parquet file (pandas stores attrs): the report shows them
    frame.attrs["warnings"] = files.attrs.get("warnings", [])
    frame.attrs["layout"] = files.attrs.get("layout")
    frame.attrs["layout_reason"] = files.attrs.get("layout_reason")
    frame.attrs["skipped_extensions"] = files.attrs.get("skipped_extensions", {})
    return frame


def scan_files(root: Path, paths: list[str], *, params: ScanParams,
               progress: bool = True, cluster: ClusterParams | None = None) -> pa.Table:
    """Scan ``root/<path>`` for each of ``paths``: a table of :data:`ROW_FIELDS` columns,
    one row per path, in the same order.

    Each chunk's rows become an Arrow record batch as soon as they arrive (about 300
    bytes a row instead of a kilobyte of Python objects), so a million files stay a few
    hundred MB in this process."""
    chunks = [paths[i:i + params.chunk_size] for i in range(0, len(paths), params.chunk_size)]
    bar = tqdm(total=len(paths), desc="scan", unit="file", file=sys.stderr, mininterval=0.5,
               disable=not (progress and sys.stderr.isatty()))
    batches: list[pa.RecordBatch | None] = [None] * len(chunks)
    try:
        for i, rows in _run_chunks(str(root), chunks, params, cluster):
            batches[i] = _to_batch(rows)
            bar.update(len(rows))
    finally:
        bar.close()
    return pa.Table.from_batches([b for b in batches if b is not None], schema=ROW_SCHEMA)


def _to_batch(rows: list[tuple[Any, ...]]) -> pa.RecordBatch:
    columns = list(zip(*rows, strict=True))
    return pa.RecordBatch.from_arrays(
        [pa.array(values, type=field.type) for values, field in zip(columns, ROW_SCHEMA,
                                                                    strict=True)],
        schema=ROW_SCHEMA)


def _run_chunks(root: str, chunks: list[list[str]], params: ScanParams,
                cluster: ClusterParams | None = None
                ) -> Iterator[tuple[int, list[tuple[Any, ...]]]]:
    """Yield ``(chunk index, rows)`` as chunks finish (any order)."""
    if cluster is not None and cluster.backend == "ray":
        from dataqa.cluster import map_tasks

        yield from map_tasks(scan_chunk_on_node,
                             [(root, chunk, params.max_pixels, params.max_bytes,
                               params.decode_timeout) for chunk in chunks],
                             cluster, what="scan")
        return
    if params.workers == 0:
        with worker_settings():
            for i, chunk in enumerate(chunks):
                yield i, scan_chunk(root, chunk, params.max_pixels, max_bytes=params.max_bytes,
                                    decode_timeout=params.decode_timeout)
        return
    workers = min(params.workers, max(1, len(chunks)))
    todo = iter(enumerate(chunks))
    pending: dict[Future[list[tuple[Any, ...]]], int] = {}
    with WorkerPool(workers, initializer=init_worker,
                    mp_context=multiprocessing.get_context("spawn")) as pool:
        def submit_next() -> None:
            item = next(todo, None)
            if item is not None:
                pending[pool.submit(scan_chunk, root, item[1], params.max_pixels,
                                    max_bytes=params.max_bytes,
                                    decode_timeout=params.decode_timeout)] = item[0]

        for _ in range(workers * IN_FLIGHT_PER_WORKER):
            submit_next()
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                i = pending.pop(future)
                try:
                    rows = future.result()
                except BrokenProcessPool:
                    suspects = [p for j in [i, *pending.values()] for p in chunks[j]]
                    raise SourceError(
                        f"{root}: a scan worker died (a decoder crash or out of memory) "
                        f"while reading one of {len(suspects)} files, e.g. "
                        f"{', '.join(suspects[:5])}; rerun with scan.workers: 0 to find "
                        f"the file, then move it out of the source") from None
                yield i, rows
                submit_next()


def build_manifest(files: pd.DataFrame, scanned: pa.Table) -> pd.DataFrame:
    """Join the listing (path, label, split; sorted by path) with the scan table into the
    manifest: every column of :data:`COLUMNS` with its dtype, ``id`` = row position.
    Assembled in Arrow and converted once (each pandas step would copy every column)."""
    table = scanned.append_column("id", pa.array(np.arange(len(files), dtype=np.int64)))
    for name in ("path", "label", "split"):
        table = table.append_column(name, pa.array(files[name], type=pa.string()))
    frame = table.select(list(COLUMNS)).to_pandas(types_mapper=_PANDAS_TYPES.get)
    return frame.astype({name: dtype for name, dtype in COLUMNS.items() if dtype == "int64"})
