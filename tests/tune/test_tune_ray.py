"""Tuning trials on the Ray cluster (issue 23): ``cluster.backend: ray`` makes the tune
stage (``dataqa tune``, a driver process as under ``dvc repro``) start a trial worker
as a Ray task beside itself, on the Optuna study in a real PostgreSQL database (the
server of the distributed tuning test); the study comes out complete, every planned
trial recorded once, some run by the Ray task's process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import optuna
import pytest
import yaml
from optuna.trial import TrialState
from test_tune_distributed import postgres  # noqa: F401  (the server fixture)

from dataqa.params import ClusterParams, Params
from dataqa.steps.tune import run_stage
from tests.raycluster import REPO

ROUNDS = {"lr": 4, "joint": 4}


@pytest.mark.timeout(300)
def test_trial_workers_run_as_ray_tasks_on_the_shared_study(
        ray_cluster, postgres: str, tune_files: Callable[..., Params],  # noqa: F811
        tmp_path: Path) -> None:
    # the fast stage-test rounds (tests/tune/conftest.py FAST_TUNE): 'small' has 12
    # images per class, so the rounds move to 'large'
    params = tune_files(tune={
        "budget_seconds": 3600,  # every planned trial runs: no round's time runs out
        "storage": postgres,
        "rounds": {"lr": {"trials": ROUNDS["lr"]}, "joint": {"trials": ROUNDS["joint"]},
                   "fine": {"trials": 0}},
        "cleaning": {"enabled": False}})
    sections = yaml.safe_load((params.root / "params.yaml").read_text())
    sections["cluster"] = {"backend": "ray", "address": "auto", "tune_workers": 1}
    (params.root / "params.yaml").write_text(yaml.safe_dump(sections))
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1",
               PYTHONPATH=os.pathsep.join([str(REPO), *filter(None, [
                   os.environ.get("PYTHONPATH")])]))
    driver = subprocess.run([sys.executable, "-m", "dataqa.cli", "tune", "--params",
                             str(params.root / "params.yaml")], capture_output=True,
                            text=True, env=env, timeout=280)
    (tmp_path / "driver.log").write_text(driver.stdout + driver.stderr)
    assert driver.returncode == 0, (driver.stdout[-2000:]
                                    + driver.stderr.split("Extension modules")[0][-6000:])
    assert "1 trial worker(s) on the Ray cluster" in driver.stderr + driver.stdout

    workers = set()
    for name, n in ROUNDS.items():
        trials = optuna.load_study(study_name=f"dataqa-{name}", storage=postgres).get_trials()
        done = [t for t in trials if t.state == TrialState.COMPLETE]
        assert len(done) == n
        # the start (no design point; in round 2 also at round 1's best learning rate),
        # then the planned design points, each exactly once
        starts = [t for t in done if "design" not in t.user_attrs]
        designs = sorted(t.user_attrs["design"] for t in done if "design" in t.user_attrs)
        assert 1 <= len(starts) <= 2 and designs == list(range(len(designs))), designs
        assert any(t.user_attrs.get("start") for t in starts)
        assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
        workers |= {str(t.user_attrs["worker"]) for t in done}
    # the driver and the Ray task share the study; which of them takes how many trials is
    # the scheduler's business (asserting both ran one would depend on timing)
    assert 1 <= len(workers) <= 2, workers
    metrics = json.loads(params.path("tune_metrics").read_text())
    assert metrics["trials"] == {"complete": sum(ROUNDS.values())}


def test_tuning_on_the_cluster_needs_a_database(tune_files: Callable[..., Params]) -> None:
    """A journal file under the project folder is not what every node's workers can
    share: a clear error before any work (no cluster is needed to say so)."""
    from dataqa.errors import ParamsError

    params = tune_files().model_copy(update={"cluster": ClusterParams(backend="ray")})
    with pytest.raises(ParamsError, match="tune.storage: tuning on a Ray cluster"):
        run_stage(params)
