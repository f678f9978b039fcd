"""The known-good starting configuration of the tuning run (``tune.start``), and the one
mapping of a tuning configuration onto the engine's :class:`TrainConfig`.

A *configuration* is a flat mapping of the engine's knobs (:data:`KNOBS`): the net
(``arch``, ``width``, ``depth``, ``dropout``, ``unfreeze``), the optimizer (``optimizer``,
``lr``, ``momentum``, ``weight_decay``, ``batch_size``), the schedule (``schedule``,
``plateau_factor``) and the rest of training (``label_smoothing``, ``crop_padding``,
``flip``). Epochs are not part of it: every round (and the comparison) sets them.

The start (:func:`start_config`) is, with ``tune.start: crossval``, the configuration the
crossval stage trained with (:func:`dataqa.engine.crossval.crossval_config`, or the
fine-tuning budget with ``crossval.mode: finetune``); or a YAML file: a previous
``best_params.yaml`` (its ``params`` mapping and ``epochs``) or a plain mapping of knobs
(knobs it leaves out come from the crossval configuration). It is the first trial of
every round and the reference the tuned configuration must beat.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml

from dataqa.engine.fit import TrainConfig
from dataqa.errors import ParamsError
from dataqa.params import EngineParams, Params, TuneStopping

ARCHS = ("small_cnn", "small_resnet")  # the engine's own nets (dataqa/engine/nets.py)
SCHEDULES = ("onecycle", "plateau", "cosine")
OPTIMIZERS = ("sgd", "adamw")
KNOBS: dict[str, type] = {
    "arch": str, "width": int, "depth": int, "dropout": float, "unfreeze": float,
    "optimizer": str, "lr": float, "momentum": float, "weight_decay": float,
    "batch_size": int, "schedule": str, "plateau_factor": float,
    "label_smoothing": float, "crop_padding": int, "flip": bool}


@dataclass(frozen=True)
class Start:
    """The starting configuration: ``config`` (every knob of :data:`KNOBS`), the epochs
    it was made for, and where it came from (``source``, in words)."""

    config: dict[str, Any]
    epochs: int
    source: str

    def to_json(self) -> dict[str, Any]:
        return {"config": dict(self.config), "epochs": self.epochs, "source": self.source}


def config_of(cfg: TrainConfig) -> dict[str, Any]:
    """The knobs of an engine configuration."""
    return {k: getattr(cfg, k) for k in KNOBS}


def crossval_start(params: Params, device: torch.device, *, n_train: int) -> Start:
    """Crossval's configuration for ``n_train`` training images (its batch-size rule)."""
    from dataqa.engine.crossval import crossval_config

    cfg = crossval_config(params, device, n_train=n_train)
    source = "crossval's configuration"
    if params.crossval.mode == "finetune":
        from dataqa.engine.probe import finetune_config

        cfg = finetune_config(cfg, params.crossval, device)
        source = "crossval's fine-tuning configuration"
    return Start(config_of(cfg), cfg.epochs, source)


def start_config(params: Params, device: torch.device, *, n_train: int) -> Start:
    """The start named by ``tune.start`` (see the module docstring); a file that cannot
    be read, or a knob of the wrong type, is a :class:`ParamsError` naming file and key."""
    base = crossval_start(params, device, n_train=n_train)
    spec = params.tune.start
    if spec == "crossval":
        return base
    path = Path(spec)
    if not path.is_absolute():
        path = params.root / path
    where = f"params.yaml: tune.start: {spec}"
    if not path.is_file():
        raise ParamsError(f"{where}: no such file (use 'crossval' or a YAML file such as a "
                          "previous best_params.yaml)")
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ParamsError(f"{where}: cannot read it as YAML ({type(exc).__name__}: "
                          f"{str(exc).splitlines()[0] if str(exc) else ''})") from None
    if not isinstance(doc, Mapping):
        raise ParamsError(f"{where}: expected a mapping of hyperparameters (or a "
                          "best_params.yaml with 'params'), got "
                          f"{type(doc).__name__}")
    knobs = doc.get("params", doc)
    if not isinstance(knobs, Mapping):
        raise ParamsError(f"{path}: 'params' must be a mapping of hyperparameters")
    epochs = doc.get("epochs", base.epochs)
    if not isinstance(epochs, int) or isinstance(epochs, bool) or epochs < 1:
        raise ParamsError(f"{path}: epochs: expected an integer >= 1, got {epochs!r}")
    config = dict(base.config)
    for key, value in knobs.items():
        if key not in KNOBS:
            continue  # score, trial, notes...: not knobs of the engine
        config[key] = _coerce(key, value, where=str(path))
    _check(config, where=str(path))
    return Start(config, epochs, f"{path.name} (tune.start)")


