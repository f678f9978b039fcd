"""The filter stage: planted flags in, exact clean/quarantine partition out."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dataqa.errors import DataQAError, ParamsError
from dataqa.params import FilterParams, validate
from dataqa.prepare import filter as flt
from dataqa.steps import filter as filter_step

# one row per image; the comment says what each row plants
ROWS = [
    # path, label, decode error, label issue/score/suggested, p(suggested), duplicate
    # group, outlier issue/score
    ("a/0.png", "a", None, False, 0.90, None, 0.0, -1, False, 0.9),  # clean
    ("a/1.png", "a", "truncated", False, 1.0, None, 0.0, -1, False, 1.0),  # undecodable
    ("a/2.png", "a", None, True, 0.05, "b", 0.99, -1, False, 0.9),  # sure label error
    ("a/3.png", "a", None, True, 0.20, "b", 0.60, -1, True, 0.3),  # unsure label error + outlier
    ("b/0.png", "b", None, False, 0.90, None, 0.0, 0, False, 0.9),  # keeper of group 0
    ("b/1.png", "b", None, False, 0.90, None, 0.0, 0, False, 0.9),  # duplicate of b/0
    ("b/2.png", "b", None, False, 0.90, None, 0.0, -1, True, 0.1),  # outlier
    ("b/3.png", "b", None, True, 0.10, "a", 0.50, 1, False, 0.9),  # first of group 1, label error
    ("b/4.png", "b", None, False, 0.90, None, 0.0, 1, False, 0.9),  # group 1: kept instead
    ("c/0.png", None, None, False, 1.0, None, 0.0, -1, False, 1.0),  # no label
]


def planted() -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray, list[str]]:
    cols = ["path", "label", "decode_error", "li", "ls", "sugg", "p", "grp", "oi", "os"]
    t = pd.DataFrame(ROWS, columns=cols)
    manifest = pd.DataFrame({"id": np.arange(len(t)), "path": t["path"].astype("string"),
                             "label": t["label"].astype("string"), "split": "train",
                             "decode_error": t["decode_error"].astype("string")})
    grp = t["grp"].to_numpy()
    first = np.r_[[g >= 0 and (grp[:i] != g).all() for i, g in enumerate(grp)]]
    issues = manifest[["id", "path", "label", "split"]].copy()
    issues["is_label_issue"] = t["li"]
    issues["label_score"] = t["ls"]
    issues["label_suggested"] = t["sugg"].astype("string")
    issues["is_near_duplicate_issue"] = (grp >= 0) & ~first  # as the audit flags them
    issues["near_duplicate_score"] = np.where(grp >= 0, 0.02, 1.0)
    issues["near_duplicate_group"] = grp
    issues["is_outlier_issue"] = t["oi"]
    issues["outlier_score"] = t["os"]
    classes = ["a", "b"]
    pred = np.full((len(t), 2), 0.5)
    for i, (s, p) in enumerate(zip(t["sugg"], t["p"])):
        if isinstance(s, str):
            pred[i, classes.index(s)] = p
            pred[i, 1 - classes.index(s)] = 1 - p
    return manifest, issues, pred, classes


POLICY = {"label": "drop", "near_duplicate": "drop", "outlier": "review"}

CASES = [
    # params, clean ids, quarantine {id: checks}, review ids, relabelled ids
    (dict(policy=POLICY), [0, 4, 6, 8],
     {1: "decode", 2: "label", 3: "label", 5: "near_duplicate", 7: "label,near_duplicate",
      9: "no_label"}, [6], []),  # base policy: group 1 keeps b/4, since b/3 is a label error
    (dict(policy={**POLICY, "outlier": "drop"}), [0, 4, 8],
     {1: "decode", 2: "label", 3: "label,outlier", 5: "near_duplicate", 6: "outlier",
      7: "label,near_duplicate", 9: "no_label"}, [], []),  # every failing check is listed
    (dict(policy=POLICY, relabel=True), [0, 2, 4, 6, 8],
     {1: "decode", 3: "label", 5: "near_duplicate", 7: "label,near_duplicate",
      9: "no_label"}, [6], [2]),  # only the sure label error (p=0.99 >= 0.95) is relabelled
    (dict(policy=POLICY, min_score={"outlier": 0.05}), [0, 4, 6, 8],
     {1: "decode", 2: "label", 3: "label", 5: "near_duplicate", 7: "label,near_duplicate",
      9: "no_label"}, [], []),  # a lower outlier threshold: b/2 (0.1) no longer fails
    (dict(policy={"label": "keep", "near_duplicate": "keep", "outlier": "keep"}),
     [0, 2, 3, 4, 5, 6, 7, 8], {1: "decode", 9: "no_label"}, [], []),  # keep = ignore flags
    (dict(policy={"label": "keep"}, default_policy="drop"), [0, 2, 4, 7],
     {1: "decode", 3: "outlier", 5: "near_duplicate", 6: "outlier", 8: "near_duplicate",
      9: "no_label"}, [], []),  # default policy; with labels kept group 1 keeps b/3
    (dict(policy={"label": "review", "near_duplicate": "review", "outlier": "keep"}),
     [0, 2, 3, 4, 5, 6, 7, 8], {1: "decode", 9: "no_label"}, [2, 3, 5, 7, 8],
     []),  # review marks, never drops; undecodable and unlabelled rows still go
]


@pytest.mark.parametrize("kw, clean_ids, quarantined, review_ids, relabelled", CASES)
def test_partition_and_reasons(kw, clean_ids, quarantined, review_ids, relabelled):
    manifest, issues, pred, classes = planted()
    res = flt.filter_rows(manifest, issues, params=FilterParams(**kw), pred_probs=pred,
                          classes=classes)
    assert res.clean["id"].tolist() == clean_ids
    assert dict(zip(res.quarantine["id"], res.quarantine["check"])) == quarantined
    assert res.clean.loc[res.clean["review"], "id"].tolist() == review_ids
    assert res.clean.loc[res.clean["relabelled"], "id"].tolist() == relabelled
    # nothing lost, nothing twice
    assert sorted(res.clean["id"].tolist() + res.quarantine["id"].tolist()) == list(range(10))
    assert res.summary["n_clean"] + res.summary["n_quarantined"] == 10


def test_reason_words_and_relabel_record():
    manifest, issues, pred, classes = planted()
    res = flt.filter_rows(manifest, issues, params=FilterParams(
        policy={**POLICY, "outlier": "drop"}, relabel=True), pred_probs=pred, classes=classes)
    q = res.quarantine.set_index("id")
    assert q.loc[1, "reason"] == "decode: truncated"
    assert q.loc[5, "reason"] == "near_duplicate: duplicate of id 4"
    assert q.loc[3, "reason"] == ("label: score 0.200, given 'a', suggested 'b'; "
                                  "outlier: score 0.300")
    assert q.loc[3, "score"] == pytest.approx(0.2)  # the worst failing score
    assert np.isnan(q.loc[9, "score"])  # no score for a missing label
    c = res.clean.set_index("id")
    assert (c.loc[2, "label"], c.loc[2, "label_original"]) == ("b", "a")
    assert res.summary["clean_per_class"] == {"a": 1, "b": 3}
    assert res.summary["quarantined_share"] == pytest.approx(0.6)


def test_group_without_survivor_is_all_quarantined():
    manifest, issues, pred, classes = planted()
    issues.loc[[4], "is_label_issue"] = True  # now both members of group 0 are suspicious
    issues.loc[[5], "is_label_issue"] = True
    res = flt.filter_rows(manifest, issues, params=FilterParams(policy=POLICY))
    q = dict(zip(res.quarantine["id"], res.quarantine["check"]))
    assert q[4] == "label" and q[5] == "label,near_duplicate"  # b/0 stays the reference


ERRORS = [
    (dict(policy={"lable": "drop"}), "filter.policy.lable: unknown check 'lable'"),  # typo
    (dict(min_score={"outlier": 1.5}), r"filter.min_score.outlier: expected a value in \[0, 1\], got 1.5"),  # range
    (dict(min_score={"near_duplicate": 0.5}), "flags duplicate groups"),  # no score cut
    (dict(relabel_min_confidence=2.0), "relabel_min_confidence"),  # range
]


@pytest.mark.parametrize("kw, message", ERRORS)
def test_bad_params(kw, message):
    manifest, issues, _, _ = planted()
    with pytest.raises(ParamsError, match=message):
        flt.filter_rows(manifest, issues, params=validate(FilterParams, kw))


def test_relabel_needs_predictions():
    manifest, issues, _, _ = planted()
    with pytest.raises(DataQAError, match="pred_probs"):
        flt.filter_rows(manifest, issues, params=FilterParams(relabel=True))


def test_partition_violation_raises():
    manifest, issues, _, _ = planted()
    res = flt.filter_rows(manifest, issues, params=FilterParams(policy=POLICY))
    with pytest.raises(DataQAError, match="do not partition"):
        flt.check_partition(manifest, res.clean, res.quarantine.iloc[1:])
    with pytest.raises(DataQAError, match="in both"):
        flt.check_partition(manifest, res.clean, pd.concat([res.quarantine, res.clean[:1]]))


def test_stage_writes_tables_and_metrics(prep_project):
    proj = prep_project(filter={"policy": {"outlier": "drop"}})
    issues = proj.issues()
    issues.loc[issues["path"] == "cat/001.png", ["is_outlier_issue", "outlier_score"]] = [True, 0.1]
    proj.write_issues(issues)
    before = proj.tree_digest()
    assert filter_step.run_stage(proj.params) == 0
    p = proj.params
    clean, quar = pd.read_parquet(p.path("clean")), pd.read_parquet(p.path("quarantine"))
    assert sorted(clean["id"].tolist() + quar["id"].tolist()) == proj.manifest["id"].tolist()
    assert sorted(quar["path"]) == ["cat/001.png", "cat/broken.png"]
    assert proj.tree_digest() == before  # raw files untouched
    import json
    metrics = json.loads(p.path("filter_metrics").read_text())
    assert metrics["clean_per_class"] == {"cat": 7, "dog": 3, "owl": 2}
    assert metrics["checks"]["outlier"] == {"action": "drop", "failed": 1, "quarantined": 1,
                                            "review": 0, "min_score": None}


def test_policy_for_check_not_run_names_audit_checks():
    manifest, issues, _, _ = planted()
    issues = issues.drop(columns=["is_outlier_issue", "outlier_score"])
    with pytest.raises(ParamsError, match="filter.policy.outlier"):
        flt.filter_rows(manifest, issues, params=FilterParams().replace(policy={"outlier": "drop"}))


# --------------------------------------------------------------------------- review
def with_review(issues: pd.DataFrame, decided: dict[str, tuple[str, str, str]]
                ) -> pd.DataFrame:
    """``issues`` plus the audit's review columns: path -> (decision, new label, checks
    covered); the audit writes the reviewed class into ``label``."""
    out = issues.copy()
    n = len(out)
    cols = {c: [""] * n for c in ("review_decision", "review_label_original", "review_note",
                                  "review_by", "review_at", "review_checks",
                                  "review_pending")}
    for i, path in enumerate(out["path"]):
        if path in decided:
            decision, label, checks = decided[path]
            cols["review_decision"][i], cols["review_checks"][i] = decision, checks
            cols["review_by"][i], cols["review_note"][i] = "ann", "seen"
            if decision == "relabel":
                cols["review_label_original"][i] = out.at[i, "label"]
                out.at[i, "label"] = label
    for c, v in cols.items():
        out[c] = pd.Series(v, dtype="string")
    return out


def test_review_decisions_come_before_the_policy() -> None:
    manifest, issues, _, _ = planted()
    issues = with_review(issues, {
        "a/0.png": ("exclude", "", ""),  # clean by every check: a person excludes it
        "a/2.png": ("relabel", "b", "label"),  # the sure label error, relabelled
        "b/1.png": ("keep", "", "near_duplicate"),  # a copy a person keeps
        "b/2.png": ("keep", "", "label"),  # kept for another check: its outlier flag stands
    })
    res = flt.filter_rows(manifest, issues, params=FilterParams(policy=POLICY))
    clean = res.clean.set_index("path")
    q = res.quarantine.set_index("path")
    assert q.at["a/0.png", "check"] == "review"
    assert q.at["a/0.png", "reason"] == "review: excluded by review (ann, 'seen')"
    assert q.at["a/0.png", "decision"] == "exclude"
    row = clean.loc["a/2.png"]
    assert (row["label"], row["label_original"], bool(row["relabelled"]), row["decision"]) \
        == ("b", "a", True, "relabel")
    assert "b/1.png" in clean.index and "b/0.png" in clean.index  # both copies stay
    assert bool(clean.at["b/2.png", "review"])  # its outlier flag: the policy's review
    assert res.summary["review"] == {"excluded": 1, "relabelled": 1, "kept": 2}
    flt.check_partition(manifest, res.clean, res.quarantine)


def test_review_exclude_of_a_group_keeper_moves_the_keep_to_the_next() -> None:
    manifest, issues, _, _ = planted()
    issues = with_review(issues, {"b/0.png": ("exclude", "", "")})
    res = flt.filter_rows(manifest, issues, params=FilterParams(policy=POLICY))
    assert "b/1.png" in set(res.clean["path"])  # group 0 keeps its other member
    assert "b/0.png" in set(res.quarantine["path"])
