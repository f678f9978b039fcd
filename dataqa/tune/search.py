"""The tuning run: the rounds (coarse to fine, each starting from the known-good
configuration), within one time budget, then the comparisons and the decision.

:func:`search` runs (or, as a worker, joins) every round: a round's study is created
once with its space (:mod:`dataqa.tune.space`), its trial count and epochs
(:mod:`dataqa.tune.budget`), its deadline and its enqueued trials: the start first, then
(round 2) the start at round 1's best learning rate, or (round 3) round 2's top
configurations for the fidelity check, then the exploring design. As the main process it then compares the start with the best tuned
configuration at equal budget, decides which to use (never the worse one), runs the
cleaning comparison with that one, and returns the summary (:mod:`dataqa.tune.results`
writes it).
"""

from __future__ import annotations

import dataclasses
import json
import math
import random
import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import optuna
import torch

from dataqa.engine.device import describe
from dataqa.errors import EngineError
from dataqa.params import Params
from dataqa.tune import results
from dataqa.tune.budget import MIN_TRIALS, Budget, calibrate, image_epochs
from dataqa.tune.compare import Arm, Runner
from dataqa.tune.data import TuneData
from dataqa.tune.progress import RoundClock
from dataqa.tune.sizing import batch_note, size_rounds
from dataqa.tune.space import (
    MAX_TRIALS,
    RoundPlan,
    Space,
    design_trials,
    fine_space,
    joint_space,
    lr_space,
    make_pruner,
    make_sampler,
    widen_edges,
)
from dataqa.tune.start import Start, start_config
from dataqa.tune.study import (
    finish_round,
    open_round,
    open_storage,
    round_study_name,
    run_round_trials,
)
from dataqa.tune.trial import Objective, print_progress


def search(td: TuneData, params: Params, *, plans: list[RoundPlan], device: torch.device,
           worker: bool = False, n_trials: int | None = None,
           progress: Callable[[str], None] = print_progress) -> dict[str, Any] | None:
    """Run (or join) every round; as the main process also the comparisons. Returns
    the summary (None for a worker)."""
    tune = params.tune
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    plans, sizing = sized_plans(td, params, plans)
    for line in results.sizing_notices(sizing):
        progress(f"tune: {line}")
    active = [p for p in plans if p.trials != 0]
    final = active[-1] if active else plans[-1]
    n_final = len(td.train_idx(final.subset)) if final.subset in td.subsets else 0
    start = start_config(params, device, n_train=max(n_final, 1))
    augment = _augment(params)
    budget = _budget(td, params, start, active, final, device, augment, progress)
    storage = open_storage(tune, params.path("tune_dir"))
    fingerprint = _fingerprint(params, plans, start)
    # different sampler streams per worker process (same seed would repeat suggestions)
    sampler_offset = random.SystemRandom().randrange(1, 10**6) if worker else 0
    studies: dict[str, optuna.Study] = {}
    spaces: dict[str, Space] = {}
    resolved: list[RoundPlan] = []
    left = n_trials
    for plan in plans:
        if plan.trials == 0:
            resolved.append(plan)
            continue
        train_idx = td.train_idx(plan.subset)
        val_idx = td.val_for(plan.subset)
        build = _builder(plan, params, start, studies, spaces, budget,
                         n_train=len(train_idx), n_val=len(val_idx), device_type=device.type)
        study = open_round(
            storage, round_study_name(tune, plan.name), fingerprint=fingerprint, build=build,
            sampler=make_sampler(plan.sampler, seed=tune.seed + plan.index + sampler_offset),
            pruner=make_pruner(tune.pruning.pruner, startup_trials=tune.pruning.startup_trials,
                               warmup_epochs=tune.pruning.warmup_epochs),
            wait_seconds=tune.round_wait_seconds)
        plan = dataclasses.replace(plan, **study.user_attrs["plan"])
        resolved.append(plan)
        space = Space.from_json(study.user_attrs["space"])
        studies[plan.name], spaces[plan.name] = study, space
        assert plan.trials is not None and plan.epochs is not None
        clock = RoundClock(plan.name, plan.trials, plan.epochs,
                           trials_done=_finished_count(study), emit=progress,
                           budget_left=budget.left)
        objective = Objective(td.data, train_idx, val_idx, plan, space, tune.stopping,
                              params.engine, tune.seed, augment=augment,
                              on_done=_on_done(study, plan, budget, progress),
                              on_epoch=clock.epoch,
                              metric=tune.selection.metric, window=tune.selection.window)
        cap = batch_note(tune, len(train_idx))
        widened = study.user_attrs.get("widened") or []
        progress(f"tune: round {plan.index}/3 ({plan.name}): {plan.trials} trials x "
                 f"{plan.epochs} epochs on '{plan.subset}' ({len(train_idx)} train, "
                 f"{len(val_idx)} val images), the start first, searching "
                 f"{', '.join(space.dims) or 'nothing'}; budget left {budget.left():.0f} s"
                 + (f"; NOTE: {cap['message']}" if cap else "")
                 + "".join(f"; widened {w['message']}" for w in widened))
        stop = _stopper(study, plan, budget, n_train=len(train_idx), n_val=len(val_idx))
        ran = run_round_trials(study, objective, trials=plan.trials, limit=left,
                               catch=(EngineError,), stop=stop)
        if left is not None:
            left -= ran
            if left <= 0:
                return None
        finish_round(study, objective, trials=plan.trials, wait_seconds=tune.round_wait_seconds,
                     max_retry=tune.max_retry, catch=(EngineError,), stop=stop,
                     on_wait=lambda n: progress(f"tune: waiting for {n} trial(s) of other "
                                                "workers"))
    if worker:
        return None
    return _summarise(td, params, resolved, studies, spaces, start=start, budget=budget,
                      device=device, sizing=sizing, progress=progress)


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


