"""Class balance and sufficiency: a learning curve and a recommendation in words.

"Would more data help?" is answered the way the field does: train on growing,
nested, stratified fractions of the data (``params.yaml: audit.learning_curve``,
default 10/25/50/100%) and measure accuracy on one fixed stratified validation split.
Every point gets the same budget in images seen (a fraction f trains for 1/f times the
epochs), so the small fractions are not simply under-trained and the curve measures
data, not optimisation. The slope of validation accuracy against log(fraction) over
the last two points, expressed as the accuracy gained per doubling of the data, says
whether the curve has flattened. :func:`recommend` turns that slope, the imbalance
ratio and the classes under the minimum count into an action (table in its docstring).

The training is the engine's one fit loop (:mod:`dataqa.engine.fit`) with the
cross-validation stage's net and regularisation; the optimisation recipe is the
curve's own (:func:`learning_curve_config`), so that every point converges within a
budget that keeps the stage a fraction of a minute on the bundled sample on CPU.

The stage ``learning_curve`` (:mod:`dataqa.steps.learning_curve`) reads the manifest,
tensors and tensor index and writes ``paths.learning_curve``.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from dataqa.dataset.splits import per_class_holdout
from dataqa.engine.data import DeviceData
from dataqa.engine.fit import TrainConfig, fit, predict
from dataqa.engine.progress import eta_line
from dataqa.errors import EngineError, ParamsError
from dataqa.params import Params
from dataqa.text import say

log = logging.getLogger("dataqa.engine.learning_curve")

CPU_PASSES = 3  # passes over the whole pool per point on CPU (4 points x 3 = 12 passes)
MIN_STEPS = 150  # optimisation steps every point takes at least (batch shrinks for it)
MIN_BATCH = 16
LR = 0.01  # AdamW peak learning rate (one-cycle schedule)
FINETUNE_LR = 1e-4  # the same from pretrained weights (engine.weights set)
VAL_FRACTION = 0.2  # default share of each class held out (the stage: split.val_fraction)
MIN_GAIN = 0.01  # accuracy gained per doubling above which more data helps
MAX_IMBALANCE = 3.0  # largest/smallest class count above which weights are advised


# --------------------------------------------------------------------------- splits
def stratified_holdout(labels: np.ndarray, *, val_fraction: float = VAL_FRACTION,
                       seed: int = 0, classes: Sequence[str] | None = None
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Split row indices (labels (n,) int) into a training pool and a validation set
    with the one per-class holdout (:func:`dataqa.dataset.splits.per_class_holdout`, rows
    in order): ``round(val_fraction * n_c)`` rows held out, at least one when the class
    has two or more, never the whole class. With ``classes`` the draw is keyed by class
    name, as augment's and subsample's are. Returns sorted ``(pool, val)``."""
    labels = np.asarray(labels)
    names = np.asarray(classes)[labels] if classes is not None else labels.astype(str)
    held = per_class_holdout(names, np.arange(len(labels)), fraction=val_fraction, seed=seed)
    return np.flatnonzero(~held), np.flatnonzero(held)


def nested_subsets(labels: np.ndarray, pool: np.ndarray, fractions: Sequence[float], *,
                   seed: int = 0) -> list[np.ndarray]:
    """For each fraction (ascending), the first ``max(1, round(f * n_c))`` rows of each
    class of ``pool`` in one seeded order: stratified, and each subset contains the
    smaller ones (nested subsets make the curve smoother than independent draws)."""
    rng = np.random.default_rng(seed + 1)
    per_class = [rng.permutation(pool[labels[pool] == c]) for c in np.unique(labels[pool])]
    return [np.sort(np.concatenate([rows[:max(1, int(round(f * len(rows))))]
                                    for rows in per_class])) for f in fractions]


# --------------------------------------------------------------------------- the curve
@dataclass(frozen=True)
class CurvePoint:
    fraction: float
    n_train: int
    epochs: int
    images_seen: int
    val_accuracy: float
    val_loss: float
    train_accuracy: float  # of the last epoch (augmented batches)
    per_class_accuracy: dict[str, float | None]
    status: str
    seconds: float


