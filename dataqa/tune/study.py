"""Study storage and the round protocol that lets many workers share one search.

Storage: ``tune.storage`` null -> an Optuna journal file under ``paths.tune_dir``
(one host, any number of processes); an RDB URL (``postgresql://``, ``mysql://``,
``sqlite:///``) -> :class:`optuna.storages.RDBStorage` with heartbeats, so that a worker
killed mid-trial leaves that trial FAILED (and re-queued, up to ``tune.max_retry``
times) while the study goes on. The URL's driver and the connect/statement timeouts
come from :mod:`dataqa.database` (``postgresql://`` means psycopg2, the declared driver).

Each round is its own study, ``<study_name>-<round>``. The process that *creates* a
round's study (creation is atomic in the storage) computes the round's search space
from the previous round's finished trials, stores it in the study's user attributes,
enqueues the round's fixed trials, and marks the round ``ready``; every other worker
waits for ``ready`` and reads the same space. A round is open until its trial budget
(COMPLETE + PRUNED + RUNNING + WAITING + FAILED-with-error) is used; a trial another
worker started in the same instant beyond the budget ends at once, marked ``surplus``
(:func:`is_surplus`). The next round is created only once no trial of the previous one
is RUNNING or WAITING.
"""

from __future__ import annotations

import json
import os
import socket
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from dataqa.database import engine_kwargs, engine_url, redacted
from dataqa.errors import ParamsError, StageInputError
from dataqa.params import TuneParams
from dataqa.text import redact_urls

POLL_SECONDS = 0.5
JOURNAL_NAME = "journal.log"


def open_storage(tune: TuneParams, tune_dir: Path) -> optuna.storages.BaseStorage:
    """The study storage named by ``tune.storage`` (see the module docstring)."""
    url = tune.storage
    if url is None:
        tune_dir.mkdir(parents=True, exist_ok=True)
        backend = _journal_backend(tune_dir / JOURNAL_NAME)
        return optuna.storages.JournalStorage(backend)
    if "://" not in url:
        raise ParamsError(f"params.yaml: tune.storage: {url!r} is not a database URL "
                          "(postgresql://user@host:port/db, mysql://..., sqlite:///file); "
                          "leave it null for the journal file under paths.tune_dir")
    retry = getattr(optuna.storages, "RetryHeartbeatStaleTrialCallback", None)
    kwargs: dict[str, Any] = {}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            if retry is not None:  # optuna >= 4.9
                kwargs["heartbeat_stale_trial_callback"] = retry(max_retry=tune.max_retry)
            else:  # pragma: no cover - older optuna
                kwargs["failed_trial_callback"] = optuna.storages.RetryFailedTrialCallback(
                    max_retry=tune.max_retry)
            return optuna.storages.RDBStorage(
                engine_url(url), heartbeat_interval=tune.heartbeat_interval,
                grace_period=tune.grace_period,
                engine_kwargs=engine_kwargs(engine_url(url)), **kwargs)
    except Exception as exc:  # sqlalchemy/driver errors: say which URL and why
        orig = getattr(exc, "orig", None) or exc
        first = (str(orig).strip().splitlines() or [""])[0]
        raise ParamsError(f"params.yaml: tune.storage: cannot open {redacted(url)}: "
                          f"{type(orig).__name__}: {redact_urls(first)}") from None


def _journal_backend(path: Path) -> Any:
    from optuna.storages import journal

    cls = getattr(journal, "JournalFileBackend", None)  # optuna >= 4.0
    if cls is None:  # pragma: no cover - optuna 3.x name
        cls = optuna.storages.JournalFileStorage
    return cls(str(path))


def round_study_name(tune: TuneParams, round_name: str) -> str:
    return f"{tune.study_name}-{round_name}"


def counted(trial: FrozenTrial) -> bool:
    """Does ``trial`` use up the round's budget? Killed workers' trials do not (they
    are retried); trials that failed with an error in the trial itself do."""
    if trial.user_attrs.get("surplus") or trial.user_attrs.get("skipped"):
        return False
    if trial.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING,
                       TrialState.WAITING):
        return True
    return trial.state == TrialState.FAIL and trial.user_attrs.get("status") == "error"


