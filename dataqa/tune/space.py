"""Search spaces and rounds, from params.

A :class:`Space` is what one round searches: ``dims`` (name -> :class:`Dim`) plus the
``fixed`` values of everything else. It round-trips through JSON because it is stored in
the round's Optuna study (every worker of a distributed run reads the same space).

The rounds follow the guide (coarse to fine):

1. ``lr``: the learning rate alone, log-uniform over ``space.lr_min..lr_max``, everything
   else fixed, few epochs, smallest subset;
2. ``joint``: every name in ``space.searched``, the learning rate narrowed to round 1's
   best x/÷ ``10**lr_decades``;
3. ``fine``: each range narrowed to the span of round 2's top trials plus a margin, more
   epochs, a larger subset.

Budgets left null in params come from :data:`DEVICE_BUDGETS` (a GPU affords more).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import optuna

from dataqa.errors import ParamsError
from dataqa.params import EngineParams, TuneParams

ROUND_NAMES = ("lr", "joint", "fine")

# Budgets when params leave them null: (trials, epochs) per round. GPU: the 32-trial
# default search of the benchmark; CPU: ~90-120 s for the whole tune stage on the
# bundled ~2,000-image sample on 2 cores (measured: benchmarks/README.md).
DEVICE_BUDGETS: dict[str, dict[str, tuple[int, int]]] = {
    "cuda": {"lr": (8, 4), "joint": (16, 6), "fine": (8, 12)},
    "cpu": {"lr": (6, 3), "joint": (8, 3), "fine": (6, 4)},  # fine: 5 fidelity re-runs + 1
}

# Widths searched when tune.space.widths is null: wide nets cost little on a GPU only.
DEVICE_WIDTHS: dict[str, list[int]] = {"cuda": [16, 32, 64], "cpu": [8, 16, 32]}

# Values a hyperparameter can never leave: a best value at such a bound needs no widening.
NATURAL_BOUNDS: dict[str, tuple[float, float]] = {
    "dropout": (0.0, 1.0), "momentum": (0.0, 1.0), "plateau_factor": (0.0, 1.0)}

ORDERED = ("batch_size", "width", "depth")  # categorical but ordered: edges make sense


@dataclass(frozen=True)
class Dim:
    """One searched hyperparameter: a float range (``low``, ``high``, ``log``) or a list
    of ``choices`` (ordered ones for batch size, width, depth)."""

    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: tuple[Any, ...] | None = None

    @property
    def is_float(self) -> bool:
        return self.choices is None

    def distribution(self) -> optuna.distributions.BaseDistribution:
        if self.choices is not None:
            return optuna.distributions.CategoricalDistribution(list(self.choices))
        assert self.low is not None and self.high is not None
        return optuna.distributions.FloatDistribution(self.low, self.high, log=self.log)

    def position(self, value: Any) -> float:
        """Where ``value`` lies in the range, 0 (low end) to 1 (high end), on the
        range's own scale (log for log ranges, index order for ordered choices)."""
        if self.choices is not None:
            if len(self.choices) < 2:
                return 0.5
            return self.choices.index(value) / (len(self.choices) - 1)
        assert self.low is not None and self.high is not None
        lo, hi, v = self.low, self.high, float(value)
        if self.log:
            lo, hi, v = math.log(lo), math.log(hi), math.log(v)
        return 0.5 if hi == lo else (v - lo) / (hi - lo)

    def contains(self, value: Any) -> bool:
        if self.choices is not None:
            return value in self.choices
        assert self.low is not None and self.high is not None
        return isinstance(value, int | float) and self.low <= float(value) <= self.high

    def to_json(self) -> dict[str, Any]:
        if self.choices is not None:
            return {"choices": list(self.choices)}
        return {"low": self.low, "high": self.high, "log": self.log}

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Dim:
        if "choices" in raw:
            return cls(choices=tuple(raw["choices"]))
        return cls(low=float(raw["low"]), high=float(raw["high"]), log=bool(raw["log"]))


@dataclass(frozen=True)
class Space:
    dims: dict[str, Dim]
    fixed: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"dims": {k: d.to_json() for k, d in self.dims.items()},
                "fixed": dict(self.fixed)}

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Space:
        return cls({k: Dim.from_json(v) for k, v in raw["dims"].items()}, dict(raw["fixed"]))

    def suggest(self, trial: optuna.Trial) -> dict[str, Any]:
        """The trial's full configuration: fixed values plus one suggestion per dim."""
        config = dict(self.fixed)
        for name, dim in self.dims.items():
            if dim.choices is not None:
                config[name] = trial.suggest_categorical(name, list(dim.choices))
            else:
                assert dim.low is not None and dim.high is not None
                config[name] = trial.suggest_float(name, dim.low, dim.high, log=dim.log)
        return config


@dataclass(frozen=True)
class RoundPlan:
    """One round, budgets resolved: ``index`` 1..3, ``name`` in ROUND_NAMES."""

    index: int
    name: str
    trials: int
    epochs: int
    subset: str
    sampler: str