def _coerce(key: str, value: Any, *, where: str) -> Any:
    kind = KNOBS[key]
    ok = (isinstance(value, bool) if kind is bool else
          isinstance(value, str) if kind is str else
          isinstance(value, int) and not isinstance(value, bool) if kind is int else
          isinstance(value, int | float) and not isinstance(value, bool))
    if not ok:
        raise ParamsError(f"{where}: {key}: expected {kind.__name__}, got {value!r}")
    return float(value) if kind is float else value


def _check(config: Mapping[str, Any], *, where: str) -> None:
    """What TrainConfig would refuse, said with the file's name."""
    if config["optimizer"] not in OPTIMIZERS:
        raise ParamsError(f"{where}: optimizer: one of {', '.join(OPTIMIZERS)}, got "
                          f"{config['optimizer']!r}")
    if config["schedule"] not in SCHEDULES + ("constant",):
        raise ParamsError(f"{where}: schedule: one of {', '.join(SCHEDULES)}, constant; "
                          f"got {config['schedule']!r}")
    for key in ("lr", "batch_size", "width", "depth"):
        v = config[key]
        if not (v > 0 and math.isfinite(v)):
            raise ParamsError(f"{where}: {key}: must be > 0, got {v!r}")
    for key in ("dropout", "unfreeze", "label_smoothing", "momentum"):
        if not 0.0 <= config[key] <= 1.0:
            raise ParamsError(f"{where}: {key}: must lie in [0, 1], got {config[key]!r}")


def train_config(config: Mapping[str, Any], *, epochs: int, seed: int,
                 stopping: TuneStopping, engine: EngineParams,
                 augment: Any = None) -> TrainConfig:
    """The engine's :class:`TrainConfig` of a tuning configuration: its knobs, the
    round's ``epochs``, early stopping on validation loss from ``stopping`` (the same
    rule for every trial and both arms of a comparison), ``engine.weights``."""
    return TrainConfig(
        epochs=epochs,
        batch_size=int(config["batch_size"]),
        lr=float(config["lr"]),
        weight_decay=float(config["weight_decay"]),
        momentum=float(config["momentum"]),
        optimizer=config["optimizer"],
        label_smoothing=float(config.get("label_smoothing", 0.0)),
        schedule=config.get("schedule", "plateau"),
        plateau_factor=float(config.get("plateau_factor", 0.5)),
        plateau_patience=stopping.plateau_patience,
        early_stopping_patience=stopping.patience,
        min_epochs=stopping.min_epochs,
        # the stalled verdict compares with the first steps: after 2 epochs at least (one
        # epoch of a small subset is a handful of steps), and only if an epoch follows
        stall_epochs=max(2, min(3, epochs - 1)),
        diverge_factor=stopping.diverge_factor,
        stall_tolerance=stopping.stall_tolerance,
        arch=str(config.get("arch", engine.arch)),
        width=int(config.get("width", engine.width)),
        depth=int(config.get("depth", engine.depth)),
        dropout=float(config.get("dropout", engine.dropout)),
        unfreeze=float(config.get("unfreeze", 1.0)),
        weights=engine.weights,
        flip=bool(config.get("flip", False)),
        crop_padding=int(config.get("crop_padding", 0)),
        augment=augment,
        seed=seed,
    )
