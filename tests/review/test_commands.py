"""``dataqa review list | set | import`` on a planted folder audited by the integrity
check (in-process, no model): a failed import writes nothing, every error names the
row and exits 2 without a traceback, later decisions win."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest
import yaml

from dataqa.cli import main
from dataqa.io import write_parquet
from dataqa.steps import audit

HEAD = "sha256,path,decision,label,note,by,at,checks\n"


@pytest.fixture
def project(image_folder, manifest_for, params_for, tmp_path: Path):
    """(params.yaml path, manifest) after the integrity audit of the planted folder."""
    pf = image_folder()
    sections = {"data": {"source": str(pf.root)}, "scan": {"max_pixels": 4096},
                "audit": {"checks": ["integrity"], "min_per_class": 1}}
    params = params_for(**sections)
    manifest = manifest_for(pf)
    write_parquet(params.path("manifest"), manifest)
    assert audit.run_stage(params) == 0
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(sections))
    return tmp_path / "params.yaml", manifest.set_index("path"), pf


def review(params: Path, *args: str) -> int:
    return main(["review", *args, "--params", str(params)])


def reviews(params: Path) -> Path:
    return params.parent / "reviews.csv"


def test_set_then_list(project, capsys) -> None:
    params, m, pf = project
    flagged = "dog/notes.png"  # not an image: flagged by integrity
    assert review(params, "set", flagged, "--exclude", "--note", "=HYPERLINK(x)",
                  "--by", "ann") == 0
    text = reviews(params).read_text()
    assert m.at[flagged, "sha256"] in text and "'=HYPERLINK(x)" in text  # neutralised
    assert ",integrity" in text.splitlines()[1]  # the checks flagging it when decided
    # the file's own path gives the same key; relabel replaces the earlier decision
    assert review(params, "set", str(pf.root / flagged), "--relabel", "cat") == 0
    out = capsys.readouterr().out
    assert "replaced reviews.csv row 2 (dog/notes.png: exclude) by relabel to 'cat'" in out
    assert review(params, "list") == 0
    out = capsys.readouterr().out
    assert "integrity" in out and "decided: 1 (keep 0, exclude 0, relabel 1)" in out
    assert review(params, "list", "--pending") == 0
    pending = capsys.readouterr().out.split()
    assert flagged not in pending and "cat/truncated.png" in pending


@pytest.mark.parametrize(("content", "message"), [
    (HEAD + "{sha},x,relabel,bird,,,,\n", r"row 2: relabel to 'bird', a class the dataset "
                                          r"does not have"),
    (HEAD + "{sha},x,keep,,,,,\n{sha},x,exclude,,,,,\n", r"rows 2 and 3 decide differently"),
    (HEAD + "nothex,x,keep,,,,,\n", r"row 2: sha256 'nothex' is not 64 hex digits"),
])
def test_failed_import_writes_nothing(project, tmp_path, capsys, content, message) -> None:
    params, m, _ = project
    sha = m.at["dog/notes.png", "sha256"]
    reviews(params).write_text(HEAD + f"{sha},dog/notes.png,keep,,,,,integrity\n")
    before = reviews(params).read_bytes()
    src = tmp_path / "in.csv"
    src.write_text(content.format(sha=sha))
    assert review(params, "import", str(src)) == 2
    err = capsys.readouterr().err
    assert f"{src}" in err and "Traceback" not in err
    assert re.search(message, err), err
    assert reviews(params).read_bytes() == before


def test_import_merges_and_warns_of_unknown_images(project, tmp_path, capsys) -> None:
    params, m, _ = project
    sha = m.at["dog/notes.png", "sha256"]
    reviews(params).write_text(HEAD + f"{sha},dog/notes.png,keep,,,ann,"
                                      f"2026-12-01T00:00:00Z,integrity\n")
    src = tmp_path / "in.csv"
    src.write_bytes((HEAD + f"{sha},dog/notes.png,exclude,,<b>junk</b>,,2026-12-02T00:00:00Z,"
                     f"integrity\n{'f' * 64},gone.png,keep,,,,,\n").encode("utf-8-sig"))
    assert review(params, "import", str(src), "--by", "bob") == 0
    out = capsys.readouterr().out
    assert "replaced reviews.csv row 2 (dog/notes.png: keep) by exclude from" in out
    assert f"{src}: row 3: no image of the last scan has sha256 ffffffffffff" in out
    rows = pd.read_csv(reviews(params), keep_default_na=False).set_index("path")
    assert rows.at["dog/notes.png", "decision"] == "exclude"
    assert rows.at["dog/notes.png", "by"] == "bob"  # unnamed rows get --by
    assert len(rows) == 2


def test_audit_applies_decisions(project) -> None:
    params_file, m, _ = project
    from dataqa.params import load_params

    params = load_params(params_file)
    sha = m.at["dog/notes.png", "sha256"]
    reviews(params_file).write_text(
        HEAD + f"{sha},old/name.png,keep,,,ann,,integrity\n"
        f"{m.at['cat/c1.png', 'sha256']},cat/c1.png,relabel,nope,,ann,,\n")
    assert audit.run_stage(params) == 0
    issues = pd.read_parquet(params.path("issues")).set_index("path")
    row = issues.loc["dog/notes.png"]
    assert (row["review_decision"], row["review_pending"], row["review_by"]) == \
        ("keep", "", "ann")
    assert issues.at["cat/c1.png", "review_decision"] == ""  # unknown class: ignored
    metrics = json.loads(params.path("audit_metrics").read_text())
    info = metrics["checks"]["integrity"]
    assert info["waived"] == 1 and info["waived_by"] == {"ann": 1}
    assert info["pending"] == info["count"] - 1
    assert metrics["review"]["n_decided"] == 1