def _budget(td: TuneData, params: Params, start: Start, active: list[RoundPlan],
            final: RoundPlan, device: torch.device, augment: Any,
            progress: Callable[[str], None]) -> Budget:
    """Measure the start's epoch time and plan the final epochs and the comparisons."""
    tune = params.tune
    first = active[0] if active else final
    if first.subset not in td.subsets:
        return Budget(tune.budget_seconds, rate=0.0)
    t0 = time.perf_counter()
    rate = calibrate(td.data, td.train_idx(first.subset), td.val_for(first.subset),
                     start.config, stopping=tune.stopping, engine=params.engine,
                     augment=augment, seed=tune.seed)
    budget = Budget(tune.budget_seconds, rate=rate, started=t0)
    units = 0.0
    if final.subset in td.subsets:
        n_val = len(td.val_for(final.subset))
        n_final = len(td.train_idx(final.subset))
        if tune.baseline.enabled:
            units += 2 * max(tune.baseline.seeds, 1) * image_epochs(n_final, n_val)
        c = tune.cleaning
        if c.enabled and td.raw is not None and len(td.raw):
            units += c.seeds * image_epochs(len(td.raw), len(td.val))
            if not np.array_equal(np.sort(_clean_rows(td, params)),
                                  np.sort(td.train_idx(final.subset))):
                units += c.seeds * image_epochs(len(_clean_rows(td, params)), len(td.val))
    budget.plan_final(final.epochs or start.epochs, units)
    if final.epochs is not None:
        budget.final_epochs = final.epochs
    progress(f"tune: budget {tune.budget_seconds:.0f} s (tune.budget_seconds); measured "
             f"{rate * 1000:.2f} s per 1,000 training images per epoch with the start "
             f"({start.source}); final round and comparisons train {budget.final_epochs} "
             f"epochs (the start's own: {start.epochs}), earlier rounds "
             f"{budget.coarse_epochs}; {budget.reserved:.0f} s kept for the comparisons")
    return budget


def _finished_count(study: optuna.Study) -> Callable[[], int]:
    def count() -> int:
        return sum(t.state.is_finished() and not t.user_attrs.get("surplus")
                   and not t.user_attrs.get("skipped")
                   for t in study.get_trials(deepcopy=False))
    return count


def _stopper(study: optuna.Study, plan: RoundPlan, budget: Budget, *, n_train: int,
             n_val: int) -> Callable[[], bool]:
    """Should this process start no further trial of the round? When the next trial
    would end past the round's deadline, once the start has run (in the final round:
    the start and one other configuration, the least that can tune anything)."""
    deadline = float(study.user_attrs.get("deadline") or math.inf)
    done = _finished_count(study)
    least = MIN_TRIALS if plan.name == "fine" else 1
    assert plan.epochs is not None

    def stop() -> bool:
        if done() < least:
            return False
        return time.time() + budget.run_seconds(plan.epochs or 1, n_train, n_val) > deadline
    return stop


