"""The K-fold pass over many hosts: a queue of folds in the tuning database.

``crossval.distributed: true`` (or ``dataqa crossval --worker``) spreads the folds over
any number of processes on any number of hosts, the way tuning spreads trials: they
share the database of ``tune.storage`` (an SQLAlchemy URL: PostgreSQL or MySQL across
hosts, SQLite on one). A run is identified by a key over what decides its result (the
rows and labels used, the training config, folds, seed): workers started from the same
params and data join the same run; a changed input starts a new one.

Table ``dataqa_crossval_folds``: one row per (run, fold) with its state (``queued``,
``running``, ``done``), the worker holding it, a heartbeat and, once done, the fold's
held-out predictions and embeddings (``.npz`` bytes) and its info (JSON). A worker
claims the lowest queued fold in a transaction (``SELECT ... FOR UPDATE SKIP LOCKED``
where the database has it), trains it while a thread refreshes the heartbeat, and
stores the result. A running fold whose heartbeat is older than
``tune.grace_period`` seconds (its worker was killed or lost) is claimed again by the
next worker that asks, up to ``tune.max_retry`` extra attempts. Workers keep polling
until every fold is done, so a fold orphaned late is still retried; the main
``dataqa crossval`` works as one more worker, then assembles the out-of-fold arrays
and writes the usual outputs.

Why not Optuna trials: a fold is not a search point (no parameters, no objective), and
its result is two arrays, not a number; a 30-line table says what it is.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import sqlalchemy as sa

from dataqa.errors import EngineError, ParamsError

TABLE = "dataqa_crossval_folds"


def run_key(ids: np.ndarray, labels: np.ndarray, *parts: Any) -> str:
    """A key over the rows, labels and settings that decide a pass's result."""
    h = hashlib.blake2b(digest_size=12)
    h.update(np.ascontiguousarray(ids, dtype=np.int64).tobytes())
    h.update(np.ascontiguousarray(labels, dtype=np.int64).tobytes())
    h.update(json.dumps(parts, sort_keys=True, default=str).encode())
    return h.hexdigest()


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class FoldQueue:
    """The folds of one run (``key``) in the database at ``url``."""

    def __init__(self, url: str, key: str, *, stale_after: float = 60.0,
                 max_retry: int = 3) -> None:
        try:
            self.engine = sa.create_engine(url, pool_pre_ping=True)
        except (sa.exc.ArgumentError, ImportError) as exc:
            raise ParamsError(f"params.yaml: tune.storage: {url!r} is not a usable "
                              f"database URL for the fold queue ({exc})") from None
        self.key, self.stale_after, self.max_retry = key, stale_after, max_retry
        meta = sa.MetaData()
        self.table = sa.Table(
            TABLE, meta,
            sa.Column("run", sa.String(32), primary_key=True),
            sa.Column("fold", sa.Integer, primary_key=True),
            sa.Column("state", sa.String(8), nullable=False),
            sa.Column("worker", sa.String(255)),
            sa.Column("heartbeat", sa.Float),
            sa.Column("attempts", sa.Integer, nullable=False),
            sa.Column("result", sa.LargeBinary),
            sa.Column("info", sa.Text))
        for attempt in range(3):  # two workers creating the table at once: one wins
            try:
                meta.create_all(self.engine, checkfirst=True)
                break
            except sa.exc.DBAPIError:
                if attempt == 2:
                    raise
                time.sleep(0.2)

    def enqueue(self, folds: int) -> None:
        """Add folds 0..folds-1 of this run unless already there."""
        t = self.table
        for fold in range(folds):
            try:
                with self.engine.begin() as con:
                    con.execute(t.insert().values(run=self.key, fold=fold, state="queued",
                                                  attempts=0))
            except sa.exc.IntegrityError:
                pass  # another process queued it

    def claim(self, worker: str) -> int | None:
        """The next fold for ``worker`` (queued, or running with a stale heartbeat), or
        None when there is none to take now."""
        t = self.table
        now = time.time()
        with self.engine.begin() as con:
            stale = sa.and_(t.c.state == "running", t.c.heartbeat < now - self.stale_after)
            row = con.execute(
                sa.select(t.c.fold, t.c.attempts, t.c.state)
                .where(t.c.run == self.key, sa.or_(t.c.state == "queued", stale))
                .order_by(t.c.fold).limit(1).with_for_update(skip_locked=True)).first()
            if row is None:
                return None
            if row.attempts > self.max_retry:
                raise EngineError(f"crossval fold {row.fold + 1}: its worker died "
                                  f"{row.attempts} times (tune.max_retry={self.max_retry})")
            con.execute(t.update().where(t.c.run == self.key, t.c.fold == row.fold)
                        .values(state="running", worker=worker, heartbeat=now,
                                attempts=row.attempts + 1))
            return int(row.fold)

    def beat(self, fold: int, worker: str) -> None:
        t = self.table
        with self.engine.begin() as con:
            con.execute(t.update().where(t.c.run == self.key, t.c.fold == fold,
                                         t.c.worker == worker, t.c.state == "running")
                        .values(heartbeat=time.time()))

    def finish(self, fold: int, worker: str, result: bytes, info: dict[str, Any]) -> None:
        t = self.table
        with self.engine.begin() as con:
            con.execute(t.update().where(t.c.run == self.key, t.c.fold == fold,
                                         t.c.state != "done")
                        .values(state="done", worker=worker, result=result,
                                info=json.dumps(info)))

    def pending(self) -> int:
        t = self.table
        with self.engine.begin() as con:
            return int(con.execute(sa.select(sa.func.count()).select_from(t).where(
                t.c.run == self.key, t.c.state != "done")).scalar_one())

    def results(self) -> dict[int, tuple[bytes, dict[str, Any]]]:
        t = self.table
        with self.engine.begin() as con:
            rows = con.execute(sa.select(t.c.fold, t.c.result, t.c.info).where(
                t.c.run == self.key, t.c.state == "done")).all()
        return {int(r.fold): (bytes(r.result), json.loads(r.info)) for r in rows}


