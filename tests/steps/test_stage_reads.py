"""Each stage's dvc.yaml entry is what the stage reads and writes.

Every stage runs, in pipeline order and in this process, on a tiny drawn-digits dataset
(tests/pipeline/workspace.py's budgets) while recording the params keys it reads and the
``paths.*`` files it reads and writes (tests/steps/recording.py); the declaration
(:data:`dataqa.steps.reads.STAGES`, from which ``dvc.yaml`` is generated) must list
exactly those: less leaves stale outputs that ``dvc status`` calls up to date, more
reruns a stage when nothing it uses changed. The last tests show the comparison catching
a read added to a stage without declaring it, and a declaration nothing reads."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
import yaml

from dataqa.checks import settings_models
from dataqa.cli import COMMANDS
from dataqa.params import Params, load_params
from dataqa.steps import reads
from tests.pipeline.workspace import REPO, TINY, deep_merge, draw_digit_folder, write_params
from tests.steps.recording import Record, problems, record_stage

pytestmark = pytest.mark.slow

ARGS: dict[str, dict[str, Any]] = {"gate_prepared": {"on": "prepared"}}
# reads a stage makes only in some cases, run once more after the pipeline: a failing
# gate names the files behind each failed rule; relabelling reads the predictions
SCENARIOS: dict[str, dict[str, dict[str, Any]]] = {
    "gate": {"gate": {"max_undecodable_rate": 0.0, "max_rates": {"integrity": 0.0}}},
    "filter": {"filter": {"relabel": True}},
}


def _stage(name: str) -> Any:
    return next(c for c in COMMANDS if c.name == reads.script(name)).load()


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Params:
    root = tmp_path_factory.mktemp("reads")
    draw_digit_folder(root / "data" / "sample")
    # a small class (augment makes copies: the tuning report shows them beside their
    # source images) and an undecodable file (a failing gate names it)
    for extra in sorted((root / "data" / "sample" / "2").iterdir())[5:]:
        extra.unlink()
    (root / "data" / "sample" / "0" / "broken.png").write_bytes(b"")
    (root / "predictions").mkdir()
    raw = deep_merge(yaml.safe_load((REPO / "params.yaml").read_text()), TINY)
    write_params(root, raw)
    return load_params(root / "params.yaml", checks=settings_models())


@pytest.fixture(scope="module")
def records(project: Params) -> dict[str, Record]:
    out: dict[str, Record] = {}
    for name in reads.STAGES:
        run = _stage(name)
        out[name] = record_stage(project, run, **ARGS.get(name, {}))
    for name, changes in SCENARIOS.items():
        run = _stage(name)
        params = project.replace(**{section: getattr(project, section).replace(**values)
                                    for section, values in changes.items()})
        more = record_stage(params, run, **ARGS.get(name, {}))
        out[name].keys |= more.keys
        out[name].written |= more.written
    return out


@pytest.mark.parametrize("name", list(reads.STAGES))
def test_declaration_is_what_the_stage_touches(name: str, records: dict[str, Record],
                                               project: Params) -> None:
    assert problems(name, records[name], project) == []


def test_an_undeclared_read_fails(records: dict[str, Record], project: Params,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    # the gate stage, made to read one more params key and one more file than dvc.yaml
    # lists: both are named
    gate = _stage("gate")

    def reads_more(params: Params, **kw: Any) -> int:
        _ = params.report.gallery_size
        params.path("clean").read_bytes()
        return int(gate(params, **kw) or 0)

    rec = record_stage(project, reads_more)
    found = problems("gate", rec, project)
    assert any("report.gallery_size" in p and "does not list" in p for p in found), found
    assert any("paths.clean" in p and "dep" in p for p in found), found
    assert problems("gate", records["gate"], project) == []


def test_a_declaration_nothing_reads_fails(records: dict[str, Record], project: Params,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    gate = reads.STAGES["gate"]
    more = dataclasses.replace(gate, params=(*gate.params, "tune.storage"),
                               files=(*gate.files, "paths.tensors"))
    monkeypatch.setitem(reads.STAGES, "gate", more)
    found = problems("gate", records["gate"], project)
    assert any("tune.storage" in p and "never reads" in p for p in found), found
    assert any("paths.tensors" in p and "never reads" in p for p in found), found

