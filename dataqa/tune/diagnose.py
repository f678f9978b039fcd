"""Automatic diagnoses of training curves and of a search, each with the guide's remedy.

Pure functions: a trial's per-epoch ``history`` (a sequence of mappings with the keys
of :class:`dataqa.engine.fit.EpochLog`: ``epoch, train_loss, train_acc, val_loss,
val_acc, lr, seconds, train_loss_std``) and its ``status`` in, a list of
:class:`Diagnosis` out. ``find_*`` functions return one diagnosis or None;
:func:`diagnose_trial` and :func:`find_edges` collect them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from dataqa.params import TuneDiagnose
from dataqa.tune.space import NATURAL_BOUNDS, ORDERED, Space

History = Sequence[Mapping[str, Any]]

# The guide's remedies, in words, one per diagnosis code.
REMEDIES: dict[str, str] = {
    "overfitting": "More data, data augmentation, L1/L2 regularisation (more weight "
                   "decay), dropout, and early stopping at the best validation epoch.",
    "underfitting": "A larger model (more width or depth), less regularisation (less "
                    "weight decay and dropout), and longer training.",
    "diverged": "The learning rate is too high: lower it (or the upper end of the "
                "learning-rate range).",
    "stalled": "The learning rate is too low (or the data carry no learnable signal): "
               "raise it (or the lower end of the learning-rate range).",
    "noisy": "Step-to-step loss noise is high: use a larger batch (or a lower learning "
             "rate).",
    "more_epochs": "Validation loss was still falling at the last epoch: train for more "
                   "epochs.",
    "edge": "The best value sits on the edge of the search range: widen the range past "
            "that edge and search again.",
}


@dataclass(frozen=True)
class Diagnosis:
    code: str  # a key of REMEDIES
    message: str  # what was seen, with numbers
    remedy: str  # the guide's remedy in words
    param: str | None = None  # edge: the hyperparameter
    side: str | None = None  # edge: 'low' | 'high'

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _make(code: str, message: str, **extra: Any) -> Diagnosis:
    return Diagnosis(code, message, REMEDIES[code], **extra)


def _finite(values: Sequence[float]) -> list[float]:
    return [float(v) for v in values if v is not None and math.isfinite(float(v))]


def _evaluated(history: History) -> list[Mapping[str, Any]]:
    """Epochs with a validation result."""
    return [h for h in history if h.get("val_loss") is not None
            and math.isfinite(float(h["val_loss"]))]


def find_overfitting(history: History, *, gap: float, rise: float) -> Diagnosis | None:
    """Overfitting when, at the last evaluated epoch, the train-val accuracy gap exceeds
    ``gap``, or val loss is ``rise`` (a share) above its minimum while train loss kept
    falling after that minimum."""
    ev = _evaluated(history)
    if not ev:
        return None
    last = ev[-1]
    acc_gap = float(last["train_acc"]) - float(last["val_acc"])
    best = min(range(len(ev)), key=lambda i: float(ev[i]["val_loss"]))
    vmin, vlast = float(ev[best]["val_loss"]), float(last["val_loss"])
    rising = (best < len(ev) - 1 and vlast > vmin * (1 + rise)
              and float(last["train_loss"]) < float(ev[best]["train_loss"]))
    if acc_gap <= gap and not rising:
        return None
    seen = []
    if acc_gap > gap:
        seen.append(f"train accuracy {last['train_acc']:.3f} vs validation "
                    f"{last['val_acc']:.3f} (gap {acc_gap:.3f} > {gap:g})")
    if rising:
        seen.append(f"validation loss rose from {vmin:.4g} (epoch {ev[best]['epoch']}) to "
                    f"{vlast:.4g} while training loss fell to {last['train_loss']:.4g}")
    return _make("overfitting", "; ".join(seen))


def find_underfitting(history: History, *, acc: float) -> Diagnosis | None:
    """Underfitting when the best train and the best val accuracy both stay below
    ``acc``: the model cannot even fit the training set."""
    ev = _evaluated(history)
    train = _finite([h["train_acc"] for h in history])
    val = _finite([h["val_acc"] for h in ev])
    if not train or not val or max(train) >= acc or max(val) >= acc:
        return None
    return _make("underfitting", f"best train accuracy {max(train):.3f} and best validation "
                                 f"accuracy {max(val):.3f} both below {acc:g}")


def find_noisy(history: History, *, cv: float) -> Diagnosis | None:
    """Noisy when, in the last epoch, the std of the per-step training losses exceeds
    ``cv`` x their mean."""
    if not history:
        return None
    last = history[-1]
    mean, std = float(last["train_loss"]), float(last.get("train_loss_std", math.nan))
    if not (math.isfinite(mean) and math.isfinite(std)) or mean <= 0 or std / mean <= cv:
        return None
    return _make("noisy", f"step-to-step std of the training loss is {std / mean:.2f} x its "
                          f"mean in the last epoch (> {cv:g}); batch size "
                          f"{last.get('batch_size', '?')}")


def find_too_few_epochs(history: History, status: str, *,
                        still_improving: float) -> Diagnosis | None:
    """Too few epochs when the run used all its epochs, and val loss at the last epoch
    is its minimum and fell by more than ``still_improving`` (a share) in that epoch."""
    ev = _evaluated(history)
    if status != "completed" or len(ev) < 2:
        return None
    losses = [float(h["val_loss"]) for h in ev]
    ref = losses[-2]
    if losses[-1] > min(losses) or ref <= 0 or (ref - losses[-1]) / ref <= still_improving:
        return None
    return _make("more_epochs", f"validation loss fell {100 * (ref - losses[-1]) / ref:.1f}% "
                                f"in the last epoch and is lowest there "
                                f"(epoch {ev[-1]['epoch']})")


def find_status(status: str, message: str = "") -> Diagnosis | None:
    """``diverged`` and ``stalled`` trials carry their own diagnosis."""
    if status not in ("diverged", "stalled"):
        return None
    return _make(status, message or f"the trial {status}")


def diagnose_trial(history: History, status: str, th: TuneDiagnose, *,
                   message: str = "") -> list[Diagnosis]:
    """Every diagnosis of one trial. A diverged or stalled trial gets only that one:
    its curves say nothing about over- or underfitting."""
    first = find_status(status, message)
    if first is not None:
        return [first]
    found = [find_overfitting(history, gap=th.overfit_gap, rise=th.overfit_rise),
             find_underfitting(history, acc=th.underfit_acc),
             find_noisy(history, cv=th.noise_cv),
             find_too_few_epochs(history, status, still_improving=th.still_improving)]
    return [d for d in found if d is not None]


def find_edges(space: Space, best: Mapping[str, Any], *, fraction: float,
               limits: Mapping[str, tuple[float, float]] | None = None) -> list[Diagnosis]:
    """One ``edge`` diagnosis per searched hyperparameter whose ``best`` value lies within
    ``fraction`` of an end of its range (on the range's scale), unless that end is a
    natural bound (dropout 0, ...) or one of ``limits`` (name -> (low, high) the range
    may not pass, e.g. the whole configured LR range for a narrowed round).
    Unordered choices (optimizer) have no edge."""
    limits = dict(NATURAL_BOUNDS, **(limits or {}))
    out: list[Diagnosis] = []
    for name, dim in space.dims.items():
        if name not in best or (dim.choices is not None and name not in ORDERED):
            continue
        if dim.choices is not None and len(dim.choices) < 3:
            continue  # two choices: "on the edge" always; says nothing
        pos = dim.position(best[name])
        lo_end = dim.low if dim.choices is None else dim.choices[0]
        hi_end = dim.high if dim.choices is None else dim.choices[-1]
        bound = limits.get(name)
        for side, near, end in (("low", pos <= fraction, lo_end), ("high", pos >= 1 - fraction,
                                                                    hi_end)):
            if not near:
                continue
            if bound is not None and end is not None and float(end) == float(
                    bound[0 if side == "low" else 1]):
                continue
            out.append(_make("edge", f"best {name} = {_fmt(best[name])} is at the {side} "
                                     f"end of the searched range [{_fmt(lo_end)}, "
                                     f"{_fmt(hi_end)}]", param=name, side=side))
    return out


def _fmt(v: Any) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)
