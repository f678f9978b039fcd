"""The one training loop of dataqa, shared by cross-validation and the tuning run.

``fit`` trains a fresh net on ``data`` rows ``train_idx`` and returns per-epoch
history, a status, and the model; ``predict`` returns probabilities and embeddings.

Per step there is no host-device synchronisation: losses and correct counts stay on
the device and are read once per epoch, so the GPU never waits for Python.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from dataqa.engine import device as dev
from dataqa.engine.data import AugmentFn, DeviceData, FlipCrop, compose, normalise
from dataqa.engine.nets import build_net, head_of
from dataqa.errors import EngineError

log = logging.getLogger("dataqa.engine")

Status = Literal["completed", "early_stopped", "diverged", "stalled", "pruned"]
DIVERGE_FACTOR = 10.0  # mean epoch loss above this many times the initial loss: diverged
STALL_TOLERANCE = 0.01  # relative change of train loss below this: stalled
CHUNK_PIXELS = 1 << 25  # uint8 pixels prepared per chunk of steps (128 MiB as float32)


@dataclass(frozen=True)
class TrainConfig:
    """Everything one training run needs; frozen, so a trial is reproducible from it."""

    epochs: int = 10
    batch_size: int = 256
    lr: float = 0.05  # peak learning rate (not scaled by batch size)
    weight_decay: float = 5e-4  # on conv/linear weights only, not on BN or biases
    momentum: float = 0.9  # SGD (Nesterov) momentum; AdamW beta1
    optimizer: Literal["sgd", "adamw"] = "sgd"
    label_smoothing: float = 0.0
    schedule: Literal["onecycle", "cosine", "plateau", "constant"] = "onecycle"
    warmup: float = 0.25  # onecycle: share of the steps spent rising to ``lr``
    plateau_factor: float = 0.5  # plateau: lr multiplier when the monitored loss stalls
    plateau_patience: int = 2  # plateau: epochs without improvement before decaying
    early_stopping_patience: int | None = None  # epochs without val-loss improvement; None = off
    min_epochs: int = 1  # never early-stop before this many epochs
    stall_epochs: int = 3  # the stalled verdict is taken after this many epochs
    diverge_factor: float = DIVERGE_FACTOR  # epoch train loss over this x the first steps'
    stall_tolerance: float = STALL_TOLERANCE  # train loss moved less (share): stalled
    arch: str = "small_resnet"
    width: int = 32
    depth: int = 2
    dropout: float = 0.0
    stem_pool: bool | None = None  # small_resnet: 2x2 pool after the stem; None: if >= 24 px
    weights: str | None = None  # local state_dict file
    # share of the net's parameter tensors trained, counted from the top (the head is
    # always trained): 1 = the whole net, 0 = the head only (a pretrained backbone frozen)
    unfreeze: float = 1.0
    flip: bool = False  # random horizontal flip (off: wrong for digits and text)
    crop_padding: int = 0  # random translation by up to this many pixels, zero fill
    augment: AugmentFn | None = field(default=None, compare=False)  # applied after flip/crop
    seed: int = 0
    eval_every: int = 1  # validate every this many epochs (and after the last)
    eval_batch_size: int = 1024
    compile: bool = False  # torch.compile the model (CUDA only)
    # predictions (crossval's held-out folds): average the softmax over the image and its
    # four 1-pixel shifts (zero fill, like the training translation); embeddings: as is
    tta: bool = False

    def __post_init__(self) -> None:
        bad: list[tuple[str, object]] = [
            (k, v) for k, v in (("epochs", self.epochs), ("batch_size", self.batch_size),
                                ("eval_every", self.eval_every),
                                ("eval_batch_size", self.eval_batch_size))
            if not isinstance(v, int) or v < 1]
        if not self.lr > 0 or not math.isfinite(self.lr):
            bad.append(("lr", self.lr))
        if self.optimizer not in ("sgd", "adamw"):
            bad.append(("optimizer", self.optimizer))
        if self.schedule not in ("onecycle", "cosine", "plateau", "constant"):
            bad.append(("schedule", self.schedule))
        if not 0.0 <= self.unfreeze <= 1.0:
            bad.append(("unfreeze", self.unfreeze))
        if not 0.0 <= self.label_smoothing < 1.0:
            bad.append(("label_smoothing", self.label_smoothing))
        if self.crop_padding < 0:
            bad.append(("crop_padding", self.crop_padding))
        if bad:
            raise EngineError("invalid training config: "
                              + ", ".join(f"{k}={v!r}" for k, v in bad))

    def describe(self) -> dict[str, Any]:
        """JSON-friendly view (the augment callable by name)."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}  # no deepcopy of augment
        out["augment"] = None if self.augment is None else getattr(
            self.augment, "__name__", type(self.augment).__name__)
        return out