@dataclass
class _Clock:
    """Per-epoch progress lines of the whole curve: the time left is the seconds per
    image seen so far times the images still to see (every point sees about the same
    number, so this is a fair estimate)."""

    total: int
    emit: Callable[[str], None] | None
    done: int = 0
    start: float = field(default_factory=time.perf_counter)

    def for_point(self, label: str, epochs: int, n: int) -> Callable[[Any], bool]:
        def tick(entry: Any) -> bool:
            self.done += n
            if self.emit is not None:
                self.emit(eta_line(f"{label} epoch {entry.epoch}/{epochs}: train loss "
                                   f"{entry.train_loss:.4f} acc {entry.train_acc:.4f}, "
                                   f"{entry.seconds:.1f} s", self.done, self.total,
                                   time.perf_counter() - self.start))
            return False
        return tick


def print_progress(line: str) -> None:
    say(line, err=True)


def get_learning_curve(images: np.ndarray, labels: np.ndarray, *, classes: list[str],
                       fractions: Sequence[float], config: TrainConfig,
                       device: torch.device, val_fraction: float = VAL_FRACTION,
                       seed: int = 0, split_seed: int | None = None,
                       progress: Callable[[str], None] | None = None
                       ) -> tuple[list[CurvePoint], int, int]:
    """Train on each fraction and score the fixed validation split.

    images: (n, H, W, C) uint8; labels: (n,) int in [0, K), K = ``len(classes)``;
    ``config.epochs`` is the number of passes over the whole pool that every point
    gets in images seen. Returns the points (ascending fraction), the pool size and
    the validation size. ``progress`` gets one line per epoch with the time left.
    """
    fractions = check_fractions(fractions)
    labels = np.asarray(labels, dtype=np.int64)
    pool, val = stratified_holdout(labels, val_fraction=val_fraction, classes=classes,
                                   seed=seed if split_seed is None else split_seed)
    if len(val) == 0 or len(np.unique(labels[pool])) < 2:
        raise EngineError("the learning curve needs at least 2 classes with 2 or more "
                          "labelled images each")
    data = DeviceData.from_arrays(images, labels, device=device, num_classes=len(classes))
    subsets = nested_subsets(labels, pool, fractions, seed=seed)
    budget = config.epochs * len(pool)  # images seen by every point
    y_val = labels[val]
    points = []
    clock = _Clock(total=sum(max(1, int(round(budget / len(r)))) * len(r) for r in subsets),
                   emit=progress)
    for i, (f, rows) in enumerate(zip(fractions, subsets)):
        t0 = time.perf_counter()
        epochs = max(1, int(round(budget / len(rows))))
        cfg = dataclasses.replace(config, epochs=epochs)
        tick = clock.for_point(f"learning curve point {i + 1}/{len(fractions)} ({f:g}, "
                               f"{len(rows)} images)", epochs, len(rows))
        result = fit(data, rows, None, cfg, log_prefix=f"[learning curve {f:g}] ",
                     callback=tick)
        probs, _ = predict(result.model, data, val, batch_size=config.eval_batch_size)
        pred = probs.argmax(1)
        right = pred == y_val
        p_true = np.clip(probs[np.arange(len(val)), y_val], 1e-12, 1.0)
        per_class = {name: (float(right[y_val == i].mean()) if (y_val == i).any() else None)
                     for i, name in enumerate(classes)}
        point = CurvePoint(
            fraction=float(f), n_train=int(len(rows)), epochs=epochs,
            images_seen=int(epochs * len(rows)), val_accuracy=float(right.mean()),
            val_loss=float(-np.log(p_true).mean()),
            train_accuracy=float(result.history[-1].train_acc) if result.history else math.nan,
            per_class_accuracy=per_class, status=result.status,
            seconds=time.perf_counter() - t0)
        log.info("learning curve: %g of the pool (%d images, %d epochs): val accuracy %.4f "
                 "in %.1f s", f, len(rows), epochs, point.val_accuracy, point.seconds)
        points.append(point)
        del result
    return points, int(len(pool)), int(len(val))


def check_fractions(fractions: Sequence[float]) -> list[float]:
    """Sorted unique fractions, each in (0, 1]; at least two for a slope."""
    out = sorted({float(f) for f in fractions})
    bad = [f for f in out if not 0.0 < f <= 1.0]
    if bad or len(out) < 2:
        raise ParamsError(f"params.yaml: audit.learning_curve: need at least two fractions "
                          f"in (0, 1], got {list(fractions)}")
    return out


