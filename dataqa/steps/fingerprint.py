"""DVC stage ``fingerprint``: ``data.source`` -> ``paths.fingerprint`` (what DVC depends
on instead of the raw tree; see :mod:`dataqa.dataset.fingerprint`)."""

from __future__ import annotations

from dataqa.dataset.fingerprint import fingerprint
from dataqa.dataset.placement import check_dependency_folder, check_layout
from dataqa.dataset.splits import check_splits
from dataqa.io import write_json
from dataqa.params import Params
from dataqa.text import say


def run_stage(params: Params) -> int:
    """DVC stage ``fingerprint``: ``data.source`` -> ``paths.fingerprint``."""
    check_layout(params)
    check_dependency_folder(params.resolve(params.paths.external), "paths.external")
    out = fingerprint(params.resolve(params.data.source),
                      default_split=params.data.default_split,
                      extensions=params.scan.extensions,
                      # a source no split of which can train: said now, not after 8 stages
                      check=lambda files: check_splits(files["split"], params=params.split))
    write_json(params.path("fingerprint"), out)
    say(f"fingerprint: {out['files']} files, {out['bytes']} bytes, "
          f"{out['special_files']} special -> {params.path('fingerprint')}", err=True)
    return 0
