"""A `dvc repro` killed (SIGKILL, the whole process group: what an OOM killer, a CI
timeout or a lost machine does) while the crossval stage writes its outputs leaves no
partial file at an output's final path, and a plain `dvc repro` afterwards completes
with every output whole and consistent.

Timing: a kill "in the middle of writing" must be deterministic, so the stage process
gets a ``sitecustomize`` hook (on PYTHONPATH, active only in the crossval stage) that
stops inside the atomic write of ``pred_probs.npy``: after its bytes went into the
temporary file, before the rename (``os.replace``) that publishes them. The test waits
for the hook's marker and kills there: the exact moment a non-atomic writer would have
left half a file at the final path.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.pipeline.workspace import env, make_workspace, read_params, run, stages_run

pytestmark = pytest.mark.slow

HOOK = '''
import os, sys, time
from pathlib import Path

_target = os.environ.get("DATAQA_TEST_STALL_ON")
if _target and sys.argv and sys.argv[0].endswith(os.environ["DATAQA_TEST_STALL_STAGE"]):
    _replace = os.replace

    def _stalling_replace(src, dst, *args, **kwargs):
        if Path(dst).name == _target:
            # the temporary file is complete; the output is not yet published
            Path(os.environ["DATAQA_TEST_STALL_MARKER"]).write_text(str(src))
            time.sleep(600)
        return _replace(src, dst, *args, **kwargs)

    os.replace = _stalling_replace
'''


def test_kill_while_writing_then_repro_recovers(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path / "ws")
    paths = read_params(ws)["paths"]
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(HOOK)
    marker = tmp_path / "stalled"
    stall_env = {**env(), "PYTHONPATH": str(hooks), "DATAQA_TEST_STALL_ON": "pred_probs.npy",
                 "DATAQA_TEST_STALL_STAGE": "stages/crossval.py",
                 "DATAQA_TEST_STALL_MARKER": str(marker)}

    proc = subprocess.Popen(["dvc", "repro", "crossval"], cwd=ws, env=stall_env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    deadline = time.monotonic() + 300
    while not marker.exists():
        if proc.poll() is not None:
            out = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
            raise AssertionError(f"dvc repro ended before the stall:\n{out}")
        assert time.monotonic() < deadline, "crossval never reached its output write"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # dvc and the stage process, like an OOM kill
    proc.wait(timeout=30)
    if proc.stdout:
        proc.stdout.close()

    # the kill came after the temporary file was written, before the rename
    tmp = Path(marker.read_text())
    assert tmp.parent == (ws / paths["pred_probs"]).parent
    assert tmp.name.startswith(".pred_probs.npy.")
    # no partial output at a final path: crossval's outputs do not exist at all (DVC
    # removed them before running the stage; the atomic write never published them)
    assert not (ws / paths["pred_probs"]).exists()
    assert not (ws / paths["embeddings"]).exists()
    assert not (ws / paths["crossval_metrics"]).exists()
    # the stages before it finished and are whole
    manifest = pd.read_parquet(ws / paths["manifest"])
    assert len(np.load(ws / paths["tensors"], mmap_mode="r")) == len(manifest)

    # a plain rerun (no lock clean-up: DVC's lock is an flock released by the kill, and
    # its rwlock entry names a dead pid) redoes crossval only (after the always-run,
    # unchanged source fingerprint)
    rerun = run(["dvc", "repro", "crossval"], ws)
    assert stages_run(rerun.stdout + rerun.stderr) == ["fingerprint", "crossval"]
    probs = np.load(ws / paths["pred_probs"], allow_pickle=False)
    emb = np.load(ws / paths["embeddings"], allow_pickle=False)
    index = pd.read_parquet(ws / paths["tensor_index"])
    metrics = json.loads((ws / paths["crossval_metrics"]).read_text())
    assert probs.shape == (len(manifest), len(metrics["classes"])) and len(emb) == len(manifest)
    assert (index["id"].to_numpy() == manifest["id"].to_numpy()).all()
    decoded = index["decoded"].to_numpy(dtype=bool)
    assert np.isfinite(probs[decoded]).all()
    np.testing.assert_allclose(probs[decoded].sum(axis=1), 1.0, atol=1e-4)
    # the killed write's temporary file stays behind, hidden (DVC and dataqa never read
    # it); nothing else does
    assert sorted(p.name for p in tmp.parent.glob(".pred_probs.npy.*")) == [tmp.name]
    status = json.loads(run(["dvc", "status", "--json", "--with-deps", "crossval"], ws).stdout)
    assert status == {"fingerprint": ["always changed"]}  # the cheap listing, by design
