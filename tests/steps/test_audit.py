"""Audit stage, the integrity check and class balance, with planted truth."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from dataqa.checks import REGISTRY, Check, CheckResult
from dataqa.checks.base import AuditContext
from dataqa.checks.integrity import IntegrityCheck
from dataqa.dataset import balance
from dataqa.errors import EngineError, ParamsError, StageInputError
from dataqa.io import write_json, write_npy, write_parquet
from dataqa.steps import audit

# --------------------------------------------------------------------------- integrity
# planted file -> (is_integrity_issue, score, integrity_kind, start of integrity_reason)
INTEGRITY_TRUTH = {
    "cat/c1.png": (False, 1.0, None, None),  # a clean PNG is not flagged
    "<img src=x onerror=alert(1)>/h0.png": (False, 1.0, None, None),  # a name, no problem
    "cat/zero.png": (True, 0.0, "zero_byte", "undecodable: zero-byte"),  # empty file
    "cat/truncated.png": (True, 0.0, "truncated", "undecodable: truncated"),  # cut PNG
    "dog/notes.png": (True, 0.0, "not_an_image", "undecodable: not an image"),  # text
    "cat/huge.png": (True, 0.0, "over_pixel_limit", "undecodable: over the pixel limit"),
    "dog/<script>x</script>.png": (True, 0.5, "wrong_extension",
                            "extension says PNG, content is JPEG"),  # usable, misnamed
    "dog/anim.gif": (True, 0.5, "multi_frame", "3 frames; only the first"),  # animated
}


@pytest.fixture
def planted_manifest(image_folder, manifest_for):
    pf = image_folder()
    return pf, manifest_for(pf)


@pytest.mark.parametrize("rel", sorted(INTEGRITY_TRUTH))
def test_integrity_flags_each_planted_kind(planted_manifest, rel):
    _, m = planted_manifest
    res = IntegrityCheck().find(AuditContext(manifest=m))
    row = res.frame.loc[m.index[m["path"] == rel][0]]
    flag, score, kind, reason = INTEGRITY_TRUTH[rel]
    assert (bool(row["is_integrity_issue"]), row["integrity_score"]) == (flag, score)
    assert (None if pd.isna(row["integrity_kind"]) else row["integrity_kind"]) == kind
    if reason is None:
        assert pd.isna(row["integrity_reason"])
    else:
        assert row["integrity_reason"].startswith(reason)


def test_integrity_summary_counts_per_kind(planted_manifest):
    _, m = planted_manifest
    res = IntegrityCheck().find(AuditContext(manifest=m))
    assert res.summary["by_kind"] == {"zero_byte": 1, "over_pixel_limit": 1,
                                      "not_an_image": 1, "truncated": 1, "corrupt": 0,
                                      "wrong_extension": 1, "multi_frame": 1,
                                      "over_time_budget": 0, "over_size_limit": 0}
    assert (res.summary["count"], res.summary["undecodable"]) == (6, 4)


@pytest.mark.parametrize(("fmt", "ext", "n_frames", "settings", "kind"), [
    ("JPEG", "JPEG", 1, {}, None),  # same format
    ("MPO", "JPEG", 1, {}, None),  # camera multi-picture JPEG in a .jpg: same thing
    ("JPEG", "jpg", 1, {}, None),  # alias spelled as the extension
    ("TIFF", "TIF", 1, {}, None),  # TIF == TIFF
    ("PNG", None, 1, {}, None),  # extension unknown: nothing to compare
    ("PNG", "JPEG", 1, {}, "wrong_extension"),  # real mismatch
    ("PNG", "JPEG", 1, {"flag_wrong_extension": False}, None),  # switched off
    ("GIF", "GIF", 4, {}, "multi_frame"),  # animated
    ("GIF", "GIF", 4, {"flag_multi_frame": False}, None),  # switched off
    ("PNG", "JPEG", 2, {}, "wrong_extension,multi_frame"),  # both kinds, score 0.5
])
def test_integrity_format_rules(fmt, ext, n_frames, settings, kind):
    m = pd.DataFrame({"id": [0], "path": ["a/x"], "label": ["a"], "split": ["train"],
                      "bytes": [100], "format": [fmt], "ext_format": [ext],
                      "n_frames": pd.array([n_frames], dtype="Int64"),
                      "decode_error": pd.array([None], dtype="string")})
    res = IntegrityCheck(settings).find(AuditContext(manifest=m))
    got = res.frame["integrity_kind"].iat[0]
    assert (None if pd.isna(got) else got) == kind
    assert res.frame["integrity_score"].iat[0] == (1.0 if kind is None else 0.5)


def test_integrity_unknown_setting_is_rejected():
    with pytest.raises(ParamsError, match="audit.settings.integrity.flag_blur: unknown key 'flag_blur'"):
        IntegrityCheck({"flag_blur": True})


# --------------------------------------------------------------------------- balance
@pytest.mark.parametrize(("counts", "ratio", "entropy"), [
    ([10, 10, 10], 1.0, pytest.approx(1.0)),  # balanced: ratio 1, entropy 1
    ([40, 10], 4.0, pytest.approx(0.7219280948873623)),  # H(0.8, 0.2) / log 2
    ([5, 0], 5.0 / 5.0, 0.0),  # zero class left out of the ratio; entropy of one class
    ([7], 1.0, 1.0),  # single class: entropy 1 by convention
])
def test_balance_ratio_and_entropy(counts, ratio, entropy):
    s = pd.Series(counts, index=[f"c{i}" for i in range(len(counts))])
    assert balance.imbalance_ratio(s) == ratio
    assert balance.normalized_entropy(s) == entropy


def test_class_balance_counts_decodable_only_and_lists_small_classes():
    m = pd.DataFrame({"label": ["a", "a", "a", "b", "b", "c"],
                      "split": ["train", "train", "test", "train", "test", "train"],
                      "decode_error": [None, None, None, None, "bad", "bad"]})
    got = balance.class_balance(m, min_per_class=2)
    assert got["counts_per_class"] == {"a": 3, "b": 1, "c": 0}  # c: all broken -> 0
    assert got["counts_per_split"] == {"test": {"a": 1, "b": 0, "c": 0},
                                       "train": {"a": 2, "b": 1, "c": 0}}
    assert (got["classes_under_min"], got["n_classes_under_min"]) == (["b", "c"], 2)
    assert (got["min_class_count"], got["imbalance_ratio"]) == (0, 3.0)


# --------------------------------------------------------------------------- stage
def _setup(params_for, pf, manifest, **sections):
    params = params_for(data={"source": str(pf.root)}, scan={"max_pixels": 4096}, **sections)
    write_parquet(params.path("manifest"), manifest)
    return params


def test_audit_stage_outputs(image_folder, manifest_for, params_for):
    pf = image_folder()
    m = manifest_for(pf)
    params = _setup(params_for, pf, m, audit={"checks": ["integrity"], "min_per_class": 3})
    assert audit.run_stage(params) == 0
    issues = pd.read_parquet(params.path("issues"))
    assert list(issues.columns) == ["id", "path", "label", "split", "is_integrity_issue",
                                    "integrity_score", "integrity_kind", "integrity_reason",
                                    # the review outcome (issue 22; no decisions file here)
                                    "review_decision", "review_label_original",
                                    "review_note", "review_by", "review_at", "review_checks",
                                    "review_pending"]
    assert (issues["review_pending"] == "integrity").sum() == 6
    assert (issues["review_decision"] == "").all()
    assert issues["id"].tolist() == m["id"].tolist()
    assert issues["path"].tolist() == m["path"].tolist()
    assert issues["is_integrity_issue"].sum() == 6
    met = json.loads(params.path("audit_metrics").read_text())
    assert met["dataset"] == {"n_files": 15, "n_decodable": 11, "n_undecodable": 4,
                              "undecodable_rate": 4 / 15,
                              "counts_per_split": {"test": 2, "train": 13}}
    assert met["balance"]["counts_per_class"] == {"<img src=x onerror=alert(1)>": 1,
                                                  "cat": 4, "dog": 6}
    assert met["balance"]["classes_under_min"] == ["<img src=x onerror=alert(1)>"]
    assert (met["checks"]["integrity"]["count"], met["checks"]["integrity"]["rate"]) \
        == (6, 0.4)
    assert met["summary"] == {"checks_run": ["integrity"], "n_flagged_any": 6,
                              "rate_flagged_any": 0.4, "n_pending": 6, "suspected": {}}


@pytest.mark.parametrize(("audit_params", "needle"), [
    ({"checks": ["integrity", "lable"]}, "unknown check 'lable'"),  # typo in checks
    ({"checks": ["integrity"], "settings": {"integrty": {}}}, "unknown check 'integrty'"),
    ({"checks": ["integrity"], "settings": {"integrity": {"x": 1}}},
     "audit.settings.integrity.x: unknown key 'x'"),  # unknown setting names it
    ({"checks": ["integrity", "integrity"]}, "audit.checks: expected each check listed once"),
])
def test_bad_audit_params(params_for, audit_params, needle):
    with pytest.raises(ParamsError, match=needle):
        audit.build_checks(params_for(audit=audit_params).audit)


# test-only checks, registered for one test through monkeypatch
class NeedsProbs(Check):
    name = "needs_probs"
    requires = frozenset({"pred_probs"})

    def find(self, ctx):
        conf = np.nan_to_num(ctx.pred_probs.max(axis=1), nan=1.0)
        return self.result(ctx, conf < 0.5, conf)


class Crashes(Check):
    name = "crashes"

    def find(self, ctx):
        return {}["missing"]


class RaisesOwn(Check):
    name = "raises_own"

    def find(self, ctx):
        raise EngineError("single class")


class SeesPrevious(Check):
    name = "sees_previous"

    def find(self, ctx):
        prev = ctx.previous["integrity"].frame["is_integrity_issue"].to_numpy()
        return self.result(ctx, prev, np.where(prev, 0.0, 1.0),
                           seen=",".join(ctx.previous))


@pytest.fixture
def temp_checks(monkeypatch):
    for cls in (NeedsProbs, Crashes, RaisesOwn, SeesPrevious):
        monkeypatch.setitem(REGISTRY, cls.name, cls)


def test_missing_input_names_the_stage(image_folder, manifest_for, params_for, temp_checks):
    pf = image_folder(planted=False)
    params = _setup(params_for, pf, manifest_for(pf), audit={"checks": ["needs_probs"]})
    with pytest.raises(StageInputError, match="needs_probs need pred_probs: run the "
                                              "'crossval' stage first"):
        audit.run_stage(params)


def test_inputs_loaded_with_classes_from_crossval(image_folder, manifest_for, params_for,
                                                  temp_checks):
    pf = image_folder(planted=False)  # 8 rows: cat x4, dog x4
    m = manifest_for(pf)
    params = _setup(params_for, pf, m, audit={"checks": ["needs_probs"]})
    probs = np.full((len(m), 2), 0.5, dtype=np.float32)
    probs[:4] = [0.9, 0.1]
    write_npy(params.path("pred_probs"), probs)
    write_json(params.path("crossval_metrics"), {"classes": ["dog", "cat"]})
    ctx = audit.load_inputs(params, m, audit.build_checks(params.audit))
    assert ctx.classes == ["dog", "cat"]
    assert ctx.labels.tolist() == [1, 1, 1, 1, 0, 0, 0, 0]  # cat=1 in the crossval order
    assert isinstance(ctx.pred_probs, np.memmap) and ctx.tensors is None
    assert audit.run_stage(params) == 0


@pytest.mark.parametrize(("shape", "needle"), [
    ((7, 2), "7 rows but the manifest has 8"),  # stale predictions
    ((8, 3), "does not match 2 classes"),  # class list changed
])
def test_inconsistent_inputs(image_folder, manifest_for, params_for, temp_checks, shape,
                             needle):
    pf = image_folder(planted=False)
    m = manifest_for(pf)
    params = _setup(params_for, pf, m, audit={"checks": ["needs_probs"]})
    write_npy(params.path("pred_probs"), np.full(shape, 0.5, dtype=np.float32))
    with pytest.raises(StageInputError, match=needle):
        audit.run_stage(params)


def test_unexpected_exception_names_the_check(image_folder, manifest_for, params_for,
                                              temp_checks):
    pf = image_folder(planted=False)
    params = _setup(params_for, pf, manifest_for(pf), audit={"checks": ["crashes"]})
    with pytest.raises(audit.CheckFailed, match="check 'crashes' failed: KeyError") as info:
        audit.run_stage(params)
    assert isinstance(info.value.__cause__, KeyError)  # original traceback kept
    assert not params.path("issues").exists()  # nothing half-written


def test_dataqa_error_passes_through(image_folder, manifest_for, params_for, temp_checks):
    pf = image_folder(planted=False)
    params = _setup(params_for, pf, manifest_for(pf), audit={"checks": ["raises_own"]})
    with pytest.raises(EngineError, match="single class"):
        audit.run_stage(params)


def test_checks_see_earlier_results(image_folder, manifest_for, params_for, temp_checks):
    pf = image_folder()
    params = _setup(params_for, pf, manifest_for(pf),
                    audit={"checks": ["integrity", "sees_previous"]})
    assert audit.run_stage(params) == 0
    issues = pd.read_parquet(params.path("issues"))
    assert issues["is_sees_previous_issue"].equals(issues["is_integrity_issue"])
    assert set(issues["sees_previous_seen"]) == {"integrity"}


def test_contract_violation_is_reported():
    m = pd.DataFrame({"decode_error": [None, None]})
    ctx = AuditContext(manifest=m)
    frame = pd.DataFrame({"is_x_issue": [True, False], "x_score": [0.5, 1.5],
                          "other": [1, 2]}, index=m.index)
    with pytest.raises(audit.CheckFailed, match=r"outside \[0, 1\].*without the 'x_' prefix"):
        audit.validate_result("x", CheckResult("x", frame, {}), ctx)