@dataclass(frozen=True)
class EpochLog:
    epoch: int  # 1-based
    train_loss: float  # mean over the epoch's steps (with label smoothing, augmented)
    train_acc: float
    val_loss: float  # NaN when not evaluated this epoch
    val_acc: float
    lr: float  # at the end of the epoch
    seconds: float  # wall time of the epoch, validation included
    train_loss_std: float  # std of per-step train losses: step-to-step noise
    batch_size: int


@dataclass
class FitResult:
    history: list[EpochLog]
    status: Status
    model: nn.Module
    best_epoch: int  # lowest val loss (last epoch without validation)
    batch_size: int  # after any out-of-memory halving
    seconds: float
    train_images_per_s: float  # training images / training time (validation excluded)
    message: str = ""

    def frame(self) -> Any:
        """History as a pandas DataFrame, one row per epoch."""
        import pandas as pd

        return pd.DataFrame([asdict(h) for h in self.history])


def fit(data: DeviceData, train_idx: np.ndarray | torch.Tensor,
        val_idx: np.ndarray | torch.Tensor | None = None,
        config: TrainConfig | None = None, *,
        callback: Callable[[EpochLog], bool] | None = None,
        log_prefix: str = "") -> FitResult:
    """Train a fresh ``config.arch`` on ``data`` rows ``train_idx`` (n_train,).

    ``val_idx`` (n_val,) rows are evaluated every ``config.eval_every`` epochs.
    ``callback(epoch_log)`` is called after each epoch; returning True stops the run
    with status ``pruned``. A CUDA out-of-memory error halves the batch and restarts
    the run (logged). Same seed on CPU -> identical history.
    """
    config = config or TrainConfig()
    train_t = _as_index(train_idx, data, "train_idx")
    val_t = None if val_idx is None else _as_index(val_idx, data, "val_idx")
    if train_t.numel() == 0:
        raise EngineError("fit: train_idx is empty")
    if bool((data.labels[train_t] < 0).any()):
        raise EngineError("fit: train_idx contains rows without a label (-1)")
    if val_t is not None and val_t.numel() == 0:
        val_t = None
    batch = min(config.batch_size, int(train_t.numel()))
    while True:
        try:
            return _fit_once(data, train_t, val_t, config, batch, callback, log_prefix)
        except torch.OutOfMemoryError:
            if batch <= 1:
                raise EngineError("out of GPU memory even with batch size 1") from None
        dev.free_memory(data.device)
        log.warning("%sGPU out of memory at batch size %d: retrying with %d",
                    log_prefix, batch, batch // 2)
        batch //= 2


def _as_index(idx: np.ndarray | torch.Tensor, data: DeviceData, name: str) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(idx) if isinstance(idx, np.ndarray) else idx)
    if t.dtype == torch.bool:
        t = t.nonzero().flatten()
    t = t.to(torch.int64).flatten()
    if t.numel() and (int(t.min()) < 0 or int(t.max()) >= data.n):
        raise EngineError(f"fit: {name} out of range [0, {data.n})")
    return t.to(data.device)


def new_model(data: DeviceData, config: TrainConfig) -> nn.Module:
    """A fresh net for ``data`` (weights from ``config.weights`` when set: a local file
    or a torchvision weights name, :mod:`dataqa.engine.backbones`), on the device. With a
    torchvision weights name, ``data`` is normalised with the weights' own mean and std
    from then on (instead of the dataset's channel statistics)."""
    from dataqa.engine.backbones import load_pretrained, preprocessing

    model = build_net(config.arch, num_classes=data.num_classes, in_channels=data.channels,
                      image_size=data.size, width=config.width, depth=config.depth,
                      dropout=config.dropout, stem_pool=config.stem_pool)
    if config.weights:
        load_pretrained(model, config.arch, config.weights)
        prep = preprocessing(config.arch, config.weights)
        if prep is not None:
            use_normalisation(data, prep.mean, prep.std)
    if config.unfreeze < 1.0:
        freeze_bottom(model, config.unfreeze)
    model = model.to(data.device)
    return model.to(memory_format=dev.memory_format(data.device))  # type: ignore[call-overload]