def _builder(plan: RoundPlan, params: Params, start: Start,
             studies: dict[str, optuna.Study], spaces: dict[str, Space], budget: Budget, *,
             n_train: int, n_val: int, device_type: str
             ) -> Callable[[], tuple[dict[str, Any], list[dict[str, Any]]]]:
    """What the creator of a round's study stores (its space, resolved trials and
    epochs, deadline, widened ranges) and its enqueued trials (the start first)."""
    tune, engine = params.tune, params.engine

    def build() -> tuple[dict[str, Any], list[dict[str, Any]]]:
        final = plan.name == "fine"
        if final and plan.epochs is None and budget.compare_units:
            budget.plan_final()  # the final epochs again, at the rate the trials measured
        epochs = plan.epochs or (budget.final_epochs if final else budget.coarse_epochs)
        trials = plan.trials if plan.trials is not None else budget.trials_for(
            plan.name, epochs=epochs, n_train=n_train, n_val=n_val, cap=MAX_TRIALS[plan.name])
        seconds = budget.round_seconds(plan.name)
        widened: list[dict[str, Any]] = []
        top: list[optuna.trial.FrozenTrial] = []
        best_lr: float | None = None
        first: dict[str, Any] = {"start": True}
        if plan.name == "lr":
            space = lr_space(tune, start.config)
        elif plan.name == "joint":
            best = results.ranked_trials(studies.get("lr"))
            best_lr = float(best[0].user_attrs["config"]["lr"]) if best else None
            space = joint_space(tune, start.config, n_train=n_train, best_lr=best_lr,
                                device_type=device_type, pretrained=bool(engine.weights))
            k = 10.0 ** tune.rounds.joint.lr_decades
            if best_lr is not None and (best_lr / k < tune.space.lr_min
                                        or best_lr * k > tune.space.lr_max):
                lr_dim = space.dims["lr"]
                widened.append({"param": "lr", "message": (
                    f"lr: round 1's best {best_lr:.3g} lies within "
                    f"{tune.rounds.joint.lr_decades:g} decade(s) of the end of its range "
                    f"{tune.space.lr_min:.3g}..{tune.space.lr_max:.3g}; round 2 searches "
                    f"{lr_dim.low:.3g}..{lr_dim.high:.3g}, past that end")})
        else:
            joint = spaces.get("joint")
            ranked = results.ranked_trials(studies.get("joint"))
            if joint is None:  # no joint round: the fine round narrows nothing
                joint = joint_space(tune, start.config, n_train=n_train, best_lr=None,
                                    device_type=device_type, pretrained=bool(engine.weights))
            top = ranked[:tune.rounds.fine.top_k]
            space = fine_space(joint, [t.params for t in top], margin=tune.rounds.fine.margin,
                               n_train=n_train)
            if ranked:
                space, widened = widen_edges(space, joint, ranked[0].user_attrs["config"],
                                             fraction=tune.diagnose.edge_fraction)
            starts = [t for t in ranked if t.user_attrs.get("start")]
            if starts:
                first.update(fidelity_of=starts[0].number, fidelity_value=starts[0].value)
        space = space.containing(start.config)
        queued: list[dict[str, Any]] = [{"params": space.params_of(start.config),
                                         "user_attrs": first}]
        if plan.name == "joint" and best_lr is not None and best_lr != start.config["lr"]:
            # coarse to fine: round 1's answer (the start at its best learning rate) next
            queued.append({"params": space.params_of(dict(start.config, lr=best_lr)),
                           "user_attrs": {"carried": "lr"}})
        if final:  # round 2's top configurations again: the fidelity pairs
            for t in [t for t in top if not t.user_attrs.get("start")][:trials - 1]:
                # a value the narrowed space cannot hold is left to the sampler
                fixed = {k: v for k, v in t.params.items()
                         if k in space.dims and space.dims[k].contains(v)}
                queued.append({"params": fixed, "user_attrs": {"fidelity_of": t.number,
                                                               "fidelity_value": t.value}})
        if plan.sampler in ("qmc", "random"):  # exploring: the whole design up front
            design = design_trials(space, trials - len(queued), kind=plan.sampler,
                                   seed=tune.seed + plan.index)
            queued += [{"params": c, "user_attrs": {"design": i}}
                       for i, c in enumerate(design)]
        attrs = {"space": space.to_json(), "plan": {"trials": trials, "epochs": epochs},
                 "deadline": time.time() + seconds, "seconds": seconds, "widened": widened}
        return attrs, queued[:max(trials, 1)]

    return build


