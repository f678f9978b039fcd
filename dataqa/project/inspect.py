"""What ``dataqa init`` tells about a source before writing anything: layout, classes,
splits, counts, formats and sizes.

The listing is the scan's own (:func:`dataqa.dataset.sources.list_source`), so init and
the pipeline cannot disagree about layout or labels. Formats come from the file
extensions of every file; pixel sizes from the headers of at most :data:`HEADER_SAMPLE`
files spread over the listing (headers only: a large source is inspected in seconds).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dataqa.dataset.imageio import header_size
from dataqa.dataset.layout import validation_split
from dataqa.dataset.sources import list_source
from dataqa.text import shown

HEADER_SAMPLE = 200


@dataclass
class SourceSummary:
    source: Path
    layout: str
    layout_reason: str
    n_files: int
    classes: dict[str, int]  # class -> files
    splits: dict[str, dict[str, int]]  # split -> class -> files
    extensions: dict[str, int]
    total_bytes: int
    sizes: dict[str, list[int]] = field(default_factory=dict)  # min/median/max width, height
    formats: dict[str, int] = field(default_factory=dict)  # from headers of the sample
    warnings: list[str] = field(default_factory=list)

    @property
    def validation_split(self) -> str | None:
        return validation_split(list(self.splits)) if len(self.splits) > 1 else None

    def lines(self) -> list[str]:
        """The overview, one fact a line; every name from the data through
        :func:`dataqa.text.shown` (a class named ``a\\nsplit x`` cannot forge a line)."""
        out = [f"source: {shown(self.source)}",
               f"layout: {self.layout} ({self.layout_reason})",
               f"files: {self.n_files} ({self.total_bytes / 1e6:.1f} MB)",
               f"classes ({len(self.classes)}): " + ", ".join(
                   f"{shown(c)} {n}" for c, n in list(self.classes.items())[:30])
               + (" ..." if len(self.classes) > 30 else "")]
        for split, counts in self.splits.items():
            out.append(f"split {shown(split)}: {sum(counts.values())} files in {len(counts)} classes")
        out.append("extensions: " + ", ".join(f"{shown(e)} {n}" for e, n in self.extensions.items()))
        if self.formats:
            out.append("formats (header sample): "
                       + ", ".join(f"{f} {n}" for f, n in self.formats.items()))
        if self.sizes:
            w, h = self.sizes["width"], self.sizes["height"]
            out.append(f"pixel size (header sample): width {w[0]}..{w[2]} (median {w[1]}), "
                       f"height {h[0]}..{h[2]} (median {h[1]})")
        out += [f"warning: {w}" for w in self.warnings]
        return out


def inspect_source(source: Path, *, layout: str = "auto", default_split: str = "train",
                   extensions: list[str] | None = None) -> SourceSummary:
    from dataqa.params import ScanParams

    exts = extensions or ScanParams().extensions
    root, frame = list_source(source, default_split=default_split, extensions=exts,
                              layout=layout)
    classes = {str(k): int(v) for k, v in frame["label"].value_counts().sort_index().items()}
    splits: dict[str, dict[str, int]] = {}
    for (split, label), n in frame.groupby(["split", "label"]).size().items():
        splits.setdefault(str(split), {})[str(label)] = int(n)
    exts_count = {str(k): int(v) for k, v in frame["path"].map(
        lambda p: os.path.splitext(p)[1].lower() or "(none)").value_counts().items()}
    total = 0
    for rel in frame["path"]:
        try:
            total += os.stat(root / rel).st_size
        except OSError:
            pass
    step = max(1, len(frame) // HEADER_SAMPLE)
    heads = [header_size(root / p) for p in frame["path"].iloc[::step].head(HEADER_SAMPLE)]
    read = [h for h in heads if h is not None]
    sizes: dict[str, list[int]] = {}
    formats: dict[str, int] = {}
    if read:
        ws = np.array([h[1] for h in read])
        hs = np.array([h[2] for h in read])
        sizes = {"width": [int(ws.min()), int(np.median(ws)), int(ws.max())],
                 "height": [int(hs.min()), int(np.median(hs)), int(hs.max())]}
        for h in read:
            formats[str(h[0])] = formats.get(str(h[0]), 0) + 1
    return SourceSummary(source=Path(source), layout=frame.attrs["layout"],
                         layout_reason=frame.attrs["layout_reason"], n_files=len(frame),
                         classes=classes, splits=splits, extensions=exts_count,
                         total_bytes=total, sizes=sizes, formats=formats,
                         warnings=list(frame.attrs.get("warnings", [])))