@contextmanager
def heartbeat(queue: FoldQueue, fold: int, worker: str, interval: float) -> Iterator[None]:
    """Refresh the fold's heartbeat every ``interval`` seconds while the body runs."""
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(interval):
            try:
                queue.beat(fold, worker)
            except sa.exc.DBAPIError:
                pass  # a lost connection: the next beat retries; the fold may be retaken

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def work(queue: FoldQueue, run_fold: Callable[[int], tuple[bytes, dict[str, Any]]], *,
         interval: float, poll: float = 1.0, worker: str | None = None) -> int:
    """Claim and run folds until every fold of the run is done; returns how many this
    worker ran. ``run_fold(fold) -> (result bytes, info)``."""
    worker = worker or worker_name()
    ran = 0
    while True:
        fold = queue.claim(worker)
        if fold is None:
            if queue.pending() == 0:
                return ran
            time.sleep(poll)  # others hold the rest; take one over if its worker dies
            continue
        with heartbeat(queue, fold, worker, interval):
            result, info = run_fold(fold)
        queue.finish(fold, worker, result, info)
        ran += 1


def pack(probs: np.ndarray, emb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, probs=probs, emb=emb)
    return buf.getvalue()


def unpack(data: bytes) -> tuple[np.ndarray, np.ndarray]:
    with np.load(io.BytesIO(data), allow_pickle=False) as z:
        return z["probs"], z["emb"]


def cross_val_predict_distributed(images: np.ndarray, labels: np.ndarray, *, row_ids: np.ndarray,
                                  folds: int, config: Any, seed: int, device: Any,
                                  class_names: list[str], tune: Any, worker_only: bool = False
                                  ) -> tuple[np.ndarray, np.ndarray, dict[str, Any]] | None:
    """:func:`dataqa.engine.crossval.cross_val_predict` through the fold queue in
    ``tune.storage``. Returns the same triple, or None for a worker (``worker_only``),
    which only runs folds."""
    from dataqa.engine import crossval as cv
    from dataqa.engine import device as dev
    from dataqa.engine.data import DeviceData

    if not tune.storage or "://" not in str(tune.storage):
        raise ParamsError("params.yaml: tune.storage: the distributed K-fold pass "
                          "(crossval.distributed or `dataqa crossval --worker`) needs a "
                          "database URL that every host reaches, e.g. "
                          "postgresql://user@host/db")
    labels = np.asarray(labels, dtype=np.int64)
    k, folds_used, splits, warnings = cv.plan_folds(labels, folds=folds, seed=seed,
                                                    class_names=class_names)
    key = run_key(row_ids, labels, config.describe(), folds_used, seed, class_names)
    queue = FoldQueue(tune.storage, key, stale_after=float(tune.grace_period),
                      max_retry=int(tune.max_retry))
    queue.enqueue(folds_used)
    start = time.perf_counter()
    held: dict[str, Any] = {}

    def run_fold(fold: int) -> tuple[bytes, dict[str, Any]]:
        if "data" not in held:  # loaded on the first fold this process runs
            held["data"] = DeviceData.from_arrays(images, labels, device=device,
                                                  num_classes=k)
        train_idx, hold_idx = splits[fold]
        probs, emb, info = cv.fit_fold(held["data"], labels, train_idx, hold_idx, fold=fold,
                                       folds=folds_used, config=config)
        info["worker"] = worker_name()
        return pack(probs, emb), info

    ran = work(queue, run_fold, interval=float(tune.heartbeat_interval))
    if worker_only:
        return None
    results = queue.results()
    n = len(labels)
    pred_probs = np.full((n, k), np.nan, dtype=np.float32)
    embeddings: np.ndarray | None = None
    fold_info = []
    for fold, (_, hold_idx) in enumerate(splits):
        blob, info = results[fold]
        probs, emb = unpack(blob)
        if embeddings is None:
            embeddings = np.full((n, emb.shape[1]), np.nan, dtype=np.float32)
        pred_probs[hold_idx], embeddings[hold_idx] = probs, emb
        warnings.extend(info.pop("warnings", []))
        fold_info.append(info)
    assert embeddings is not None
    info = {"folds": folds_used, "folds_requested": folds, "device": dev.describe(device),
            "seconds": time.perf_counter() - start, "fold_details": fold_info,
            "warnings": warnings, "config": config.describe(),
            "distributed": {"run": key, "folds_run_here": ran,
                            "workers": sorted({str(i.get("worker")) for i in fold_info})}}
    return pred_probs, embeddings, info
