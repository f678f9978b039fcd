"""Storage and the round protocol without a database server: the fixed design of an
exploring round, budgets, orphaned trials of a journal storage, storage errors."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from dataqa.errors import ParamsError
from dataqa.params import TuneParams
from dataqa.tune.space import Dim, Space, design_trials, joint_space
from dataqa.tune.study import (
    budget_left,
    fail_orphaned_trials,
    open_round,
    open_storage,
    run_round_trials,
)

SPACE = Space({"lr": Dim(1e-4, 1e-1, log=True), "dropout": Dim(0.0, 0.5),
               "width": Dim(choices=(8, 16, 32))}, {"depth": 1})


@pytest.mark.parametrize("kind", ["qmc", "random"])
def test_design_is_fixed_by_the_seed_and_inside_the_space(kind: str) -> None:
    a = design_trials(SPACE, 16, kind=kind, seed=3)
    assert a == design_trials(SPACE, 16, kind=kind, seed=3)  # same seed, same design
    assert a != design_trials(SPACE, 16, kind=kind, seed=4)  # another seed, another one
    assert len(a) == 16
    for c in a:
        assert all(SPACE.dims[k].contains(v) for k, v in c.items())
        assert set(c) == {"lr", "dropout", "width"}  # fixed values are not part of it


def test_qmc_design_covers_the_log_range_evenly() -> None:
    lrs = [c["lr"] for c in design_trials(SPACE, 16, kind="qmc", seed=0)]
    pos = sorted((math.log10(v) + 4) / 3 for v in lrs)  # 0..1 across 1e-4..1e-1
    gaps = [b - a for a, b in zip([0.0, *pos], [*pos, 1.0])]
    assert max(gaps) < 0.2  # Sobol: no hole wider than 1/5 of the range in 16 points
    widths = [c["width"] for c in design_trials(SPACE, 16, kind="qmc", seed=0)]
    assert {widths.count(w) for w in (8, 16, 32)} <= {5, 6}  # choices in equal shares


@pytest.mark.parametrize(("device", "widths"), [("cpu", (8, 16, 32)), ("cuda", (16, 32, 64))])
def test_null_widths_follow_the_device(device: str, widths: tuple[int, ...]) -> None:
    import torch

    from dataqa.params import Params, validate
    from dataqa.tune.start import crossval_start

    start = crossval_start(validate(Params, {}), torch.device("cpu"), n_train=1000)
    space = joint_space(TuneParams(), start.config, n_train=1000, best_lr=None,
                        device_type=device)
    assert space.dims["width"].choices == widths


def journal(tmp_path: Path) -> optuna.storages.BaseStorage:
    return open_storage(TuneParams(), tmp_path)


def test_open_round_creates_once_and_enqueues_the_design(tmp_path: Path) -> None:
    storage = journal(tmp_path)
    calls = []

    def build() -> tuple[dict, list[dict]]:
        calls.append(1)
        return {"space": SPACE.to_json()}, [{"params": c, "user_attrs": {"design": i}}
                                 for i, c in enumerate(design_trials(SPACE, 3, kind="qmc",
                                                                     seed=0))]

    kw = dict(fingerprint={"a": 1}, build=build, sampler=optuna.samplers.RandomSampler(),
              pruner=optuna.pruners.NopPruner(), wait_seconds=5)
    first = open_round(storage, "s-lr", **kw)
    second = open_round(storage, "s-lr", **kw)  # a second worker joins: no rebuild
    assert calls == [1]
    assert Space.from_json(second.user_attrs["space"]) == SPACE
    assert [t.state for t in first.trials] == [TrialState.WAITING] * 3
    assert budget_left(first, 3) == 3  # the enqueued design is the budget
    # the round's time is up: what never started is skipped, and uses no budget
    assert run_round_trials(first, lambda t: 0.0, trials=3, stop=lambda: True) == 0
    assert [t.user_attrs.get("skipped") for t in first.get_trials()] == ["time budget"] * 3
    assert budget_left(first, 3) == 3 and all(t.state == TrialState.FAIL for t in first.trials)
    with pytest.raises(ParamsError, match=r"differing: a"):
        open_round(storage, "s-lr", **dict(kw, fingerprint={"a": 2}))


def test_budget_counts_what_runs_and_what_failed_in_the_trial(tmp_path: Path) -> None:
    study = optuna.create_study(storage=journal(tmp_path), study_name="b")
    study.add_trial(optuna.create_trial(value=1.0))  # complete: counts
    study.add_trial(optuna.create_trial(state=TrialState.FAIL))  # killed worker: retried
    study.add_trial(optuna.create_trial(state=TrialState.FAIL,
                                        user_attrs={"status": "error"}))  # error: counts
    study.enqueue_trial({})  # waiting: counts and must run
    assert budget_left(study, 5) == 2 + 1  # 2 more to start, plus the waiting one


def test_orphaned_trial_of_a_dead_local_worker_fails_and_is_requeued(tmp_path: Path) -> None:
    study = optuna.create_study(storage=journal(tmp_path), study_name="o")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    import socket

    study.enqueue_trial({"x": 0.5}, user_attrs={"design": 7})
    trial = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
    trial.set_user_attr("worker", f"{socket.gethostname()}:{dead}")  # its process is gone
    alive = study.ask()
    alive.set_user_attr("worker", f"{socket.gethostname()}:1")  # pid 1 lives: left alone
    assert fail_orphaned_trials(study, max_retry=1) == [trial.number]
    states = [t.state for t in study.get_trials()]
    assert states == [TrialState.FAIL, TrialState.RUNNING, TrialState.WAITING]
    retry = study.get_trials()[-1]
    assert retry.user_attrs == {"design": 7, "retries": 1, "retry_of": trial.number}
    assert fail_orphaned_trials(study, max_retry=1) == []  # nothing left to fail


def test_unreachable_database_is_a_params_error_without_the_password() -> None:
    tune = TuneParams(storage="postgresql+psycopg2://me:secret@127.0.0.1:1/none")
    with pytest.raises(ParamsError) as info:
        open_storage(tune, Path("."))
    assert "cannot open postgresql+psycopg2://me:***@127.0.0.1:1/none" in str(info.value)
    assert "secret" not in str(info.value)


def test_a_trial_started_past_the_budget_is_surplus(tmp_path: Path) -> None:
    from dataqa.tune.study import is_surplus

    study = optuna.create_study(storage=journal(tmp_path), study_name="s")
    study.add_trial(optuna.create_trial(value=1.0))
    study.add_trial(optuna.create_trial(state=TrialState.FAIL))  # killed: not counted
    study.enqueue_trial({})  # its retry, waiting: counted
    late = study.ask()  # #3: a worker started it after another took the last slot
    assert [is_surplus(study, n, 2) for n in (0, 1, 2, 3)] == [False, False, False, True]
    late.set_user_attr("surplus", True)  # what the objective does before giving up
    study.tell(late, state=TrialState.PRUNED)
    assert budget_left(study, 2) == 1  # the surplus trial uses nothing; the retry waits
