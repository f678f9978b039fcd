"""Every rule on params that needs no data, in one place, checked when a section is
built (``load_params``, and direct construction in code and tests): a bad value fails
with :class:`~dataqa.errors.ParamsError` naming the key, before any stage does work.

Two kinds, both keyed by section name:

- :data:`BOUNDS`: ``key -> Bound`` ranges of numeric keys (``None`` values pass: null
  means "adapt"; a list or mapping is checked item by item). Add a key's range here.
- :data:`CROSS`: functions ``(section) -> None`` for rules across keys or items.

Rules that need a registry (check names, gate rules, the search space) run right after
loading too, in :func:`dataqa.steps.preflight.check_params`; rules that need data (a
class missing from the pool, a split no row has) stay in the stages. Imports nothing of
dataqa but the errors, so that :mod:`dataqa.params` can import it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from dataqa.errors import ParamsError

# A crop of a centred canvas keeps >= sqrt(share) of the content along each axis only
# when the window covers at least half the canvas side; below 0.25 the bound fails.
MIN_AREA_FLOOR = 0.25
VAL = "val"  # the validation split's table name: no subset may take it
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass(frozen=True)
class Bound:
    """``lo <= value <= hi`` (``<`` with ``lo_open``/``hi_open``); ``None``: unbounded."""

    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False

    def ok(self, v: float) -> bool:
        if math.isnan(v):
            return False
        if self.lo is not None and (v <= self.lo if self.lo_open else v < self.lo):
            return False
        return not (self.hi is not None and (v >= self.hi if self.hi_open else v > self.hi))

    def check(self, value: Any, where: str) -> None:
        if value is None or isinstance(value, bool | str):
            return
        if isinstance(value, list):
            for i, v in enumerate(value):
                self.check(v, f"{where}[{i}]")
            return
        if isinstance(value, dict):
            for k, v in value.items():
                self.check(v, f"{where}.{k}")
            return
        if self.ok(float(value)):
            return
        if self.hi is None and self.lo is not None:
            raise ParamsError(f"{where}: must be {'>' if self.lo_open else '>='} "
                              f"{self.lo:g}, got {value}")
        lo = "-inf" if self.lo is None else f"{self.lo:g}"
        hi = "inf" if self.hi is None else f"{self.hi:g}"
        raise ParamsError(f"{where}: {value} is outside {'(' if self.lo_open else '['}{lo}, "
                          f"{hi}{')' if self.hi_open else ']'}")


def _where(section: str, key: str = "") -> str:
    return f"params.yaml: {section}" + (f".{key}" if key else "")


BOUNDS: dict[str, dict[str, Bound]] = {
    "cluster": {"num_cpus": Bound(0), "num_gpus": Bound(0), "max_retries": Bound(0),
                "tune_workers": Bound(0)},
    "tensors": {"workers": Bound(0), "chunk_size": Bound(1)},
    "audit": {"learning_curve_epochs": Bound(1), "memory_mb": Bound(64)},
    "filter": {"min_score": Bound(0, 1), "relabel_min_confidence": Bound(0, 1),
               "quarantine_min_flags": Bound(2)},
    "augment": {"balance_target": Bound(0, 1, lo_open=True), "max_copies_per_source": Bound(0),
                "size": Bound(8), "min_area": Bound(MIN_AREA_FLOOR, 1),
                "rotate_limit": Bound(0, 180), "brightness_contrast": Bound(0, 1, hi_open=True)},
    "split": {"val_fraction": Bound(0, 1, lo_open=True, hi_open=True)},
    "subsample": {"fractions": Bound(0, 1, lo_open=True), "min_per_class": Bound(1)},
    "tune.sizing": {"min_train_per_class": Bound(1), "min_val_per_class": Bound(1)},
    "tune.selection": {"window": Bound(1)},
    "tune.baseline": {"seeds": Bound(1), "epochs": Bound(1)},
    "tune.fidelity": {"min_configs": Bound(3), "min_spearman": Bound(-1, 1)},
    "tune.diagnose": {k: Bound(0) for k in (
        "overfit_gap", "overfit_rise", "chance_ratio", "still_improving", "barely_moves",
        "oscillation", "noise_cv")} | {"edge_fraction": Bound(0, 0.5)},
}


def _audit(p: Any) -> None:
    fractions = sorted({float(f) for f in p.learning_curve})
    if len(fractions) < 2 or not all(0.0 < f <= 1.0 for f in fractions):
        raise ParamsError(f"{_where('audit', 'learning_curve')}: need at least two fractions "
                          f"in (0, 1], got {list(p.learning_curve)}")
    if len(set(p.checks)) != len(p.checks):
        dup = sorted({c for c in p.checks if p.checks.count(c) > 1})
        raise ParamsError(f"{_where('audit', 'checks')}: listed twice: {', '.join(dup)}")


def _subsample(p: Any) -> None:
    where = _where("subsample")
    names = list(p.fractions) + list(p.class_subsets)
    for name in names:
        if name == VAL or not _NAME.match(name):
            raise ParamsError(f"{where}: subset name '{name}' is not allowed (use letters, "
                              f"digits, '_', '-', '.'; '{VAL}' is the validation split)")
    both = set(p.fractions) & set(p.class_subsets)
    if both:
        raise ParamsError(f"{where}: {sorted(both)} named in both fractions and "
                          "class_subsets")
    for name, spec in p.class_subsets.items():
        if bool(spec.classes) == (spec.largest is not None):
            raise ParamsError(f"{where}.class_subsets.{name}: give exactly one of 'classes' "
                              "(a list) or 'largest' (k)")
        if spec.largest is not None and spec.largest < 1:
            raise ParamsError(f"{where}.class_subsets.{name}.largest: must be >= 1, "
                              f"got {spec.largest}")
        if not 0.0 < spec.fraction <= 1.0:
            raise ParamsError(f"{where}.class_subsets.{name}.fraction: {spec.fraction} "
                              "is outside (0, 1]")
    if not names:
        raise ParamsError(f"{where}: no subsets (fractions and class_subsets are empty)")


CROSS: dict[str, list[Callable[[Any], None]]] = {
    "audit": [_audit],
    "subsample": [_subsample],
}


def check_section(section: str, obj: Any) -> None:
    """Apply :data:`BOUNDS` and :data:`CROSS` of ``section`` to the built ``obj``."""
    for key, bound in BOUNDS.get(section, {}).items():
        bound.check(getattr(obj, key), _where(section, key))
    for rule in CROSS.get(section, []):
        rule(obj)
