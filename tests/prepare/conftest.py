"""Fixtures of the preparation tests: a tiny project on disk with known truth.

``prep_project(counts, ...)`` writes an ImageFolder of textured images of several
aspect ratios (no pixel is 0, so padding is measurable), one undecodable file, the
manifest (a deliberate mini-scan), an all-clean issues table and the letterboxed
tensors, and returns a :class:`PrepProject` whose ``params`` point at them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from dataqa.dataset.imageio import letterbox
from dataqa.io import write_npy, write_parquet
from dataqa.params import (
    AugmentParams,
    DataParams,
    EngineParams,
    FilterParams,
    Params,
    SplitParams,
    SubsampleParams,
)

SHAPES = [(24, 40), (40, 24), (30, 30), (18, 54)]  # (H, W): wide, tall, square, very wide


def textured(h: int, w: int, seed: int, channels: int = 3) -> np.ndarray:
    """A smooth gradient plus noise in [1, 255]: never 0, so padding stays measurable."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = 40 + 150 * (xx / max(w - 1, 1)) * (0.5 + 0.5 * yy / max(h - 1, 1))
    img = base[..., None] + rng.integers(0, 60, (h, w, channels))
    return np.clip(img, 1, 255).astype(np.uint8)


@dataclass
class PrepProject:
    params: Params
    source: Path
    manifest: pd.DataFrame

    def issues(self) -> pd.DataFrame:
        return pd.read_parquet(self.params.path("issues"))

    def write_issues(self, issues: pd.DataFrame) -> None:
        write_parquet(self.params.path("issues"), issues)

    def tree_digest(self) -> dict[str, str]:
        """sha256 of every file under the source (raw images are never modified)."""
        return {str(p.relative_to(self.source)): hashlib.sha256(p.read_bytes()).hexdigest()
                for p in sorted(self.source.rglob("*")) if p.is_file()}


@pytest.fixture
def prep_project(tmp_path: Path) -> Callable[..., PrepProject]:
    def make(counts: dict[str, int] | None = None, *, broken: bool = True,
             image_size: int = 16, augment: dict[str, Any] | None = None,
             subsample: dict[str, Any] | None = None,
             split: dict[str, Any] | None = None,
             filter: dict[str, Any] | None = None) -> PrepProject:
        counts = counts or {"cat": 8, "dog": 3, "owl": 2}
        source = tmp_path / "src"
        rows = []
        k = 0
        for label, n in counts.items():
            (source / label).mkdir(parents=True)
            for i in range(n):
                h, w = SHAPES[k % len(SHAPES)]
                rel = f"{label}/{i:03d}.png"
                Image.fromarray(textured(h, w, seed=k)).save(source / rel)
                rows.append((rel, label, None, h, w))
                k += 1
        if broken:
            first = next(iter(counts))
            (source / first / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
            rows.append((f"{first}/broken.png", first, "cannot decode: truncated", None, None))
        rows.sort()
        manifest = pd.DataFrame(rows, columns=["path", "label", "decode_error", "height",
                                               "width"])
        manifest.insert(0, "id", np.arange(len(manifest), dtype=np.int64))
        manifest["split"] = "train"
        manifest = manifest.astype({"path": "string", "label": "string", "split": "string",
                                    "decode_error": "string", "height": "Int64",
                                    "width": "Int64"})
        params = Params().replace(root=tmp_path, data=DataParams(source="src"),
            engine=EngineParams(image_size=image_size),
            augment=AugmentParams().replace(**(augment or {})),
            split=SplitParams().replace(**(split or {})),
            subsample=SubsampleParams().replace(**(subsample or {})),
            filter=FilterParams().replace(**(filter or {})))
        write_parquet(params.path("manifest"), manifest)
        issues = manifest[["id", "path", "label", "split"]].copy()
        issues["is_outlier_issue"] = False
        issues["outlier_score"] = 1.0
        write_parquet(params.path("issues"), issues)
        tensors = np.zeros((len(manifest), image_size, image_size, 3), dtype=np.uint8)
        for i, rel in enumerate(manifest["path"]):
            if pd.isna(manifest["decode_error"].iloc[i]):
                arr = np.asarray(Image.open(source / rel).convert("RGB"))
                tensors[i] = letterbox(arr, image_size)[0]
        write_npy(params.path("tensors"), tensors)
        return PrepProject(params, source, manifest)

    return make
