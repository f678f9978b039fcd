"""Pretrained backbones the torchvision way: ``engine.arch`` + ``engine.weights``.

``engine.arch`` is ``small_resnet`` (from scratch) or any torchvision classification
model name (``resnet18``, ``resnet50``, ``mobilenet_v3_large``, ``efficientnet_b0``,
``convnext_tiny``, ...). ``engine.weights`` is one of:

- null: random init (train from scratch);
- a torchvision weights name of that model: ``DEFAULT``, ``IMAGENET1K_V1``,
  ``IMAGENET1K_V2``, or the full ``ResNet18_Weights.IMAGENET1K_V1``. Resolved with
  :func:`torchvision.models.get_model_weights`. The file lives where torchvision keeps
  it, ``$TORCH_HOME/hub/checkpoints/<file>`` (``TORCH_HOME`` default
  ``~/.cache/torch``), and is read by :func:`dataqa.engine.checkpoint.load_checkpoint`
  (never pickled code; its SHA-256 checked against the prefix in its published name on
  every load, not only on download). An online machine downloads it there once, as torchvision does;
  offline with nothing cached, :class:`EngineError` names the file torchvision expects,
  the folder to put it in and the URL to fetch it from on another machine;
- a local file (a path that exists, or ends in ``.pt``/``.pth``/``.bin``): a state_dict
  loaded with ``weights_only=True`` (:func:`dataqa.engine.nets.load_weights`).

The weights' own preprocessing comes with a weights name: the mean and std
(:func:`preprocessing`) replace the dataset's channel statistics when the net is built
(:func:`dataqa.engine.fit.new_model`), and the size the weights were trained at is
reported so that a mismatching ``engine.image_size`` is warned about. The classifier
head is replaced by one with the dataset's class count (the loader skips it).
"""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from dataqa.errors import EngineError

log = logging.getLogger("dataqa.engine")

LOCAL_SUFFIXES = (".pt", ".pth", ".bin")
DOWNLOAD_TIMEOUT = 60.0  # seconds without a byte before a download attempt gives up


@dataclass(frozen=True)
class Preprocessing:
    """What a torchvision weights entry was trained with (pixel values in [0, 1])."""

    crop_size: int
    resize_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]


def is_local(weights: str) -> bool:
    """Whether ``engine.weights`` names a local file rather than a torchvision name."""
    return (Path(weights).expanduser().exists() or weights.lower().endswith(LOCAL_SUFFIXES)
            or "/" in weights or os.sep in weights)


def weights_entry(arch: str, weights: str) -> Any:
    """The torchvision weights enum member ``weights`` of ``arch`` (an error naming the
    choices otherwise)."""
    from torchvision.models import get_model_weights

    if arch == "small_resnet":
        raise EngineError(f"engine.weights: '{weights}' is a torchvision weights name, but "
                          "engine.arch is small_resnet (no pretrained weights); set "
                          "engine.arch to a torchvision model (e.g. resnet18) or give a "
                          "local state_dict file")
    try:
        enum = get_model_weights(arch)
    except (ValueError, KeyError):
        raise EngineError(f"engine.arch: unknown torchvision model '{arch}'") from None
    name = weights.split(".", 1)[1] if weights.startswith(enum.__name__ + ".") else weights
    try:
        return enum[name]
    except KeyError:
        raise EngineError(f"engine.weights: '{weights}' is not a weights entry of {arch}; "
                          f"choose one of {', '.join(enum.__members__)} or a local "
                          "file") from None


def cache_file(entry: Any) -> Path:
    """Where torchvision keeps (and looks for) ``entry``'s file."""
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(entry.url)


def published_hash(entry: Any) -> str | None:
    """The SHA-256 prefix torchvision's file name for ``entry`` carries (checked on every
    load of the cached file, not only on download)."""
    from dataqa.engine.checkpoint import hash_prefix_of

    return hash_prefix_of(os.path.basename(entry.url))


def download(entry: Any, target: Path, prefix: str | None) -> None:
    """Fetch ``entry``'s file into torchvision's cache as torch.hub does (a temporary
    file renamed into place once its hash matched); offline: an :class:`EngineError`
    naming the file, the folder and the URL."""
    import torch

    log.info("%s: not cached; downloading %s as torchvision does", target, entry.url)
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        torch.hub.download_url_to_file(entry.url, str(target), hash_prefix=prefix,
                                       progress=False)
    except Exception as exc:  # noqa: BLE001 - urllib/OSError/hash errors all mean: no file
        raise EngineError(
            f"engine.weights: {entry} is not cached and cannot be downloaded "
            f"({type(exc).__name__}: {str(exc)[:120]}). torchvision expects the file "
            f"'{target.name}' in {target.parent} (set TORCH_HOME to use another cache, or "
            f"give engine.weights a local file); fetch it from {entry.url} on a machine "
            "with internet and copy it there") from None
    finally:
        socket.setdefaulttimeout(previous)


def preprocessing(arch: str, weights: str | None) -> Preprocessing | None:
    """The weights' own preprocessing, or None (scratch or a local file)."""
    if not weights or is_local(weights):
        return None
    t = weights_entry(arch, weights).transforms()
    return Preprocessing(int(t.crop_size[0]), int(t.resize_size[0]),
                         tuple(float(v) for v in t.mean), tuple(float(v) for v in t.std))


def load_pretrained(model: nn.Module, arch: str, weights: str) -> list[str]:
    """Load ``weights`` (a torchvision name or a local file) into ``model``; returns
    the keys left at their init (the classifier head)."""
    from dataqa.engine.checkpoint import load_checkpoint
    from dataqa.engine.nets import load_state, load_weights

    if is_local(weights):
        return load_weights(model, Path(weights).expanduser())
    entry = weights_entry(arch, weights)
    target = cache_file(entry)
    prefix = published_hash(entry)
    if not target.is_file():
        download(entry, target, prefix)
    try:
        state = load_checkpoint(target, hash_prefix=prefix)
    except EngineError as exc:
        raise EngineError(f"{exc} (the cached {arch} weights {entry}; delete the file to "
                          "download it again)") from None
    return load_state(model, state, target)