def plan_rounds(tune: TuneParams, device_type: str) -> list[RoundPlan]:
    """The three rounds with null budgets filled in for ``device_type`` (cpu | cuda)."""
    budgets = DEVICE_BUDGETS["cuda" if device_type == "cuda" else "cpu"]
    plans = []
    for index, name in enumerate(ROUND_NAMES, start=1):
        r = getattr(tune.rounds, name)
        trials = budgets[name][0] if r.trials is None else r.trials
        epochs = budgets[name][1] if r.epochs is None else r.epochs
        plans.append(RoundPlan(index, name, trials, epochs, r.subset, r.sampler))
    return plans


def fixed_config(tune: TuneParams, engine: EngineParams, *, n_train: int) -> dict[str, Any]:
    """Values of every hyperparameter when not searched (round 1: all but the LR)."""
    f = tune.fixed
    return {
        "lr": f.lr,
        "batch_size": min(f.batch_size, batch_cap(n_train)),
        "weight_decay": f.weight_decay,
        "dropout": engine.dropout if f.dropout is None else f.dropout,
        "optimizer": f.optimizer,
        "momentum": f.momentum,
        "plateau_factor": f.plateau_factor,
        "width": engine.width if f.width is None else f.width,
        "depth": engine.depth if f.depth is None else f.depth,
        "label_smoothing": f.label_smoothing,
    }


