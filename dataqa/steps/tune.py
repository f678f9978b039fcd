"""The ``tune`` stage: coarse-to-fine search in rounds sized by the data
(:mod:`dataqa.tune.sizing`), then fidelity, the crossval baseline against the best
(:mod:`dataqa.tune.baseline`), the cleaning comparison, and the outputs (metrics, curves, best params, summary); the HTML report is
the ``tuning_report`` stage's (:mod:`dataqa.steps.tuning_report`), so a template edit
never reruns the search.

``dataqa tune`` runs trials itself and then writes everything; ``dataqa tune --worker``
only joins the study in ``tune.storage`` and runs trials (any number of them, on any
number of hosts; see :mod:`dataqa.tune.study`). With ``cluster.backend: ray`` the
``dataqa tune`` process also launches ``cluster.tune_workers`` such workers as Ray tasks
(:func:`trial_workers`) and waits for them before it writes the outputs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import random
import time
from collections.abc import Callable, Iterator
from typing import Any

import optuna
import torch

from dataqa.engine.device import describe, pick_device
from dataqa.errors import EngineError, ParamsError
from dataqa.params import Params
from dataqa.tune import results
from dataqa.tune.baseline import compare_baseline
from dataqa.tune.cleaning import compare_cleaning
from dataqa.tune.data import TuneData, available_subsets
from dataqa.tune.progress import RoundClock
from dataqa.tune.sizing import batch_note, size_rounds
from dataqa.tune.space import (
    RoundPlan,
    Space,
    design_trials,
    fine_space,
    joint_space,
    lr_space,
    make_pruner,
    make_sampler,
    plan_rounds,
)
from dataqa.tune.study import (
    finish_round,
    open_round,
    open_storage,
    round_study_name,
    run_round_trials,
)
from dataqa.tune.trial import Objective, print_progress

log = logging.getLogger("dataqa.tune")


def run_stage(params: Params, *, worker: bool = False, n_trials: int | None = None) -> int:
    """Entry point of ``dataqa tune``; returns the exit code."""
    from dataqa.tune.load import load_tune_data

    device = pick_device(params.engine.device, cpu_threads=params.engine.cpu_threads)
    plans = plan_rounds(params.tune, device.type)
    names = [p.subset for p in plans if p.trials > 0]
    cleaning = params.tune.cleaning.enabled and not worker
    if cleaning:
        names.append(params.tune.cleaning.subset)
    sdir = params.path("subsets_dir")
    if all((sdir / f"{n}.parquet").is_file() for n in names):
        # every subset is a candidate when a round's own is too small (sizing)
        names += available_subsets(sdir)
    td = load_tune_data(params, names, device=device, with_raw=cleaning)
    with trial_workers(params, enabled=not worker):
        summary = search(td, params, plans=plans, device=device, worker=worker,
                         n_trials=n_trials)
    if summary is None:
        return 0
    results.write_outputs(params, summary)  # the tuning report is its own stage
    best = summary.get("best")
    print_progress(f"tune: done in {summary['seconds']:.1f} s; best "
                   + ("none" if best is None else f"{best['key']} val_acc {best['value']:.4f}"))
    return 0


@contextlib.contextmanager
def trial_workers(params: Params, *, enabled: bool = True) -> Iterator[None]:
    """With ``cluster.backend: ray``: ``cluster.tune_workers`` Ray tasks (null: as many as
    the cluster runs at once), each ``dataqa tune --worker`` on the same params, join
    the study while the body runs; on leaving, wait for them (they stop when the last
    round's budget is used); on an error or Ctrl-C, cancel them. The study lives in
    ``tune.storage``, which must then be a database URL every node reaches."""
    cluster = params.cluster
    if not enabled or cluster.backend != "ray" or cluster.tune_workers == 0:
        yield
        return
    from dataqa import cluster as cl

    if not params.tune.storage or "://" not in params.tune.storage:
        raise ParamsError("params.yaml: tune.storage: tuning on a Ray cluster "
                          "(cluster.backend: ray) needs a database URL that every node "
                          "reaches (postgresql://user@host:port/db), or cluster.tune_workers: 0")
    cl.connect(cluster)
    n = cluster.tune_workers or cl.slots(cluster, gpus=True)
    print_progress(f"tune: {n} trial worker(s) on the Ray cluster ({cl.describe()})")
    refs = cl.start_tasks(_trial_worker, [(params,)] * n, cluster, gpus=True)
    try:
        yield
    except BaseException:
        import ray

        cl.cancel(ray, refs)
        raise
    cl.gather(refs, what="tune")


def _trial_worker(params: Params) -> int:
    """One Ray task: ``dataqa tune --worker`` on ``params`` (the project folder on a
    shared filesystem, the study in ``tune.storage``)."""
    return run_stage(params, worker=True)


def search(td: TuneData, params: Params, *, plans: list[RoundPlan], device: torch.device,
           worker: bool = False, n_trials: int | None = None,
           progress: Callable[[str], None] = print_progress) -> dict[str, Any] | None:
    """Run (or join) every round; as the main process also fidelity and the cleaning
    comparison. Returns the summary (None for a worker)."""
    tune = params.tune
    start = time.perf_counter()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    plans, sizing = sized_plans(td, params, plans)
    for note in sizing.values():
        if note["message"]:
            progress(f"tune: {'WARNING: ' if note['below_minimum'] else ''}{note['message']}")
    storage = open_storage(tune, params.path("tune_dir"))
    fingerprint = _fingerprint(params, plans)
    # different sampler streams per worker process (same seed would repeat suggestions)
    sampler_offset = random.SystemRandom().randrange(1, 10**6) if worker else 0
    studies: dict[str, optuna.Study] = {}
    spaces: dict[str, Space] = {}
    augment = _augment(params)
    left = n_trials
    for plan in plans:
        if plan.trials == 0:
            continue
        train_idx = td.train_idx(plan.subset)
        val_idx = td.val_for(plan.subset)
        build = _builder(plan, params, studies, spaces, n_train=len(train_idx),
                         device_type=device.type)
        study = open_round(
            storage, round_study_name(tune, plan.name), fingerprint=fingerprint, build=build,
            sampler=make_sampler(plan.sampler, seed=tune.seed + plan.index + sampler_offset),
            pruner=make_pruner(tune.pruning.pruner, startup_trials=tune.pruning.startup_trials,
                               warmup_epochs=tune.pruning.warmup_epochs),
            wait_seconds=tune.round_wait_seconds)
        space = Space.from_json(study.user_attrs["space"])
        studies[plan.name], spaces[plan.name] = study, space
        clock = RoundClock(plan.name, plan.trials, plan.epochs,
                           trials_done=_finished_count(study), emit=progress)
        objective = Objective(td.data, train_idx, val_idx, plan, space, tune.stopping,
                              params.engine, tune.seed, augment=augment,
                              on_done=_progress_line(study, plan, progress),
                              on_epoch=clock.epoch,
                              metric=tune.selection.metric, window=tune.selection.window)
        cap = batch_note(tune, len(train_idx))
        progress(f"tune: round {plan.index}/3 ({plan.name}): {plan.trials} trials x "
                 f"{plan.epochs} epochs on '{plan.subset}' ({len(train_idx)} train, "
                 f"{len(val_idx)} val images), searching {', '.join(space.dims) or 'nothing'}"
                 + (f"; NOTE: {cap['message']}" if cap else ""))
        ran = run_round_trials(study, objective, trials=plan.trials, limit=left,
                               catch=(EngineError,))
        if left is not None:
            left -= ran
            if left <= 0:
                return None
        finish_round(study, objective, trials=plan.trials, wait_seconds=tune.round_wait_seconds,
                     max_retry=tune.max_retry, catch=(EngineError,),
                     on_wait=lambda n: progress(f"tune: waiting for {n} trial(s) of other "
                                                "workers"))
    if worker:
        return None
    return _summarise(td, params, plans, studies, spaces, device=device, sizing=sizing,
                      seconds_so_far=time.perf_counter() - start, progress=progress)


def sized_plans(td: TuneData, params: Params, plans: list[RoundPlan]
                ) -> tuple[list[RoundPlan], dict[str, dict[str, Any]]]:
    """The rounds on subsets that meet ``tune.sizing`` (see :mod:`dataqa.tune.sizing`):
    per-class counts of original images of every loaded subset, and the validation
    split's."""
    originals = {n: rows[~td.augmented[rows]] for n, rows in td.subsets.items()}
    counts = {n: td.class_counts(rows) for n, rows in originals.items()}
    sizes = {n: int(len(rows)) for n, rows in td.subsets.items()}
    return size_rounds(plans, train_counts=counts, sizes=sizes,
                       val_counts=td.class_counts(td.val), sizing=params.tune.sizing)


def _finished_count(study: optuna.Study) -> Callable[[], int]:
    def count() -> int:
        return sum(t.state.is_finished() and not t.user_attrs.get("surplus")
                   for t in study.get_trials(deepcopy=False))
    return count


def _builder(plan: RoundPlan, params: Params, studies: dict[str, optuna.Study],
             spaces: dict[str, Space], *, n_train: int, device_type: str
             ) -> Callable[[], tuple[dict[str, Any], list[dict[str, Any]]]]:
    """What the creator of a round's study stores: its space and its enqueued trials."""
    tune, engine = params.tune, params.engine

    def build() -> tuple[dict[str, Any], list[dict[str, Any]]]:
        queued: list[dict[str, Any]] = []
        if plan.name == "lr":
            space = lr_space(tune, engine, n_train=n_train)
        elif plan.name == "joint":
            best = _best_trial(studies.get("lr"))
            best_lr = None if best is None else float(best.user_attrs["config"]["lr"])
            space = joint_space(tune, engine, n_train=n_train, best_lr=best_lr,
                                device_type=device_type)
        else:
            joint = spaces.get("joint")
            top = _top_trials(studies.get("joint"), tune.rounds.fine.top_k)
            if joint is None:  # no joint round: the fine round narrows nothing
                joint = joint_space(tune, engine, n_train=n_train, best_lr=None,
                                    device_type=device_type)
            space = fine_space(joint, [t.params for t in top], margin=tune.rounds.fine.margin,
                               n_train=n_train,
                               limits={"lr": (tune.space.lr_min, tune.space.lr_max)})
            for t in top[:plan.trials]:
                # a value the narrowed space cannot hold is left to the sampler
                fixed = {k: v for k, v in t.params.items()
                         if k in space.dims and space.dims[k].contains(v)}
                queued.append({"params": fixed, "user_attrs": {"fidelity_of": t.number,
                                                               "fidelity_value": t.value}})
        if plan.sampler in ("qmc", "random"):  # exploring: the whole design up front
            design = design_trials(space, plan.trials - len(queued), kind=plan.sampler,
                                   seed=tune.seed + plan.index)
            queued += [{"params": c, "user_attrs": {"design": i}}
                       for i, c in enumerate(design)]
        return space.to_json(), queued

    return build


def _complete(study: optuna.Study | None) -> list[optuna.trial.FrozenTrial]:
    if study is None:
        return []
    return [t for t in study.get_trials(deepcopy=False,
                                        states=(optuna.trial.TrialState.COMPLETE,))
            if t.value is not None and math.isfinite(t.value)]


def _best_trial(study: optuna.Study | None) -> optuna.trial.FrozenTrial | None:
    done = _complete(study)
    return max(done, key=lambda t: (t.value, -t.number)) if done else None


def _top_trials(study: optuna.Study | None, k: int) -> list[optuna.trial.FrozenTrial]:
    return sorted(_complete(study), key=lambda t: (-(t.value or 0.0), t.number))[:k]


def _progress_line(study: optuna.Study, plan: RoundPlan,
                   progress: Callable[[str], None]) -> Callable[[optuna.Trial, float, str], None]:
    def done(trial: optuna.Trial, value: float, status: str) -> None:
        finished = [t for t in study.get_trials(deepcopy=False) if t.state.is_finished()]
        values = [t.value for t in finished if t.value is not None] + [value]
        best = max(values)
        secs = trial.user_attrs.get("seconds") or 0.0
        progress(f"tune [{plan.name}] trial {len(finished) + 1}/{plan.trials}: "
                 f"val_acc {value:.4f} ({status}, {secs:.1f} s)  best so far {best:.4f}")
    return done


def _summarise(td: TuneData, params: Params, plans: list[RoundPlan],
               studies: dict[str, optuna.Study], spaces: dict[str, Space], *,
               device: torch.device, seconds_so_far: float,
               progress: Callable[[str], None],
               sizing: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    tune = params.tune
    start = time.perf_counter()
    th = tune.diagnose
    records: list[dict[str, Any]] = []
    rounds: list[dict[str, Any]] = []
    for plan in plans:
        study = studies.get(plan.name)
        trials = [] if study is None else study.get_trials(deepcopy=False)
        loaded = plan.subset in td.subsets
        n_classes = len(td.class_counts(td.train_idx(plan.subset))) if loaded else \
            len(td.classes)
        mine = [results.trial_record(t, plan, th, n_classes=n_classes) for t in trials
                if t.state != optuna.trial.TrialState.WAITING
                and not t.user_attrs.get("surplus")]
        records += mine
        n_train = len(td.subsets[plan.subset]) if loaded else 0
        n_val = len(td.val_for(plan.subset)) if loaded else 0
        rounds.append(results.round_summary(
            plan, study, spaces.get(plan.name), mine, n_train=n_train, n_val=n_val, th=th,
            sizing=(sizing or {}).get(plan.name),
            batch=batch_note(tune, n_train) if study is not None else None))
    last = next((rd for rd in reversed(rounds) if rd["best"] is not None), None)
    best: dict[str, Any] | None = None
    if last is not None:
        rec = next(r for r in records if r["key"] == last["best"]["key"])
        plan = next(p for p in plans if p.name == last["name"])
        best = dict(rec, subset=plan.subset, epochs=plan.epochs,
                    metric=f"val_acc ({tune.selection.metric}"
                           + (f", window {tune.selection.window})"
                              if tune.selection.metric == "smoothed" else ")"))
    joint = [r for r in records if r["round"] == "joint"]
    fine = [r for r in records if r["round"] == "fine"]
    fidelity = None
    if fine and joint:
        fidelity = results.fidelity_of_rounds(
            joint, fine, min_spearman=tune.fidelity.min_spearman,
            min_configs=tune.fidelity.min_configs,
            small=f"{_subset(plans, 'joint')}, {_epochs(plans, 'joint')} epochs",
            large=f"{_subset(plans, 'fine')}, {_epochs(plans, 'fine')} epochs")
        progress(f"tune: fidelity: {fidelity['message']}")
    baseline = _baseline(td, params, best, plans, device, progress)
    cleaning = _cleaning(td, params, best, plans, progress)
    summary: dict[str, Any] = {
        "device": describe(device),
        "classes": td.classes,
        "rounds": rounds,
        "trials": records,
        "best": best,
        "diagnoses": results.study_diagnoses(rounds, records, best),
        "fidelity": fidelity,
        "baseline": baseline,
        "cleaning": cleaning,
        "selection": tune.selection.model_dump(),
        "data": _data_info(td),
        "params": {"tune": tune.model_dump()},
        "seconds": seconds_so_far + time.perf_counter() - start,
    }
    return summary


def _epochs(plans: list[RoundPlan], name: str) -> int:
    return next(p.epochs for p in plans if p.name == name)


def _subset(plans: list[RoundPlan], name: str) -> str:
    return next(p.subset for p in plans if p.name == name)


def _baseline(td: TuneData, params: Params, best: dict[str, Any] | None,
              plans: list[RoundPlan], device: torch.device,
              progress: Callable[[str], None]) -> dict[str, Any] | None:
    """The crossval configuration against the best one on the best round's data."""
    if not params.tune.baseline.enabled:
        return None
    if best is None:
        return {"verdict": "not run: no trial completed"}
    plan = next(p for p in plans if p.name == best["round"])
    train, val = td.train_idx(plan.subset), td.val_for(plan.subset)
    progress(f"tune baseline: crossval's configuration vs the best ({best['key']}) on "
             f"'{plan.subset}' ({len(train)} train, {len(val)} val images), "
             f"{params.tune.baseline.seeds} seed(s) each")
    out = compare_baseline(td.data, params, train_idx=train, val_idx=val,
                           best_config=best["config"], epochs=plan.epochs, device=device,
                           subset=plan.subset, augment=_augment(params), progress=progress)
    progress(f"tune baseline: {out['verdict']}")
    return out


def _cleaning(td: TuneData, params: Params, best: dict[str, Any] | None,
              plans: list[RoundPlan], progress: Callable[[str], None]) -> dict[str, Any] | None:
    c = params.tune.cleaning
    if not c.enabled:
        return None
    if best is None:
        return {"verdict": "not run: no trial completed"}
    if td.raw is None or len(td.raw) == 0:
        return {"verdict": "not run: no unfiltered training images"}
    clean = td.train_idx(c.subset)
    if not c.with_augmented:
        clean = clean[~td.augmented[clean]]
    epochs = c.epochs or _epochs(plans, "fine")
    progress(f"tune cleaning: best configuration on '{c.subset}' ({len(clean)} images) vs "
             f"unfiltered ({len(td.raw)}), {c.seeds} seed(s) x {epochs} epochs")
    return compare_cleaning(td.data, clean_idx=clean, raw_idx=td.raw, val_idx=td.val,
                            config=best["config"], epochs=epochs, seeds=c.seeds,
                            base_seed=params.tune.seed, stopping=params.tune.stopping,
                            engine=params.engine, augment=_augment(params),
                            progress=progress, metric=params.tune.selection.metric,
                            window=params.tune.selection.window)


def _augment(params: Params) -> Any:
    """The training-time augmentation: params.augment's policy, batched on the device
    (the same definition the 'augment' stage uses on CPU)."""
    if not params.tune.augment:
        return None
    from dataqa.augmentation import device_augment

    return device_augment(params.augment)


def _data_info(td: TuneData) -> dict[str, Any]:
    subsets = {name: {"n": int(len(rows)), "augmented": int(td.augmented[rows].sum()),
                      "class_counts": td.class_counts(rows)}
               for name, rows in sorted(td.subsets.items())}
    out: dict[str, Any] = {"subsets": subsets,
                           "val": {"n": int(len(td.val)),
                                   "class_counts": td.class_counts(td.val)},
                           "image_shape": [td.data.size, td.data.size, td.data.channels]}
    if td.raw is not None:
        out["raw"] = {"n": int(len(td.raw)), "class_counts": td.class_counts(td.raw)}
    out.update(td.info)
    return out


def _fingerprint(params: Params, plans: list[RoundPlan]) -> dict[str, Any]:
    """What must be equal for workers to share a study: the search itself."""
    tune = params.tune.model_dump()
    for key in ("storage", "heartbeat_interval", "grace_period", "max_retry",
                "round_wait_seconds", "diagnose", "fidelity", "cleaning", "baseline"):
        tune.pop(key, None)
    engine = params.engine.model_dump()
    engine.pop("device", None)
    return {"tune": tune, "engine": engine, "plans": [dataclasses.asdict(p) for p in plans]}


__all__ = ["run_stage", "search"]
