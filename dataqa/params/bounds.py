"""The range of every numeric params value, checked when params load.

Type checks (:func:`dataqa.params.build`) stop a string where a number belongs; these
bounds stop a number that no stage can use (``report.thumb_size: 0``, ``engine.seed:
-1``, ``engine.image_size: 100000``) before any stage starts, with an error naming the
key, its value and the allowed range. NaN and infinity are refused everywhere.

Ranges live in two tables of :class:`dataqa.params.rules.Bound`: the sections'
own :data:`dataqa.params.rules.BOUNDS` (checked in each section's ``__post_init__``)
and, for every other numeric key (nested tune sections, mapping values), :data:`BOUNDS`
here, keyed by the dotted params key (``*`` matches any name: a mapping's keys, e.g.
``gate.max_rates.*``), checked once the whole params tree is built. For a list the
bound applies to each item. ``tests/params/test_params_bounds.py`` walks the schema
and fails when a numeric key has an entry in neither, so a new key cannot be left
unbounded. Upper
bounds are generous sanity limits (what fits a machine), not tuning advice. Bounds that
relate two keys (``tune.space.lr_min < lr_max``) stay with the code that uses them.
"""

from __future__ import annotations

import dataclasses
import fnmatch
from typing import Any

from dataqa.params import rules
from dataqa.params.rules import Bound

SEED_MAX = 2**32 - 1  # numpy / torch seeds
BIG = 10**9


SHARE = Bound(0.0, 1.0)  # a share of images or files
POSITIVE_SHARE = Bound(0.0, 1.0, lo_open=True)
SEED = Bound(0, SEED_MAX)
WORKERS = Bound(0, 256)
CHUNK = Bound(1, 1_000_000)
COUNT = Bound(0, BIG)  # images, pairs, files
EPOCHS = Bound(1, 10_000)
TRIALS = Bound(0, 100_000)  # 0: skip the round
BATCH = Bound(1, 65_536)
LR = Bound(0.0, 10.0, lo_open=True)
DECAY = Bound(0.0, 1.0)
WIDTH = Bound(1, 4096)
DEPTH = Bound(1, 64)
RATIO = Bound(1.0, float(BIG))

BOUNDS: dict[str, Bound] = {
    "scan.workers": WORKERS,
    "scan.chunk_size": CHUNK,
    "scan.max_pixels": Bound(1, 2**32),
    "scan.max_bytes": Bound(1, 2**40),
    "scan.decode_timeout": Bound(0.0, 86_400.0, lo_open=True),
    "engine.image_size": Bound(8, 1024),
    "engine.width": WIDTH,
    "engine.depth": DEPTH,
    "engine.dropout": Bound(0.0, 1.0),
    "engine.cpu_threads": Bound(1, 1024),
    "engine.seed": SEED,
    "crossval.folds": Bound(2, 100),
    "crossval.epochs": EPOCHS,
    "crossval.batch_size": BATCH,
    "crossval.lr": LR,
    "crossval.width": WIDTH,
    "crossval.depth": DEPTH,
    "crossval.weight_decay": DECAY,
    "crossval.label_smoothing": Bound(0.0, 1.0),
    "crossval.crop_padding": Bound(0, 512),
    "crossval.probe_c": Bound(0.0, 1e6, lo_open=True),
    "crossval.embed_batch_size": BATCH,
    "audit.min_per_class": COUNT,
    "audit.learning_curve": POSITIVE_SHARE,
    "gate.max_undecodable_rate": SHARE,
    "gate.min_images_per_class": COUNT,
    "gate.max_rates.*": SHARE,
    "gate.max_cross_split_duplicates": COUNT,
    "gate.max_imbalance_ratio": RATIO,
    "gate.min_clean_per_class": COUNT,
    "gate.max_quarantined_share": SHARE,
    "gate.max_balanced_imbalance_ratio": RATIO,
    "augment.seed": SEED,
    "split.seed": SEED,
    "subsample.seed": SEED,
    "subsample.class_subsets.*.largest": Bound(1, BIG),
    "subsample.class_subsets.*.fraction": POSITIVE_SHARE,
    "tune.seed": SEED,
    "tune.budget_seconds": Bound(1.0, 30 * 86_400.0),
    "tune.heartbeat_interval": Bound(1, 86_400),
    "tune.grace_period": Bound(1, 86_400),
    "tune.max_retry": Bound(0, 100),
    "tune.round_wait_seconds": Bound(0, 30 * 86_400),
    "tune.space.lr_min": LR,
    "tune.space.lr_max": LR,
    "tune.space.batch_size_min": BATCH,
    "tune.space.batch_size_max": BATCH,
    "tune.space.weight_decay_min": DECAY,
    "tune.space.weight_decay_max": DECAY,
    "tune.space.dropout_min": Bound(0.0, 1.0),
    "tune.space.dropout_max": Bound(0.0, 1.0),
    "tune.space.momentum_min": Bound(0.0, 1.0),
    "tune.space.momentum_max": Bound(0.0, 1.0),
    "tune.space.plateau_factor_min": POSITIVE_SHARE,
    "tune.space.plateau_factor_max": POSITIVE_SHARE,
    "tune.space.widths": WIDTH,
    "tune.space.depths": DEPTH,
    "tune.rounds.*.trials": TRIALS,
    "tune.rounds.*.epochs": EPOCHS,
    "tune.rounds.joint.lr_decades": Bound(0.0, 10.0, lo_open=True),
    "tune.rounds.fine.top_k": Bound(1, 10_000),
    "tune.rounds.fine.margin": Bound(0.0, 10.0),
    "tune.stopping.patience": Bound(1, 10_000),
    "tune.stopping.min_epochs": Bound(1, 10_000),
    "tune.stopping.plateau_patience": Bound(1, 10_000),
    "tune.stopping.diverge_factor": Bound(1.0, float(BIG), lo_open=True),
    "tune.stopping.stall_tolerance": Bound(0.0, 1.0),
    "tune.pruning.startup_trials": Bound(0, 100_000),
    "tune.pruning.warmup_epochs": Bound(0, 10_000),
    "tune.cleaning.seeds": Bound(1, 1000),
    "report.gallery_size": Bound(0, 10_000),
    "report.thumb_size": Bound(16, 1024),
    "report.max_thumbnails": Bound(0, 1_000_000),
    "report.max_table_rows": Bound(1, 10_000_000),
}


