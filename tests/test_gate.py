"""Gate: table-driven rules, exit code, gate.json exact, JUnit XML."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest

from dataqa import gate
from dataqa.errors import ParamsError, StageInputError
from dataqa.io import write_json
from dataqa.params import GateParams, validate
from dataqa.steps import gate as gate_step

OFF = dict(max_undecodable_rate=None, min_images_per_class=None,
           max_cross_split_duplicates=None, max_imbalance_ratio=None)


def metrics(*, undecodable_rate=0.01, min_count=12, imbalance=2.0,
            checks=None) -> dict:
    return {"dataset": {"undecodable_rate": undecodable_rate},
            "balance": {"min_class_count": min_count, "imbalance_ratio": imbalance},
            "checks": checks if checks is not None else {"integrity": {"count": 1, "rate": 0.01}}}


# (gate settings, metrics, expected [(rule name, passed)])
CASES = [
    (dict(OFF, max_undecodable_rate=0.05), metrics(undecodable_rate=0.05),
     [("max_undecodable_rate", True)]),  # equal to the maximum passes (<=)
    (dict(OFF, max_undecodable_rate=0.05), metrics(undecodable_rate=0.0501),
     [("max_undecodable_rate", False)]),  # just above fails
    (dict(OFF, min_images_per_class=12), metrics(min_count=12),
     [("min_images_per_class", True)]),  # equal to the minimum passes (>=)
    (dict(OFF, min_images_per_class=13), metrics(min_count=12),
     [("min_images_per_class", False)]),  # one short fails
    (dict(OFF, max_imbalance_ratio=3.0), metrics(imbalance=4.0),
     [("max_imbalance_ratio", False)]),  # imbalance read from balance.imbalance_ratio
    (dict(OFF, max_imbalance_ratio=3.0), metrics(imbalance=None),
     [("max_imbalance_ratio", None)]),  # null metric (no images): not evaluated
    (dict(OFF, max_rates={"integrity": 0.02}), metrics(),
     [("max_rates.integrity", True)]),  # one rule per max_rates entry
    (dict(OFF, max_rates={"integrity": 0.005}), metrics(),
     [("max_rates.integrity", False)]),
    (dict(OFF, max_rates={"integrity": 0.1}), metrics(checks={}),
     [("max_rates.integrity", None)]),  # a registered check that did not run: not evaluated
    (dict(OFF, max_cross_split_duplicates=0), metrics(),
     [("max_cross_split_duplicates", None)]),  # no check reports pairs: not evaluated
    (dict(OFF, max_cross_split_duplicates=0),
     metrics(checks={"exact_duplicate": {"rate": 0.1, "cross_split_pairs": 2},
                     "near_duplicate": {"rate": 0.1, "cross_split_pairs": 0}}),
     [("max_cross_split_duplicates.exact_duplicate", False),
      ("max_cross_split_duplicates.near_duplicate", True)]),  # one rule per reporting check
    (dict(OFF), metrics(), []),  # every threshold null: no rule at all
]


@pytest.mark.parametrize(("settings", "m", "expected"), CASES)
def test_evaluate_rules(settings, m, expected):
    rules = gate.evaluate(GateParams(**settings), m)
    assert [(r.name, r.passed) for r in rules] == expected


def test_rule_order_follows_the_table_and_values_are_read_back():
    rules = gate.evaluate(GateParams(max_undecodable_rate=0.1, min_images_per_class=5,
                                     max_rates={"integrity": 0.5},
                                     max_cross_split_duplicates=None,
                                     max_imbalance_ratio=10.0), metrics())
    assert [(r.name, r.value, r.threshold, r.comparison) for r in rules] == [
        ("max_undecodable_rate", 0.01, 0.1, "<="),
        ("min_images_per_class", 12.0, 5, ">="),
        ("max_rates.integrity", 0.01, 0.5, "<="),
        ("max_imbalance_ratio", 2.0, 10.0, "<="),
    ]


@pytest.mark.parametrize(("settings", "needle"), [
    (dict(OFF, max_undecodable_rate=1.5), "gate.max_undecodable_rate: expected a value in [0, 1], got 1.5"),
    (dict(OFF, max_rates={"integrity": -0.1}), "gate.max_rates.integrity: expected a value in [0, 1], got -0.1"),
    (dict(OFF, max_imbalance_ratio=0.5), "gate.max_imbalance_ratio: expected a value in [1, "),  # ratio >= 1
])
def test_bad_thresholds_are_params_errors(settings, needle):
    """The ranges are GateParams' declarations, checked when the section is built."""
    with pytest.raises(ParamsError) as info:
        validate(GateParams, settings)
    assert needle in str(info.value)


