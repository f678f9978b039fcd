"""Listing ImageFolder and CSV sources: planted trees and CSV rows with exact outcomes."""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import pytest

from dataqa.dataset.sources import list_source, source_root
from dataqa.errors import SourceError

EXTS = [".png", ".jpg", ".jpeg"]


def touch(root: Path, *names: str) -> None:
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"not decoded here")


def listing(source: Path, split: str = "train") -> list[tuple[str, str, str]]:
    _, frame = list_source(source, default_split=split, extensions=EXTS)
    return [tuple(r) for r in frame[["path", "label", "split"]].itertuples(index=False)]


# --------------------------------------------------------------------------- ImageFolder
def test_image_folder_rows_labels_and_what_is_skipped(tmp_path: Path) -> None:
    touch(tmp_path, "cat/b.png", "cat/a.JPG", "cat/2019/c.jpeg",  # nested: class of top folder
          "dog/x.png",
          "dog/notes.txt",  # other extension: ignored
          "dog/.hidden.png", ".git/y.png", "dog/.cache/z.png",  # hidden: skipped
          "README.md")  # loose non-image file: ignored without a word
    root, frame = list_source(tmp_path, default_split="train", extensions=EXTS)
    assert root == tmp_path.resolve()
    assert listing(tmp_path) == [
        ("cat/2019/c.jpeg", "cat", "train"),
        ("cat/a.JPG", "cat", "train"),
        ("cat/b.png", "cat", "train"),
        ("dog/x.png", "dog", "train"),
    ]
    assert [str(t) for t in frame.dtypes] == ["string"] * 3
    assert frame.attrs["warnings"] == [
        "1 hidden folder(s) or image file(s) (name starting with '.') are skipped: "
        "dog/.hidden.png; rename them to include them"]


@pytest.mark.parametrize(
    ("files", "warning"),
    [
        (["a/x.png", "loose.png"], "1 image file(s) directly in the root have no class folder "
                                   "and are skipped: loose.png"),  # no label: said, not lost
        (["a/x.png", "empty/readme.txt"], "class folder 'empty' holds no image file"),
        (["train/x.png", "test/y.png"], "look like splits"),  # split folders become labels
    ],
)
def test_image_folder_warnings(tmp_path: Path, files: list[str], warning: str,
                               caplog: pytest.LogCaptureFixture) -> None:
    touch(tmp_path, *files)
    with caplog.at_level(logging.WARNING, logger="dataqa.dataset.sources"):
        _, frame = list_source(tmp_path, default_split="train", extensions=EXTS)
    assert len(frame.attrs["warnings"]) == 1
    assert warning in frame.attrs["warnings"][0]
    assert warning in caplog.text


def test_image_folder_text_named_png_is_listed(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "text.png").write_text("hello")  # bad content is the scan's business
    assert listing(tmp_path) == [("a/text.png", "a", "train")]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda root, outside: (root / "a" / "link.png").symlink_to(outside / "o.png"),
         "'a/link.png' is a symlink to"),  # file link leaving the root
        (lambda root, outside: (root / "b").symlink_to(outside, target_is_directory=True),
         "'b' is a symlink to"),  # class folder link leaving the root
        (lambda root, outside: (root / "a" / "deep").symlink_to(outside),
         "'a/deep' is a symlink to"),  # nested folder link leaving the root
        (lambda root, outside: (root / "a" / "gone.png").symlink_to(root / "a" / "nothing.png"),
         "'a/gone.png' is a broken symlink"),  # points nowhere
    ],
)
def test_image_folder_symlink_errors(tmp_path: Path, make, message: str) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    touch(root, "a/ok.png")
    touch(outside, "o.png")
    make(root, outside)
    with pytest.raises(SourceError, match=message):
        list_source(root, default_split="train", extensions=EXTS)


def test_image_folder_symlink_inside_root_is_followed_once(tmp_path: Path) -> None:
    touch(tmp_path, "a/x.png")
    (tmp_path / "a" / "alias.png").symlink_to(tmp_path / "a" / "x.png")
    (tmp_path / "a" / "loop").symlink_to(tmp_path / "a", target_is_directory=True)
    assert [p for p, _, _ in listing(tmp_path)] == ["a/alias.png", "a/x.png"]


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda root: touch(root, "a/notes.txt"), "no image files found"),  # nothing to scan
        (lambda root: None, "no image files found"),  # empty directory
    ],
)
def test_image_folder_without_images_is_an_error(tmp_path: Path, setup, message: str) -> None:
    setup(tmp_path)
    with pytest.raises(SourceError, match=message):
        list_source(tmp_path, default_split="train", extensions=EXTS)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("missing", "source not found"),  # nothing there
        ("image.png", "ImageFolder directory or a .csv file"),  # a file that is no CSV
    ],
)
def test_unusable_source_path(tmp_path: Path, name: str, message: str) -> None:
    touch(tmp_path, "image.png")
    with pytest.raises(SourceError, match=message):
        list_source(tmp_path / name, default_split="train", extensions=EXTS)


# --------------------------------------------------------------------------- CSV
def write_csv(folder: Path, text: str) -> Path:
    touch(folder, "img/a.png", "img/b.png", "img/c.png")
    (folder / "img" / "sub").mkdir(exist_ok=True)
    path = folder / "list.csv"
    path.write_text(text, encoding="utf-8")
    return path