def open_round(storage: optuna.storages.BaseStorage, name: str, *,
               fingerprint: Mapping[str, Any],
               build: Callable[[], tuple[dict[str, Any], list[dict[str, Any]]]],
               sampler: optuna.samplers.BaseSampler, pruner: optuna.pruners.BasePruner,
               wait_seconds: float) -> optuna.Study:
    """Create or join the round study ``name``.

    The creator calls ``build() -> (attrs, enqueued)``: ``attrs`` are stored as the
    study's user attributes (the space, the resolved plan, the deadline, ...),
    ``enqueued`` is a list of ``{"params": ..., "user_attrs": ...}`` trials to run first;
    then it marks the study ready. Joiners wait (up to ``wait_seconds``) for ready. A study created
    with a different ``fingerprint`` (other tune params) is an error.
    """
    try:
        storage.create_new_study([optuna.study.StudyDirection.MAXIMIZE], name)
        creator = True
    except optuna.exceptions.DuplicatedStudyError:
        creator = False
    study = optuna.load_study(study_name=name, storage=storage, sampler=sampler, pruner=pruner)
    fp = json.loads(json.dumps(fingerprint, sort_keys=True))
    if creator:
        study.set_user_attr("fingerprint", fp)
        attrs, enqueued = build()
        for key, value in attrs.items():
            study.set_user_attr(key, value)
        for item in enqueued:
            study.enqueue_trial(item["params"], user_attrs=item.get("user_attrs"),
                                skip_if_exists=False)
        study.set_user_attr("created_by", f"{socket.gethostname()}:{os.getpid()}")
        study.set_user_attr("ready", True)
        return study
    deadline = time.monotonic() + wait_seconds
    while not study.user_attrs.get("ready"):
        if time.monotonic() > deadline:
            raise StageInputError(f"tune: study '{name}' was created by another worker that "
                                  f"never finished setting it up ({wait_seconds:.0f} s); "
                                  "delete the study or choose another tune.study_name")
        time.sleep(POLL_SECONDS)
    theirs = study.user_attrs.get("fingerprint")
    if theirs != fp:
        diff = sorted(_diff_keys(theirs or {}, fp))
        raise ParamsError(f"params.yaml: tune: study '{name}' in the storage was created with "
                          f"other tune/engine params (differing: {', '.join(diff) or '?'}); "
                          "use the same params on every worker, or a new tune.study_name")
    return study


def _diff_keys(a: Mapping[str, Any], b: Mapping[str, Any], prefix: str = "") -> list[str]:
    out = []
    for k in set(a) | set(b):
        va, vb = a.get(k), b.get(k)
        if isinstance(va, dict) and isinstance(vb, dict):
            out += _diff_keys(va, vb, f"{prefix}{k}.")
        elif va != vb:
            out.append(f"{prefix}{k}")
    return out


def is_surplus(study: optuna.Study, number: int, trials: int) -> bool:
    """Is trial ``number`` beyond the round's budget of ``trials``? Checking the budget
    and starting a trial are two steps, so two workers can both start "the last" one;
    the later one (the higher number) finds ``trials`` counted trials before it."""
    before = [t for t in study.get_trials(deepcopy=False) if t.number < number and counted(t)]
    return len(before) >= trials


def budget_left(study: optuna.Study, trials: int) -> int:
    """Trials still to start in this round (WAITING ones are started first)."""
    all_trials = study.get_trials(deepcopy=False)
    waiting = sum(t.state == TrialState.WAITING for t in all_trials)
    used = sum(counted(t) for t in all_trials)
    return max(trials - used, 0) + waiting


