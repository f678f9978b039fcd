"""Pending vs decided (dataqa/review/status.py): table-driven over one image each."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dataqa import label_issues
from dataqa.review import Decision, match, pending_checks, review_summary

S = [c * 64 for c in "abcdef"]


def test_pending_rules() -> None:
    flags = {"dark": np.array([1, 1, 1, 0, 1, 0], bool),
             "blurry": np.array([0, 1, 0, 0, 1, 0], bool),
             "label": np.array([0, 0, 0, 1, 1, 0], bool)}  # a weak model's: suspicions
    decisions = [
        None,  # 0: no decision: its flag is pending
        Decision(S[1], "keep", checks=("dark",)),  # 1: blurry is new since: pending again
        Decision(S[2], "keep", checks=("dark",)),  # 2: covered: decided
        None,  # 3: a suspicion only: nothing pending
        Decision(S[4], "exclude"),  # 4: excluded: nothing pending
        Decision(S[5], "keep", by="ann"),  # 5: nothing flagged
    ]
    pend = pending_checks(flags, decisions, demoted=["label"])
    assert pend == [["dark"], ["blurry"], [], [], [], []]
    m = match(S, [d for d in decisions if d is not None])
    s = review_summary(flags, m, demoted=["label"])
    assert (s["n_flagged"], s["n_pending"], s["n_decided"]) == (4, 2, 4)
    assert s["suspicions"] == {"label": 2}
    assert s["checks"]["dark"] == {"flagged": 4, "pending": 1, "waived": 3,
                                   "waived_by": {"unknown": 3}}
    assert "label" not in s["checks"]


def test_match_by_content_unknown_class_and_same_class() -> None:
    ds = [Decision(S[0], "relabel", label="dog", row=2),
          Decision(S[1], "relabel", label="bird", row=3),
          Decision(S[2], "relabel", label="cat", row=4),
          Decision(S[5], "keep", row=5)]
    m = match([S[0], S[1], S[2], S[0]], ds, classes=["cat", "dog"],
              labels=["cat", "cat", "cat", "cat"], source="reviews.csv")
    assert [d.decision if d else None for d in m.decisions] == \
        ["relabel", None, "keep", "relabel"]  # an exact copy shares its decision
    assert m.warnings == ["reviews.csv: row 3: relabel to 'bird', a class the dataset does "
                          "not have (cat, dog); ignored, the image stays pending"]
    assert [d.row for d in m.unmatched] == [5]
    labels = m.reviewed_labels(pd.Series(["cat"] * 4, dtype="string"))
    assert labels.tolist() == ["dog", "cat", "cat", "dog"]


@pytest.mark.parametrize("relabel", [False, True])
def test_a_relabelled_image_is_not_flagged_for_its_old_label(relabel: bool) -> None:
    # a confident model: image 0 is a dog filed as a cat. Under the reviewed label
    # (what the audit runs the checks on) the label check does not flag it again.
    rng = np.random.default_rng(0)
    y = np.r_[np.zeros(40, int), np.ones(40, int)]
    probs = np.where(y[:, None] == np.arange(2), 0.95, 0.05) + rng.uniform(0, .01, (80, 2))
    probs[0] = [0.02, 0.98]
    probs /= probs.sum(axis=1, keepdims=True)
    m = match([f"{i:064x}" for i in range(80)],
              [Decision(f"{0:064x}", "relabel", label="dog")] if relabel else [],
              classes=["cat", "dog"], labels=["cat"] * 40 + ["dog"] * 40)
    labels = m.reviewed_labels(pd.Series(["cat"] * 40 + ["dog"] * 40, dtype="string"))
    flagged = label_issues(labels.map({"cat": 0, "dog": 1}).to_numpy(int), probs)
    assert bool(np.asarray(flagged["is_label_issue"])[0]) is not relabel


def test_leaks_resolved_by_review_leave_the_gate() -> None:
    from dataqa.gate import evaluate
    from dataqa.params import GateParams
    from dataqa.steps.audit import add_pending_leaks

    manifest = pd.DataFrame({"path": ["a", "b", "c", "d", "e", "f"],
                             "split": ["train", "val"] * 3})
    issues = manifest.assign(near_duplicate_group=[0, 0, 1, 1, 2, 2])
    metrics = {"checks": {"near_duplicate": {"cross_split_pairs": 3}}}
    m = match(S, [Decision(S[1], "exclude"),  # group 0: its val copy excluded
                  Decision(S[3], "keep", checks=("near_duplicate",))])  # group 1: accepted
    add_pending_leaks(metrics, manifest, issues, m)
    assert metrics["checks"]["near_duplicate"]["pending_cross_split_pairs"] == 1  # group 2
    rule = next(r for r in evaluate(GateParams(), metrics)
                if r.name == "max_cross_split_duplicates.near_duplicate")
    assert (rule.value, rule.passed) == (1, False)