def test_csv_rows_splits_and_normalised_paths(tmp_path: Path) -> None:
    csv = write_csv(tmp_path, "\ufeffPath , Label,split,comment\n"  # BOM, case, spaces, extra column
                              "img/b.png,dog,val,x\n"
                              "./img/a.png, cat ,,\n"  # empty split: default; cells trimmed
                              "img\\c.png,cat,test,\n")  # backslash read as '/'
    assert source_root(csv) == tmp_path.resolve()
    assert listing(csv, split="train") == [
        ("img/a.png", "cat", "train"),
        ("img/b.png", "dog", "val"),
        ("img/c.png", "cat", "test"),
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("path,lbl\nimg/a.png,cat\n",
         "row 1 (header): missing column(s) 'label'"),  # misspelled column
        ("label\ncat\n", "missing column(s) 'path'"),  # no path column
        ("", "empty file"),  # nothing at all
        ("path,label\n", "no rows after the header"),  # header only
        ("path,label\nimg/a.png,cat\nimg/b.png,\n",
         "row 3: empty label for path 'img/b.png'"),  # empty label, 1-based row with header
        ("path,label\n,cat\n", "row 2: empty path (label 'cat')"),  # empty path
        ("path,label\nimg/missing.png,cat\n",
         "row 2: file 'img/missing.png' not found"),  # missing file
        ("path,label\n../outside.png,cat\n",
         "row 2: path '../outside.png' leaves the source root through '..'"),  # ../ escape
        ("path,label\nimg/../../outside.png,cat\n",
         "row 2: path 'img/../../outside.png' leaves the source root"),  # hidden ../ escape
        ("path,label\n/etc/passwd,cat\n", "row 2: path '/etc/passwd' is absolute"),  # absolute
        ("path,label\nC:\\data\\a.png,cat\n", "is absolute"),  # Windows absolute
        ("path,label\nimg/sub,cat\n", "row 2: path 'img/sub' is not a regular file"),  # a folder
        ("path,label\nimg/a.png,cat\nimg/b.png,cat\nimg/a.png,dog\n",
         "rows 2 and 4: path 'img/a.png' is listed twice"),  # duplicate: both rows named
        ("path,label\nimg/a.png,cat\n./img//a.png,cat\n",
         "rows 2 and 3: path 'img/a.png' is listed twice"),  # duplicate after normalising
        ("path,label\nimg/a.png,cat\n\n\nimg/zz.png,cat\n",
         "row 5: file 'img/zz.png' not found"),  # blank rows still count as rows
        ("path,label\n\"img/a.png\",\"a\nb\"\nimg/zz.png,cat\n",
         "row 3: file 'img/zz.png' not found"),  # a quoted newline stays in one row
    ],
)
def test_csv_errors_name_the_row(tmp_path: Path, text: str, message: str) -> None:
    csv = write_csv(tmp_path, text)
    with pytest.raises(SourceError, match=re.escape(message)) as info:
        list_source(csv, default_split="train", extensions=EXTS)
    assert str(csv) in str(info.value)


def test_csv_symlink_escaping_the_root(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    touch(outside, "secret.png")
    folder = tmp_path / "data"
    csv = write_csv(folder, "path,label\nimg/a.png,cat\nimg/link.png,cat\n")
    (folder / "img" / "link.png").symlink_to(outside / "secret.png")
    with pytest.raises(SourceError, match=r"row 3: path 'img/link.png' leaves the source root "
                                          r"through a symlink"):
        list_source(csv, default_split="train", extensions=EXTS)


def test_csv_symlink_inside_the_root_is_fine(tmp_path: Path) -> None:
    csv = write_csv(tmp_path, "path,label\nimg/link.png,cat\n")
    (tmp_path / "img" / "link.png").symlink_to(tmp_path / "img" / "a.png")
    assert listing(csv) == [("img/link.png", "cat", "train")]


def test_csv_reports_every_bad_row_at_once(tmp_path: Path) -> None:
    csv = write_csv(tmp_path, "path,label\nimg/a.png,\n/abs.png,cat\nimg/zz.png,cat\n")
    with pytest.raises(SourceError) as info:
        list_source(csv, default_split="train", extensions=EXTS)
    message = str(info.value)
    assert "3 bad row(s)" in message
    assert [line.split(":")[0].strip() for line in message.splitlines()[1:]] == [
        "row 2", "row 3", "row 4"]


def test_csv_not_utf8(tmp_path: Path) -> None:
    csv = tmp_path / "list.csv"
    csv.write_bytes(b"path,label\n\xff\xfe,cat\n")
    with pytest.raises(SourceError, match="not UTF-8"):
        list_source(csv, default_split="train", extensions=EXTS)


def test_listing_reads_nothing_but_names(tmp_path: Path) -> None:
    touch(tmp_path, "a/x.png")
    os.chmod(tmp_path / "a" / "x.png", 0)  # unreadable content is the scan's business
    try:
        assert listing(tmp_path) == [("a/x.png", "a", "train")]
    finally:
        os.chmod(tmp_path / "a" / "x.png", 0o644)
