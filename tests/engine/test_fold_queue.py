"""The fold queue of the distributed K-fold pass, on SQLite (one host): claims never
overlap, a fold whose heartbeat went stale is claimed again, a fold that keeps killing
its workers is an error, and workers stop once every fold is done."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

from dataqa.engine.fold_queue import FoldQueue, pack, run_key, unpack, work
from dataqa.errors import EngineError


def queue(tmp_path: Path, **kw) -> FoldQueue:
    return FoldQueue(f"sqlite:///{tmp_path / 'q.db'}", "run1", **kw)


def test_claims_in_order_never_twice_and_results_round_trip(tmp_path: Path) -> None:
    q = queue(tmp_path, stale_after=60)
    q.enqueue(3)
    q.enqueue(3)  # a second process queuing the same run adds nothing
    assert [q.claim("a"), q.claim("b"), q.claim("a"), q.claim("b")] == [0, 1, 2, None]
    assert q.pending() == 3
    probs, emb = np.random.default_rng(0).random((5, 3)), np.ones((5, 2), np.float32)
    q.finish(1, "b", pack(probs, emb), {"fold": 2})
    blob, info = q.results()[1]
    p, e = unpack(blob)
    np.testing.assert_array_equal(p, probs)
    np.testing.assert_array_equal(e, emb)
    assert info == {"fold": 2} and q.pending() == 2


def test_stale_fold_is_claimed_again_up_to_max_retry(tmp_path: Path) -> None:
    q = queue(tmp_path, stale_after=0.2, max_retry=1)
    q.enqueue(1)
    assert q.claim("a") == 0
    assert q.claim("b") is None  # a's heartbeat is fresh
    q.beat(0, "a")
    time.sleep(0.3)  # a died: no beat
    assert q.claim("b") == 0  # attempt 2
    time.sleep(0.3)
    with pytest.raises(EngineError, match="fold 1: its worker died 2 times"):
        q.claim("c")


def test_runs_do_not_mix(tmp_path: Path) -> None:
    a = FoldQueue(f"sqlite:///{tmp_path / 'q.db'}", "run-a")
    b = FoldQueue(f"sqlite:///{tmp_path / 'q.db'}", "run-b")
    a.enqueue(2)
    assert b.claim("w") is None and b.pending() == 0
    ids, labels = np.arange(4), np.array([0, 1, 0, 1])
    assert run_key(ids, labels, {"lr": 0.1}) != run_key(ids, labels, {"lr": 0.2})
    assert run_key(ids, labels, {"lr": 0.1}) == run_key(ids.copy(), labels, {"lr": 0.1})


def test_work_waits_for_others_and_retakes_a_dead_workers_fold(tmp_path: Path) -> None:
    q = queue(tmp_path, stale_after=0.5)
    q.enqueue(3)
    assert q.claim("dead") == 0  # claimed by a worker that never beats nor finishes
    ran: list[int] = []

    def run_fold(fold: int):
        ran.append(fold)
        return pack(np.zeros((1, 2)), np.zeros((1, 2))), {"fold": fold + 1}

    t = threading.Thread(target=lambda: ran.append(-work(q, run_fold, interval=0.1,
                                                         poll=0.05, worker="w")))
    t.start()
    t.join(timeout=20)
    assert not t.is_alive()
    assert sorted(ran[:-1]) == [0, 1, 2] and ran[-1] == -3  # fold 0 after it went stale
    assert q.pending() == 0 and set(q.results()) == {0, 1, 2}
