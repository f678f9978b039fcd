"""The training engine shared by cross-validation and the tuning run: one fit loop.

- :mod:`dataqa.engine.device`: CUDA when present, else CPU; the per-device switches.
- :mod:`dataqa.engine.data`: :class:`DeviceData`, uint8 images resident on the device,
  batched augmentation on the device.
- :mod:`dataqa.engine.nets`: ``small_resnet`` and torchvision nets, local weights.
- :mod:`dataqa.engine.fit`: :class:`TrainConfig`, :func:`fit`, :func:`predict`.
- :mod:`dataqa.engine.crossval`: out-of-fold predictions and the ``crossval`` stage.

Names are re-exported lazily, so ``dataqa.engine.progress`` (used by the ``tensors``
stage) does not import torch. The function ``fit`` is not re-exported: its name is the
module's (``from dataqa.engine.fit import fit``).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "DeviceData": "data", "FlipCrop": "data", "describe": "device", "pick_device": "device",
    "EpochLog": "fit", "FitResult": "fit", "TrainConfig": "fit",
    "predict": "fit", "build_net": "nets", "head_of": "nets", "load_weights": "nets",
    "cross_val_predict": "crossval",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'dataqa.engine' has no attribute {name!r}")
    return getattr(importlib.import_module(f"dataqa.engine.{_EXPORTS[name]}"), name)