@dataclass(frozen=True)
class Slope:
    per_log_fraction: float  # d accuracy / d ln(fraction), last two points
    gain_per_doubling: float  # the same, per doubling of the data (x ln 2)
    gain_se: float  # its binomial standard error (validation-set noise)


def get_slope(fractions: Sequence[float], accuracies: Sequence[float], *, n_val: int) -> Slope:
    """Slope of accuracy vs log(fraction) between the last two points, and its standard
    error from the validation set's size: ``sqrt(a1(1-a1)/n + a2(1-a2)/n)`` over the
    log2 distance (conservative: the two accuracies share a validation set)."""
    f1, f2 = float(fractions[-2]), float(fractions[-1])
    a1, a2 = float(accuracies[-2]), float(accuracies[-1])
    dlog = math.log(f2) - math.log(f1)
    per_log = (a2 - a1) / dlog
    se = math.sqrt((a1 * (1 - a1) + a2 * (1 - a2)) / max(n_val, 1)) / (dlog / math.log(2))
    return Slope(per_log, per_log * math.log(2), se)


# --------------------------------------------------------------------------- advice
@dataclass(frozen=True)
class Recommendation:
    actions: list[str]  # codes, most urgent first: augment_minority, collect_more,
    #                     class_weights, fine
    text: str  # one sentence per action


def recommend(*, gain_per_doubling: float | None, gain_se: float | None = None,
              imbalance: float | None, classes_under_min: Sequence[str],
              min_per_class: int, min_gain: float = MIN_GAIN,
              max_imbalance: float = MAX_IMBALANCE,
              model: dict[str, Any] | None = None) -> Recommendation:
    """Advice on data quantity and balance, from three numbers.

    ==========================================================  ==================
    condition                                                   action
    ==========================================================  ==================
    a class has fewer than ``min_per_class`` images             augment_minority
    accuracy still rises >= ``min_gain`` per doubling of the    collect_more
    data (and by more than twice its standard error, when
    ``gain_se`` is given)
    largest / smallest class count >= ``max_imbalance``         class_weights
    the model is not clearly better than the majority-class     weak_model
    baseline (``model``: :func:`~dataqa.model_strength.
    judge_counts` of the last point's validation predictions)
    none of the above                                           fine
    ==========================================================  ==================

    A weak model makes the curve's flatness meaningless (a model that learns nothing
    has a flat curve), so ``weak_model`` replaces "fine" and says what to do.

    Several actions can apply; they are listed most urgent first. ``gain_per_doubling``
    None means no learning curve was measured (that rule is skipped and said so).
    """
    actions: list[str] = []
    lines: list[str] = []
    if classes_under_min:
        names = ", ".join(f"'{c}'" for c in classes_under_min)
        many = len(classes_under_min) > 1
        them = "them" if many else "it"
        actions.append("augment_minority")
        lines.append(f"Class{'es' if many else ''} {names} {'have' if many else 'has'} fewer "
                     f"than {min_per_class} images: augment {them} (the augment stage adds "
                     f"balanced copies) and collect more of {them} if you can.")
    if gain_per_doubling is not None:
        significant = gain_se is None or gain_per_doubling > 2.0 * gain_se
        if gain_per_doubling >= min_gain and significant:
            actions.append("collect_more")
            lines.append(f"Validation accuracy still rises by {gain_per_doubling:.1%} per "
                         "doubling of the data between the last two points of the learning "
                         "curve: collecting more data would help.")
        elif gain_per_doubling >= min_gain:
            lines.append(f"The last step of the learning curve (+{gain_per_doubling:.1%} per "
                         f"doubling) is within the validation noise (standard error "
                         f"{gain_se:.1%}): no clear sign that more data would help.")
        else:
            lines.append(f"The learning curve has flattened ({gain_per_doubling:+.1%} per "
                         "doubling of the data): more of the same data would help little.")
    else:
        lines.append("No learning curve was measured, so whether more data would help is "
                     "unknown.")
    if imbalance is not None and imbalance >= max_imbalance:
        actions.append("class_weights")
        lines.append(f"The largest class has {imbalance:.1f}x the images of the smallest: "
                     "train with class weights (or class-balanced sampling) so that small "
                     "classes count.")
    if model is not None and not model.get("reliable", True):
        from dataqa.model_strength import ADVICE, reason

        actions.append("weak_model")
        lines.append(f"On the learning curve's validation split {reason(model)}: the "
                     f"curve cannot tell whether the data suffices; {ADVICE}.")
    if not actions:
        actions.append("fine")
        parts = [f"every class has at least {min_per_class} images"]
        if imbalance is not None:
            parts.insert(0, f"classes are balanced (largest/smallest {imbalance:.1f})")
        lines.append("Data quantity and balance are fine: " + " and ".join(parts) + ".")
    return Recommendation(actions, " ".join(lines))


