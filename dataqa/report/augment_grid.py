"""The before/after augmentation grid of the tuning report's 'data used' section: a
few augmented copies per class beside their source image, as inline thumbnails (the
one thumbnail encoder, :func:`dataqa.report.thumbs.encode_thumbnail`)."""

from __future__ import annotations

import base64
from typing import Any

from PIL import Image

from dataqa.dataset.imageio import ImageDecodeError, open_image, read_regular
from dataqa.dataset.reopen import Limits, optional, optional_int, reopen
from dataqa.dataset.sources import source_root
from dataqa.errors import StageInputError
from dataqa.params import Params
from dataqa.prepare.common import read_table
from dataqa.report.thumbs import encode_thumbnail


def get_augmentation_grid(params: Params, *, per_class: int = 3,
                          thumb_size: int | None = None) -> list[dict[str, Any]]:
    """Before/after thumbnails per class for the tuning report.

    Returns one dict per class that got copies, sorted by class:
    ``{"label": str, "copies": int, "items": [{"before": str, "after": str,
    "caption": str}, ...]}`` with at most ``per_class`` items; ``before`` and ``after``
    are base64-encoded PNGs (no ``data:`` prefix), at most ``thumb_size`` px on their
    longer side (default ``report.thumb_size``); ``before`` is the raw source image
    (aspect kept), ``after`` the copy as written. Empty when no copy was made.
    """
    thumb = thumb_size or params.report.thumb_size
    records = read_table(params.path("augmented_manifest"), stage="augment",
                         required=["id", "label", "source_id", "source_path", "path"])
    if records.empty:
        return []
    root = source_root(params.resolve(params.data.source))
    # the raw image is read through the checked reopen (manifest size and hash)
    manifest = read_table(params.path("manifest"), stage="scan", required=["id", "path"])
    by_id = manifest.set_index("id")
    limits = Limits.of(params.scan)
    folder = params.path("augmented_dir")
    out = []
    for label, group in records.sort_values("id").groupby("label", sort=True):
        items = []
        for rec in group.head(per_class).itertuples():
            row = by_id.loc[int(rec.source_id)]  # type: ignore[arg-type]
            before = reopen(root, str(rec.source_path), limits=limits,
                            size=optional_int(row["bytes"]) if "bytes" in row else None,
                            sha256=optional(row["sha256"]) if "sha256" in row else None)
            copy = folder / str(rec.path)  # the augment stage's own PNG, same limits
            try:
                after = open_image(copy, limits.max_pixels,
                                   data=read_regular(copy, limits.max_bytes))
            except (ImageDecodeError, OSError) as exc:
                raise StageInputError(f"{copy}: augmented copy cannot be read ({exc}); "
                                      f"rerun the 'augment' stage") from None
            caption = f"copy {rec.id} of image {rec.source_id}"
            if "area_kept" in records:
                caption += f": {rec.area_kept:.0%} kept, {rec.padding:.0%} padding"
            items.append({"before": _thumb_b64(before, thumb),
                          "after": _thumb_b64(after, thumb), "caption": caption})
        out.append({"label": str(label), "copies": int(len(group)), "items": items})
    return out


def _thumb_b64(im: Image.Image, size: int) -> str:
    data, _, _, _ = encode_thumbnail(im, size, enlarge=True, formats=("PNG",))
    return base64.b64encode(data).decode("ascii")