def section_bound(key: str) -> Bound | None:
    """The bound :data:`dataqa.params.rules.BOUNDS` gives ``section.key[...]``, or None."""
    parts = key.split(".")
    for cut in range(len(parts) - 1, 0, -1):  # the most specific section first
        section = ".".join(parts[:cut])  # "tune.sizing" before "tune"
        if section in rules.BOUNDS:
            return rules.BOUNDS[section].get(parts[cut])
    return None


def bound_for(key: str) -> Bound | None:
    """The bound of a dotted key: the sections' own table, then exact entries here,
    then ``*`` patterns."""
    own = section_bound(key)
    if own is not None:
        return own
    if key in BOUNDS:
        return BOUNDS[key]
    for pattern, bound in BOUNDS.items():
        if "*" in pattern and fnmatch.fnmatchcase(key, pattern) and \
                pattern.count(".") == key.count("."):
            return bound
    return None


def numeric_leaves(obj: Any, prefix: str = "") -> list[tuple[str, float]]:
    """``(dotted key, value)`` for every number in a params dataclass tree (list items
    and mapping values included; booleans are not numbers here)."""
    out: list[tuple[str, float]] = []
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        for f in dataclasses.fields(obj):
            if f.name != "root":
                out += numeric_leaves(getattr(obj, f.name), _join(prefix, f.name))
    elif isinstance(obj, dict):
        for k, v in obj.items():
            out += numeric_leaves(v, _join(prefix, str(k)))
    elif isinstance(obj, list):
        for v in obj:
            out += numeric_leaves(v, prefix)
    elif isinstance(obj, int | float) and not isinstance(obj, bool):
        out.append((prefix, obj))
    return out


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def check_bounds(params: Any, where: str) -> None:
    """ParamsError naming the first key whose value lies outside its bound. Keys outside
    the typed schema (``audit.settings``: checks validate their own) are not walked."""
    for key, value in numeric_leaves(_prefixed(params)):
        if key.startswith("audit.settings.") or section_bound(key) is not None:
            continue  # checks validate their settings; sections check their own table
        bound = bound_for(key)
        if bound is not None:
            bound.check(value, f"{where}: {key}")


def _prefixed(params: Any) -> dict[str, Any]:
    """The top-level sections as a mapping, so leaves are named ``section.key``."""
    return {f.name: getattr(params, f.name) for f in dataclasses.fields(params)
            if f.name != "root"}
