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

``cluster.backend: ray``: the chunks are decoded as Ray tasks
(:func:`dataqa.cluster.map_tasks`) and written at their rows by this process: the
same tensor file, byte for byte.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from dataqa.dataset.imageio import letterbox
from dataqa.dataset.manifest import decodable
from dataqa.dataset.reopen import Limits, reopen
from dataqa.errors import StageInputError
from dataqa.params import ClusterParams, Params
from dataqa.workers import WorkerPool

log = logging.getLogger("dataqa.dataset.tensors")

COLOUR_THRESHOLD = 0.02  # manifest stat_colorfulness above this: the image has colour
COLOUR_SHARE = 0.10  # auto picks RGB when at least this share of images has colour


@dataclass(frozen=True)
class DecodeJob:
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


def run_jobs(jobs: Sequence[DecodeJob], workers: int, cluster: ClusterParams | None = None
             ) -> Iterator[tuple[DecodeJob, np.ndarray, np.ndarray]]:
    """Results in job order (on a cluster: as they finish); at most ``2 * workers``
    chunks in flight (bounded memory)."""
    if cluster is not None and cluster.backend == "ray":
        from dataqa.cluster import map_tasks

        for i, (arrays, boxes) in map_tasks(_decode_chunk_on_node, [(job,) for job in jobs],
                                            cluster, what="tensors"):
            yield jobs[i], arrays, boxes
        return
    if workers <= 0 or len(jobs) <= 1:
        for job in jobs:
            yield job, *_decode_chunk(job)
        return
    with WorkerPool(min(workers, os.cpu_count() or 1)) as pool:  # Ctrl-C: exit 130
        pending: list[tuple[DecodeJob, Future[tuple[np.ndarray, np.ndarray]]]] = []
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


def _decode_chunk_on_node(job: DecodeJob) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_decode_chunk` as a Ray task: the source root must exist on the node."""
    from dataqa.dataset.scan_worker import check_root_visible

    check_root_visible(job.root)
    return _decode_chunk(job)


def _decode_chunk(job: DecodeJob) -> tuple[np.ndarray, np.ndarray]:
    """Decode and letterbox one chunk: (n, S, S, C) uint8 and (n, 4) content boxes."""
    c = 3 if job.rgb else 1
    arrays = np.zeros((len(job.paths), job.size, job.size, c), dtype=np.uint8)
    boxes = np.zeros((len(job.paths), 4), dtype=np.int64)
    root = Path(job.root)
    real_dirs: dict[str, str] = {}  # folders resolved once per chunk
    for k, rel in enumerate(job.paths):
        # checked against the manifest (regular file, inside the root, same size and
        # hash), decoded under the scan's limits; draft_side: a large JPEG is decoded at
        # a reduced DCT scale, still >= S
        img = reopen(root, rel, size=job.sizes[k], sha256=job.hashes[k], limits=job.limits,
                     draft_side=job.size, real_dirs=real_dirs)
        pixels = np.asarray(img.convert("RGB" if job.rgb else "L"))
        boxed, box = letterbox(pixels, job.size)
        arrays[k] = boxed.reshape(job.size, job.size, c)
        boxes[k] = box
    return arrays, boxes


# --------------------------------------------------------------------------- reading
def open_tensors(path: Path, *, rows: int | None = None, what: str = "tensors",
                 stage: str = "tensors") -> np.ndarray:
    """The one reader of a tensor file (``paths.tensors`` or ``paths.augmented_tensors``):
    memory-mapped uint8 (N, S, S, C), no pickle. A missing, unreadable or mis-shaped file
    (or, with ``rows``, one whose row count differs) is a StageInputError naming the file
    and the stage (``stage``) to rerun."""
    if not path.is_file():
        raise StageInputError(f"{path}: {what} not found; run the '{stage}' stage first")
    try:
        images = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise StageInputError(f"{path}: not a readable .npy file ({exc}); "
                              f"rerun the '{stage}' stage") from None
    square = images.ndim == 4 and images.shape[1] == images.shape[2]
    if not square or images.dtype != np.uint8 or (rows is not None and len(images) != rows):
        want = "" if rows is None else f" with the manifest's {rows} rows"
        raise StageInputError(f"{path}: shape {images.shape} ({images.dtype}) is not uint8 "
                              f"(N, S, S, C){want}; rerun the '{stage}' stage")
    return images


def read_tensor_index(index_path: Path) -> pd.DataFrame:
    """``paths.tensor_index`` (row i describes tensor row i: ``id``, ``decoded``, the
    content box); the one reader of that file."""
    if not index_path.is_file():
        raise StageInputError(f"{index_path}: not found; run the 'tensors' stage first")
    try:
        index = pd.read_parquet(index_path)
    except (OSError, ValueError) as exc:
        raise StageInputError(f"{index_path}: not a readable Parquet file ({exc}); "
                              f"rerun the 'tensors' stage") from None
    missing = [c for c in ("id", "decoded") if c not in index]
    if missing:
        raise StageInputError(f"{index_path}: no column(s) {missing}; rerun the 'tensors' stage")
    return index


def load_tensors(params: Params, manifest: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """The memory-mapped tensors and the decoded mask, checked against the manifest
    (every stage that trains reads the tensors through this)."""
    path, index_path = params.path("tensors"), params.path("tensor_index")
    n = len(manifest)
    images = open_tensors(path, rows=n)
    index = read_tensor_index(index_path)
    if len(index) != n:
        raise StageInputError(f"{index_path}: {len(index)} rows but the manifest has {n}; "
                              "rerun the 'tensors' stage")
    if not (index["id"].to_numpy() == manifest["id"].to_numpy()).all():
        raise StageInputError(f"{index_path}: ids differ from the manifest's; rerun 'tensors'")
    decoded = index["decoded"].to_numpy(dtype=bool)
    if not (decoded == decodable(manifest).to_numpy()).all():
        raise StageInputError(f"{index_path}: decoded rows differ from the manifest's; "
                              "rerun 'tensors'")
    return images, decoded
