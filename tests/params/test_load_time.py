"""A bad params value fails when params load, before the first stage does any work:
for each section, a params file with one bad value makes `dataqa scan` (the first
stage) exit 2 with a message naming the key, and no manifest is written."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from PIL import Image

from dataqa.cli import main

# section -> (one bad value, the key the error must name)
BAD: list[tuple[str, dict[str, Any], str]] = [
    ("dataqa", {"dataqa": {"version": 3}}, "dataqa.version"),
    ("paths", {"paths": {"manifest": 3}}, "paths.manifest"),
    ("data", {"data": {"source": ["a", "b"]}}, "data.source"),
    ("data", {"data": {"layout": "nested"}}, "data.layout"),
    ("scan", {"scan": {"workers": -1}}, "scan.workers"),
    ("tensors", {"tensors": {"chunk_size": 0}}, "tensors.chunk_size"),
    ("engine", {"engine": {"image_size": 4}}, "engine.image_size"),
    ("crossval", {"crossval": {"folds": 1}}, "crossval.folds"),
    ("audit", {"audit": {"learning_curve": [0.5]}}, "audit.learning_curve"),
    ("audit", {"audit": {"learning_curve_epochs": 0}}, "audit.learning_curve_epochs"),
    ("audit", {"audit": {"checks": ["dark", "dark"]}}, "audit.checks"),
    ("audit", {"audit": {"checks": ["integrity", "darkk"]}}, "audit.checks"),
    ("audit", {"audit": {"settings": {"dark": {"nope": 1}}}}, "audit.settings.dark"),
    ("gate", {"gate": {"max_undecodable_rate": 2.0}}, "gate.max_undecodable_rate"),
    ("gate", {"gate": {"max_rates": {"nope": 0.1}}}, "gate.max_rates.nope"),
    ("filter", {"filter": {"relabel_min_confidence": 1.5}}, "filter.relabel_min_confidence"),
    ("filter", {"filter": {"min_score": {"label": -0.1}}}, "filter.min_score.label"),
    ("filter", {"filter": {"policy": {"nope": "drop"}}}, "filter.policy.nope"),
    ("augment", {"augment": {"min_area": 0.1}}, "augment.min_area"),
    ("augment", {"augment": {"balance_target": 0.0}}, "augment.balance_target"),
    ("split", {"split": {"val_fraction": 1.0}}, "split.val_fraction"),
    ("subsample", {"subsample": {"fractions": {"p": 1.5}}}, "subsample.fractions.p"),
    ("subsample", {"subsample": {"class_subsets": {"x": {"fraction": 0.5}}}},
     "subsample.class_subsets.x"),
    ("tune", {"tune": {"space": {"lr_min": 1.0, "lr_max": 0.1}}}, "tune.space.lr_min"),
    ("tune", {"tune": {"sizing": {"min_val_per_class": 0}}}, "tune.sizing.min_val_per_class"),
    ("report", {"report": {"thumb_size": "big"}}, "report.thumb_size"),
    ("cluster", {"cluster": {"backend": "spark"}}, "cluster.backend"),
    ("cluster", {"cluster": {"num_gpus": -0.5}}, "cluster.num_gpus"),
]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A source that `scan` would happily read: only params can stop it."""
    for c in ("a", "b"):
        (tmp_path / "src" / c).mkdir(parents=True)
        for i in range(2):
            arr = np.full((8, 8), 40 * i + 60, dtype=np.uint8)
            Image.fromarray(arr).save(tmp_path / "src" / c / f"{i}.png")
    return tmp_path


def test_every_section_has_a_case() -> None:
    sections = set(yaml.safe_load((Path(__file__).resolve().parents[2] / "params.yaml")
                                  .read_text()))
    assert sections == {s for s, _, _ in BAD}


@pytest.mark.parametrize("section, bad, key", BAD, ids=[k for _, _, k in BAD])
def test_bad_value_fails_before_the_first_stage(project: Path, section: str,
                                                bad: dict[str, Any], key: str,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    raw: dict[str, Any] = {"data": {"source": "src"}, "scan": {"workers": 0}}
    for name, value in bad.items():
        raw[name] = {**raw.get(name, {}), **value}
    (project / "params.yaml").write_text(yaml.safe_dump(raw))
    code = main(["scan", "--params", str(project / "params.yaml")])
    err = capsys.readouterr().err
    assert code == 2, err
    assert key in err, err
    assert not (project / "dataqa-out" / "interim" / "manifest.parquet").exists()


def test_good_params_run_the_stage(project: Path) -> None:
    (project / "params.yaml").write_text(yaml.safe_dump({"data": {"source": "src"},
                                                         "scan": {"workers": 0}}))
    assert main(["scan", "--params", str(project / "params.yaml")]) == 0
    assert (project / "dataqa-out" / "interim" / "manifest.parquet").is_file()
