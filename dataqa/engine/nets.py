"""Networks: ``small_resnet`` and ``small_cnn`` (sized for small images) and torchvision
architectures by name, plus loading a local weights file.

Every net maps a float batch ``(B, C, H, W)`` to logits ``(B, K)``; its classifier head
is the last ``nn.Linear`` (:func:`head_of`), whose *input* is the penultimate feature
vector ``(B, D)`` used as the embedding. Nets are built with ``weights=None``; pretrained
weights (a local file, or a torchvision weights name through torchvision's own cache)
are loaded by :mod:`dataqa.engine.backbones`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from torch import nn

from dataqa.errors import EngineError

log = logging.getLogger("dataqa.engine")

# torchvision ResNet-family names whose ImageNet stem (7x7 stride-2 conv + max-pool)
# is adapted to small inputs by setting the stride to 1 and dropping the pool; the 7x7
# kernel keeps its shape so that ImageNet state_dicts still load.
_RESNETS = ("resnet", "resnext", "wide_resnet")
SMALL_INPUT = 64  # below this side (px), torchvision stems stop downsampling early


class BasicBlock(nn.Module):
    """Two 3x3 convs with a residual connection (He et al. 2016)."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        nn.init.zeros_(self.bn2.weight)  # each block starts as identity: faster early training
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                          nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class SmallResNet(nn.Module):
    """ResNet for small images: a 3x3 stem (followed by a 2x2 max-pool when the input is
    at least 24 px, because the first stage at full resolution costs more than the rest
    of the net together), then three stages of ``depth`` blocks at widths ``width``,
    ``2*width``, ``4*width`` (stride 2 between stages), global average pooling, dropout
    and a linear head ``fc``. Embedding size D = ``4*width``."""

    def __init__(self, in_channels: int, num_classes: int, *, width: int = 32,
                 depth: int = 2, dropout: float = 0.0, stem_pool: bool = True) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width),
            nn.ReLU(inplace=True), nn.MaxPool2d(2) if stem_pool else nn.Identity())
        blocks: list[nn.Module] = []
        cin = width
        for stage, mult in enumerate((1, 2, 4)):
            for i in range(depth):
                stride = 2 if stage > 0 and i == 0 else 1
                blocks.append(BasicBlock(cin, width * mult, stride))
                cin = width * mult
        self.blocks = nn.Sequential(*blocks)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.dropout(self.pool(self.blocks(self.stem(x)))))


class SmallCNN(nn.Module):
    """Plain five-conv net for small images (the K-fold pass's default, issue 13): 3x3
    convs with BatchNorm and GELU at widths ``w``, ``2w``, ``2w``, ``4w``, ``4w``, a 2x2
    max-pool after the first and the third conv, a global max-pool, dropout and a linear
    head ``fc``. Embedding size D = ``4*width``.

    Why this and not ``small_resnet``: on the 10k MNIST test digits it reaches a higher
    out-of-fold accuracy per second on both CPU and GPU (benchmarks/README.md, "label
    issues"). Only the first conv runs at full resolution, where its input has 1 or 3
    channels and costs little; the global *max* pool keeps the strongest local evidence
    (a stroke anywhere), which average pooling over a mostly empty canvas dilutes."""

    def __init__(self, in_channels: int, num_classes: int, *, width: int = 32,
                 dropout: float = 0.0) -> None:
        super().__init__()

        def conv(cin: int, cout: int) -> list[nn.Module]:
            return [nn.Conv2d(cin, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout),
                    nn.GELU()]

        w = width
        self.features = nn.Sequential(
            *conv(in_channels, w), nn.MaxPool2d(2),
            *conv(w, 2 * w), *conv(2 * w, 2 * w), nn.MaxPool2d(2),
            *conv(2 * w, 4 * w), *conv(4 * w, 4 * w),
            nn.AdaptiveMaxPool2d(1), nn.Flatten())
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(4 * w, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.dropout(self.features(x)))


