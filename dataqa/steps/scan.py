"""DVC stage ``scan``: ``data.source`` -> ``paths.manifest``; the work is
:func:`dataqa.dataset.scan.scan_source`."""

from __future__ import annotations

import sys

from dataqa.dataset.placement import check_layout, check_listed_files
from dataqa.dataset.scan import scan_source
from dataqa.io import write_parquet
from dataqa.params import Params


def run_stage(params: Params) -> int:
    """DVC stage ``scan``: ``data.source`` -> ``paths.manifest`` (written atomically)."""
    check_layout(params)  # the source apart from the outputs
    source = params.resolve(params.data.source)
    frame = scan_source(source, params=params.scan, default_split=params.data.default_split,
                        layout=params.data.layout,
                        check_paths=lambda root, paths: check_listed_files(params, root, paths),
                        cluster=params.cluster)
    print(f"scan: layout {frame.attrs['layout']} (data.layout: {params.data.layout}; "
          f"{frame.attrs['layout_reason']})", file=sys.stderr)
    target = params.path("manifest")
    write_parquet(target, frame)
    bad = int(frame["decode_error"].notna().sum())
    classes = int(frame["label"].nunique())
    print(f"scan: {len(frame)} files in {classes} classes, {bad} undecodable -> {target}",
          file=sys.stderr)
    return 0