def freeze_bottom(model: nn.Module, unfreeze: float) -> int:
    """Train only the top ``unfreeze`` share of ``model``'s parameter tensors (in
    definition order, so the first layers freeze first) and the classifier head; returns
    the number of tensors frozen. Frozen tensors get no gradient, so the optimizer
    (:func:`make_optimizer`) leaves them out."""
    head = {id(p) for p in head_of(model).parameters()}
    body = [p for p in model.parameters() if id(p) not in head]
    n_frozen = len(body) - int(round(unfreeze * len(body)))
    for p in body[:n_frozen]:
        p.requires_grad_(False)
    return n_frozen


def use_normalisation(data: DeviceData, mean: tuple[float, ...],
                      std: tuple[float, ...]) -> None:
    """Normalise ``data`` batches with ``mean``/``std`` given for pixels in [0, 1]
    (torchvision's convention); a grey dataset takes their averages."""
    m = torch.tensor(mean, dtype=torch.float32) * 255.0
    s = torch.tensor(std, dtype=torch.float32) * 255.0
    if data.channels == 1:
        m, s = m.mean().reshape(1), s.mean().reshape(1)
    data.mean = m.to(data.device).reshape(data.mean.shape)
    data.std = s.to(data.device).reshape(data.std.shape)


def make_optimizer(model: nn.Module, config: TrainConfig,
                   device: torch.device) -> torch.optim.Optimizer:
    decay = [p for p in model.parameters() if p.requires_grad and p.dim() > 1]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.dim() <= 1]
    groups = [{"params": decay, "weight_decay": config.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    # one kernel for all parameters instead of several per tensor, on CPU too (AdamW's
    # step on small_cnn w16: ~1.0 -> 0.25 ms; at batch 128 a 5-fold pass on 10,000
    # digits takes 3,000 steps)
    fused = device.type in ("cuda", "cpu")
    if config.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=config.lr, betas=(config.momentum, 0.999),
                                 fused=fused)
    return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum,
                           nesterov=config.momentum > 0, fused=fused)


class _Schedule:
    """Per-step (onecycle, cosine) or per-epoch (plateau) learning-rate control."""

    def __init__(self, opt: torch.optim.Optimizer, config: TrainConfig,
                 total_steps: int) -> None:
        self.kind = config.schedule
        self.opt = opt
        self.sched: Any = None
        if self.kind == "onecycle":
            # linear rise from lr/10 to lr, then linear fall to lr/1000 (airbench's
            # triangle); written out because OneCycleLR divides by zero on tiny runs
            rise = max(round(config.warmup * total_steps), 1)
            fall = max(total_steps - rise, 1)

            def factor(step: int) -> float:
                if step < rise:
                    return 0.1 + 0.9 * step / rise
                return max(1.0 - (step - rise) / fall, 0.0) * 0.999 + 0.001

            self.sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
        elif self.kind == "cosine":
            self.sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total_steps)
        elif self.kind == "plateau":
            self.sched = torch.optim.lr_scheduler.ReduceLROnPlateau(
                opt, mode="min", factor=config.plateau_factor,
                patience=config.plateau_patience)

    def after_step(self) -> None:
        if self.kind in ("onecycle", "cosine"):
            self.sched.step()

    def after_epoch(self, monitored_loss: float) -> None:
        if self.kind == "plateau" and math.isfinite(monitored_loss):
            self.sched.step(monitored_loss)

    @property
    def lr(self) -> float:
        return float(self.opt.param_groups[0]["lr"])


