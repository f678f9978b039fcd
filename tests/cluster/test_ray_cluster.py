"""``cluster.backend: ray`` on a real two-node Ray cluster on loopback (issue 23; the
cluster is tests/raycluster.py, started once per session by the ``ray_cluster`` fixture).

- scan, tensors, crossval and audit on a small ImageFolder through the Ray backend give
  the same manifest and tensor files (bytes) as the local backend, the same issues, and
  out-of-fold predictions equal within float tolerance (same folds, same seeds, one
  torch thread on both sides);
- the second node is killed (SIGKILL to its raylet and workers) while it trains a fold:
  Ray re-runs the fold on the head and the stage writes the same predictions;
- Ctrl-C on a ``dataqa crossval`` driver cancels its tasks on the cluster.

Nothing here waits for a duration: every wait is "until this holds" with a generous
deadline that only bounds a broken run.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from dataqa.params import load_params
from dataqa.steps import audit, crossval, scan, tensors
from tests.pipeline.workspace import draw_digit_folder
from tests.raycluster import REPO, Cluster, _until

CROSSVAL = {"folds": 4, "epochs": 2, "batch_size": 16, "lr": 0.05, "width": 4, "depth": 1,
            "crop_padding": 0, "arch": "small_cnn"}


def _workspace(root: Path, backend: str, source: Path, **over: Any) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    params = {
        "data": {"source": str(source)},
        "scan": {"workers": 2, "chunk_size": 8},
        "tensors": {"workers": 2, "chunk_size": 8},
        "engine": {"image_size": 16, "device": "cpu", "cpu_threads": 1, "seed": 0},
        "crossval": dict(CROSSVAL, **over.get("crossval", {})),
        "audit": {"checks": ["integrity", "exact_duplicate", "near_duplicate", "label",
                             "outlier", "dark", "blurry"]},
        "cluster": {"backend": backend, "address": "auto", "max_retries": 3},
    }
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    return root / "params.yaml"


def _run(params_file: Path, *steps: Any) -> None:
    params = load_params(params_file)
    for step in steps:
        assert step.run_stage(params) == 0


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ray-src") / "images"
    draw_digit_folder(root, classes=3, per_class=24, seed=3)
    # an exact copy and an undecodable file: the rows the checks and the scan must agree on
    shutil.copy(root / "1" / sorted(os.listdir(root / "1"))[0], root / "1" / "zz_copy.png")
    (root / "2" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    return root


@pytest.fixture(scope="module")
def local_run(source: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    params_file = _workspace(tmp_path_factory.mktemp("local"), "local", source)
    _run(params_file, scan, tensors, crossval, audit)
    return load_params(params_file)


@pytest.mark.timeout(300)
def test_ray_backend_writes_what_the_local_backend_writes(
        ray_cluster: Cluster, source: Path, local_run: Any, tmp_path: Path) -> None:
    params_file = _workspace(tmp_path / "ray", "ray", source)
    _run(params_file, scan, tensors, crossval, audit)
    params = load_params(params_file)

    for key in ("manifest", "tensors"):  # byte for byte
        assert params.path(key).read_bytes() == local_run.path(key).read_bytes(), key
    assert pd.read_parquet(params.path("tensor_index")).equals(
        pd.read_parquet(local_run.path("tensor_index")))
    probs, ref = np.load(params.path("pred_probs")), np.load(local_run.path("pred_probs"))
    assert np.isnan(probs).any(axis=1).sum() == 1  # the undecodable file
    np.testing.assert_allclose(probs, ref, atol=1e-4, equal_nan=True)
    np.testing.assert_allclose(np.load(params.path("embeddings")),
                               np.load(local_run.path("embeddings")), atol=1e-3,
                               equal_nan=True)
    mine = pd.read_parquet(params.path("issues"))
    theirs = pd.read_parquet(local_run.path("issues"))
    flags = [c for c in mine.columns if c.startswith("is_")]
    assert mine[["path", *flags]].equals(theirs[["path", *flags]])
    metrics = json.loads(params.path("crossval_metrics").read_text())
    assert metrics["cluster"]["backend"] == "ray"
    assert metrics["folds"] == 4 and len(metrics["fold_details"]) == 4


@pytest.mark.timeout(300)
def test_a_source_the_nodes_cannot_see_is_an_error_not_unreadable_rows(
        ray_cluster: Cluster, tmp_path: Path) -> None:
    from dataqa.dataset.scan_worker import scan_chunk_on_node
    from dataqa.errors import SourceError

    params = load_params(_workspace(tmp_path, "ray", tmp_path / "nowhere"))
    from dataqa.cluster import map_tasks

    with pytest.raises(SourceError, match="not found on cluster node"):
        list(map_tasks(scan_chunk_on_node, [(str(tmp_path / "nowhere"), ["a.png"],
                                             10**6, None, None)], params.cluster,
                       what="scan"))


def _driver(params_file: Path, name: str) -> subprocess.Popen[bytes]:
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join([str(REPO), *filter(None, [
                   os.environ.get("PYTHONPATH")])]))
    log = open(params_file.parent / f"{name}.log", "wb")  # noqa: SIM115
    # preexec_fn: SIGINT's default action in the driver even when the tests run in a
    # background job, which inherits SIGINT ignored (Python then installs no handler)
    return subprocess.Popen([sys.executable, "-m", "dataqa.cli", "crossval", "--params",
                             str(params_file)], stdout=log, stderr=subprocess.STDOUT,
                            env=env, cwd=params_file.parent,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


@pytest.mark.timeout(300)
def test_ctrl_c_cancels_the_runs_tasks(ray_cluster: Cluster, source: Path, local_run: Any,
                                       tmp_path: Path) -> None:
    params_file = _workspace(tmp_path, "ray", source, crossval={"epochs": 200})
    for src in ("manifest", "tensors", "tensor_index"):
        dst = load_params(params_file).path(src)
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(local_run.path(src), dst)
    proc = _driver(params_file, "driver")
    try:
        _until(lambda: proc.poll() is not None or
               bool(ray_cluster.busy_workers("head") or ray_cluster.busy_workers("node")),
               "a fold to run on the cluster")
        assert proc.poll() is None, (tmp_path / "driver.log").read_text()[-3000:]
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 130, (tmp_path / "driver.log").read_text()[-3000:]
        _until(lambda: not ray_cluster.busy_workers("head") and not ray_cluster.busy_workers("node"),
               "the run's tasks to stop")
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not load_params(params_file).path("pred_probs").exists()  # nothing half-written


@pytest.mark.timeout(300)
def test_losing_a_node_during_crossval_still_ends_with_the_same_predictions(
        ray_cluster: Cluster, source: Path, local_run: Any, tmp_path: Path) -> None:
    """Runs last among the Ray tests of this module: the second node does not come
    back (the tuning test on the cluster needs only the head)."""
    params_file = _workspace(tmp_path, "ray", source)
    for src in ("manifest", "tensors", "tensor_index"):
        dst = load_params(params_file).path(src)
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(local_run.path(src), dst)
    proc = _driver(params_file, "driver")
    try:
        _until(lambda: proc.poll() is not None or bool(ray_cluster.busy_workers("node")),
               "a fold to train on the second node")
        assert proc.poll() is None, (tmp_path / "driver.log").read_text()[-3000:]
        ray_cluster.kill("node")
        assert proc.wait(timeout=240) == 0, (tmp_path / "driver.log").read_text()[-4000:]
    finally:
        if proc.poll() is None:
            proc.kill()
    _until(lambda: ray_cluster.alive_nodes() == 1, "the head to declare the node dead")
    # the fold lost with the node was trained again on the head: the same predictions
    # as the local backend's (same folds, same seeds, one torch thread)
    np.testing.assert_allclose(np.load(load_params(params_file).path("pred_probs")),
                               np.load(local_run.path("pred_probs")), atol=1e-4,
                               equal_nan=True)
    metrics = json.loads(load_params(params_file).path("crossval_metrics").read_text())
    assert len(metrics["fold_details"]) == 4


def test_the_session_driver_does_not_stream_cluster_logs(ray_cluster: Cluster,
                                                         capsys: pytest.CaptureFixture[str]
                                                         ) -> None:
    """The test session stays joined to the cluster until its end; Ray's log monitor
    would print worker and raylet lines (a raylet's "disk over 95 % full") into whatever
    later test captures stderr, so the fixture joins with ``log_to_driver=False``."""
    import ray

    @ray.remote(num_cpus=0)
    def shout() -> int:
        print("dq-marker-from-a-worker", file=sys.stderr, flush=True)
        return os.getpid()

    ray.get(shout.remote())
    # a streamed line reaches the driver within Ray's log-monitor poll; wait for a
    # second task's round trip so a streaming driver would have printed the first
    ray.get(shout.remote())
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:  # bounded: a streaming driver prints well before
        out, err = capsys.readouterr()
        assert "dq-marker-from-a-worker" not in out + err
        time.sleep(0.25)


@pytest.mark.timeout(120)
def test_finished_tasks_are_never_cancelled(ray_cluster: Cluster,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """Force-cancelling a task whose result has just arrived races Ray's bookkeeping of
    its reply (the driver aborted with "Tried to complete task that was not pending" after
    a tune stage had printed "done", exit 1): a gather that ended normally cancels
    nothing, and cancelling a mix cancels only the task still running."""
    import operator

    import ray
    from ray import exceptions as rex

    from dataqa import cluster as cl
    from dataqa.params import ClusterParams

    params = ClusterParams(backend="ray", address="auto", num_cpus=0)
    cancelled: list[Any] = []
    real_cancel = ray.cancel

    def spy(ref: Any, **kw: Any) -> None:
        cancelled.append(ref)
        real_cancel(ref, **kw)

    monkeypatch.setattr(ray, "cancel", spy)
    refs = cl.start_tasks(operator.add, [(i, 1) for i in range(4)], params)
    assert cl.gather(refs, what="test") == [1, 2, 3, 4]
    assert cancelled == []

    assert list(cl.map_tasks(operator.add, [(1, 1)], params, what="test")) == [(0, 2)]
    assert cancelled == []

    quick, slow = cl.start_tasks(time.sleep, [(0,), (600,)], params)
    ray.get(quick)
    cl.cancel(ray, [quick, slow])
    assert cancelled and set(cancelled) == {slow}
    with pytest.raises((rex.TaskCancelledError, rex.WorkerCrashedError)):
        ray.get(slow, timeout=60)