def batch_cap(n_train: int) -> int:
    """Largest power of two giving at least 4 steps per epoch (>= 1)."""
    cap = 1
    while cap * 2 <= max(n_train // 4, 1):
        cap *= 2
    return cap


def batch_sizes(lo: int, hi: int, *, n_train: int) -> list[int]:
    """Powers of two in [lo, hi] that still give 4 steps per epoch; at least one."""
    cap = batch_cap(n_train)
    out = [b for b in (2 ** i for i in range(0, 20)) if lo <= b <= min(hi, cap)]
    return out or [min(cap, max(lo, 1))]


def lr_space(tune: TuneParams, engine: EngineParams, *, n_train: int) -> Space:
    """Round 1: the learning rate, log-uniform over the whole range."""
    fixed = fixed_config(tune, engine, n_train=n_train)
    fixed.pop("lr")
    return Space({"lr": Dim(tune.space.lr_min, tune.space.lr_max, log=True)}, fixed)


def joint_space(tune: TuneParams, engine: EngineParams, *, n_train: int,
                best_lr: float | None, device_type: str = "cpu") -> Space:
    """Round 2: every name in ``space.searched``; the LR range is round 1's best x/÷
    ``10**lr_decades`` clipped to the full range (the full range when round 1 has no
    result). Null ``space.widths`` take :data:`DEVICE_WIDTHS` of ``device_type``."""
    s = tune.space
    lo, hi = s.lr_min, s.lr_max
    if best_lr is not None:
        k = 10.0 ** tune.rounds.joint.lr_decades
        lo, hi = max(s.lr_min, best_lr / k), min(s.lr_max, best_lr * k)
        if hi <= lo:  # lr_decades 0: keep a sliver so the range stays a range
            lo, hi = best_lr / 1.01, best_lr * 1.01
    every = {
        "lr": Dim(lo, hi, log=True),
        "batch_size": Dim(choices=tuple(batch_sizes(s.batch_size_min, s.batch_size_max,
                                                    n_train=n_train))),
        "weight_decay": Dim(s.weight_decay_min, s.weight_decay_max, log=True),
        "dropout": Dim(s.dropout_min, s.dropout_max),
        "optimizer": Dim(choices=tuple(dict.fromkeys(s.optimizers))),
        "momentum": Dim(s.momentum_min, s.momentum_max),
        "plateau_factor": Dim(s.plateau_factor_min, s.plateau_factor_max),
        "width": Dim(choices=tuple(sorted(set(
            s.widths or DEVICE_WIDTHS["cuda" if device_type == "cuda" else "cpu"])))),
        "depth": Dim(choices=tuple(sorted(set(s.depths)))),
    }
    fixed = fixed_config(tune, engine, n_train=n_train)
    dims: dict[str, Dim] = {}
    for name, dim in every.items():
        if name in s.searched and _is_range(dim):
            dims[name] = dim
            fixed.pop(name, None)
        elif name in s.searched and dim.choices:  # a single choice: fixed at it
            fixed[name] = dim.choices[0]
    return Space(dims, fixed)


def fine_space(joint: Space, top: Sequence[Mapping[str, Any]], *, margin: float,
               n_train: int, limits: Mapping[str, tuple[float, float]] | None = None
               ) -> Space:
    """Round 3: each range of ``joint`` narrowed to the span of ``top`` (the best round-2
    trials' params) widened by ``margin`` x the round-2 range on each side (in the
    range's scale), clipped to the round-2 range, or to ``limits[name]`` where given
    (the learning rate: the whole configured range, so that a best learning rate on the
    edge of round 2's narrowed range widens the range past that edge). Choices keep
    those the top trials used; ordered choices keep the span between them. Batch sizes
    are capped for the (larger) fine subset again."""
    if not top:
        return joint
    dims: dict[str, Dim] = {}
    fixed = dict(joint.fixed)
    for name, dim in joint.dims.items():
        values = [t[name] for t in top if name in t]
        if not values:
            dims[name] = dim
            continue
        if dim.choices is not None:
            if name in ORDERED:
                idx = sorted(dim.choices.index(v) for v in values)
                kept: tuple[Any, ...] = dim.choices[idx[0]:idx[-1] + 1]
            else:
                kept = tuple(c for c in dim.choices if c in values)
            if name == "batch_size":
                cap = batch_cap(n_train)
                kept = tuple(b for b in kept if b <= cap) or (min(kept),)
            if len(kept) > 1:
                dims[name] = Dim(choices=kept)
            else:
                fixed[name] = kept[0]
            continue
        assert dim.low is not None and dim.high is not None
        fwd, inv = (math.log, math.exp) if dim.log else (float, float)
        lo, hi = fwd(dim.low), fwd(dim.high)
        vals = [fwd(float(v)) for v in values]
        pad = margin * (hi - lo)
        clip_lo, clip_hi = lo, hi
        if limits and name in limits:
            clip_lo, clip_hi = (min(lo, fwd(limits[name][0])), max(hi, fwd(limits[name][1])))
        new_lo, new_hi = max(clip_lo, min(vals) - pad), min(clip_hi, max(vals) + pad)
        if new_hi <= new_lo:
            new_hi = min(hi, new_lo + 1e-6 * (hi - lo)) if hi > lo else new_lo
        if new_hi <= new_lo:
            fixed[name] = inv(new_lo)
            continue
        dims[name] = Dim(inv(new_lo), inv(new_hi), log=dim.log)
    return Space(dims, fixed)


def _is_range(dim: Dim) -> bool:
    if dim.choices is not None:
        return len(dim.choices) > 1
    return dim.high is not None and dim.low is not None and dim.high > dim.low


def design_trials(space: Space, n: int, *, kind: str, seed: int) -> list[dict[str, Any]]:
    """``n`` configurations of ``space`` fixed in advance: scrambled Sobol points
    (``kind="qmc"``) or uniform random ones (``"random"``) in the unit cube, mapped onto
    each dim (log ranges on the log scale, choices by equal shares).

    Why not Optuna's QMCSampler: it samples relative to a search space learnt from the
    first *finished* trial, so the first trial of each worker is random and the design
    depends on timing. Fixed in advance and enqueued, the design is the same for one
    worker or fifty, every point runs exactly once, and trial i's configuration depends
    only on the seed.
    """
    names = list(space.dims)
    if n <= 0 or not names:
        return [{} for _ in range(max(n, 0))]
    if kind == "qmc":
        from scipy.stats import qmc

        with warnings.catch_warnings():  # n need not be a power of two here
            warnings.simplefilter("ignore", UserWarning)
            unit = qmc.Sobol(d=len(names), scramble=True, seed=seed).random(n)
    else:
        unit = np.random.default_rng(seed).random((n, len(names)))
    out = []
    for row in unit:
        config: dict[str, Any] = {}
        for name, u in zip(names, row):
            dim = space.dims[name]
            if dim.choices is not None:
                config[name] = dim.choices[min(int(u * len(dim.choices)), len(dim.choices) - 1)]
                continue
            assert dim.low is not None and dim.high is not None
            if dim.log:
                value = math.exp(math.log(dim.low) + u * (math.log(dim.high) - math.log(dim.low)))
            else:
                value = dim.low + u * (dim.high - dim.low)
            config[name] = min(max(float(value), dim.low), dim.high)
        out.append(config)
    return out


def make_sampler(kind: str, *, seed: int) -> optuna.samplers.BaseSampler:
    """Quasi-random (scrambled Sobol) or random while exploring; TPE to exploit."""
    with warnings.catch_warnings():  # QMC and multivariate TPE are "experimental"
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if kind == "qmc":
            return optuna.samplers.QMCSampler(
                qmc_type="sobol", scramble=True, seed=seed,
                independent_sampler=optuna.samplers.RandomSampler(seed=seed),
                warn_asynchronous_seeding=False, warn_independent_sampling=False)
        if kind == "random":
            return optuna.samplers.RandomSampler(seed=seed)
        if kind == "tpe":
            return optuna.samplers.TPESampler(seed=seed, n_startup_trials=4,
                                              multivariate=True)
    raise ParamsError(f"tune sampler: {kind!r} is not one of 'qmc', 'random', 'tpe'")


def make_pruner(kind: str, *, startup_trials: int,
                warmup_epochs: int) -> optuna.pruners.BasePruner:
    if kind == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=startup_trials,
                                           n_warmup_steps=warmup_epochs)
    if kind == "halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=max(warmup_epochs, 1),
                                                      reduction_factor=3)
    if kind == "none":
        return optuna.pruners.NopPruner()
    raise ParamsError(f"tune.pruning.pruner: {kind!r} is not one of median, halving, none")
