"""`dvc repro` end to end on a tiny dataset: every stage runs; a second run does
nothing; editing a report template reruns only the report stages (never `tune`);
changing one params key reruns only the stages downstream of it; a failing gate stops
the pipeline after the report is written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from dataqa.steps import reads
from tests.pipeline.workspace import make_workspace, read_params, run, stages_run, write_params

pytestmark = pytest.mark.slow

DVC_STAGES = list(yaml.safe_load((Path(__file__).resolve().parents[2] / "dvc.yaml")
                                 .read_text())["stages"])


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = make_workspace(tmp_path_factory.mktemp("repro") / "ws")
    proc = run(["dvc", "repro"], root)
    assert sorted(stages_run(proc.stdout + proc.stderr)) == sorted(DVC_STAGES)
    return root


def test_every_output_written(workspace: Path) -> None:
    params = read_params(workspace)
    for name, rel in params["paths"].items():
        assert (workspace / rel).exists(), f"paths.{name}: {rel} was not written"
    issues_cols = set(__import__("pandas").read_parquet(workspace / params["paths"]["issues"]))
    for check in params["audit"]["checks"]:
        assert {f"is_{check}_issue", f"{check}_score"} <= issues_cols
    gate = json.loads((workspace / params["paths"]["gate_json"]).read_text())
    assert gate["passed"] is True


def test_second_repro_is_a_no_op(workspace: Path) -> None:
    # only the cheap source listing runs (always_changed); its output is unchanged, so
    # nothing after it reruns
    lock = (workspace / "dvc.lock").read_text()
    proc = run(["dvc", "repro"], workspace)
    assert stages_run(proc.stdout + proc.stderr) == ["fingerprint"]
    assert (workspace / "dvc.lock").read_text() == lock
    status = json.loads(run(["dvc", "status", "--json"], workspace).stdout)
    assert status == {"fingerprint": ["always changed"]}


def test_every_declared_plot_renders(workspace: Path) -> None:
    # `dvc plots show` reads every plot dvc.yaml declares; a JSON whose shape DVC cannot
    # read (the learning curve's once) is an error there and a missing chart for the user
    out = json.loads(run(["dvc", "plots", "show", "--json"], workspace).stdout)
    assert out.get("errors") in (None, []), out.get("errors")
    declared = [o.key for r in reads.STAGES.values() for o in r.out_list() if o.kind == "plots"]
    params = read_params(workspace)
    for key in declared:
        rel = params["paths"][key.split(".", 1)[1]]
        shown = out["data"].get(rel)
        assert shown, f"{key} ({rel}): no chart in `dvc plots show --json`"
        assert shown[0]["content"]["data"]["values"], f"{key} ({rel}): an empty chart"


def test_a_scan_limit_makes_every_stage_reading_it_stale(workspace: Path) -> None:
    # the report, augment and tuning report re-open images under scan's limits: changing
    # one makes them stale, as it does the scan (issue 20: dvc.yaml listed only max_pixels)
    params = read_params(workspace)
    before = params["scan"]["decode_timeout"]
    params["scan"]["decode_timeout"] = before + 1
    write_params(workspace, params)
    status = json.loads(run(["dvc", "status", "--json"], workspace).stdout)
    readers = {name for name, r in reads.STAGES.items()
               if any(k in ("scan", "scan.decode_timeout") for k in r.params)}
    assert {"report", "augment", "tuning_report", "scan", "tensors"} <= readers
    assert set(status) == readers | {"fingerprint"}
    params["scan"]["decode_timeout"] = before
    write_params(workspace, params)
    assert json.loads(run(["dvc", "status", "--json"], workspace).stdout) == {
        "fingerprint": ["always changed"]}


def test_tuning_report_inputs_never_rerun_the_search(workspace: Path) -> None:
    # stages depend on dataqa.version, not on dataqa's source files (issue 11), so the
    # tuning report's own stage shows through its params: they never rerun the search
    params = read_params(workspace)
    params["report"]["thumb_size"] = params["report"]["thumb_size"] + 8
    write_params(workspace, params)
    status = json.loads(run(["dvc", "status", "--json"], workspace).stdout)
    # never the search (fingerprint: the always-run source listing)
    assert set(status) == {"fingerprint", "report", "tuning_report"}
    assert "tune" not in status
    proc = run(["dvc", "repro"], workspace)
    assert set(stages_run(proc.stdout + proc.stderr)) <= {"fingerprint", "report",
                                                          "tuning_report", "gate"}
    assert json.loads(run(["dvc", "status", "--json"], workspace).stdout) == {
        "fingerprint": ["always changed"]}


def test_another_dataqa_version_makes_every_stage_stale(workspace: Path) -> None:
    # what `dataqa init --upgrade` does after an upgrade: every stage lists dataqa.version
    params = read_params(workspace)
    before = params["dataqa"]["version"]
    params["dataqa"]["version"] = "99.0"
    write_params(workspace, params)
    status = json.loads(run(["dvc", "status", "--json"], workspace).stdout)
    assert set(status) == set(DVC_STAGES)
    params["dataqa"]["version"] = before
    write_params(workspace, params)
    assert json.loads(run(["dvc", "status", "--json"], workspace).stdout) == {
        "fingerprint": ["always changed"]}


def test_changing_one_key_reruns_only_what_reads_it(workspace: Path) -> None:
    params = read_params(workspace)
    params["report"]["gallery_size"] = params["report"]["gallery_size"] + 8
    write_params(workspace, params)
    status = json.loads(run(["dvc", "status", "--json"], workspace).stdout)
    assert set(status) == {"fingerprint", "report"}  # report: the only one reading report.*
    proc = run(["dvc", "repro"], workspace)
    ran = stages_run(proc.stdout + proc.stderr)
    assert ran[:2] == ["fingerprint", "report"]
    # nothing upstream of the report reran
    assert not set(ran) & {"scan", "tensors", "crossval", "learning_curve", "audit"}


def test_failing_gate_stops_repro_after_the_report(workspace: Path) -> None:
    params = read_params(workspace)
    params["gate"]["min_images_per_class"] = 1000
    params["filter"]["relabel_min_confidence"] = 0.9  # filter would rerun if reached
    write_params(workspace, params)
    proc = run(["dvc", "repro"], workspace, check=False)
    assert proc.returncode != 0
    ran = stages_run(proc.stdout + proc.stderr)
    assert "gate" in ran and "filter" not in ran
    gate = json.loads((workspace / params["paths"]["gate_json"]).read_text())
    assert gate["passed"] is False
    failed = [name for name, rule in gate["rules"].items() if rule["passed"] is False]
    assert failed == ["min_images_per_class"]
    assert (workspace / params["paths"]["audit_html"]).is_file()
