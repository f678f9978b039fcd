"""DVC stage ``scan``: ``data.source`` -> ``paths.manifest``; the work is
:func:`dataqa.dataset.scan.scan_source`."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from dataqa.dataset.placement import check_layout, check_listed_files
from dataqa.dataset.scan import scan_source
from dataqa.dataset.splits import check_splits
from dataqa.io import write_parquet
from dataqa.params import Params
from dataqa.text import say


def check_listing(params: Params, root: Path, files: pd.DataFrame) -> list[str]:
    """Before any file is read: no listed file is an output; the splits can train
    (warnings for splits neither trained nor validated on)."""
    check_listed_files(params, root, files["path"].tolist())
    return check_splits(files["split"], params=params.split)


def run_stage(params: Params) -> int:
    """DVC stage ``scan``: ``data.source`` -> ``paths.manifest`` (written atomically)."""
    check_layout(params)  # the source apart from the outputs
    source = params.resolve(params.data.source)
    frame = scan_source(source, params=params.scan, default_split=params.data.default_split,
                        layout=params.data.layout,
                        check_listing=lambda root, files: check_listing(params, root, files),
                        cluster=params.cluster)
    say(f"scan: layout {frame.attrs['layout']} (data.layout: {params.data.layout}; "
        f"{frame.attrs['layout_reason']})", err=True)
    target = params.path("manifest")
    write_parquet(target, frame)
    bad = int(frame["decode_error"].notna().sum())
    classes = int(frame["label"].nunique())
    say(f"scan: {len(frame)} files in {classes} classes, {bad} undecodable -> {target}",
          err=True)
    return 0
