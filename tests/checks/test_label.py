"""label: planted flipped labels on small synthetic out-of-fold predictions whose
answer is known, and the summary the report reads (pairs, accuracy, confusion)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dataqa.checks import AuditContext, get_check
from dataqa.dataset.manifest import COLUMNS
from dataqa.errors import ParamsError, StageInputError

CLASSES = ["cat", "dog", "fox"]
N_PER_CLASS = 30
FLIPPED = [3, 4, 33, 34, 63, 64]  # true class c -> label c + 1: cat->dog, dog->fox, fox->cat


def empty_manifest(n: int) -> pd.DataFrame:
    """Every manifest column, all values missing (ints 0)."""
    return pd.DataFrame({c: np.zeros(n, np.int64) if t == "int64" else
                         pd.Series([None] * n, dtype=t) for c, t in COLUMNS.items()})


def planted(*, broken=(), unknown=()) -> tuple[AuditContext, np.ndarray, np.ndarray]:
    """90 images, 30 per true class. Clean rows: 0.82 on the true class; flipped rows:
    the model is sure (0.91) of the true class, which is not the label."""
    true = np.repeat(np.arange(3), N_PER_CLASS)
    labels = true.copy()
    labels[FLIPPED] = (true[FLIPPED] + 1) % 3
    probs = np.full((len(true), 3), 0.09)
    probs[np.arange(len(true)), true] = 0.82
    probs[FLIPPED] = 0.045
    probs[FLIPPED, true[FLIPPED]] = 0.91
    manifest = empty_manifest(len(true))
    manifest["id"] = np.arange(len(true))
    manifest["path"] = [f"{CLASSES[v]}/{i:03d}.png" for i, v in enumerate(labels)]
    manifest["label"] = [CLASSES[v] for v in labels]
    manifest["split"] = "train"
    for i in broken:  # undecodable: NaN predictions, as crossval writes them
        manifest.loc[i, "decode_error"] = "cannot decode: planted"
        probs[i] = np.nan
    labels = labels.copy()
    labels[list(unknown)] = -1
    ctx = AuditContext(manifest=manifest, classes=CLASSES, labels=labels,
                       pred_probs=probs.astype(np.float32))
    return ctx, true, labels


def flags(ctx: AuditContext, settings: dict | None = None) -> list[int]:
    res = get_check("label")(settings).find(ctx)
    return np.flatnonzero(res.frame["is_label_issue"]).tolist()


@pytest.mark.parametrize("filter_by", [
    "prune_by_class",
    "prune_by_noise_rate",  # cleanlab's default
    "both",  # the default operating point
    "confident_learning",
    "predicted_neq_given",
    "low_self_confidence",
])
def test_flipped_found_clean_not(filter_by):
    ctx, _, _ = planted()
    assert flags(ctx, {"filter_by": filter_by}) == FLIPPED


def test_columns_and_summary():
    ctx, true, labels = planted(broken=[10], unknown=[20])
    res = get_check("label")().find(ctx)
    f, s = res.frame, res.summary
    assert np.flatnonzero(f["is_label_issue"]).tolist() == FLIPPED
    # never flag rows without a prediction or a label; their score is 1
    assert f.loc[[10, 20], "label_score"].tolist() == [1.0, 1.0]
    assert f.loc[[10, 20], "label_suggested"].isna().all()
    assert f.loc[FLIPPED, "label_suggested"].tolist() == [CLASSES[t] for t in true[FLIPPED]]
    assert f.loc[FLIPPED, "label_given"].tolist() == [CLASSES[v] for v in labels[FLIPPED]]
    assert (f.loc[FLIPPED, "label_score"] < 0.1).all()
    assert (f.drop(index=FLIPPED + [10, 20])["label_score"] > 0.8).all()
    np.testing.assert_allclose(f.loc[FLIPPED, "label_confidence"], 0.91, rtol=1e-5)
    assert s["count"] == 6 and s["n_scored"] == 88
    assert s["top_pairs"] == [  # 2 each; ties by class order
        {"given": "cat", "suggested": "fox", "count": 2},
        {"given": "dog", "suggested": "cat", "count": 2},
        {"given": "fox", "suggested": "dog", "count": 2}]
    # rows: given label, columns: out-of-fold prediction; row 10 (cat) and 20 (cat)
    # carry no prediction
    assert s["confusion"] == [[26, 0, 2], [2, 28, 0], [0, 2, 28]]
    assert s["per_class_accuracy"] == pytest.approx({"cat": 26 / 28, "dog": 28 / 30,
                                                     "fox": 28 / 30})
    assert s["oof_accuracy"] == pytest.approx(82 / 88)
    assert "warnings" not in s  # a model right 93% of the time is not weak
    assert "confusion" not in get_check("label")({"max_confusion_classes": 2}).find(ctx).summary


def test_threshold_widens_the_flags():
    ctx, _, _ = planted()
    probs = ctx.pred_probs.copy()
    probs[50] = [0.45, 0.40, 0.15]  # a dog the model half-believes is a cat
    ctx.pred_probs = probs
    assert 50 not in flags(ctx)
    assert flags(ctx, {"threshold": 0.5}) == sorted(FLIPPED + [50])


def test_weak_model_is_called_out():
    ctx, _, _ = planted()
    probs = np.full_like(ctx.pred_probs, 1 / 3)
    probs[:, 0] += 0.05  # the model says 'cat' to everything: 1/3 right
    weak = AuditContext(manifest=ctx.manifest, classes=CLASSES, labels=ctx.labels,
                        pred_probs=probs / probs.sum(1, keepdims=True))
    summary = get_check("label")().find(weak).summary
    assert summary["warnings"][0].startswith("out-of-fold accuracy 0.33 is low")


def test_tiny_or_single_class_input_flags_nothing():
    ctx, _, _ = planted()
    labels = np.zeros_like(ctx.labels)  # one class only: nothing to compare
    res = get_check("label")().find(AuditContext(manifest=ctx.manifest, classes=CLASSES,
                                                 labels=labels, pred_probs=ctx.pred_probs))
    assert not res.frame["is_label_issue"].any() and "skipped" in res.summary


@pytest.mark.parametrize("settings, key", [
    ({"filter_by": "prune_by_magic"}, "filter_by"),  # not a cleanlab method
    ({"frac_noise": 0.0}, "frac_noise"),
    ({"threshold": 1.5}, "threshold"),
    ({"score_method": "entropy"}, "score_method"),
])
def test_settings_validated(settings, key):
    with pytest.raises(ParamsError, match=f"label.{key}"):
        get_check("label")(settings)


def test_misaligned_predictions_are_a_clear_error():
    ctx, _, _ = planted()
    bad = AuditContext(manifest=ctx.manifest, classes=CLASSES, labels=ctx.labels,
                       pred_probs=ctx.pred_probs[:, :2])
    with pytest.raises(StageInputError, match="2 columns but there are 3 classes"):
        get_check("label")().find(bad)
