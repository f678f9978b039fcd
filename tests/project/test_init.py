"""`dataqa init`: the repository's own project files are exactly what init writes, the
written params.yaml round-trips through DVC, presets, refusing to overwrite, the DVC
hint, `--upgrade`, the version check and the hint outside a project."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from dataqa.cli import EXIT_ERROR, main
from dataqa.params import load_params
from dataqa.project.init import (
    gitignore_entries,
    installed_version,
    preset_names,
    project_files,
    render_params,
)
from dataqa.project.inspect import inspect_source
from tests.pipeline.workspace import draw_digit_folder

REPO = Path(__file__).resolve().parents[2]
REGENERATE = ("regenerate it: cd to the repository root and run `dataqa init --source "
              "data/sample --preset digits --force` (edit dataqa/presets/digits.yaml or "
              "dataqa/steps/reads.py (what each stage reads: dvc.yaml is generated from it), not "
              "the generated files)")


def test_repository_files_are_what_init_writes() -> None:
    summary = inspect_source(REPO / "data" / "sample")
    files = project_files("digits", "data/sample", summary, installed_version() or "0+source")
    for rel, text in files.items():
        assert (REPO / rel).read_text(encoding="utf-8") == text, f"{rel} differs: {REGENERATE}"
    ignored = (REPO / ".gitignore").read_text().splitlines()
    assert set(gitignore_entries("dataqa-out")) <= set(ignored), REGENERATE
    repo_stages = {p.name for p in (REPO / "stages").glob("*.py")}
    assert repo_stages == {Path(rel).name for rel in files if rel.startswith("stages/")}


@pytest.mark.parametrize("preset", ["digits", "photos"])
def test_params_round_trip_through_dvc(tmp_path: Path, preset: str) -> None:
    from dvc.utils.serialize import dumps_yaml, parse_yaml_for_update

    text = render_params(preset, "images", None, "1.2.3")
    assert dumps_yaml(parse_yaml_for_update(text, "params.yaml")) == text
    # what `dvc exp run -S engine.image_size=48` does: one line changes, comments stay
    doc = parse_yaml_for_update(text, "params.yaml")
    doc["engine"]["image_size"] = 48
    changed = [(a, b) for a, b in zip(text.splitlines(), dumps_yaml(doc).splitlines())
               if a != b]
    assert len(changed) == 1 and changed[0][1].startswith("  image_size: 48 ")
    (tmp_path / "params.yaml").write_text(text)
    params = load_params(tmp_path / "params.yaml")  # valid params, every key known
    assert params.dataqa.version == "1.2.3" and params.data.source == "images"


def test_photos_preset_differs_where_photos_differ() -> None:
    assert {"digits", "photos"} <= set(preset_names())
    photos = yaml.safe_load(render_params("photos", "x", None, "1"))
    digits = yaml.safe_load(render_params("digits", "x", None, "1"))
    assert photos["augment"]["hflip"] is True and digits["augment"]["hflip"] is False
    assert photos["engine"]["image_size"] > digits["engine"]["image_size"]
    assert "extends" not in photos


def _tree(root: Path) -> Path:
    draw_digit_folder(root / "Train", classes=2, per_class=3)
    draw_digit_folder(root / "val", classes=2, per_class=2, seed=1)
    return root


def test_init_in_a_new_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                              capsys: pytest.CaptureFixture[str]) -> None:
    _tree(tmp_path / "imgs")
    proj = tmp_path / "proj"
    proj.mkdir()
    monkeypatch.chdir(proj)
    assert main(["init", "--source", str(tmp_path / "imgs"), "--preset", "photos"]) == 0
    out = capsys.readouterr().out
    assert "layout: split/class" in out
    assert "split train: 6 files in 2 classes" in out  # 'Train' matched case-insensitively
    assert "split val: 4 files" in out
    assert "run `dvc init --no-scm`" in out  # not a DVC project yet: says what to run
    params = load_params(proj / "params.yaml")
    assert params.data.source == (tmp_path / "imgs").resolve().as_posix()
    assert params.split.val_split == "val" and params.split.train_splits == ["train"]
    assert params.augment.hflip is True
    assert (proj / "stages" / "audit.py").is_file()
    assert "/dataqa-out/" in (proj / ".gitignore").read_text()
    # the decisions file starts empty (the audit depends on it) ...
    assert (proj / "reviews.csv").read_text() == "sha256,path,decision,label,note,by,at,checks\n"
    (proj / "reviews.csv").write_text("people's decisions\n")

    # same content again: fine; another content: refused without --force
    assert main(["init", "--source", str(tmp_path / "imgs"), "--preset", "photos"]) == 0
    capsys.readouterr()
    assert main(["init", "--source", str(tmp_path / "imgs")]) == EXIT_ERROR
    err = capsys.readouterr().err
    assert "params.yaml" in err and "--force" in err
    assert load_params(proj / "params.yaml").augment.hflip is True  # untouched
    assert main(["init", "--source", str(tmp_path / "imgs"), "--force"]) == 0
    assert load_params(proj / "params.yaml").augment.hflip is False
    assert (proj / ".gitignore").read_text().count("/dataqa-out/") == 1
    # ... and is never overwritten, not even with --force: it holds people's decisions
    assert (proj / "reviews.csv").read_text() == "people's decisions\n"


def test_init_runs_dvc_init_when_asked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    draw_digit_folder(tmp_path / "imgs", classes=2, per_class=2)
    monkeypatch.chdir(tmp_path)
    assert main(["init", "--source", "imgs", "--dvc-init"]) == 0
    assert (tmp_path / ".dvc").is_dir()
    out = capsys.readouterr().out
    assert "layout: class" in out and "next: dvc repro" in out
    assert load_params(tmp_path / "params.yaml").data.source == "imgs"


def test_upgrade_sets_the_version_and_keeps_edits(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    text = render_params("digits", "imgs", None, "0.0.1")
    text = text.replace("  image_size: 28 ", "  image_size: 40 ")
    (tmp_path / "params.yaml").write_text(text)
    # a stage refuses to run under another release, and says what to do
    assert main(["scan", "--params", str(tmp_path / "params.yaml")]) == EXIT_ERROR
    assert "dataqa init --upgrade" in capsys.readouterr().err
    monkeypatch.chdir(tmp_path)
    assert main(["init", "--upgrade"]) == 0
    params = load_params(tmp_path / "params.yaml")
    assert params.dataqa.version == (installed_version() or "0+source")
    assert params.engine.image_size == 40  # the user's edit stays
    new = (tmp_path / "params.yaml").read_text()
    assert [a for a, b in zip(text.splitlines(), new.splitlines()) if a != b] == [
        line for line in text.splitlines() if line.startswith("  version: 0.0.1")]


def test_commands_outside_a_project_print_a_hint(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["audit"]) == EXIT_ERROR
    err = capsys.readouterr().err
    assert "no params.yaml here" in err and "dataqa init --source" in err
    assert "Traceback" not in err


def test_init_errors_are_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                               capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["init", "--source", "nowhere"]) == EXIT_ERROR
    assert "source not found" in capsys.readouterr().err
    draw_digit_folder(tmp_path / "imgs", classes=1, per_class=1)
    assert main(["init", "--source", "imgs", "--preset", "sketches"]) == EXIT_ERROR
    assert "unknown preset" in capsys.readouterr().err
    assert not (tmp_path / "params.yaml").exists()
    assert os.listdir(tmp_path) == ["imgs"]


def test_csv_splits_set_the_validation_split(tmp_path: Path) -> None:
    draw_digit_folder(tmp_path / "imgs", classes=2, per_class=2)
    (tmp_path / "list.csv").write_text(
        "path,label,split\nimgs/0/d000.png,a,Train\nimgs/0/d001.png,a,VAL\n"
        "imgs/1/d000.png,b,train\nimgs/1/d001.png,b,val\n")
    summary = inspect_source(tmp_path / "list.csv")
    assert summary.layout == "csv" and set(summary.splits) == {"train", "val"}
    params = yaml.safe_load(render_params("digits", "list.csv", summary, "1"))
    assert params["split"]["val_split"] == "val"
    assert params["split"]["train_splits"] == ["train"]


def test_the_repository_holds_one_dvc_pipeline() -> None:
    # DVC collects every file named dvc.yaml in a repository: a template of that name in
    # the package would be parsed as a second pipeline and break `dvc repro` (`make run`)
    import subprocess

    listed = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True,
                            check=True).stdout.split()
    assert [p for p in listed if p.rsplit("/", 1)[-1] in ("dvc.yaml", "dvc.yml")] == \
        ["dvc.yaml"]
