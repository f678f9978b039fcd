"""The distributed K-fold pass for real: the PostgreSQL server of the tuning test, two
``dataqa crossval --worker`` processes on one fold queue, one of them SIGKILLed while
it trains a fold.

Checks: the killed worker's fold is claimed again (2 attempts) and finished by the
other worker; every fold is done exactly once; the main ``dataqa crossval`` (with
``crossval.distributed``) runs no fold itself and writes out-of-fold predictions equal
to the single-process pass.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
import yaml
from test_tune_distributed import postgres  # noqa: F401  (the server fixture)

from dataqa.engine.fold_queue import TABLE
from dataqa.io import write_parquet
from dataqa.params import load_params
from dataqa.steps import crossval

CROSSVAL = {"folds": 4, "epochs": 3, "batch_size": 16, "lr": 0.05, "width": 4, "depth": 1,
            "crop_padding": 0}


def _workspace(root: Path, url: str, tune_files) -> Path:
    params = tune_files(n=240, quarantined=0)
    sections = yaml.safe_load((root / "params.yaml").read_text())
    sections["crossval"] = dict(CROSSVAL, distributed=True)
    sections["tune"].update({"storage": url, "heartbeat_interval": 1, "grace_period": 3,
                             "max_retry": 2})
    (root / "params.yaml").write_text(yaml.safe_dump(sections))
    manifest = pd.read_parquet(params.path("manifest"))
    write_parquet(params.path("tensor_index"),
                  pd.DataFrame({"id": manifest["id"], "decoded": True}))
    return root / "params.yaml"


def _start(params_file: Path, name: str, *extra: str) -> subprocess.Popen[bytes]:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    out = open(params_file.parent / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
    return subprocess.Popen([sys.executable, "-m", "dataqa.cli", "crossval", "--params",
                             str(params_file), *extra], stdout=out,
                            stderr=subprocess.STDOUT, env=env)


def _rows(url: str) -> list:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as con:
            return list(con.execute(sa.text(
                f"SELECT fold, state, worker, attempts FROM {TABLE}")))
    except sa.exc.ProgrammingError:  # table not created yet
        return []
    finally:
        engine.dispose()


@pytest.mark.timeout(240)
def test_two_workers_share_the_folds_and_survive_a_kill(
        postgres: str, tune_files, tmp_path: Path) -> None:  # noqa: F811
    params_file = _workspace(tmp_path, postgres, tune_files)
    a = _start(params_file, "worker_a", "--worker")
    b = _start(params_file, "worker_b", "--worker")
    logs = lambda: "\n".join(f"--- {p.name}\n{p.read_text()[-2500:]}"  # noqa: E731
                             for p in tmp_path.glob("*.log"))
    try:
        deadline = time.monotonic() + 150
        while not any(r.state == "running" and r.worker.endswith(f":{a.pid}")
                      for r in _rows(postgres)):
            assert time.monotonic() < deadline and a.poll() is None, logs()
            time.sleep(0.05)
        a.send_signal(signal.SIGKILL)
        a.wait(timeout=10)
        assert b.wait(timeout=max(deadline - time.monotonic(), 1)) == 0, logs()
    finally:
        for p in (a, b):
            if p.poll() is None:
                p.kill()
                p.wait()
    rows = _rows(postgres)
    assert sorted(r.fold for r in rows) == [0, 1, 2, 3] and {r.state for r in rows} == {"done"}
    assert max(r.attempts for r in rows) == 2, rows  # the killed fold was run again
    assert all(r.worker.endswith(f":{b.pid}") for r in rows), rows  # B finished them all

    main = _start(params_file, "main")
    assert main.wait(timeout=120) == 0, logs()
    params = load_params(params_file)
    metrics = json.loads(params.path("crossval_metrics").read_text())
    assert metrics["distributed"]["folds_run_here"] == 0
    probs = np.load(params.path("pred_probs"))
    assert np.isfinite(probs).all()

    # the same pass in one process gives the same out-of-fold predictions
    single = tmp_path / "single"
    single.mkdir()
    sections = yaml.safe_load(params_file.read_text())
    sections["crossval"]["distributed"] = False
    for key in ("manifest", "tensors", "tensor_index"):
        sections.setdefault("paths", {})[key] = str(params.path(key))
    (single / "params.yaml").write_text(yaml.safe_dump(sections))
    import torch
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert crossval.run_stage(load_params(single / "params.yaml")) == 0
    finally:
        torch.set_num_threads(threads)
    ref = np.load(load_params(single / "params.yaml").path("pred_probs"))
    np.testing.assert_allclose(probs, ref, atol=1e-4)
