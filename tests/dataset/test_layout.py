"""Folder layouts: `data.layout: auto | class | split/class`; split names matched
case-insensitively in folders and CSVs; ambiguous trees are a named error."""

from __future__ import annotations

from pathlib import Path

import pytest

from dataqa.dataset.layout import canonical_split, resolve_layout, validation_split
from dataqa.dataset.sources import list_source
from dataqa.errors import SourceError

EXTS = [".png", ".jpg"]


def touch(root: Path, *rels: str) -> None:
    for rel in rels:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b"x")


def rows(root: Path, layout: str = "auto") -> tuple[str, list[tuple[str, str, str]]]:
    _, frame = list_source(root, default_split="train", extensions=EXTS, layout=layout)
    return frame.attrs["layout"], [tuple(r) for r in frame.itertuples(index=False)]


def test_auto_reads_split_class_trees(tmp_path: Path) -> None:
    touch(tmp_path, "Train/ants/a.png", "train/bees/deep/b.jpg", "VAL/ants/c.png",
          "test/bees/d.png", "train/loose.png")
    layout, found = rows(tmp_path)
    assert layout == "split/class"
    assert found == [("Train/ants/a.png", "ants", "train"), ("VAL/ants/c.png", "ants", "val"),
                     ("test/bees/d.png", "bees", "test"),
                     ("train/bees/deep/b.jpg", "bees", "train")]


def test_auto_reads_class_trees(tmp_path: Path) -> None:
    touch(tmp_path, "cat/a.png", "dog/b.png")
    assert rows(tmp_path) == ("class", [("cat/a.png", "cat", "train"),
                                        ("dog/b.png", "dog", "train")])


def test_split_names_without_class_folders_stay_classes(tmp_path: Path) -> None:
    touch(tmp_path, "train/x.png", "test/y.png")
    layout, _ = rows(tmp_path)
    assert layout == "class"  # and the lister warns (tests/test_sources.py)


def test_mixed_tree_is_an_error_naming_folders_and_setting(tmp_path: Path) -> None:
    touch(tmp_path, "train/cat/a.png", "val/cat/b.png", "dogs/c.png")
    with pytest.raises(SourceError) as info:
        rows(tmp_path)
    msg = str(info.value)
    assert "['train', 'val']" in msg and "['dogs']" in msg
    assert "data.layout: class" in msg and "data.layout: split/class" in msg


def test_explicit_layout_wins(tmp_path: Path) -> None:
    touch(tmp_path, "train/cat/a.png", "val/cat/b.png", "dogs/c.png")
    layout, found = rows(tmp_path, "class")
    assert layout == "class" and {r[1] for r in found} == {"train", "val", "dogs"}
    layout, found = rows(tmp_path, "split/class")
    assert layout == "split/class"
    assert ("dogs/c.png" not in {r[0] for r in found})  # no class folder: skipped, warned
    with pytest.raises(SourceError, match="data.layout"):
        resolve_layout(tmp_path, "nested")


def test_csv_split_names_are_case_insensitive(tmp_path: Path) -> None:
    touch(tmp_path, "a.png", "b.png", "c.png")
    (tmp_path / "list.csv").write_text("path,label,split\na.png,x,Train\nb.png,x,train\n"
                                       "c.png,y,Holdout\n")
    _, frame = list_source(tmp_path / "list.csv", default_split="train", extensions=EXTS)
    assert frame["split"].tolist() == ["train", "train", "Holdout"]  # unknown names kept


def test_split_helpers() -> None:
    assert canonical_split(" Validation ") == "validation"
    assert validation_split(["train", "test", "valid"]) == "valid"
    assert validation_split(["train", "test"]) is None
