"""Automatic diagnoses of training curves and of a search, each with the guide's remedy
and the numbers it rests on.

Pure functions: a trial's per-epoch ``history`` (a sequence of mappings with the keys
of :class:`dataqa.engine.fit.EpochLog`: ``epoch, train_loss, train_acc, val_loss,
val_acc, lr, seconds, train_loss_std, batch_size``), its engine ``status`` and the
number of classes K in, a list of :class:`Diagnosis` out.

The verdicts (README "Reading the reports"):

==============  =================================================================
lr_too_high     the loss is NaN or explodes (engine status ``diverged``), or the
                training loss rises by ``oscillation`` (share) in 2+ epochs
lr_too_low      the engine stalled, or the training loss moved less than
                ``barely_moves`` (share) over 3+ epochs while still above ln(K)/2
overfitting     validation loss rising for more than one epoch after its minimum
                (to ``overfit_rise`` above it) AND, at that epoch, train - val accuracy
                above ``overfit_gap``: a gap alone is not enough, nor is a rising
                validation loss with a training accuracy below the validation one
undertrained    the final training loss is still >= ``chance_ratio`` x ln(K) (the loss
                of guessing), or the run used all its epochs and the training loss
                still fell in the last one by more than ``still_improving`` x the
                first epoch's loss
noisy           step-to-step std of the training loss over ``noise_cv`` x its mean
edge            (a search) the best value within ``edge_fraction`` of a range's end
==============  =================================================================

A learning-rate verdict excludes the others (those curves say nothing about fit);
``lr_too_low`` excludes ``undertrained`` (the more specific cause).
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
    "undertrained": "Train longer (more epochs), a larger model (more width or depth), "
                    "less regularisation (weight decay, dropout), or a higher learning "
                    "rate.",
    "lr_too_high": "The learning rate is too high: lower it (or the upper end of the "
                   "learning-rate range).",
    "lr_too_low": "The learning rate is too low (or the data carry no learnable signal): "
                  "raise it (or the lower end of the learning-rate range).",
    "noisy": "Step-to-step loss noise is high: use a larger batch (or a lower learning "
             "rate).",
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


def _num(v: Any) -> float:
    return math.nan if v is None else float(v)


def _evaluated(history: History) -> list[Mapping[str, Any]]:
    """Epochs with a finite validation loss and accuracy."""
    return [h for h in history if math.isfinite(_num(h.get("val_loss")))
            and math.isfinite(_num(h.get("val_acc")))]


def _train_losses(history: History) -> list[float]:
    return [_num(h.get("train_loss")) for h in history]


def _trace(losses: Sequence[float]) -> str:
    """``2.3 -> nan`` over n epochs: the first and last training loss."""
    if not losses:
        return "no epoch finished"
    return f"{losses[0]:.4g} -> {losses[-1]:.4g} over {len(losses)} epoch(s)"


def find_lr_too_high(history: History, status: str, *, oscillation: float,
                     message: str = "") -> Diagnosis | None:
    """Diverged (NaN or exploding loss: the engine's verdict, or a non-finite training
    loss in the history), or oscillating: the training loss rose by more than
    ``oscillation`` (share) over the previous epoch in two or more epochs."""
    losses = _train_losses(history)
    if status == "diverged":
        return _make("lr_too_high", message or (
            f"the training loss exploded or became NaN: {_trace(losses)}"))
    bad = [h["epoch"] for h, v in zip(history, losses) if not math.isfinite(v)]
    if bad:
        return _make("lr_too_high", f"training loss is NaN/infinite at epoch {bad[0]}")
    rises = [(history[i]["epoch"], losses[i - 1], losses[i]) for i in range(1, len(losses))
             if losses[i - 1] > 0 and losses[i] > losses[i - 1] * (1 + oscillation)]
    if len(rises) < 2:
        return None
    seen = ", ".join(f"epoch {e}: {a:.3g} -> {b:.3g} (+{100 * (b / a - 1):.0f}%)"
                     for e, a, b in rises[:4])
    return _make("lr_too_high", f"the training loss oscillates: it rose by more than "
                                f"{100 * oscillation:.0f}% in {len(rises)} epochs ({seen})")


def find_lr_too_low(history: History, status: str, *, n_classes: int, barely_moves: float,
                    message: str = "") -> Diagnosis | None:
    """The engine stalled, or over 3+ epochs the training loss moved less than
    ``barely_moves`` (share of its first value) while still above ln(K)/2 (a loss that
    is already low and flat has converged; it is not too slow)."""
    if status == "stalled":
        return _make("lr_too_low", message or (
            f"the training loss did not move: {_trace(_train_losses(history))}"))
    losses = [v for v in _train_losses(history) if math.isfinite(v)]
    if len(losses) < 3 or losses[0] <= 0:
        return None
    moved = abs(losses[0] - losses[-1]) / losses[0]
    chance = math.log(max(n_classes, 2))
    if moved >= barely_moves or losses[-1] < chance / 2:
        return None
    return _make("lr_too_low", f"the training loss barely moved: {losses[0]:.4g} -> "
                               f"{losses[-1]:.4g} ({100 * moved:.1f}% < "
                               f"{100 * barely_moves:.0f}%) over {len(losses)} epochs, still "
                               f"above half of chance (ln {max(n_classes, 2)} = {chance:.3f})")


def find_overfitting(history: History, *, gap: float, rise: float) -> Diagnosis | None:
    """Both, at one epoch p: (1) validation loss rising for more than one epoch: p is two
    or more evaluated epochs after the validation-loss minimum, its loss is ``rise``
    (share) above the minimum and the epoch before p was above the minimum too; and (2)
    train - val accuracy at p above ``gap``. The worst such p (highest validation loss)
    is quoted."""
    ev = _evaluated(history)
    if len(ev) < 3:
        return None
    loss = [_num(h["val_loss"]) for h in ev]
    best = min(range(len(ev)), key=lambda i: (loss[i], i))
    vmin = loss[best]
    hits = [p for p in range(best + 2, len(ev)) if loss[p] > vmin * (1 + rise)
            and loss[p - 1] > vmin
            and _num(ev[p]["train_acc"]) - _num(ev[p]["val_acc"]) > gap]
    if not hits:
        return None
    p = max(hits, key=lambda i: (loss[i], i))
    h = ev[p]
    acc_gap = _num(h["train_acc"]) - _num(h["val_acc"])
    return _make("overfitting",
                 f"train accuracy {_num(h['train_acc']):.3f} vs validation "
                 f"{_num(h['val_acc']):.3f} at epoch {h['epoch']} (gap {acc_gap:.3f} > "
                 f"{gap:g}), and validation loss rose over {p - best} epochs from "
                 f"{vmin:.4g} (epoch {ev[best]['epoch']}) to {loss[p]:.4g} "
                 f"(+{100 * (loss[p] / vmin - 1):.0f}%)")


def find_undertrained(history: History, status: str, *, n_classes: int, chance_ratio: float,
                      still_improving: float) -> Diagnosis | None:
    """The final training loss is still >= ``chance_ratio`` x ln(K), or the run used
    all its epochs (status ``completed``) and the training loss fell by more than
    ``still_improving`` (share) in the last epoch."""
    losses = [(h["epoch"], v) for h, v in zip(history, _train_losses(history))
              if math.isfinite(v)]
    if not losses:
        return None
    chance = math.log(max(n_classes, 2))
    epoch, last = losses[-1]
    seen = []
    if last >= chance_ratio * chance:
        seen.append(f"training loss {last:.4g} at epoch {epoch} is still "
                    f"{100 * last / chance:.0f}% of chance (ln {max(n_classes, 2)} = "
                    f"{chance:.3f}; threshold {100 * chance_ratio:.0f}%)")
    if status == "completed" and len(losses) >= 2:
        # the last epoch's fall as a share of the first epoch's loss: a loss already
        # near 0 that halves again (0.012 -> 0.004) is not "still falling"
        first, prev = losses[0][1], losses[-2][1]
        if first > 0 and (prev - last) / first > still_improving:
            seen.append(f"training loss still fell by {prev - last:.4g} in the last epoch "
                        f"({prev:.4g} -> {last:.4g}; {100 * (prev - last) / first:.1f}% of "
                        f"the first epoch's {first:.4g}) with every epoch used")
    return _make("undertrained", "; ".join(seen)) if seen else None


def find_noisy(history: History, *, cv: float) -> Diagnosis | None:
    """Noisy when, in the last epoch, the std of the per-step training losses exceeds
    ``cv`` x their mean."""
    if not history:
        return None
    last = history[-1]
    mean, std = _num(last.get("train_loss")), _num(last.get("train_loss_std"))
    if not (math.isfinite(mean) and math.isfinite(std)) or mean <= 0 or std / mean <= cv:
        return None
    return _make("noisy", f"step-to-step std of the training loss is {std / mean:.2f} x its "
                          f"mean in the last epoch (> {cv:g}) at batch size "
                          f"{last.get('batch_size', '?')}")


def diagnose_trial(history: History, status: str, th: TuneDiagnose, *, n_classes: int,
                   message: str = "") -> list[Diagnosis]:
    """Every diagnosis of one trial (see the module docstring for the precedence)."""
    high = find_lr_too_high(history, status, oscillation=th.oscillation, message=message)
    if high is not None:
        return [high]
    low = find_lr_too_low(history, status, n_classes=n_classes, barely_moves=th.barely_moves,
                          message=message)
    if low is not None:
        return [low]
    found = [find_overfitting(history, gap=th.overfit_gap, rise=th.overfit_rise),
             find_undertrained(history, status, n_classes=n_classes,
                               chance_ratio=th.chance_ratio,
                               still_improving=th.still_improving),
             find_noisy(history, cv=th.noise_cv)]
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
                                     f"{_fmt(hi_end)}] (position {pos:.2f} of 0..1): "
                                     f"{widen_hint(name, dim, side)}", param=name,
                               side=side))
    return out


PARAM_KEYS = {"batch_size": "batch_size", "width": "widths", "depth": "depths"}


def widen_hint(name: str, dim: Any, side: str) -> str:
    """How to widen ``dim`` past ``side``, naming the params key."""
    if dim.choices is not None:
        key = PARAM_KEYS.get(name, name)
        end = dim.choices[-1 if side == "high" else 0]
        if name == "batch_size":
            return (f"allow {'larger' if side == 'high' else 'smaller'} batches than {end} "
                    f"(tune.space.batch_size_{'max' if side == 'high' else 'min'})")
        return f"add a value {'above' if side == 'high' else 'below'} {end} to tune.space.{key}"
    lo, hi = float(dim.low), float(dim.high)
    if dim.log:
        new = hi * 10 if side == "high" else lo / 10
    else:
        span = (hi - lo) or abs(hi) or 1.0
        new = hi + span / 2 if side == "high" else lo - span / 2
    if name in NATURAL_BOUNDS:
        blo, bhi = NATURAL_BOUNDS[name]
        new = min(max(new, blo), bhi)
    key = f"tune.space.{name}_{'max' if side == 'high' else 'min'}"
    return f"widen it to about {_fmt(new)} ({key})"


def _fmt(v: Any) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)