def test_non_numeric_metric_is_a_stage_input_error():
    with pytest.raises(StageInputError, match="dataset.undecodable_rate"):
        gate.evaluate(GateParams(**dict(OFF, max_undecodable_rate=0.1)),
                      metrics(undecodable_rate="lots"))


# --------------------------------------------------------------------------- stage
def _stage(params_for, tmp_path, gate_settings, m):
    params = params_for(gate=gate_settings)
    write_json(params.path("audit_metrics"), m)
    return params, gate_step.run_stage(params)


def test_failing_threshold_exits_1_and_passing_exits_0(params_for, tmp_path, capsys):
    m = metrics(undecodable_rate=0.2)
    _, code = _stage(params_for, tmp_path, dict(OFF, max_undecodable_rate=0.1), m)
    assert code == 1
    assert "FAILED" in capsys.readouterr().out
    _, code = _stage(params_for, tmp_path, dict(OFF, max_undecodable_rate=0.25), m)
    assert code == 0


def test_not_evaluated_rule_does_not_fail_the_gate(params_for, tmp_path):
    _, code = _stage(params_for, tmp_path, dict(OFF, max_cross_split_duplicates=0), metrics())
    assert code == 0


def test_gate_json_exact(params_for, tmp_path):
    params, code = _stage(params_for, tmp_path,
                          dict(OFF, max_undecodable_rate=0.1, min_images_per_class=20,
                               max_cross_split_duplicates=0), metrics())
    assert code == 1
    doc = json.loads(params.path("gate_json").read_text())
    assert doc == {
        "on": "audit", "passed": False, "n_rules": 3, "n_failed": 1, "n_not_evaluated": 1,
        "rules": {
            "max_undecodable_rate": {
                "value": 0.01, "threshold": 0.1, "comparison": "<=", "passed": True,
                "message": "share of undecodable files = 0.01 within <= 0.1"},
            "min_images_per_class": {
                "value": 12.0, "threshold": 20, "comparison": ">=", "passed": False,
                "message": "decodable images in the smallest class = 12 violates >= 20"},
            "max_cross_split_duplicates": {
                "value": None, "threshold": 0, "comparison": "<=", "passed": None,
                "message": "duplicate pairs across splits found by any check (leakage) "
                           "and pending review: not evaluated (no check reports "
                           "'checks.*.pending_cross_split_pairs')"},
        },
    }


def test_junit_has_one_testcase_per_rule_and_escapes(params_for, tmp_path):
    # a check name with XML metacharacters (present in the metrics, so accepted)
    odd = 'a<b&"c'
    m = metrics(checks={odd: {"rate": 0.5}, "integrity": {"rate": 0.0}})
    params, code = _stage(params_for, tmp_path,
                          dict(OFF, max_undecodable_rate=0.1,
                               max_rates={odd: 0.1, "integrity": 0.1},
                               max_cross_split_duplicates=0), m)
    assert code == 1
    root = ET.parse(params.path("gate_junit")).getroot()
    suite = root.find("testsuite")
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == [
        "max_undecodable_rate", f"max_rates.{odd}", "max_rates.integrity",
        "max_cross_split_duplicates"]
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("4", "1", "1")
    failure = cases[1].find("failure")
    assert failure is not None and odd in failure.get("message")
    assert cases[0].find("failure") is None and cases[2].find("failure") is None
    assert cases[3].find("skipped") is not None


def test_missing_metrics_names_the_stage(params_for):
    with pytest.raises(StageInputError, match="run the 'audit' stage first"):
        gate_step.run_stage(params_for())


def test_unknown_gate_is_params_error(params_for):
    with pytest.raises(ParamsError, match="unknown gate 'nope'"):
        gate_step.run_stage(params_for(), on="nope")
