"""DVC stage ``tensors``: the manifest -> ``paths.tensors`` and ``paths.tensor_index``
(layout and colour rule in :mod:`dataqa.dataset.tensors`)."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
from numpy.lib.format import open_memmap

from dataqa.dataset.manifest import decodable, read_manifest
from dataqa.dataset.reopen import Limits, optional, optional_int
from dataqa.dataset.sources import source_root
from dataqa.dataset.tensors import DecodeJob, choose_channels, log, run_jobs
from dataqa.engine.progress import show_progress
from dataqa.io import atomic_path, preallocate, release_pages, write_parquet
from dataqa.params import Params

RELEASE_BYTES = 64 << 20  # flush and unmap the written tensor pages this often (1M: 1 GB)


def run_stage(params: Params) -> int:
    """Write ``paths.tensors`` and ``paths.tensor_index`` from the manifest."""
    show_progress()
    start = time.perf_counter()
    manifest = read_manifest(params.path("manifest"))
    size = params.engine.image_size  # >= 8, checked by EngineParams
    channels = choose_channels(manifest, params.engine.channels)
    ok = decodable(manifest).to_numpy()
    positions = np.flatnonzero(ok)
    root = source_root(params.resolve(params.data.source))
    workers = params.tensors.workers
    chunk = max(1, params.tensors.chunk_size)
    n = len(manifest)
    boxes = np.full((n, 4), -1, dtype=np.int64)
    paths = manifest["path"].astype(str).to_numpy()
    # the manifest's size and hash of each file: the reopen refuses a changed file
    sizes = [optional_int(v) for v in manifest["bytes"]] if "bytes" in manifest else [None] * n
    hashes = [optional(v) for v in manifest["sha256"]] if "sha256" in manifest else [None] * n
    limits = Limits.of(params.scan)
    jobs = [DecodeJob(tuple(int(i) for i in positions[s:s + chunk]),
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
        done = written = 0
        for job, arrays, job_boxes in run_jobs(jobs, workers, params.cluster):
            out[list(job.positions)] = arrays
            boxes[list(job.positions)] = job_boxes
            done += len(job.positions)
            written += arrays.nbytes
            if written >= RELEASE_BYTES:  # written pages leave this process's memory
                out.flush()
                release_pages(out)
                written = 0
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