def _fit_once(data: DeviceData, train_t: torch.Tensor, val_t: torch.Tensor | None,
              config: TrainConfig, batch: int, callback: Callable[[EpochLog], bool] | None,
              prefix: str) -> FitResult:
    device = data.device
    start = time.perf_counter()
    rng_devices = ([device.index if device.index is not None else torch.cuda.current_device()]
                   if device.type == "cuda" else [])
    # fork_rng: init and dropout draw from a seeded global RNG without disturbing
    # the caller's random state
    with torch.random.fork_rng(devices=rng_devices):
        torch.manual_seed(config.seed)
        model = new_model(data, config)
        gen = torch.Generator(device=device).manual_seed(config.seed)
        augment = compose(FlipCrop(config.flip, config.crop_padding)
                          if config.flip or config.crop_padding else None, config.augment)
        step_fn: nn.Module | Callable[..., torch.Tensor] = model
        if config.compile and device.type == "cuda":
            step_fn = torch.compile(model)
        opt = make_optimizer(model, config, device)
        n_train = int(train_t.numel())
        steps = n_train // batch  # drop the ragged last batch: fixed shapes for cudnn
        sched = _Schedule(opt, config, total_steps=max(config.epochs * steps, 1))
        history: list[EpochLog] = []
        status: Status = "completed"
        message = ""
        initial = math.nan
        best_val, best_epoch, best_state = math.inf, 0, None
        bad_epochs = 0
        train_seconds = 0.0
        for epoch in range(1, config.epochs + 1):
            t0 = time.perf_counter()
            model.train()
            perm = train_t[torch.randperm(n_train, device=device, generator=gen)]
            losses = torch.empty(steps, device=device)
            correct = torch.zeros((), device=device, dtype=torch.int64)
            per_chunk = max(1, CHUNK_PIXELS // (batch * data.images[0].numel()))
            for s in range(steps):
                if s % per_chunk == 0:
                    # gather + augment + normalise many steps' batches in one go: a
                    # step then only slices a view (no per-step kernels, bounded memory)
                    chunk_idx = perm[s * batch:min(s + per_chunk, steps) * batch]
                    xs = data.batch(chunk_idx, augment=augment, generator=gen)
                    ys = data.labels[chunk_idx]
                lo = (s % per_chunk) * batch
                x, y = xs[lo:lo + batch], ys[lo:lo + batch]
                with dev.autocast(device):
                    logits = step_fn(x)
                loss = F.cross_entropy(logits.float(), y,
                                       label_smoothing=config.label_smoothing)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.after_step()
                losses[s] = loss.detach()
                correct += (logits.detach().argmax(1) == y).sum()
            step_losses = losses.double().cpu().numpy()  # the epoch's one synchronisation
            train_acc = float(correct.item()) / max(steps * batch, 1)
            train_seconds += time.perf_counter() - t0
            train_loss = float(step_losses.mean())
            if epoch == 1:
                initial = float(step_losses[:3].mean())
            val_loss = val_acc = math.nan
            validated = val_t is not None and (epoch % config.eval_every == 0
                                               or epoch == config.epochs)
            if validated:
                assert val_t is not None
                val_loss, val_acc = evaluate(model, data, val_t, config)
            sched.after_epoch(val_loss if val_t is not None else train_loss)
            entry = EpochLog(epoch, train_loss, train_acc, val_loss, val_acc, sched.lr,
                             time.perf_counter() - t0, float(step_losses.std()), batch)
            history.append(entry)
            log.info("%sepoch %d/%d  train loss %.4f acc %.4f  val loss %.4f acc %.4f  "
                     "lr %.3g  %.2f s", prefix, epoch, config.epochs, train_loss, train_acc,
                     val_loss, val_acc, entry.lr, entry.seconds)
            if not np.isfinite(step_losses).all() or \
                    train_loss > config.diverge_factor * initial:
                status, message = "diverged", (
                    f"train loss {train_loss:.4g} at epoch {epoch} (initial {initial:.4g}): "
                    f"non-finite or over {config.diverge_factor:g}x the initial loss; the "
                    "learning rate is too high")
                break
            if validated and not math.isfinite(val_loss):
                status, message = "diverged", (
                    f"validation loss {val_loss} at epoch {epoch}: non-finite (saturated or "
                    "NaN predictions); the learning rate is too high")
                break
            if math.isfinite(val_loss):
                if val_loss < best_val:
                    best_val, best_epoch, bad_epochs = val_loss, epoch, 0
                    if config.early_stopping_patience is not None:
                        best_state = copy.deepcopy(model.state_dict())
                else:
                    bad_epochs += config.eval_every
            if epoch == config.stall_epochs and epoch < config.epochs and \
                    abs(initial - train_loss) < config.stall_tolerance * abs(initial):
                status, message = "stalled", (
                    f"train loss moved {abs(initial - train_loss) / abs(initial):.2%} in "
                    f"{epoch} epochs; the learning rate is too low or the data unlearnable")
                break
            if callback is not None and callback(entry):
                status, message = "pruned", f"stopped by the callback after epoch {epoch}"
                break
            if (config.early_stopping_patience is not None and epoch >= config.min_epochs
                    and bad_epochs >= config.early_stopping_patience):
                status, message = "early_stopped", (
                    f"no val-loss improvement for {bad_epochs} epochs; best epoch {best_epoch}")
                break
    if best_state is not None and status == "early_stopped":
        model.load_state_dict(best_state)  # hand back the model of the best epoch
    if best_epoch == 0:
        best_epoch = history[-1].epoch if history else 0
    seconds = time.perf_counter() - start
    n_seen = steps * batch * len(history)
    if status != "completed":
        log.info("%s%s: %s", prefix, status, message)
    return FitResult(history, status, model.eval(), best_epoch, batch, seconds,
                     n_seen / train_seconds if train_seconds > 0 else 0.0, message)


@torch.no_grad()
def evaluate(model: nn.Module, data: DeviceData, idx: torch.Tensor,
             config: TrainConfig) -> tuple[float, float]:
    """Mean loss (same label smoothing as training) and accuracy on rows ``idx``."""
    model.eval()
    total = torch.zeros((), device=data.device, dtype=torch.float64)
    correct = torch.zeros((), device=data.device, dtype=torch.int64)
    for start in range(0, idx.numel(), config.eval_batch_size):
        part = idx[start:start + config.eval_batch_size]
        y = data.labels[part]
        with dev.autocast(data.device):
            logits = model(data.batch(part)).float()
        total += F.cross_entropy(logits, y, label_smoothing=config.label_smoothing,
                                 reduction="sum")
        correct += (logits.argmax(1) == y).sum()
    model.train()
    n = max(idx.numel(), 1)
    loss_sum, right = torch.stack([total, correct.double()]).tolist()  # one sync
    return loss_sum / n, right / n


def predict(model: nn.Module, data: DeviceData, idx: np.ndarray | torch.Tensor, *,
            batch_size: int = 1024, tta: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Softmax probabilities (n, K) float32 and penultimate embeddings (n, D) float32
    for ``data`` rows ``idx`` (n,). ``tta``: probabilities averaged over the image and
    its four 1-pixel shifts (:data:`TTA_SHIFTS`). A CUDA out-of-memory error halves the
    batch."""
    idx_t = _as_index(idx, data, "idx")
    while True:
        try:
            return _predict_once(model, data, idx_t, batch_size, tta)
        except torch.OutOfMemoryError:
            if batch_size <= 1:
                raise EngineError("out of GPU memory predicting with batch size 1") from None
        dev.free_memory(data.device)
        log.warning("GPU out of memory predicting at batch size %d: retrying with %d",
                    batch_size, batch_size // 2)
        batch_size //= 2


TTA_SHIFTS = ((1, 0), (-1, 0), (0, 1), (0, -1))  # (rows, columns) besides the image itself


def shift(x: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """uint8 (B, C, H, W) moved by ``dy`` rows and ``dx`` columns, zero fill."""
    out = torch.zeros_like(x)
    h, w = x.shape[2], x.shape[3]
    out[:, :, max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = \
        x[:, :, max(-dy, 0):h + min(-dy, 0), max(-dx, 0):w + min(-dx, 0)]
    return out


@torch.no_grad()
def _predict_once(model: nn.Module, data: DeviceData, idx: torch.Tensor,
                  batch_size: int, tta: bool = False) -> tuple[np.ndarray, np.ndarray]:
    model.eval()
    feats: list[torch.Tensor] = []
    probs: list[torch.Tensor] = []
    grabbing = [True]

    def grab(_module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
        if grabbing[0]:
            feats.append(inputs[0].float())

    handle = head_of(model).register_forward_pre_hook(grab)
    try:
        for start in range(0, idx.numel(), batch_size):
            part = idx[start:start + batch_size]
            grabbing[0] = True
            with dev.autocast(data.device):
                logits = model(data.batch(part))
            prob = torch.softmax(logits.float(), dim=1)
            if tta:
                grabbing[0] = False
                raw = data.images[part].permute(0, 3, 1, 2)
                for dy, dx in TTA_SHIFTS:
                    with dev.autocast(data.device):
                        logits = model(normalise(shift(raw, dy, dx), data.mean, data.std))
                    prob += torch.softmax(logits.float(), dim=1)
                prob /= 1 + len(TTA_SHIFTS)
            probs.append(prob)
    finally:
        handle.remove()
    k = head_of(model).out_features
    d = head_of(model).in_features
    p = torch.cat(probs).cpu().numpy() if probs else np.zeros((0, k), np.float32)
    e = torch.cat(feats).cpu().numpy() if feats else np.zeros((0, d), np.float32)
    return p.astype(np.float32, copy=False), e.astype(np.float32, copy=False)