def run_round_trials(study: optuna.Study, objective: Callable[[optuna.Trial], float], *,
                     trials: int, limit: int | None = None,
                     catch: Sequence[type[Exception]] = (),
                     stop: Callable[[], bool] | None = None) -> int:
    """Run trials of ``study`` in this process until the round's budget of ``trials``
    is used (by any worker), ``limit`` trials ran here, or ``stop()`` says the round's
    time is up (its enqueued trials left are then marked skipped); returns how many ran
    here.

    ``study.optimize`` one trial at a time: it fails stale trials first and keeps the
    heartbeat of the running one (RDB storages).
    """
    ran = 0
    while (limit is None or ran < limit) and budget_left(study, trials) > 0:
        if stop is not None and stop():
            skip_waiting(study)
            break
        study.optimize(objective, n_trials=1, catch=tuple(catch), gc_after_trial=False)
        ran += 1
    return ran


def skip_waiting(study: optuna.Study) -> list[int]:
    """Mark the round's enqueued trials that never started as skipped (FAIL, user
    attribute ``skipped``): the time budget ran out before them."""
    out = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
        study._storage.set_trial_user_attr(t._trial_id, "skipped", "time budget")
        if study._storage.set_trial_state_values(t._trial_id, TrialState.FAIL):
            out.append(t.number)
    return out


def finish_round(study: optuna.Study, objective: Callable[[optuna.Trial], float], *,
                 trials: int, wait_seconds: float, max_retry: int = 1,
                 catch: Sequence[type[Exception]] = (),
                 on_wait: Callable[[int], None] | None = None,
                 stop: Callable[[], bool] | None = None) -> int:
    """Block until no trial of ``study`` is RUNNING or WAITING: other workers' trials
    finish, stale ones (dead workers) are failed and re-queued, and re-queued ones are
    run here. Returns the trials run here."""
    deadline = time.monotonic() + wait_seconds
    announced = False
    ran = 0
    while True:
        _fail_stale(study, max_retry=max_retry)
        ran += run_round_trials(study, objective, trials=trials, catch=catch, stop=stop)
        busy = [t for t in study.get_trials(deepcopy=False)
                if t.state in (TrialState.RUNNING, TrialState.WAITING)]
        if not busy:
            return ran
        if time.monotonic() > deadline:
            raise StageInputError(
                f"tune: study '{study.study_name}' still has {len(busy)} unfinished trial(s) "
                f"after {wait_seconds:.0f} s (trials {[t.number for t in busy]}); their "
                "workers may have died on another host: with a journal storage there is no "
                "heartbeat, so delete the study (or use an RDB storage)")
        if on_wait is not None and not announced:
            on_wait(len(busy))
            announced = True
        time.sleep(POLL_SECONDS)


def _fail_stale(study: optuna.Study, *, max_retry: int) -> None:
    from optuna.storages._heartbeat import is_heartbeat_enabled

    if is_heartbeat_enabled(study._storage):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)
    else:
        fail_orphaned_trials(study, max_retry=max_retry)


def fail_orphaned_trials(study: optuna.Study, *, max_retry: int = 1) -> list[int]:
    """Journal storage has no heartbeat: a RUNNING trial whose worker ran on this host
    and whose process is gone is marked FAILED and, like a stale trial of an RDB
    storage, re-queued with the same parameters (at most ``max_retry`` times in a row).
    Returns the failed trials' numbers."""
    host = socket.gethostname()
    failed = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        who = str(t.user_attrs.get("worker", ""))
        h, _, pid = who.rpartition(":")
        if h != host or not pid.isdigit() or _alive(int(pid)):
            continue
        if not study._storage.set_trial_state_values(t._trial_id, TrialState.FAIL):
            continue  # another process got there first
        failed.append(t.number)
        retries = int(t.user_attrs.get("retries", 0))
        if retries < max_retry:
            keep = {k: v for k, v in t.user_attrs.items() if k in (
                "design", "fidelity_of", "fidelity_value", "start")}
            study.enqueue_trial(t.params, user_attrs=dict(keep, retries=retries + 1,
                                                          retry_of=t.number))
    return failed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
