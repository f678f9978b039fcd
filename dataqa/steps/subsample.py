"""DVC stage ``subsample``: the validation split and the training subsets into
``paths.subsets_dir``, plus the prepared-data figures the second gate reads (the rules
are :mod:`dataqa.prepare.subsample`)."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pyarrow.parquet as pq

from dataqa.dataset.balance import class_counts, imbalance_ratio
from dataqa.errors import StageInputError
from dataqa.io import write_json, write_parquet
from dataqa.params import Params
from dataqa.prepare.common import atomic_dir, read_table
from dataqa.prepare.subsample import COLUMNS, make_subsets
from dataqa.text import say


def run_stage(params: Params) -> int:
    clean = read_table(params.path("clean"), stage="filter",
                       required=["id", "path", "label", "split"])
    augmented = _read_augmented(params) if params.subsample.use_augmented else None
    tables, summary = make_subsets(clean, augmented, params=params.subsample,
                                   split=params.split)
    summary["prepared"] = _prepared_figures(params, clean, summary)
    with atomic_dir(params.path("subsets_dir")) as tmp:
        for name, frame in tables.items():
            write_parquet(tmp / f"{name}.parquet", frame[COLUMNS])
    write_json(params.path("prepared_metrics"), summary)
    say(f"subsample: val {summary['val']['n']}, pool {summary['pool']['n']} "
          f"({summary['pool']['n_augmented']} augmented)")
    for name, info in summary["subsets"].items():
        say(f"  {name:<16} {info['kind']:<8} {info['n']:>7} images, "
              f"{len(info['classes'])} classes ({info['n_augmented']} augmented)")
    return 0


def _read_augmented(params: Params) -> pd.DataFrame:
    return read_table(params.path("augmented_manifest"), stage="augment",
                      required=["id", "source_id", "label", "path"])


def _prepared_figures(params: Params, clean: pd.DataFrame, summary: dict[str, Any]
                      ) -> dict[str, Any]:
    """What the prepared-data gate reads (one file): clean images per class, the share
    quarantined, and the imbalance of the training pool after balancing."""
    qpath = params.path("quarantine")
    if not qpath.is_file():
        raise StageInputError(f"{qpath}: not found; run the 'filter' stage first")
    n_quarantined = pq.read_metadata(qpath).num_rows
    total = len(clean) + n_quarantined
    per_class = class_counts(clean["label"])
    pool = summary["pool"]["counts"]
    return {
        "min_clean_per_class": min(per_class.values()) if per_class else 0,
        "quarantined_share": n_quarantined / total if total else 0.0,
        "balanced_imbalance_ratio": imbalance_ratio(pool, skip_empty=False),
        "clean_per_class": per_class,
        "train_per_class": pool,
    }