def _on_done(study: optuna.Study, plan: RoundPlan, budget: Budget,
             progress: Callable[[str], None]) -> Callable[[optuna.Trial, float, str], None]:
    def done(trial: optuna.Trial, value: float, status: str) -> None:
        attrs = trial.user_attrs
        budget.observe(float(attrs.get("seconds") or 0.0), len(attrs.get("history") or []),
                       int(attrs.get("n_train") or 0), int(attrs.get("n_val") or 0))
        finished = [t for t in study.get_trials(deepcopy=False) if t.state.is_finished()
                    and not t.user_attrs.get("skipped")]
        values = [t.value for t in finished if t.value is not None] + [value]
        secs = attrs.get("seconds") or 0.0
        tag = " (the start)" if attrs.get("start") else ""
        progress(f"tune [{plan.name}] trial {len(finished) + 1}/{plan.trials}{tag}: "
                 f"val_acc {value:.4f} ({status}, {secs:.1f} s)  best so far "
                 f"{max(values):.4f}; budget left {max(budget.left(), 0):.0f} s")
    return done


def _summarise(td: TuneData, params: Params, plans: list[RoundPlan],
               studies: dict[str, optuna.Study], spaces: dict[str, Space], *,
               start: Start, budget: Budget, device: torch.device,
               progress: Callable[[str], None],
               sizing: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    tune = params.tune
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
                and not t.user_attrs.get("surplus") and not t.user_attrs.get("skipped")]
        records += mine
        n_train = len(td.subsets[plan.subset]) if loaded else 0
        n_val = len(td.val_for(plan.subset)) if loaded else 0
        rd = results.round_summary(
            plan, study, spaces.get(plan.name), mine, n_train=n_train, n_val=n_val, th=th,
            sizing=(sizing or {}).get(plan.name),
            batch=batch_note(tune, n_train) if study is not None else None)
        rd["widened"] = [] if study is None else list(study.user_attrs.get("widened") or [])
        rd["seconds_allotted"] = None if study is None else study.user_attrs.get("seconds")
        rounds.append(rd)
    last = next((rd for rd in reversed(rounds) if rd["best"] is not None), None)
    best: dict[str, Any] | None = None
    final = next((p for p in reversed(plans) if p.trials), plans[-1])
    if last is not None:
        rec = next(r for r in records if r["key"] == last["best"]["key"])
        plan = next(p for p in plans if p.name == last["name"])
        best = dict(rec, subset=plan.subset, epochs=plan.epochs,
                    metric=f"val_acc ({tune.selection.metric}"
                           + (f", window {tune.selection.window})"
                              if tune.selection.metric == "smoothed" else ")"))
        final = plan
    fidelity = _fidelity(records, plans, params)
    if fidelity is not None:
        progress(f"tune: fidelity: {fidelity['message']}")
    runner = _runner(td, params, final, budget, progress)
    baseline = _baseline(runner, td, params, start, best, final, progress)
    others = sum(1 for r in records if r["round"] == final.name and not r["start"]
                 and r["state"] == "COMPLETE")
    decision = results.decide(start, best, baseline, epochs=runner.epochs if runner else None,
                              baseline_enabled=tune.baseline.enabled, others=others)
    progress(f"tune: {decision['headline']}")
    cleaning = _cleaning(runner, td, params, decision, progress)
    summary: dict[str, Any] = {
        "headline": decision["headline"],
        "decision": decision,
        "start": start.to_json(),
        "budget": budget.to_json(),
        "device": describe(device),
        "classes": td.classes,
        "rounds": rounds,
        "trials": records,
        "best": best,
        "diagnoses": results.study_diagnoses(rounds, records, best),
        "notices": results.sizing_notices(sizing or {}),
        "fidelity": fidelity,
        "baseline": baseline,
        "cleaning": cleaning,
        "selection": tune.selection.model_dump(),
        "data": _data_info(td),
        "params": {"tune": tune.model_dump()},
        "seconds": budget.elapsed(),
    }
    return summary