def build_net(arch: str, *, num_classes: int, in_channels: int, image_size: int,
              width: int = 32, depth: int = 2, dropout: float = 0.0,
              stem_pool: bool | None = None) -> nn.Module:
    """Build ``arch`` for inputs ``(B, in_channels, image_size, image_size)`` and
    ``num_classes`` outputs; a dry forward pass checks the shapes once.

    ``arch``: ``small_resnet``, ``small_cnn`` or any torchvision classification model name
    (``resnet18``, ``resnet34``, ``mobilenet_v3_small``, ...). ``width``, ``depth`` and
    ``dropout`` and ``stem_pool`` (None: pool when ``image_size >= 24``) apply to
    ``small_resnet``; torchvision nets keep their own sizes.
    """
    if num_classes < 2:
        raise EngineError(f"a classifier needs at least 2 classes, got {num_classes}")
    if in_channels not in (1, 3):
        raise EngineError(f"in_channels must be 1 (gray) or 3 (rgb), got {in_channels}")
    if arch == "small_resnet":
        if width < 1 or depth < 1 or not 0.0 <= dropout < 1.0:
            raise EngineError(f"small_resnet needs width >= 1, depth >= 1 and 0 <= dropout "
                              f"< 1; got width={width}, depth={depth}, dropout={dropout}")
        model: nn.Module = SmallResNet(in_channels, num_classes, width=width, depth=depth,
                                       dropout=dropout, stem_pool=image_size >= 24
                                       if stem_pool is None else stem_pool)
    elif arch == "small_cnn":
        if width < 1 or not 0.0 <= dropout < 1.0:
            raise EngineError(f"small_cnn needs width >= 1 and 0 <= dropout < 1; got "
                              f"width={width}, dropout={dropout}")
        model = SmallCNN(in_channels, num_classes, width=width, dropout=dropout)
    else:
        model = _torchvision_net(arch, num_classes=num_classes, in_channels=in_channels,
                                 image_size=image_size)
    head_of(model)  # raises a clear error for a net without a linear head
    model.eval()
    try:
        with torch.no_grad():
            out = model(torch.zeros(2, in_channels, image_size, image_size))
    except RuntimeError as exc:
        raise EngineError(f"arch '{arch}' does not accept {image_size}x{image_size} inputs "
                          f"with {in_channels} channel(s): {exc}") from None
    if tuple(out.shape) != (2, num_classes):
        raise EngineError(f"arch '{arch}' returned logits of shape {tuple(out.shape)}, "
                          f"expected (2, {num_classes})")
    return model.train()


def _torchvision_net(arch: str, *, num_classes: int, in_channels: int,
                     image_size: int) -> nn.Module:
    import torchvision

    known = torchvision.models.list_models(module=torchvision.models)
    if arch not in known:
        raise EngineError(f"unknown arch '{arch}'; use 'small_resnet', 'small_cnn' or a torchvision "
                          f"classification model: {', '.join(known)}")
    model = torchvision.models.get_model(arch, weights=None, num_classes=num_classes)
    if arch.startswith(_RESNETS) and image_size < SMALL_INPUT:
        conv: nn.Conv2d = model.conv1
        model.conv1 = nn.Conv2d(conv.in_channels, conv.out_channels,
                                conv.kernel_size,  # type: ignore[arg-type]
                                stride=1, padding=conv.padding,  # type: ignore[arg-type]
                                bias=False)
        model.maxpool = nn.Identity()
    if in_channels != 3:
        _replace_first_conv(model, in_channels)
    return model


def _replace_first_conv(model: nn.Module, in_channels: int) -> None:
    """Give the first convolution ``in_channels`` inputs, keeping its other settings."""
    for parent in model.modules():
        for name, child in parent.named_children():
            if isinstance(child, nn.Conv2d):
                if child.groups != 1:
                    raise EngineError(f"{type(model).__name__}: first conv is grouped; "
                                      "cannot adapt it to grayscale input")
                new = nn.Conv2d(in_channels, child.out_channels,
                                child.kernel_size, child.stride,  # type: ignore[arg-type]
                                child.padding, child.dilation,  # type: ignore[arg-type]
                                bias=child.bias is not None)
                setattr(parent, name, new)
                return
    raise EngineError(f"{type(model).__name__}: no convolution to adapt to "
                      f"{in_channels} input channel(s)")


