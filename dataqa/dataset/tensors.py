"""Stage ``tensors``: decode every decodable image of the manifest ONCE into one uint8
array at the training size, aspect preserved (letterbox), for every later stage.

Outputs (paths from ``params.yaml: paths``):

- ``tensors``: ``.npy`` of shape (N, S, S, C) uint8, row i = manifest row i; zeros for
  rows that do not decode. Memory-mappable (``np.load(mmap_mode="r")``); written
  through a memory map, so the stage's memory stays bounded by the chunks in flight.
- ``tensor_index``: Parquet with ``id``, ``decoded`` and the content box of each row
  inside the letterboxed square (``box_top``, ``box_left``, ``box_height``,
  ``box_width``; null when not decoded).

Colour is decided per dataset, not per image: ``engine.channels: auto`` gives RGB when
at least :data:`COLOUR_SHARE` of the decodable images have colour (manifest
``stat_colorfulness`` > :data:`COLOUR_THRESHOLD`), else grayscale; a few photos inside a
digit set are then stored gray.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from numpy.lib.format import open_memmap

from dataqa.dataset import sources
from dataqa.dataset.imageio import letterbox
from dataqa.dataset.manifest import decodable, read_manifest
from dataqa.dataset.reopen import Limits, optional, optional_int, reopen
from dataqa.engine.progress import show_progress
from dataqa.errors import StageInputError
from dataqa.io import atomic_path, preallocate, write_parquet
from dataqa.params import Params

log = logging.getLogger("dataqa.dataset.tensors")

COLOUR_THRESHOLD = 0.02  # manifest stat_colorfulness above this: the image has colour
COLOUR_SHARE = 0.10  # auto picks RGB when at least this share of images has colour


@dataclass(frozen=True)
class _Job:
    """One chunk of rows for a worker: positions in the output and their files."""

    positions: tuple[int, ...]
    paths: tuple[str, ...]
    sizes: tuple[int | None, ...]  # manifest bytes and sha256: the reopen checks them
    hashes: tuple[str | None, ...]
    root: str
    size: int
    rgb: bool
    limits: Limits


def choose_channels(manifest: pd.DataFrame, setting: str) -> int:
    """1 (gray) or 3 (rgb) for the whole dataset; see the module docstring."""
    if setting == "gray":
        return 1
    if setting == "rgb":
        return 3
    ok = decodable(manifest)
    if "stat_colorfulness" not in manifest:
        raise StageInputError("manifest has no 'stat_colorfulness' column; rerun 'scan' "
                              "or set engine.channels to gray or rgb")
    colour = manifest.loc[ok, "stat_colorfulness"].astype(float).fillna(0.0) > COLOUR_THRESHOLD
    share = float(colour.mean()) if ok.any() else 0.0
    return 3 if share >= COLOUR_SHARE else 1


def source_root(params: Params) -> Path:
    """Folder that manifest paths are relative to (resolved; the same for every stage:
    :func:`dataqa.dataset.sources.source_root`)."""
    return sources.source_root(params.resolve(params.data.source))


def run_stage(params: Params) -> int:
    """Write ``paths.tensors`` and ``paths.tensor_index`` from the manifest."""
    show_progress()
    start = time.perf_counter()
    manifest = read_manifest(params.path("manifest"))
    size = params.engine.image_size  # >= 8, checked by EngineParams
    channels = choose_channels(manifest, params.engine.channels)
    ok = decodable(manifest).to_numpy()
    positions = np.flatnonzero(ok)
    root = source_root(params)
    workers = params.tensors.workers
    chunk = max(1, params.tensors.chunk_size)
    n = len(manifest)
    boxes = np.full((n, 4), -1, dtype=np.int64)
    paths = manifest["path"].astype(str).to_numpy()
    sizes = [optional_int(v) for v in manifest["bytes"]] if "bytes" in manifest else [None] * n
    hashes = [optional(v) for v in manifest["sha256"]] if "sha256" in manifest else [None] * n
    limits = Limits.of(params.scan)
    jobs = [_Job(tuple(int(i) for i in positions[s:s + chunk]),
                 tuple(paths[positions[s:s + chunk]]),
                 tuple(sizes[i] for i in positions[s:s + chunk]),
                 tuple(hashes[i] for i in positions[s:s + chunk]),
                 str(root), size, channels == 3, limits)
            for s in range(0, len(positions), chunk)]
    target = params.path("tensors")
    with atomic_path(target, suffix=".npy") as tmp:
        # open_memmap creates a sparse file of zeros: undecodable rows stay zero for free
        out = open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(n, size, size, channels))
        preallocate(tmp, out.offset + out.nbytes)  # full disk: an error now, not a SIGBUS
        done = 0
        for job, arrays, job_boxes in _run_jobs(jobs, workers):
            out[list(job.positions)] = arrays
            boxes[list(job.positions)] = job_boxes
            done += len(job.positions)
            if done == len(positions) or done % (chunk * 20) < chunk:
                log.info("tensors: %d/%d images", done, len(positions))
        out.flush()
        del out
    index = pd.DataFrame({"id": manifest["id"].to_numpy(), "decoded": ok})
    for j, name in enumerate(("box_top", "box_left", "box_height", "box_width")):
        index[name] = pd.array(np.where(ok, boxes[:, j], 0), dtype="Int64")
        index.loc[~ok, name] = pd.NA
    write_parquet(params.path("tensor_index"), index)
    log.info("tensors: %d of %d rows decoded into %s (%dx%d, %s) in %.1f s",
             len(positions), n, target, size, size, "rgb" if channels == 3 else "gray",
             time.perf_counter() - start)
    return 0


def _run_jobs(jobs: Sequence[_Job], workers: int
              ) -> Iterator[tuple[_Job, np.ndarray, np.ndarray]]:
    """Results in job order; at most ``2 * workers`` chunks in flight (bounded memory)."""
    if workers <= 0 or len(jobs) <= 1:
        for job in jobs:
            yield job, *_decode_chunk(job)
        return
    with ProcessPoolExecutor(max_workers=min(workers, os.cpu_count() or 1)) as pool:
        pending: list[tuple[_Job, Future[tuple[np.ndarray, np.ndarray]]]] = []
        it = iter(jobs)
        for job in it:
            pending.append((job, pool.submit(_decode_chunk, job)))
            if len(pending) >= 2 * workers:
                break
        while pending:
            job, fut = pending.pop(0)
            arrays, boxes = fut.result()
            nxt = next(it, None)
            if nxt is not None:
                pending.append((nxt, pool.submit(_decode_chunk, nxt)))
            yield job, arrays, boxes


def _decode_chunk(job: _Job) -> tuple[np.ndarray, np.ndarray]:
    """Decode and letterbox one chunk: (n, S, S, C) uint8 and (n, 4) content boxes."""
    c = 3 if job.rgb else 1
    arrays = np.zeros((len(job.paths), job.size, job.size, c), dtype=np.uint8)
    boxes = np.zeros((len(job.paths), 4), dtype=np.int64)
    root = Path(job.root)
    for k, rel in enumerate(job.paths):
        # checked against the manifest (regular file, inside the root, same size and
        # hash), decoded under the scan's limits; draft_side: a large JPEG is decoded at
        # a reduced DCT scale, still >= S
        img = reopen(root, rel, size=job.sizes[k], sha256=job.hashes[k], limits=job.limits,
                     draft_side=job.size)
        pixels = np.asarray(img.convert("RGB" if job.rgb else "L"))
        boxed, box = letterbox(pixels, job.size)
        arrays[k] = boxed.reshape(job.size, job.size, c)
        boxes[k] = box
    return arrays, boxes
