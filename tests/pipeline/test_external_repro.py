"""`dvc repro` with crossval.mode: external: the user's predictions (a CSV keyed by image
path under paths.external) replace the K-fold training, feed the same checks (planted
label errors are flagged), and replacing the file reruns crossval and what follows."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.pipeline.workspace import make_workspace, read_params, run, stages_run

pytestmark = pytest.mark.slow

FLIPS = {"0/d003.png": "2", "1/d005.png": "0"}  # the user's model is sure of another class


def _predictions(root: Path) -> pd.DataFrame:
    files = sorted(p.relative_to(root / "data/sample").as_posix()
                   for p in (root / "data/sample").rglob("*.png"))
    classes = ["0", "1", "2"]
    rows = []
    rng = np.random.default_rng(0)
    for f in files:
        target = FLIPS.get(f, f.split("/")[0])
        top = 0.95 if f in FLIPS else rng.uniform(0.7, 0.9)
        p = np.full(3, (1 - top) / 2)
        p[classes.index(target)] = top
        rows.append([f, *p])
    return pd.DataFrame(rows, columns=["path", *classes])


def test_external_predictions_end_to_end(tmp_path: Path) -> None:
    root = make_workspace(tmp_path / "ws", overrides={
        "crossval": {"mode": "external",
                     "external": {"pred_probs": "predictions/preds.csv"}}})
    preds = _predictions(root)
    preds.to_csv(root / "predictions/preds.csv", index=False)
    proc = run(["dvc", "repro", "audit"], root)
    ran = stages_run(proc.stdout + proc.stderr)
    assert {"scan", "tensors", "crossval", "audit"} <= set(ran)
    params = read_params(root)
    metrics = json.loads((root / params["paths"]["crossval_metrics"]).read_text())
    assert metrics["mode"] == "external" and metrics["classes"] == ["0", "1", "2"]
    issues = pd.read_parquet(root / params["paths"]["issues"])
    flagged = set(issues.loc[issues["is_label_issue"], "path"])
    assert flagged == set(FLIPS)
    suggested = issues.set_index("path").loc[list(FLIPS), "label_suggested"].tolist()
    assert suggested == list(FLIPS.values())
    # the predictions file is a dependency: a new version reruns crossval
    preds.loc[preds["path"] == "2/d001.png", ["0", "1", "2"]] = [0.9, 0.05, 0.05]
    preds.to_csv(root / "predictions/preds.csv", index=False)
    status = json.loads(run(["dvc", "status", "--json"], root).stdout)
    assert "crossval" in status and "scan" not in status
    # a misaligned file stops the stage with exit 2 and names the row
    preds.drop(index=[4]).to_csv(root / "predictions/preds.csv", index=False)
    bad = run(["python", "stages/crossval.py"], root, check=False)
    assert bad.returncode == 2 and "missing rows" in bad.stderr
