"""The dataset resident on the device, and batched augmentation on the device.

Images stay uint8 ``(N, H, W, C)`` on the device for the whole run (a quarter of the
bytes of float32, and ``permute(0, 3, 1, 2)`` of that layout *is* a channels_last NCHW
view, so no copy is needed for cudnn). A batch is gathered by an index tensor,
augmented as uint8, then converted and normalised in one go. No DataLoader: on a GPU
the per-step cost of a host round-trip would exceed the step itself for small nets.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from dataqa.errors import EngineError

# (uint8 NCHW batch, generator on the same device) -> uint8 NCHW batch of the same shape
AugmentFn = Callable[[torch.Tensor, torch.Generator], torch.Tensor]

_STATS_CHUNK = 1 << 24  # pixels per chunk when computing mean/std (bounds float64 memory)


@dataclass
class DeviceData:
    """Images and labels on ``device``.

    images: (N, H, W, C) uint8; labels: (N,) int64 with -1 for unknown;
    mean, std: (C,) float32 per-channel statistics in pixel units (0..255).
    """

    images: torch.Tensor
    labels: torch.Tensor
    num_classes: int
    mean: torch.Tensor
    std: torch.Tensor

    @classmethod
    def from_arrays(cls, images: np.ndarray | torch.Tensor, labels: np.ndarray | torch.Tensor,
                    *, device: torch.device, num_classes: int | None = None) -> DeviceData:
        """Move ``images`` (N, H, W, C) uint8 and ``labels`` (N,) int to ``device``.

        ``num_classes`` defaults to ``max(labels) + 1``.
        """
        imgs = torch.as_tensor(np.ascontiguousarray(images) if isinstance(images, np.ndarray)
                               else images)
        if imgs.dtype != torch.uint8 or imgs.dim() != 4:
            raise EngineError(f"images must be uint8 (N, H, W, C), got {imgs.dtype} "
                              f"{tuple(imgs.shape)}")
        labs = torch.as_tensor(np.asarray(labels) if isinstance(labels, np.ndarray)
                               else labels).to(torch.int64)
        if labs.shape != (imgs.shape[0],):
            raise EngineError(f"labels must have shape ({imgs.shape[0]},), "
                              f"got {tuple(labs.shape)}")
        k = int(labs.max()) + 1 if num_classes is None else num_classes
        if labs.numel() and (int(labs.max()) >= k or int(labs.min()) < -1):
            raise EngineError(f"labels must lie in [-1, {k - 1}]")
        imgs = imgs.to(device, non_blocking=True)
        mean, std = _channel_stats(imgs)
        return cls(imgs, labs.to(device), k, mean, std)

    @property
    def device(self) -> torch.device:
        return self.images.device

    @property
    def n(self) -> int:
        return int(self.images.shape[0])

    @property
    def channels(self) -> int:
        return int(self.images.shape[3])

    @property
    def size(self) -> int:
        return int(self.images.shape[1])

    def batch(self, idx: torch.Tensor, *, augment: AugmentFn | None = None,
              generator: torch.Generator | None = None) -> torch.Tensor:
        """Gather rows ``idx`` (B,), augment as uint8, return normalised float32
        ``(B, C, H, W)`` (channels_last memory layout, from the NHWC storage)."""
        x = self.images[idx].permute(0, 3, 1, 2)
        if augment is not None:
            if generator is None:
                raise EngineError("augmentation needs a torch.Generator")
            x = augment(x, generator)
        return normalise(x, self.mean, self.std)


def normalise(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """uint8 (B, C, H, W) -> float32 ``(x - mean) / std`` with per-channel stats."""
    return (x.float() - mean[:, None, None]).mul_(1.0 / std[:, None, None])


def _channel_stats(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    c = images.shape[3]
    total = torch.zeros(c, dtype=torch.float64, device=images.device)
    sq = torch.zeros(c, dtype=torch.float64, device=images.device)
    step = max(1, _STATS_CHUNK // max(images[0].numel(), 1))
    for start in range(0, images.shape[0], step):
        chunk = images[start:start + step].reshape(-1, c).to(torch.float64)
        total += chunk.sum(0)
        sq += (chunk * chunk).sum(0)
    count = max(images.shape[0] * images.shape[1] * images.shape[2], 1)
    mean = total / count
    std = (sq / count - mean * mean).clamp_min(1.0).sqrt()  # >= 1 grey level: no blow-up
    return mean.float(), std.float()


@dataclass(frozen=True)
class FlipCrop:
    """Random horizontal flip and random translation by up to ``padding`` px with zero
    fill (= random crop of a zero-padded image), on a whole uint8 batch, in ONE gather:
    the flip is folded into the column index, so the batch is read once.

    Aspect ratio is untouched (pure translation/mirror), which keeps it consistent with
    the letterboxed tensors.
    """

    flip: bool = False
    padding: int = 0

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        if not self.flip and self.padding <= 0:
            return x
        b, _, h, w = x.shape
        dev = x.device
        p = self.padding
        rows = torch.arange(h, device=dev).expand(b, h)
        cols = torch.arange(w, device=dev).expand(b, w)
        if p > 0:
            shift = torch.randint(-p, p + 1, (2, b, 1), device=dev, generator=generator)
            rows = rows + shift[0]
            cols = cols + shift[1]
        if self.flip:
            mirror = torch.rand(b, 1, device=dev, generator=generator) < 0.5
            cols = torch.where(mirror, w - 1 - cols, cols)
        valid = ((rows >= 0) & (rows < h))[:, :, None] & ((cols >= 0) & (cols < w))[:, None, :]
        bi = torch.arange(b, device=dev)[:, None, None]
        # advanced indices around a slice -> result is (B, H, W, C): NHWC, i.e. the
        # channels_last layout once permuted back
        out = x[bi, :, rows.clamp(0, h - 1)[:, :, None], cols.clamp(0, w - 1)[:, None, :]]
        out = out * valid[..., None].to(out.dtype)
        return out.permute(0, 3, 1, 2)


def compose(*fns: AugmentFn | None) -> AugmentFn | None:
    """Chain augmentations left to right, skipping ``None``; ``None`` when empty."""
    chain = [f for f in fns if f is not None]
    if not chain:
        return None
    if len(chain) == 1:
        return chain[0]

    def run(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        for f in chain:
            x = f(x, generator)
        return x

    return run