# --------------------------------------------------------------------------- recipe
def learning_curve_config(params: Params, device: torch.device, n_pool: int) -> TrainConfig:
    """The training recipe every point shares.

    The net, weight decay, label smoothing and flips/crops are crossval's
    (:func:`~dataqa.engine.crossval.crossval_config`, device-adaptive). The optimisation
    is the curve's own, because each point must converge within a short schedule:

    - passes over the whole pool per point (images seen ``= passes x n_pool``):
      ``audit.learning_curve_epochs``, else crossval's epochs on CUDA and
      :data:`CPU_PASSES` on CPU;
    - AdamW at :data:`LR`: measured on the bundled sample (1,600 training digits, 3
      passes, batch 32, CPU) it reaches 95% validation accuracy where SGD at crossval's
      learning rates reaches 42-61% (SGD needs far more steps than a point gets);
    - batch size: crossval's, shrunk so that every point takes at least
      :data:`MIN_STEPS` steps (a 2,000-image sample at batch 512 would get 36).
    """
    from dataqa.engine.crossval import crossval_config

    base = crossval_config(params, device)
    passes = params.audit.learning_curve_epochs
    if passes is None:
        passes = base.epochs if device.type == "cuda" else CPU_PASSES
    batch = min(base.batch_size, max(MIN_BATCH, passes * n_pool // MIN_STEPS))
    # from pretrained weights: AdamW's usual fine-tuning rate, not the scratch one
    lr = FINETUNE_LR if base.weights else LR
    return dataclasses.replace(base, epochs=passes, batch_size=batch, optimizer="adamw",
                               lr=lr, stall_epochs=10**9)  # no stall verdict: tiny
    #                                                        fractions take few steps


# --------------------------------------------------------------------------- probe
def probe_learning_curve(embeddings: np.ndarray, labels: np.ndarray, *,
                         classes: list[str], fractions: Sequence[float],
                         val_fraction: float = VAL_FRACTION, seed: int = 0,
                         split_seed: int | None = None, c: float = 1.0
                         ) -> tuple[list[CurvePoint], int, int]:
    """The learning curve of ``crossval.mode: linear_probe``: the same nested fractions
    and validation split as :func:`get_learning_curve`, a logistic regression on the
    backbone's embeddings (n, D) per point instead of a net: seconds, not minutes."""
    from dataqa.engine.probe import fit_probe

    fractions = check_fractions(fractions)
    labels = np.asarray(labels, dtype=np.int64)
    x = np.asarray(embeddings, dtype=np.float32)
    pool, val = stratified_holdout(labels, val_fraction=val_fraction,
                                   seed=seed if split_seed is None else split_seed,
                                   classes=classes)
    if len(val) == 0 or len(np.unique(labels[pool])) < 2:
        raise EngineError("the learning curve needs at least 2 classes with 2 or more "
                          "labelled images each")
    subsets = nested_subsets(labels, pool, fractions, seed=seed)
    y_val = labels[val]
    points = []
    for f, sub in zip(fractions, subsets):
        t0 = time.perf_counter()
        clf = fit_probe(x[sub], labels[sub], c=c, seed=seed)
        probs = np.zeros((len(val), len(classes)))
        probs[:, clf.classes_] = clf.predict_proba(x[val])
        right = probs.argmax(1) == y_val
        p_true = np.clip(probs[np.arange(len(val)), y_val], 1e-12, 1.0)
        points.append(CurvePoint(
            fraction=float(f), n_train=int(len(sub)), epochs=0, images_seen=int(len(sub)),
            val_accuracy=float(right.mean()), val_loss=float(-np.log(p_true).mean()),
            train_accuracy=float((clf.predict(x[sub]) == labels[sub]).mean()),
            per_class_accuracy={n: (float(right[y_val == i].mean()) if (y_val == i).any()
                                    else None) for i, n in enumerate(classes)},
            status="completed", seconds=time.perf_counter() - t0))
    return points, int(len(pool)), int(len(val))
