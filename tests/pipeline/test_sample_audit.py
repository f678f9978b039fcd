"""The bundled sample end to end through scan -> tensors -> crossval -> learning_curve ->
audit with the repository's own params: every file-level problem planted in
data/sample/PLANTED.csv is flagged by the check meant for it, the planted rare class is
called insufficient, and the default gate passes (issue 4's "done when")."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from dataqa.cli import main
from dataqa.gate import evaluate
from dataqa.params import load_params

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "data" / "sample"


@pytest.fixture(scope="module")
def audited(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("sample")
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["data"]["source"] = str(SAMPLE)  # outputs go under root, the sample is only read
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    for stage in ("scan", "tensors", "crossval", "learning_curve", "audit"):
        assert main([stage, "--params", str(root / "params.yaml")]) == 0, stage
    return root


def test_every_planted_file_is_flagged_by_its_check(audited: Path) -> None:
    params = load_params(audited / "params.yaml")
    issues = pd.read_parquet(params.path("issues")).set_index("path")
    planted = pd.read_csv(SAMPLE / "PLANTED.csv")
    files = planted[planted["path"].isin(issues.index)]
    assert len(files) == len(planted) - 1  # all but the class-level 'rare_class' row
    missed = [(r.path, r.kind) for r in files.itertuples()
              if not issues.at[r.path, f"is_{r.check}_issue"]]
    assert missed == []


def test_rare_class_is_insufficient_and_gate_passes(audited: Path) -> None:
    params = load_params(audited / "params.yaml")
    metrics = json.loads(params.path("audit_metrics").read_text())
    assert metrics["balance"]["classes_under_min"] == ["7"]
    rules = evaluate(params.gate, metrics)
    assert [r.name for r in rules if r.passed is False] == []