def _fidelity(records: list[dict[str, Any]], plans: list[RoundPlan],
              params: Params) -> dict[str, Any] | None:
    joint = [r for r in records if r["round"] == "joint"]
    fine = [r for r in records if r["round"] == "fine"]
    if not (fine and joint):
        return None
    by = {p.name: p for p in plans}
    return results.fidelity_of_rounds(
        joint, fine, min_spearman=params.tune.fidelity.min_spearman,
        min_configs=params.tune.fidelity.min_configs,
        small=f"{by['joint'].subset}, {by['joint'].epochs} epochs",
        large=f"{by['fine'].subset}, {by['fine'].epochs} epochs")


def _runner(td: TuneData, params: Params, final: RoundPlan, budget: Budget,
            progress: Callable[[str], None]) -> Runner | None:
    if final.subset not in td.subsets:
        return None
    tune = params.tune
    return Runner(td.data, td.val_for(final.subset),
                  epochs=final.epochs or budget.final_epochs or 1, stopping=tune.stopping,
                  engine=params.engine, base_seed=tune.seed, augment=_augment(params),
                  metric=tune.selection.metric, window=tune.selection.window,
                  progress=progress, on_run=budget.observe)


def _baseline(runner: Runner | None, td: TuneData, params: Params, start: Start,
              best: Mapping[str, Any] | None, final: RoundPlan,
              progress: Callable[[str], None]) -> dict[str, Any] | None:
    """The start against the best tuned configuration on the final round's data, at the
    final round's epochs, over ``tune.baseline.seeds`` fresh seeds."""
    if not params.tune.baseline.enabled:
        return None
    if best is None or runner is None:
        return {"verdict": "not run: no trial completed"}
    if results.same_config(best["config"], start.config):
        return {"verdict": "not run: the best trial is the start itself", "same": True}
    train = td.train_idx(final.subset)
    seeds = params.tune.baseline.seeds
    progress(f"tune start vs tuned: the start ({start.source}) against the best "
             f"({best['key']}) on '{final.subset}' ({len(train)} train, "
             f"{len(runner.val_idx)} val images), {runner.epochs} epochs, {seeds} seed(s) each")
    out = runner.compare(Arm("start", start.config, train), Arm("tuned", best["config"], train),
                         seeds=seeds, label="start vs tuned")
    out.update(subset=final.subset, tuned_key=best["key"])
    progress(f"tune start vs tuned: {out['verdict']}")
    return out


def _clean_rows(td: TuneData, params: Params) -> np.ndarray:
    c = params.tune.cleaning
    clean = td.train_idx(c.subset)
    return clean if c.with_augmented else clean[~td.augmented[clean]]


def _cleaning(runner: Runner | None, td: TuneData, params: Params,
              decision: Mapping[str, Any], progress: Callable[[str], None]
              ) -> dict[str, Any] | None:
    """The chosen configuration on the clean training set against the unfiltered one."""
    c = params.tune.cleaning
    if not c.enabled:
        return None
    if runner is None or decision.get("config") is None:
        return {"verdict": "not run: no configuration to compare with"}
    if td.raw is None or len(td.raw) == 0:
        return {"verdict": "not run: no unfiltered training images"}
    if c.subset not in td.subsets:
        return {"verdict": f"not run: subset '{c.subset}' (tune.cleaning.subset) not loaded"}
    clean = _clean_rows(td, params)
    if not np.array_equal(runner.val_idx, td.val):
        runner = dataclasses.replace(runner, val_idx=td.val, cache={})
    progress(f"tune cleaning: the {decision['choice']} configuration on '{c.subset}' "
             f"({len(clean)} images) vs unfiltered ({len(td.raw)}), {c.seeds} seed(s) x "
             f"{runner.epochs} epochs")
    out = runner.compare(Arm("unfiltered", decision["config"], td.raw),
                         Arm("clean", decision["config"], clean), seeds=c.seeds,
                         label="cleaning")
    out["subset"] = c.subset
    progress(f"tune cleaning: {out['verdict']}")
    return out


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


def _fingerprint(params: Params, plans: list[RoundPlan], start: Start) -> dict[str, Any]:
    """What must be equal for workers to share a study: the search itself."""
    tune = params.tune.model_dump()
    for key in ("storage", "heartbeat_interval", "grace_period", "max_retry",
                "round_wait_seconds", "diagnose", "fidelity", "cleaning", "baseline"):
        tune.pop(key, None)
    engine = params.engine.model_dump()
    engine.pop("device", None)
    return {"tune": tune, "engine": engine, "plans": [dataclasses.asdict(p) for p in plans],
            "start": json.loads(json.dumps(start.config, default=str))}


__all__ = ["search", "sized_plans"]
