"""Rounds sized by the data: every round trains on a subset with at least
``tune.sizing.min_train_per_class`` training images and ``min_val_per_class`` validation
images in each of its classes.

Why: a round on 2 images of a class scores near chance whatever its configuration, so
its ranking is noise and the next round narrows around noise. Only original images are
counted: augmented copies of 2 images are still 2 images of evidence.

A round whose subset falls short moves to the next larger subset with the same classes
(a fraction subset to a larger fraction; a class subset only to a larger subset of the
same classes) that meets the minimum, and the move is recorded in words. When no subset
meets it (the validation split is shared by all subsets, so a short validation class
cannot be fixed here), the round runs on the largest candidate and is marked
``below_minimum`` with the shortfall named: the report then says its scores are weak
evidence and how to get more (``subsample.val_fraction``, more images).

Batch sizes: a subset of n training images caps the batch at a power of two giving at
least 4 steps per epoch (:func:`dataqa.tune.space.batch_cap`); :func:`batch_note`
reports when that cap sits below the searched range or the fixed batch size, so the
cap never reaches ``best_params.yaml`` silently. The rounds' sizing messages are said
once per subset and shortfall (:func:`dataqa.tune.results.sizing_notices`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from dataqa.params import TuneParams, TuneSizing
from dataqa.tune.space import RoundPlan, batch_cap

Counts = Mapping[str, int]  # class -> images


def shortfall(train: Counts, val: Counts, sizing: TuneSizing) -> list[str]:
    """What a subset lacks, in words (empty when it meets the minimum). ``train``: the
    subset's per-class counts of original images; ``val``: the validation split's, for
    the subset's classes."""
    out = []
    low = {c: n for c, n in sorted(train.items()) if n < sizing.min_train_per_class}
    if low:
        out.append(f"{len(low)} class(es) under {sizing.min_train_per_class} training "
                   f"images ({_few(low)})")
    vlow = {c: val.get(c, 0) for c in sorted(train) if val.get(c, 0) < sizing.min_val_per_class}
    if vlow:
        out.append(f"{len(vlow)} class(es) under {sizing.min_val_per_class} validation "
                   f"images ({_few(vlow)})")
    return out


def _few(counts: Mapping[str, int], n: int = 4) -> str:
    items = [f"'{c}': {k}" for c, k in list(counts.items())[:n]]
    more = len(counts) - n
    return ", ".join(items) + (f", and {more} more" if more > 0 else "")


def size_rounds(plans: Sequence[RoundPlan], *, train_counts: Mapping[str, Counts],
                sizes: Mapping[str, int], val_counts: Counts, sizing: TuneSizing
                ) -> tuple[list[RoundPlan], dict[str, dict[str, Any]]]:
    """Plans with each round's subset replaced where it falls short, and per round a
    record ``{requested, subset, moved, below_minimum, shortfall, message}``.

    ``train_counts``: subset name -> per-class original-image counts; ``sizes``: subset
    name -> training images (copies included: the order "larger"); ``val_counts``: the
    validation split's per-class counts. Rounds with 0 trials keep their subset.
    """
    out: list[RoundPlan] = []
    notes: dict[str, dict[str, Any]] = {}
    for plan in plans:
        if plan.trials == 0 or plan.subset not in train_counts:
            out.append(plan)
            continue
        want = set(train_counts[plan.subset])
        # same classes, at least as large, smallest first (ties by name)
        candidates = sorted((n for n, c in train_counts.items() if set(c) == want
                             and sizes[n] >= sizes[plan.subset]),
                            key=lambda n: (sizes[n], n != plan.subset, n))
        first = shortfall(train_counts[plan.subset], val_counts, sizing)
        chosen = next((n for n in candidates
                       if not shortfall(train_counts[n], val_counts, sizing)), None)
        below = chosen is None
        if chosen is None:
            chosen = candidates[-1] if candidates else plan.subset
        last = shortfall(train_counts[chosen], val_counts, sizing)
        moved = chosen != plan.subset
        if not first:
            message = ""
        elif moved and not below:
            message = (f"round '{plan.name}' moved from subset '{plan.subset}' to "
                       f"'{chosen}': '{plan.subset}' has {'; '.join(first)}")
        else:
            where = f"'{chosen}' (the largest subset with these classes)" if moved else \
                f"'{chosen}'"
            message = (f"round '{plan.name}' runs below the per-class minimum on {where}: "
                       f"{'; '.join(last)}; its scores are weak evidence (more images, or a "
                       "larger subsample.val_fraction, would help)")
        notes[plan.name] = {"requested": plan.subset, "subset": chosen, "moved": moved,
                            "below_minimum": below, "shortfall": last if below else first,
                            "message": message,
                            "min_train_per_class": sizing.min_train_per_class,
                            "min_val_per_class": sizing.min_val_per_class}
        out.append(dataclasses.replace(plan, subset=chosen))
    return out, notes


def batch_note(tune: TuneParams, n_train: int) -> dict[str, Any] | None:
    """When ``n_train`` training images cap the batch below what params ask for (the
    searched range's top): ``{cap, n_train, asked, message}``."""
    cap = batch_cap(n_train)
    asked = tune.space.batch_size_max if "batch_size" in tune.space.searched else 0
    if cap >= asked:
        return None
    return {"cap": cap, "n_train": n_train, "asked": asked,
            "message": f"batch size capped at {cap} by {n_train} training images (4 steps "
                       f"per epoch at least); params allow up to {asked}"}