def head_of(model: nn.Module) -> nn.Linear:
    """The classifier head: the last ``nn.Linear`` of ``model``."""
    head = None
    for module in model.modules():
        if isinstance(module, nn.Linear):
            head = module
    if head is None:
        raise EngineError(f"{type(model).__name__} has no linear classifier head; "
                          "dataqa needs one for embeddings")
    return head


def load_weights(model: nn.Module, path: str | Path) -> list[str]:
    """Load a local state_dict file into ``model`` (through
    :func:`dataqa.engine.checkpoint.load_checkpoint`: no pickled code runs).

    Tolerated differences, each logged: a classifier head of another class count (left
    at its random init), a first conv with 3 input channels loaded into a 1-channel
    model (summed over colour, the usual grayscale adaptation). Anything else missing
    or mis-shaped is an :class:`EngineError` naming the file. Returns the skipped keys.
    """
    from dataqa.engine.checkpoint import load_checkpoint

    path = Path(path)
    loaded = load_checkpoint(path)
    return load_state(model, loaded, path)


def load_state(model: nn.Module, loaded: Any, path: str | Path) -> list[str]:
    """Load the state_dict ``loaded`` (read from ``path``, named in errors) into
    ``model`` with the tolerances of :func:`load_weights`; returns the skipped keys."""
    for wrapper in ("state_dict", "model"):
        if isinstance(loaded, dict) and isinstance(loaded.get(wrapper), dict):
            loaded = loaded[wrapper]
    if not isinstance(loaded, dict) or not all(isinstance(v, torch.Tensor)
                                               for v in loaded.values()):
        raise EngineError(f"{path}: expected a state_dict (a mapping of names to tensors), "
                          f"got {type(loaded).__name__}")
    loaded = {_strip(k): v for k, v in loaded.items()}
    own = model.state_dict()
    head_name = next(n for n, m in model.named_modules() if m is head_of(model))
    head_keys = {f"{head_name}.weight", f"{head_name}.bias"}
    first_conv = next(n for n, m in model.named_modules() if isinstance(m, nn.Conv2d))
    out: dict[str, torch.Tensor] = {}
    skipped: list[str] = []
    problems: list[str] = []
    for key, target in own.items():
        src = loaded.get(key)
        if src is None:
            if key.endswith("num_batches_tracked"):
                continue
            problems.append(f"missing '{key}'")
        elif src.shape == target.shape:
            out[key] = src
        elif key in head_keys:
            skipped.append(key)
        elif (key == f"{first_conv}.weight" and src.dim() == 4 and src.shape[1] == 3
              and target.shape[1] == 1 and src.shape[0] == target.shape[0]
              and src.shape[2:] == target.shape[2:]):
            out[key] = src.sum(dim=1, keepdim=True)
            log.info("%s: first conv weights summed over colour for grayscale input", path)
        else:
            problems.append(f"'{key}' has shape {tuple(src.shape)} in the file, "
                            f"{tuple(target.shape)} in the model")
    extra = sorted(set(loaded) - set(own))
    if extra:
        problems.append(f"unexpected keys {extra[:5]}{' ...' if len(extra) > 5 else ''}")
    if problems:
        raise EngineError(f"{path}: weights do not fit the model ({type(model).__name__}): "
                          + "; ".join(problems[:5]) + (" ..." if len(problems) > 5 else ""))
    model.load_state_dict(out, strict=False)
    if skipped:
        log.warning("%s: classifier head has %d outputs in the file, %d in the model; "
                    "loaded everything but the head (%s), which starts from random init",
                    path, loaded[f"{head_name}.weight"].shape[0], head_of(model).out_features,
                    ", ".join(skipped))
    return skipped


def _strip(key: str) -> str:
    """Drop wrapper prefixes left by DataParallel and torch.compile."""
    for prefix in ("module.", "_orig_mod."):
        while key.startswith(prefix):
            key = key[len(prefix):]
    return key
