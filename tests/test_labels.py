"""dataqa.label_issues: the public label verdict on plain arrays (the label check calls
it), and a clear error for each kind of bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import dataqa
from dataqa.errors import DataQAError, PredictionsError

FLIPPED = [3, 4, 33, 34, 63, 64]


def planted() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """90 rows, 30 per true class; flipped rows: the model is sure of the true class."""
    true = np.repeat(np.arange(3), 30)
    labels = true.copy()
    labels[FLIPPED] = (true[FLIPPED] + 1) % 3
    probs = np.full((90, 3), 0.09)
    probs[np.arange(90), true] = 0.82
    probs[FLIPPED] = 0.045
    probs[FLIPPED, true[FLIPPED]] = 0.91
    return labels, probs, true


def test_columns_and_verdict() -> None:
    labels, probs, true = planted()
    frame = dataqa.label_issues(labels, probs)
    assert isinstance(frame, pd.DataFrame) and len(frame) == 90
    assert list(frame.columns) == ["is_label_issue", "label_score", "given_label",
                                   "suggested_label", "suggested_confidence"]
    assert np.flatnonzero(frame["is_label_issue"]).tolist() == FLIPPED
    assert frame.loc[FLIPPED, "suggested_label"].tolist() == true[FLIPPED].tolist()
    assert frame["given_label"].tolist() == labels.tolist()
    np.testing.assert_allclose(frame.loc[FLIPPED, "suggested_confidence"], 0.91)
    # cleanlab's ranking: the flipped rows score lowest
    worst = frame.sort_values("label_score").index[:len(FLIPPED)]
    assert sorted(worst) == FLIPPED


def test_class_names_and_settings() -> None:
    labels, probs, true = planted()
    frame = dataqa.label_issues(labels, probs, class_names=["cat", "dog", "fox"],
                                filter_by="predicted_neq_given", threshold=None)
    assert frame.loc[3, "given_label"] == "dog" and frame.loc[3, "suggested_label"] == "cat"
    assert np.flatnonzero(frame["is_label_issue"]).tolist() == FLIPPED


def test_threshold_widens() -> None:
    labels, probs, _ = planted()
    probs[10] = [0.5, 0.49, 0.01]  # a doubtful clean row: score 0.5
    off = dataqa.label_issues(labels, probs, threshold=None)
    wide = dataqa.label_issues(labels, probs, threshold=0.6)
    assert not off.loc[10, "is_label_issue"] and wide.loc[10, "is_label_issue"]


def test_label_check_uses_the_api(monkeypatch: pytest.MonkeyPatch) -> None:
    """One implementation: the check's verdict is the API's."""
    from dataqa.checks import AuditContext
    from dataqa.checks import label as label_check
    from dataqa.dataset.manifest import COLUMNS

    calls: list[int] = []
    real = label_check.label_issues

    def spy(*args: object, **kwargs: object) -> pd.DataFrame:
        calls.append(1)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(label_check, "label_issues", spy)
    labels, probs, _ = planted()
    manifest = pd.DataFrame({c: np.zeros(90, np.int64) if t == "int64" else
                             pd.Series([None] * 90, dtype=t) for c, t in COLUMNS.items()})
    manifest["label"] = [str(v) for v in labels]
    ctx = AuditContext(manifest=manifest, classes=["0", "1", "2"], labels=labels,
                       pred_probs=probs.astype(np.float32))
    res = label_check.LabelCheck().find(ctx)
    assert calls == [1]
    api = real(labels, probs)
    np.testing.assert_array_equal(res.frame["is_label_issue"], api["is_label_issue"])
    np.testing.assert_allclose(res.frame["label_score"], api["label_score"], rtol=1e-5)


@pytest.mark.parametrize("labels,probs,match", [
    (np.zeros(3, int), np.full(3, 0.5), "must be 2-D"),
    (np.zeros(3, int), np.ones((3, 1)), "1 column"),
    (np.zeros(4, int), np.full((3, 2), 0.5), r"labels must have shape \(3,\)"),
    (np.array([0, 1, 2]), np.full((3, 2), 0.5), "label 2 at row 2 is out of range"),
    (np.array([0, -1, 1]), np.full((3, 2), 0.5), "label -1 at row 1"),
    (np.array([0.5, 1, 0]), np.full((3, 2), 0.5), "integer class ids"),
    (np.array(["a", "b", "a"]), np.full((3, 2), 0.5), "integer class ids"),
    (np.array([0, 1, 0]), np.array([[0.5, 0.5], [np.nan, 0.5], [0.5, 0.5]]),
     "row 1 column 0 is nan"),
    (np.array([0, 1, 0]), np.array([[0.5, 0.5], [0.5, 0.5], [0.5, np.inf]]),
     "row 2 column 1 is inf"),
    (np.array([0, 1, 0]), np.array([[0.5, 0.5], [0.5, 0.4], [0.5, 0.5]]),
     "row 1 sums to 0.9"),
    (np.array([0, 1, 0]), np.array([[2.0, -1.0], [0.5, 0.5], [0.5, 0.5]]),
     "row 0 has a negative probability"),
    (np.array([0, 1]), [["a", "b"], ["c", "d"]], "not a numeric array"),
])
def test_bad_input_is_a_named_error(labels: object, probs: object, match: str) -> None:
    with pytest.raises(PredictionsError, match=match) as info:
        dataqa.label_issues(labels, probs)
    assert isinstance(info.value, ValueError) and isinstance(info.value, DataQAError)


def test_bad_settings_and_class_names() -> None:
    labels, probs, _ = planted()
    with pytest.raises(PredictionsError, match="filter_by 'nope'"):
        dataqa.label_issues(labels, probs, filter_by="nope")  # type: ignore[arg-type]
    with pytest.raises(PredictionsError, match="threshold 2"):
        dataqa.label_issues(labels, probs, threshold=2)
    with pytest.raises(PredictionsError, match="2 class names but pred_probs has 3"):
        dataqa.label_issues(labels, probs, class_names=["a", "b"])


def test_one_class_flags_nothing() -> None:
    with pytest.warns(UserWarning, match="fewer than 2 distinct labels"):
        frame = dataqa.label_issues(np.zeros(5, int), np.tile([0.9, 0.1], (5, 1)))
    assert not frame["is_label_issue"].any() and (frame["label_score"] == 1).all()


def test_next_band_threshold_flags_exactly_the_next_rows() -> None:
    """The report's 'next 50 by score': the threshold it names widens the flags by
    exactly those rows, the next ones by score (no retraining: same probabilities)."""
    from dataqa.labels import next_band

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, 400)
    probs = rng.dirichlet(np.ones(4) * 0.5, 400)
    frame = dataqa.label_issues(labels, probs)
    score = frame["label_score"].to_numpy()
    flags = frame["is_label_issue"].to_numpy()
    band = next_band(score, flags, 50)
    assert band["size"] == 50
    wider = dataqa.label_issues(labels, probs, threshold=band["threshold"])
    added = wider["is_label_issue"].to_numpy() & ~flags
    assert added.sum() == 50
    unflagged = np.sort(score[~flags])
    np.testing.assert_array_equal(np.sort(score[added]), unflagged[:50])
    assert band["score_from"] == unflagged[0] and band["score_to"] == unflagged[49]
    # fewer unflagged rows than the band: all of them, and a threshold above them
    small = next_band(np.array([0.1, 0.2, 0.3]), np.array([True, False, False]), 50)
    assert small["size"] == 2 and small["threshold"] > 0.3


def test_operating_point_of_the_check() -> None:
    """The label check's summary says the noise estimate, the rule and the next band."""
    from dataqa.checks import AuditContext
    from dataqa.checks.label import LabelCheck
    from dataqa.dataset.manifest import COLUMNS

    labels, probs, _ = planted()
    manifest = pd.DataFrame({c: np.zeros(90, np.int64) if t == "int64" else
                             pd.Series([None] * 90, dtype=t) for c, t in COLUMNS.items()})
    manifest["label"] = [str(v) for v in labels]
    ctx = AuditContext(manifest=manifest, classes=["0", "1", "2"], labels=labels,
                       pred_probs=probs)
    res = LabelCheck({"next_band": 10}).find(ctx)
    op = res.summary["operating_point"]
    assert op["noise_count"] == len(FLIPPED) and op["noise_rate"] == pytest.approx(6 / 90)
    assert "filter_by" in op["rule"]
    band = op["next_band"]  # the planted clean rows tie in score: a tie is added whole
    assert band["size"] >= 10
    wider = dataqa.label_issues(labels, probs, threshold=band["threshold"])
    assert wider["is_label_issue"].sum() == len(FLIPPED) + band["size"]
    with pytest.raises(DataQAError, match="max_class_threshold"):
        LabelCheck({"max_class_threshold": 1.5})


def test_temperature_scaling_recovers_a_planted_temperature() -> None:
    """calibrate: T fitted by likelihood; probabilities sharpened by T = 0.5 come back."""
    from dataqa.labels import apply_temperature, fit_temperature

    rng = np.random.default_rng(1)
    logits = rng.normal(size=(4000, 5)) * 2
    true_p = apply_temperature(np.exp(logits) / np.exp(logits).sum(1, keepdims=True), 1.0)
    labels = np.array([rng.choice(5, p=row) for row in true_p])
    sharp = apply_temperature(true_p, 0.5)  # over-confident by a factor 2 in log space
    assert fit_temperature(labels, sharp) == pytest.approx(2.0, rel=0.1)
    frame = dataqa.label_issues(labels, sharp, calibrate=True)
    assert frame.attrs["operating_point"]["temperature"] == pytest.approx(2.0, rel=0.1)
    # label_score stays the score of the probabilities as given
    np.testing.assert_allclose(frame["label_score"], sharp[np.arange(4000), labels])
