"""The subsample stage: exact per-class counts, one shared validation split, nesting,
class subsets, and no augmented copy of a validation image in any training subset."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from dataqa.errors import ParamsError
from dataqa.params import ClassSubset, SplitParams, SubsampleParams, validate
from dataqa.prepare import subsample as sub
from dataqa.steps import augment as augment_step
from dataqa.steps import filter as filter_step
from dataqa.steps import subsample as subsample_step

COUNTS = [
    # pool counts, fraction, min per class, expected counts
    ({"a": 100, "b": 37, "c": 3}, 0.1, 2, {"a": 10, "b": 4, "c": 2}),  # 3.7 -> 4; c lifted to 2
    ({"a": 100, "b": 37, "c": 3}, 0.01, 2, {"a": 2, "b": 2, "c": 2}),  # minimum everywhere
    ({"a": 100, "b": 35, "c": 1}, 0.1, 2, {"a": 10, "b": 4, "c": 1}),  # 3.5 -> 4; c capped at 1
    ({"a": 100, "b": 37, "c": 3}, 1.0, 2, {"a": 100, "b": 37, "c": 3}),  # 100% is the pool
    ({"a": 1000, "b": 999}, 0.333, 1, {"a": 333, "b": 333}),  # 332.667 -> 333
]


@pytest.mark.parametrize("pool, f, minimum, expected", COUNTS)
def test_subset_counts_within_one_image(pool, f, minimum, expected):
    got = sub.subset_counts(pool, fraction=f, min_per_class=minimum)
    assert got == expected
    for c, n in got.items():
        assert abs(n - f * pool[c]) <= 0.5 or n == min(minimum, pool[c])


def clean_table(counts: dict[str, int], split: str = "train") -> pd.DataFrame:
    labels = [c for c, n in counts.items() for _ in range(n)]
    return pd.DataFrame({"id": np.arange(len(labels)), "path": [f"{i}.png" for i in
                                                                range(len(labels))],
                         "label": labels, "split": split})


VAL = [
    # counts, val fraction, expected validation counts
    ({"a": 10, "b": 5, "c": 2, "d": 1}, 0.2, {"a": 2, "b": 1, "c": 1}),  # c keeps 1; d none
    ({"a": 10, "b": 5, "c": 2}, 0.5, {"a": 5, "b": 3, "c": 1}),  # 2.5 rounds half up
    ({"a": 10, "b": 3}, 0.05, {"a": 1, "b": 1}),  # at least one per class of two or more
]


@pytest.mark.parametrize("counts, f, expected", VAL)
def test_validation_is_stratified_and_fixed(counts, f, expected):
    clean = clean_table(counts)
    params = SplitParams(val_fraction=f, seed=3)
    val = sub.find_validation(clean, params=params)
    got = clean.loc[val, "label"].value_counts().to_dict()
    assert got == expected
    assert np.array_equal(val, sub.find_validation(clean, params=params))  # fixed by the seed
    # adding a class leaves the other classes' validation images unchanged
    more = pd.concat([clean, clean_table({"zz": 7}).assign(id=lambda t: t["id"] + 1000)],
                     ignore_index=True)
    val_more = sub.find_validation(more, params=params)
    assert np.array_equal(val_more[: len(clean)], val)


def test_validation_from_a_named_split_and_held_out_splits():
    clean = pd.concat([clean_table({"a": 4, "b": 4}),
                       clean_table({"a": 2, "b": 1}, split="val").assign(id=lambda t: t.id + 8),
                       clean_table({"a": 3}, split="test").assign(id=lambda t: t.id + 11)],
                      ignore_index=True)
    params = SubsampleParams(fractions={"all": 1.0})
    tables, summary = sub.make_subsets(clean, None, params=params,
                                       split=SplitParams(val_split="val"))
    assert sorted(tables["val"]["id"]) == [8, 9, 10]
    assert sorted(tables["all"]["id"]) == list(range(8))  # test rows held out
    with pytest.raises(ParamsError, match="val_split"):
        sub.find_validation(clean, params=SplitParams(val_split="dev"))


def copies_of(clean: pd.DataFrame, sources: list[int]) -> pd.DataFrame:
    src = clean.set_index("id").loc[sources]
    return pd.DataFrame({"id": np.arange(len(sources)), "source_id": sources,
                         "label": src["label"].to_numpy(),
                         "path": [f"images/{i:07d}.png" for i in range(len(sources))]})


def test_copies_of_validation_images_never_train():
    clean = clean_table({"a": 20, "b": 5})
    params = SubsampleParams(fractions={"p50": 0.5, "p100": 1.0},
                             class_subsets={"b_only": ClassSubset(classes=["b"])})
    split = SplitParams(val_fraction=0.2)
    val_ids = clean.loc[sub.find_validation(clean, params=split), "id"].tolist()
    train_b = [i for i in range(20, 25) if i not in val_ids]
    copies = copies_of(clean, [val_ids[0], val_ids[-1], *train_b, *train_b])
    tables, summary = sub.make_subsets(clean, copies, params=params, split=split)
    assert summary["dropped_copies"] == 2  # the two copies of validation images
    for name in ("p50", "p100", "b_only"):
        t = tables[name]
        assert not t["source_id"].isin(val_ids).any()
        assert not t.loc[~t["augmented"], "id"].isin(val_ids).any()
    assert not tables["val"]["augmented"].any()
    assert summary["pool"]["counts"] == {"a": 16, "b": 4 + 2 * len(train_b)}
    # nested: every smaller fraction is a subset of the larger one
    key = lambda t: set(zip(t["augmented"], t["id"]))  # noqa: E731
    assert key(tables["p50"]) <= key(tables["p100"])
    assert summary["subsets"]["p50"]["counts"] == {"a": 8, "b": 6}
    # originals first: half of b's pool (4 originals + 8 copies) is 4 originals + 2 copies
    p50_b = tables["p50"][tables["p50"]["label"] == "b"]
    assert (~p50_b["augmented"]).sum() == 4


CLASS_SUBSETS = [
    # spec, classes chosen
    (ClassSubset(largest=2), ["a", "b"]),  # the two largest by pool count
    (ClassSubset(largest=1), ["a"]),  # the largest alone
    (ClassSubset(classes=["c", "a"]), ["a", "c"]),  # listed (order does not matter)
]


@pytest.mark.parametrize("spec, chosen", CLASS_SUBSETS)
def test_class_subsets(spec, chosen):
    pool = {"a": 30, "b": 20, "c": 20, "d": 5}  # b and c tie: the name decides
    assert sub.choose_classes(spec, pool, name="s") == chosen


BAD = [
    (dict(fractions={"val": 0.5}), "'val': the validation split"),  # reserved name
    (dict(fractions={"bad/name": 0.5}), "bad/name"),  # not a file name
    (dict(fractions={"p": 1.5}), r"fractions.p: expected a value in \(0, 1\], got 1.5"),  # out of range
    (dict(class_subsets={"x": {}}), "class_subsets.x: expected exactly one of"),  # neither rule
    (dict(class_subsets={"x": {"classes": ["zebra"]}}), "zebra"),  # unknown class
    (dict(class_subsets={"x": {"largest": 9}}), "largest: 9"),  # too many
    (dict(fractions={}, class_subsets={}), "at least one subset"),  # nothing to make
]


@pytest.mark.parametrize("kw, message", BAD)
def test_bad_subset_params(kw, message):
    with pytest.raises(ParamsError, match=message):
        sub.make_subsets(clean_table({"a": 10, "b": 4}), None, params=validate(SubsampleParams, kw),
                         split=SplitParams())


def test_stage_end_to_end(prep_project):
    proj = prep_project({"cat": 8, "dog": 3, "owl": 2},
                        augment={"balance_target": 1.0},
                        split={"val_fraction": 0.25},
                        subsample={"min_per_class": 1,
                                   "fractions": {"p50": 0.5, "p100": 1.0},
                                   "class_subsets": {"two": ClassSubset(largest=2)}})
    p = proj.params
    before = proj.tree_digest()
    filter_step.run_stage(p)
    augment_step.run_stage(p)
    assert subsample_step.run_stage(p) == 0
    sdir = p.path("subsets_dir")
    assert sorted(x.name for x in sdir.iterdir()) == ["p100.parquet", "p50.parquet",
                                                       "two.parquet", "val.parquet"]
    val = pd.read_parquet(sdir / "val.parquet")
    p100 = pd.read_parquet(sdir / "p100.parquet")
    assert list(p100.columns) == sub.COLUMNS
    assert not set(val["id"]) & set(p100.loc[~p100["augmented"], "id"])
    assert not p100["source_id"].isin(val["id"]).any()
    metrics = json.loads(p.path("prepared_metrics").read_text())
    assert metrics["val"]["counts"] == {"cat": 2, "dog": 1, "owl": 1}
    assert metrics["subsets"]["p100"]["counts"] == {"cat": 6, "dog": 6, "owl": 6}
    assert metrics["subsets"]["p50"]["counts"] == {"cat": 3, "dog": 3, "owl": 3}
    # 'two' = the two largest pool classes; all tie at 6, so the names decide
    assert metrics["subsets"]["two"]["classes"] == ["cat", "dog"]
    assert metrics["prepared"] == {
        "min_clean_per_class": 2, "quarantined_share": pytest.approx(1 / 14),
        "balanced_imbalance_ratio": 1.0,
        "clean_per_class": {"cat": 8, "dog": 3, "owl": 2},
        "train_per_class": {"cat": 6, "dog": 6, "owl": 6}}
    assert proj.tree_digest() == before
