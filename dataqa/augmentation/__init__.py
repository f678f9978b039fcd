"""The one definition of the training-time augmentation policy.

Two implementations of the same policy, built from the same :class:`AugmentParams`
(:mod:`~dataqa.augmentation.policy` validates it and holds the shared geometry;
:mod:`~dataqa.augmentation.cpu` is the albumentations path,
:mod:`~dataqa.augmentation.device` the batched torch path; everything is re-exported
here):

- :func:`build_transform` -> an albumentations ``Compose`` (CPU, one image at a time,
  any source size). The ``augment`` stage writes class-balancing copies with it.
- :func:`device_augment` -> a batched torch function ``(uint8 NCHW, Generator) -> uint8
  NCHW`` that the engine's fit loop applies to whole batches on the device.

The policy, in order (each step is aspect-preserving; nothing is ever stretched):

1. **Canvas** (raw image -> ``size`` x ``size``): ``geometry="longest"`` scales the
   longer side to ``size`` and pads the rest with zeros, centred (the same letterbox as
   :func:`dataqa.dataset.imageio.letterbox`, so copies look like the tensors); ``"shortest"``
   scales the shorter side to ``size`` and crops the longer one towards a square, but
   never below ``min_area`` of the image (the rest is padded).
2. **Zoom**: a random square window of the canvas whose area share is drawn in
   ``[lo, 1]`` is scaled back to the full canvas (isotropic: square to square), where
   ``lo = min_area / (share kept by step 1)``; all crops together keep at least
   ``min_area`` of the image (see :func:`kept_area_bound`).
3. **Rotate** by a uniform angle in ``[-rotate_limit, rotate_limit]`` degrees about the
   centre, zero fill (rigid: no aspect change; its corners are measured, not bounded).
4. **Horizontal flip** with probability 0.5 when ``hflip``.
5. **Brightness/contrast**: ``x * alpha + beta * 255`` with ``alpha - 1`` and ``beta``
   uniform in ``[-brightness_contrast, brightness_contrast]`` (albumentations'
   ``RandomBrightnessContrast`` formula, applied last on both paths so both treat the
   padding alike).

The device path receives letterboxed square tensors (step 1 already done by the
``tensors`` stage), so it runs steps 2-5; on a square canvas step 1 keeps everything
and both paths draw the zoom from the same range. ``tests/test_augmentation.py`` checks
that both agree on geometry (content-box aspect, kept area) and, given the same drawn
parameters, on pixels.
"""

from dataqa.augmentation.cpu import (
    A,
    Augmented,
    apply_transform,
    build_transform,
    check_aspect_preserving,
    from_dict,
    to_dict,
)
from dataqa.augmentation.device import (
    DeviceAugment,
    device_augment,
    sample_device_params,
    warp_batch,
)
from dataqa.augmentation.policy import (
    MIN_AREA_FLOOR,
    Policy,
    canvas_crop,
    get_policy,
    kept_area_bound,
    zoom_range,
)

__all__ = ["A", "MIN_AREA_FLOOR", "Augmented", "DeviceAugment", "Policy", "apply_transform",
           "build_transform", "canvas_crop", "check_aspect_preserving", "device_augment",
           "from_dict", "get_policy", "kept_area_bound", "sample_device_params", "to_dict",
           "warp_batch", "zoom_range"]
