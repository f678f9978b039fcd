"""Search spaces and rounds, from params and the starting configuration.

A :class:`Space` is what one round searches: ``dims`` (name -> :class:`Dim`) plus the
``fixed`` values of everything else (the start's). It round-trips through JSON because
it is stored in the round's Optuna study (every worker of a distributed run reads the
same space). A dim may apply only under a condition (``depth`` to small_resnet,
``plateau_factor`` to the plateau schedule): :attr:`Dim.when`.

The search space is the engine's knobs (:data:`dataqa.tune.start.KNOBS`): architecture
(small_cnn, small_resnet) with width and depth, schedule (one-cycle, plateau, cosine),
optimizer, learning rate, batch size, weight decay, dropout, momentum. With
``engine.weights`` (a pretrained backbone) it is what matters there: learning rate,
weight decay, batch size, optimizer, schedule and how much of the net to unfreeze; the
architecture and its width/depth are the weights'. Every space contains the start.

The rounds follow the guide (coarse to fine, learning rate first), the start being the
first trial of each:

1. ``lr``: the learning rate alone, log-uniform over ``space.lr_min..lr_max``, the rest
   the start's, few epochs, smallest subset;
2. ``joint``: every knob in ``space.searched``, the learning rate narrowed to round 1's
   best x/÷ ``10**lr_decades``;
3. ``fine``: each range narrowed to the span of round 2's top trials plus a margin, the
   final epochs (those of the comparison), a larger subset.

A best value at the edge of a range widens that range past the edge in the next round
(:func:`widen_edges`); the round records it. Trials and epochs left null in params come
from the time budget (:mod:`dataqa.tune.budget`).
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import optuna

from dataqa.errors import ParamsError
from dataqa.params import TuneParams
from dataqa.tune.start import ARCHS, SCHEDULES

ROUND_NAMES = ("lr", "joint", "fine")

# Most trials per round when the time budget would allow more (a GPU): the 32-trial
# search of the benchmark.
MAX_TRIALS: dict[str, int] = {"lr": 8, "joint": 16, "fine": 8}

# Widths searched when tune.space.widths is null: wide nets cost little on a GPU only.
DEVICE_WIDTHS: dict[str, list[int]] = {"cuda": [16, 32, 64], "cpu": [8, 16, 32]}

# Values a hyperparameter can never leave: a best value at such a bound needs no widening.
NATURAL_BOUNDS: dict[str, tuple[float, float]] = {
    "dropout": (0.0, 1.0), "momentum": (0.0, 1.0), "plateau_factor": (0.0, 1.0),
    "unfreeze": (0.0, 1.0)}

ORDERED = ("batch_size", "width", "depth", "unfreeze")  # categorical but ordered

# How much of a pretrained net a trial trains (TrainConfig.unfreeze), with engine.weights.
UNFREEZE = (0.0, 0.25, 0.5, 1.0)
# Knobs that apply only under a condition: name -> (knob, values it must take).
CONDITIONS: dict[str, tuple[str, tuple[Any, ...]]] = {
    "depth": ("arch", ("small_resnet",)), "plateau_factor": ("schedule", ("plateau",))}
# Knobs of the nets the engine builds itself: a pretrained backbone has none of them.
OWN_NET = ("arch", "width", "depth", "dropout")


@dataclass(frozen=True)
class Dim:
    """One searched hyperparameter: a float range (``low``, ``high``, ``log``) or a list
    of ``choices`` (ordered ones for batch size, width, depth)."""

    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: tuple[Any, ...] | None = None
    when: tuple[str, tuple[Any, ...]] | None = None  # (knob, values): applies only then

    def applies(self, config: Mapping[str, Any]) -> bool:
        """Does this dim apply to ``config`` (its condition's knob has a listed value)?"""
        return self.when is None or config.get(self.when[0]) in self.when[1]

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
        out: dict[str, Any] = ({"choices": list(self.choices)} if self.choices is not None
                               else {"low": self.low, "high": self.high, "log": self.log})
        if self.when is not None:
            out["when"] = [self.when[0], list(self.when[1])]
        return out

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Dim:
        when = None if raw.get("when") is None else (str(raw["when"][0]),
                                                      tuple(raw["when"][1]))
        if "choices" in raw:
            return cls(choices=tuple(raw["choices"]), when=when)
        return cls(low=float(raw["low"]), high=float(raw["high"]), log=bool(raw["log"]),
                   when=when)

    def including(self, value: Any) -> Dim:
        """This dim widened just enough to contain ``value``."""
        if self.contains(value):
            return self
        if self.choices is not None:
            choices = self.choices + (value,)
            try:
                choices = tuple(sorted(choices))
            except TypeError:
                pass
            return dataclasses.replace(self, choices=choices)
        assert self.low is not None and self.high is not None
        v = float(value)
        return dataclasses.replace(self, low=min(self.low, v), high=max(self.high, v))


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

    def params_of(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """The values of ``config`` for the dims that apply to it (what to enqueue)."""
        out: dict[str, Any] = {}
        full = dict(self.fixed, **config)
        for name, dim in self.dims.items():
            if dim.applies(full) and name in config:
                out[name] = config[name]
        return out

    def containing(self, config: Mapping[str, Any]) -> Space:
        """This space with every applicable dim widened to contain ``config``'s value."""
        full = dict(self.fixed, **config)
        dims = {k: (d.including(config[k]) if k in config and d.applies(full) else d)
                for k, d in self.dims.items()}
        return Space(dims, dict(self.fixed))

    def suggest(self, trial: optuna.Trial) -> dict[str, Any]:
        """The trial's full configuration: fixed values plus one suggestion per dim that
        applies (dims are in order: a condition names an earlier dim or a fixed knob)."""
        config = dict(self.fixed)
        for name, dim in self.dims.items():
            if not dim.applies(config):
                continue  # the fixed value stays (the start's)
            if dim.choices is not None:
                config[name] = trial.suggest_categorical(name, list(dim.choices))
            else:
                assert dim.low is not None and dim.high is not None
                config[name] = trial.suggest_float(name, dim.low, dim.high, log=dim.log)
        return config


@dataclass(frozen=True)
class RoundPlan:
    """One round: ``index`` 1..3, ``name`` in ROUND_NAMES; ``trials``/``epochs`` None
    until the budget (:mod:`dataqa.tune.budget`) sets them (params may fix them)."""

    index: int
    name: str
    trials: int | None
    epochs: int | None
    subset: str
    sampler: str


def plan_rounds(tune: TuneParams) -> list[RoundPlan]:
    """The three rounds as params give them (null trials/epochs: from the budget)."""
    plans = []
    for index, name in enumerate(ROUND_NAMES, start=1):
        r = getattr(tune.rounds, name)
        where = f"params.yaml: tune.rounds.{name}"
        if r.trials is not None and r.trials < 0:
            raise ParamsError(f"{where}.trials: must be >= 0, got {r.trials}")
        if r.epochs is not None and r.epochs < 1:
            raise ParamsError(f"{where}.epochs: must be >= 1, got {r.epochs}")
        plans.append(RoundPlan(index, name, r.trials, r.epochs, r.subset, r.sampler))
    return plans


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


def lr_space(tune: TuneParams, start: Mapping[str, Any]) -> Space:
    """Round 1: the learning rate, log-uniform over the whole range (widened to hold
    the start's); everything else the start's."""
    fixed = dict(start)
    fixed.pop("lr")
    dim = Dim(tune.space.lr_min, tune.space.lr_max, log=True).including(start["lr"])
    return Space({"lr": dim}, fixed)


def joint_space(tune: TuneParams, start: Mapping[str, Any], *, n_train: int,
                best_lr: float | None, device_type: str = "cpu",
                pretrained: bool = False) -> Space:
    """Round 2: every knob in ``space.searched`` that applies (see the module
    docstring), each range widened to hold the start. The LR range is round 1's best
    x/÷ ``10**lr_decades``, not clipped to ``space.lr_min..lr_max``: a best at the
    edge of round 1's range widens it (the whole range when round 1 has no result).
    Null ``space.widths`` take :data:`DEVICE_WIDTHS` of ``device_type``."""
    s = tune.space
    lo, hi = s.lr_min, s.lr_max
    if best_lr is not None:
        k = 10.0 ** tune.rounds.joint.lr_decades
        lo, hi = best_lr / k, best_lr * k
        if hi <= lo:  # lr_decades 0: keep a sliver so the range stays a range
            lo, hi = best_lr / 1.01, best_lr * 1.01
    every = {
        "arch": Dim(choices=ARCHS),
        "schedule": Dim(choices=SCHEDULES),
        "optimizer": Dim(choices=tuple(dict.fromkeys(s.optimizers))),
        "lr": Dim(lo, hi, log=True),
        "batch_size": Dim(choices=tuple(batch_sizes(s.batch_size_min, s.batch_size_max,
                                                    n_train=n_train))),
        "weight_decay": Dim(s.weight_decay_min, s.weight_decay_max, log=True),
        "dropout": Dim(s.dropout_min, s.dropout_max),
        "momentum": Dim(s.momentum_min, s.momentum_max),
        "plateau_factor": Dim(s.plateau_factor_min, s.plateau_factor_max,
                              when=CONDITIONS["plateau_factor"]),
        "width": Dim(choices=tuple(sorted(set(
            s.widths or DEVICE_WIDTHS["cuda" if device_type == "cuda" else "cpu"])))),
        "depth": Dim(choices=tuple(sorted(set(s.depths))), when=CONDITIONS["depth"]),
        "unfreeze": Dim(choices=UNFREEZE),
    }
    skip = set(OWN_NET) if pretrained else {"unfreeze"}
    fixed = dict(start)
    dims: dict[str, Dim] = {}
    for name, dim in every.items():
        if name not in s.searched or name in skip:
            continue
        dim = dim.including(start[name]) if name in start else dim
        if _is_range(dim):
            dims[name] = dim
            if dim.when is None:  # a conditional knob keeps the start's value for when
                fixed.pop(name, None)  # its condition is not met
    return Space(dims, fixed)


def fine_space(joint: Space, top: Sequence[Mapping[str, Any]], *, margin: float,
               n_train: int) -> Space:
    """Round 3: each range of ``joint`` narrowed to the span of ``top`` (the best round-2
    trials' params) widened by ``margin`` x the round-2 range on each side (in the
    range's scale), within the round-2 range (:func:`widen_edges` then widens past an
    edge where round 2's best sits on it). Choices keep those the top trials used;
    ordered choices keep the span between them. Batch sizes are capped for the (larger)
    fine subset again. A dim no top trial used (a condition never met) stays as it was.
    """
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
            if len(kept) > 1 or dim.when is not None:
                dims[name] = dataclasses.replace(dim, choices=kept)
            else:
                fixed[name] = kept[0]
            continue
        assert dim.low is not None and dim.high is not None
        fwd, inv = (math.log, math.exp) if dim.log else (float, float)
        lo, hi = fwd(dim.low), fwd(dim.high)
        vals = [fwd(float(v)) for v in values]
        pad = margin * (hi - lo)
        new_lo, new_hi = max(lo, min(vals) - pad), min(hi, max(vals) + pad)
        if new_hi <= new_lo:
            new_hi = min(hi, new_lo + 1e-6 * (hi - lo)) if hi > lo else new_lo
        if new_hi <= new_lo and dim.when is None:
            fixed[name] = inv(new_lo)
            continue
        dims[name] = dataclasses.replace(dim, low=inv(new_lo), high=inv(max(new_hi, new_lo)))
    return Space(dims, fixed)


def widen_edges(space: Space, wide: Space, best: Mapping[str, Any], *, fraction: float
                ) -> tuple[Space, list[dict[str, Any]]]:
    """``space`` (the next round's) with each range whose end ``best`` (the previous
    round's best configuration) sits on in ``wide`` (the previous round's space) pushed
    past that end: a float range by the previous range's span on its scale (within
    :data:`NATURAL_BOUNDS`), ordered choices by one more value (x2 / ÷2 for batch size
    and width, ±1 for depth). Returns the space and one record per widening, in words.
    """
    dims = dict(space.dims)
    fixed = dict(space.fixed)
    notes: list[dict[str, Any]] = []
    for name, prev in wide.dims.items():
        if name not in best or not prev.applies(best):
            continue
        if name not in dims:  # narrowed to one value: a range again, then widened
            if name not in fixed:
                continue
            v = fixed[name]
            dims[name] = (dataclasses.replace(prev, choices=(v,)) if prev.choices is not None
                          else dataclasses.replace(prev, low=float(v), high=float(v)))
        if prev.choices is not None and (name not in ORDERED or name == "unfreeze"
                                         or len(prev.choices) < 2):
            continue
        pos = prev.position(best[name])
        for side in ("low", "high"):
            if (side == "low" and pos > fraction) or (side == "high" and pos < 1 - fraction):
                continue
            dim = dims[name]
            new = _push(name, dim, prev, side)
            if new is None or new == dim:
                continue
            dims[name] = new
            if prev.when is None:
                fixed.pop(name, None)
            notes.append({"param": name, "side": side, "best": best[name],
                          "before": _span(prev), "after": _span(new),
                          "message": f"{name}: the best value {_fmt(best[name])} sat at the "
                                     f"{side} end of {_span(prev)}; the next round searches "
                                     f"{_span(new)}"})
    # a one-value range no edge widened goes back to fixed
    for name in [n for n, d in dims.items() if n not in space.dims and not _is_range(d)]:
        del dims[name]
    return Space(dims, fixed), notes


def _push(name: str, dim: Dim, prev: Dim, side: str) -> Dim | None:
    if dim.choices is not None:
        ends = sorted(dim.choices)
        end = ends[0] if side == "low" else ends[-1]
        if name == "depth":
            nxt = end - 1 if side == "low" else end + 1
        else:
            nxt = end // 2 if side == "low" else end * 2
        if nxt < 1:
            return None
        return dataclasses.replace(dim, choices=tuple(sorted(set(dim.choices) | {nxt})))
    assert dim.low is not None and dim.high is not None
    assert prev.low is not None and prev.high is not None
    fwd, inv = (math.log, math.exp) if dim.log else (float, float)
    span = fwd(prev.high) - fwd(prev.low)
    bound = NATURAL_BOUNDS.get(name)
    if side == "low":
        low = inv(fwd(dim.low) - span) if dim.log else dim.low - span
        if bound is not None:
            low = max(low, bound[0])
        return None if low >= dim.low else dataclasses.replace(dim, low=low)
    high = inv(fwd(dim.high) + span) if dim.log else dim.high + span
    if bound is not None:
        high = min(high, bound[1] - 1e-3 if name != "dropout" else 0.9)
    return None if high <= dim.high else dataclasses.replace(dim, high=high)


def _span(dim: Dim) -> str:
    if dim.choices is not None:
        return "{" + ", ".join(str(c) for c in dim.choices) + "}"
    return f"[{_fmt(dim.low)}, {_fmt(dim.high)}]"


def _fmt(v: Any) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)


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
            if not dim.applies(dict(space.fixed, **config)):
                continue  # a condition not met: this point leaves the knob out
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
