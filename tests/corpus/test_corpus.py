"""The bad-input corpus through the whole pipeline (scan -> tensors -> crossval -> audit
-> report -> gate, tiny budgets). Every kind of odd input ends in exactly one stated
outcome: a manifest/issues row with the exact decode error, mode or check flag, or a
DataQAError (exit code 2) whose message names the file, row or key; never a traceback
from inside a library. The source tree is byte-identical afterwards (every file's bytes,
mode and symlink target are hashed before and after).

Kinds that can share a dataset share one: all odd files live in one ImageFolder
(``FILE_KINDS``) that runs every stage once; kinds that must stop the pipeline each get
a small dataset of their own (``ERROR_KINDS``) and run up to the stage that stops them.
Stages run in-process through ``dataqa.cli.main`` (the real CLI path, its exit codes and
its stderr) so that torch is imported once; the scan-stage errors also run as a
subprocess to prove no traceback reaches the user.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from dataqa.cli import main
from tests.corpus.make_corpus import (
    HTML_LABEL,
    SCRIPT_DIR,
    SCRIPT_FILE,
    SPACES_NAME,
    UNICODE_NAME,
    make_escaping_symlink,
    make_no_images,
    make_odd_folder,
    make_single_class,
    write_csv,
)
from tests.pipeline.workspace import REPO, TINY, deep_merge, draw_digit_folder

STAGES = ["scan", "tensors", "crossval", "audit", "report", "gate"]


# ------------------------------------------------------------------------- helpers
def snapshot(root: Path) -> dict[str, tuple[int, str]]:
    """relative path -> (st_mode, sha256 of the bytes | 'link:' + target | 'dir')."""
    out: dict[str, tuple[int, str]] = {}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            st = path.lstat()
            if path.is_symlink():
                what = "link:" + os.readlink(path)
            elif path.is_dir():
                what = "dir"
            else:
                what = hashlib.sha256(path.read_bytes()).hexdigest()
            out[str(path.relative_to(root))] = (st.st_mode, what)
    return out


def write_params(ws: Path, source: str, **over: Any) -> Path:
    base = yaml.safe_load((REPO / "params.yaml").read_text())
    mine = {"data": {"source": source}, "scan": {"workers": 0}, "tensors": {"workers": 0},
            "engine": {"cpu_threads": 2}}
    params = deep_merge(deep_merge(deep_merge(base, TINY), mine), over)
    path = ws / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


def stage(name: str, params: Path) -> tuple[int, str]:
    """Run one stage through the CLI in-process; (exit code, stdout + stderr)."""
    buf = io.StringIO()
    handler = logging.StreamHandler(buf)  # warnings are logged, not printed
    logging.getLogger("dataqa").addHandler(handler)
    try:
        with contextlib.redirect_stderr(buf), contextlib.redirect_stdout(buf):
            code = main([name, "--params", str(params)])
    finally:
        logging.getLogger("dataqa").removeHandler(handler)
    return code, buf.getvalue()


# ------------------------------------------------------------- one ImageFolder, every stage
# path -> (decode_error prefix | None, format, stored mode, width, height, n_frames,
#          checks that must flag the row, integrity_kind | None)
FILE_KINDS: dict[str, tuple[str | None, str | None, str | None, int | None, int | None,
                            int | None, set[str], str | None]] = {
    # zero bytes: a row with the reason, nothing decoded
    "0/zero_byte.png": ("zero-byte file", None, None, None, None, None, {"integrity"}, "zero_byte"),
    # half a JPEG: header read (size known), pixels truncated
    "0/truncated.jpg": ("truncated", "JPEG", "RGB", 64, 48, 1, {"integrity"}, "truncated"),
    # half a PNG: same, for zlib streams
    "0/truncated.png": ("truncated", "PNG", "RGB", 40, 30, 1, {"integrity"}, "truncated"),
    # text named .png: not an image, whatever the extension says
    "0/text_named.png": ("not an image", None, None, None, None, None, {"integrity"},
                         "not_an_image"),
    # IHDR claims 30000x30000 (900 Mpx): refused from the header, never decoded
    "0/bomb.png": ("over the pixel limit", None, None, None, None, None, {"integrity"},
                   "over_pixel_limit"),
    # IHDR claims 0x0: PIL refuses to identify it; a row, not a crash
    "0/zero_size.png": ("not an image", None, None, None, None, None, {"integrity"},
                        "not_an_image"),
    # CMYK JPEG: decoded (converted to RGB), stored mode kept in the manifest
    "1/cmyk.jpg": (None, "JPEG", "CMYK", 40, 30, 1, set(), None),
    # 16-bit greyscale PNG: decoded to 8-bit, stored mode I;16 kept
    "1/sixteen_bit.png": (None, "PNG", "I;16", 32, 32, 1, set(), None),
    # palette + transparency: decoded, mode P kept
    "1/palette_trns.png": (None, "PNG", "P", 24, 24, 1, set(), None),
    # animated GIF: first frame used, integrity says so (multi_frame)
    "1/animated.gif": (None, "GIF", "P", 24, 24, 3, {"integrity"}, "multi_frame"),
    # EXIF orientation 6 on a 40x20 JPEG: upright size 20x40. A 1:2 portrait leaves half
    # the letterboxed square as padding, within odd_aspect_ratio's photo-aware limit (more
    # than half, or beyond 10:1): not flagged; the rotation is checked at the tensor below
    "1/exif_rotated.jpg": (None, "JPEG", "RGB", 20, 40, 1, set(), None),
    # 1x1 image: decoded; odd size
    "1/one_pixel.png": (None, "PNG", "L", 1, 1, 1, {"odd_size"}, None),
    # 20000x20 strip: decoded within the pixel limit; odd size and odd aspect ratio
    "1/wide_20000x20.png": (None, "PNG", "L", 20000, 20, 1, {"odd_size", "odd_aspect_ratio"},
                            None),
    # unicode file name: path kept exactly, file read
    f"2/{UNICODE_NAME}": (None, "PNG", "L", 40, 30, 1, set(), None),
    # leading, doubled and trailing spaces in the name: path kept exactly
    f"2/{SPACES_NAME}": (None, "PNG", "L", 40, 30, 1, set(), None),
    # '<script>x</script>.png': read like any file; escaped in the report (test below)
    f"2/{SCRIPT_DIR}/{SCRIPT_FILE}": (None, "PNG", "L", 40, 30, 1, set(), None),
    # PNG bytes named .jpg: decoded by content; integrity flags the wrong extension
    "2/png_named.jpg": (None, "PNG", "RGB", 40, 30, 1, {"integrity"}, "wrong_extension"),
    # greyscale + alpha: decoded, mode LA kept
    "2/gray_alpha.png": (None, "PNG", "LA", 40, 30, 1, set(), None),
    # BMP: a listed extension, decoded
    "2/bitmap.bmp": (None, "BMP", "RGB", 40, 30, 1, set(), None),
    # WebP: decoded
    "2/picture.webp": (None, "WEBP", "RGB", 40, 30, 1, set(), None),
    # two-page TIFF: first page used, integrity says so
    "2/multipage.tif": (None, "TIFF", "RGB", 24, 24, 2, {"integrity"}, "multi_frame"),
    # a symlink that stays inside the root: followed; an exact duplicate of its target
    "1/link_inside.png": (None, "PNG", "L", 28, 28, 1, {"exact_duplicate"}, None),
}
# files the ImageFolder listing must skip (each with its reason)
NOT_LISTED = {
    "2/readme.txt",  # not an image extension
    "2/.hidden.png",  # hidden file
    "loose_in_root.png",  # no class folder: skipped with a warning
}


@dataclass
class OddRun:
    ws: Path
    codes: dict[str, int]
    logs: dict[str, str]
    before: dict[str, tuple[int, str]]
    after: dict[str, tuple[int, str]]
    manifest: pd.DataFrame
    issues: pd.DataFrame
    tensor_index: pd.DataFrame


@pytest.fixture(scope="module")
def odd(tmp_path_factory: pytest.TempPathFactory) -> OddRun:
    ws = tmp_path_factory.mktemp("odd")
    src = make_odd_folder(ws / "src")
    # scan with 2 worker processes: bad files must come back as rows across processes too
    params = write_params(ws, "src", scan={"workers": 2})
    before = snapshot(src)
    codes, logs = {}, {}
    for name in STAGES:
        codes[name], logs[name] = stage(name, params)
    return OddRun(ws, codes, logs, before, snapshot(src),
                  pd.read_parquet(ws / "dataqa-out/interim/manifest.parquet"),
                  pd.read_parquet(ws / "dataqa-out/audit/issues.parquet"),
                  pd.read_parquet(ws / "dataqa-out/interim/tensor_index.parquet"))


def test_odd_files_run_every_stage(odd: OddRun) -> None:
    assert {k: v for k, v in odd.codes.items() if k != "gate"} == dict.fromkeys(STAGES[:-1], 0)
    # the gate fails on the undecodable share (6 of 70 files > 5 %), and only on that
    gate = json.loads((odd.ws / "reports/gate.json").read_text())
    failed = sorted(n for n, r in gate["rules"].items() if r["passed"] is False)
    assert (odd.codes["gate"], failed) == (1, ["max_undecodable_rate"])
    assert all("Traceback" not in text for text in odd.logs.values())


@pytest.mark.parametrize("path", list(FILE_KINDS))
def test_odd_file_outcome(odd: OddRun, path: str) -> None:
    error, fmt, mode, width, height, frames, flags, kind = FILE_KINDS[path]
    rows = odd.manifest.index[odd.manifest["path"] == path]
    assert len(rows) == 1, f"{path!r} not listed exactly once"
    row, issue = odd.manifest.loc[rows[0]], odd.issues.loc[rows[0]]
    assert issue["path"] == path
    got_error = row["decode_error"]
    if error is None:
        assert pd.isna(got_error), got_error
        # decoded: it has a training tensor
        assert bool(odd.tensor_index.loc[rows[0], "decoded"]) is True
    else:
        assert str(got_error).startswith(error), got_error
        assert bool(odd.tensor_index.loc[rows[0], "decoded"]) is False
    got = tuple(None if pd.isna(row[c]) else row[c]
                for c in ("format", "mode", "width", "height", "n_frames"))
    assert got == (fmt, mode, width, height, frames)
    for check in flags:
        assert bool(issue[f"is_{check}_issue"]), f"{path}: {check} did not flag it"
    assert bool(issue["is_integrity_issue"]) == ("integrity" in flags)
    assert (None if pd.isna(issue["integrity_kind"]) else issue["integrity_kind"]) == kind


def test_exif_rotation_reaches_the_tensor(odd: OddRun) -> None:
    # the upright 20x40 picture is letterboxed as a portrait box (16 px tall, 8 wide)
    row = odd.tensor_index[odd.manifest["path"] == "1/exif_rotated.jpg"].iloc[0]
    assert (int(row["box_height"]), int(row["box_width"])) == (16, 8)


def test_listing_skips_and_warns(odd: OddRun) -> None:
    listed = set(odd.manifest["path"])
    assert not listed & NOT_LISTED
    # the empty class folder does not become a class; the HTML-named one does
    assert set(odd.manifest["label"]) == {"0", "1", "2", HTML_LABEL}
    assert "class folder 'empty_class' holds no image file" in odd.logs["scan"]
    assert "directly in the root have no class folder" in odd.logs["scan"]
    assert "loose_in_root.png" in odd.logs["scan"]


def test_hostile_names_are_escaped_in_the_report(odd: OddRun) -> None:
    html = (odd.ws / "reports/audit.html").read_text(encoding="utf-8")
    assert "<script>x" not in html and "<img src=x" not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html  # the label, shown escaped
    assert "&lt;script&gt;x&lt;/script&gt;.png" in html  # the file name, shown escaped
    assert UNICODE_NAME in html


def test_odd_source_tree_untouched(odd: OddRun) -> None:
    assert odd.after == odd.before


def test_nan_predictions_are_an_error_naming_the_rows(odd: OddRun) -> None:
    # NaN rows are how crossval marks undecodable rows; a NaN row for a decodable image
    # (a corrupted or edited file) must not silently drop it from the label check
    path = odd.ws / "dataqa-out/interim/pred_probs.npy"
    good = path.read_bytes()
    probs = np.load(path)
    digit = int(np.flatnonzero(odd.manifest["path"] == "2/d003.png")[0])
    probs[digit] = np.nan
    np.save(path, probs)
    try:
        code, log = stage("audit", odd.ws / "params.yaml")
    finally:
        path.write_bytes(good)
    assert code == 2
    assert f"row {digit} (2/d003.png)" in log and "non-finite" in log
    assert "rerun the 'crossval' stage" in log and "Traceback" not in log


# ------------------------------------------------------------- kinds that stop the pipeline
def bad_rows_csv(src: Path) -> str:
    make_single_class(src / "imgs")
    (src.parent / "secret.png").write_bytes(b"outside the root")
    os.symlink(src.parent / "secret.png", src / "imgs" / "0" / "link.png")
    write_csv(src / "bad.csv", [
        "path,label",
        "imgs/0/d000.png,cat",  # row 2: fine
        "../secret.png,cat",  # row 3: '..' leaves the root
        f"{src.parent / 'secret.png'},cat",  # row 4: absolute path
        "imgs/0/d001.png,",  # row 5: empty label
        "imgs/0/d002.png,dog",  # row 6 and ...
        "imgs/0/d002.png,dog",  # row 7: the same file twice
        "imgs/0/missing.png,dog",  # row 8: missing file
        "imgs/0/link.png,dog",  # row 9: symlink out of the root
        "imgs/0,dog",  # row 10: a directory
    ])
    return "src/bad.csv"


def missing_column_csv(src: Path) -> str:
    make_single_class(src / "imgs")
    write_csv(src / "nolabel.csv", ["path,class", "imgs/0/d000.png,cat"])
    return "src/nolabel.csv"


def typo_label_csv(src: Path) -> str:
    draw_digit_folder(src / "imgs", classes=3, per_class=6)
    rows = ["path,label"] + [f"imgs/{c}/d{i:03d}.png,{'ab'[c]}" for c in range(2)
                             for i in range(6)]
    write_csv(src / "typo.csv", rows + ["imgs/2/d000.png,cta"])  # 'cat' mistyped once
    return "src/typo.csv"


def folder(builder: Callable[[Path], Any]) -> Callable[[Path], str]:
    def make(src: Path) -> str:
        builder(src)
        return "src"
    return make


def escaping_symlink(src: Path) -> None:
    make_escaping_symlink(src, src.parent / "outside" / "x.png")


@dataclass(frozen=True)
class ErrorKind:
    make: Callable[[Path], str]  # writes the source under ws/src; returns data.source
    stage: str  # the stage that must stop with exit code 2
    says: tuple[str, ...]  # what its message must name


ERROR_KINDS: dict[str, ErrorKind] = {
    # ImageFolder symlink to a file outside the root: refused, link named
    "symlink_escaping_root": ErrorKind(folder(escaping_symlink), "scan", (
        "'1/escape.png' is a symlink to", "outside the source root")),
    # one CSV, every bad row at once: each row named with its problem
    "csv_bad_rows": ErrorKind(bad_rows_csv, "scan", (
        "7 bad row(s)",
        "row 3: path '../secret.png' leaves the source root through '..'",
        "row 4: path '/", "is absolute",
        "row 5: empty label for path 'imgs/0/d001.png'",
        "rows 6 and 7: path 'imgs/0/d002.png' is listed twice",
        "row 8: file 'imgs/0/missing.png' not found",
        "row 9: path 'imgs/0/link.png' leaves the source root through a symlink",
        "row 10: path 'imgs/0' is not a regular file")),
    # CSV without a label column: the header row and the columns found are named
    "csv_missing_column": ErrorKind(missing_column_csv, "scan", (
        "row 1 (header): missing column(s) 'label'", "found 'path', 'class'")),
    # class folders holding no image: 'no image files found'
    "directory_without_images": ErrorKind(folder(make_no_images), "scan", (
        "no image files found",)),
    # one class only, or a mistyped label making a 1-image class, no longer stop the
    # pipeline: tests/corpus/test_hostile_data.py::test_worst_data_still_gets_a_report
}


@pytest.mark.parametrize("kind", list(ERROR_KINDS))
def test_error_kind(tmp_path: Path, kind: str) -> None:
    spec = ERROR_KINDS[kind]
    (tmp_path / "src").mkdir()
    params = write_params(tmp_path, spec.make(tmp_path / "src"))
    before = snapshot(tmp_path / "src")
    for name in STAGES[:STAGES.index(spec.stage)]:
        code, log = stage(name, params)
        assert code == 0, f"{name} failed before {spec.stage}:\n{log}"
    code, log = stage(spec.stage, params)
    assert code == 2, log
    assert f"dataqa {spec.stage}: error:" in log
    for words in spec.says:
        assert words in log, f"{words!r} not in:\n{log}"
    assert "Traceback" not in log
    assert snapshot(tmp_path / "src") == before
    if spec.stage == "scan":
        assert not (tmp_path / "dataqa-out/interim/manifest.parquet").exists()


@pytest.mark.parametrize("kind", [k for k, s in ERROR_KINDS.items() if s.stage == "scan"])
def test_scan_errors_from_the_real_cli(tmp_path: Path, kind: str) -> None:
    # as a user runs it: a separate process, exit code 2, one message, no traceback
    spec = ERROR_KINDS[kind]
    (tmp_path / "src").mkdir()
    params = write_params(tmp_path, spec.make(tmp_path / "src"))
    proc = subprocess.run([sys.executable, "-m", "dataqa.cli", "scan", "--params", str(params)],
                          cwd=REPO, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith("dataqa scan: error:")
    assert all(words in proc.stderr for words in spec.says)


# -------------------------------- CSV with BOM + CRLF, a class smaller than the folds
def test_bom_crlf_csv_with_a_class_smaller_than_folds(tmp_path: Path) -> None:
    src = tmp_path / "src"
    draw_digit_folder(src / "imgs", classes=3, per_class=8)
    rows = ["path,label,split"] + [f"imgs/{c}/d{i:03d}.png,{'ab'[c]},train"
                                   for c in range(2) for i in range(8)]
    rows += ["imgs/2/d000.png,c,", "imgs/2/d001.png,c,"]  # class 'c': 2 images, empty split
    write_csv(src / "list.csv", rows, bom=True, crlf=True)
    params = write_params(tmp_path, "src/list.csv", crossval={"folds": 3})
    before = snapshot(src)
    codes, logs = {}, {}
    for name in STAGES:
        codes[name], logs[name] = stage(name, params)
    # the BOM does not hide the 'path' header; CRLF leaves no '\r' in labels or splits
    manifest = pd.read_parquet(tmp_path / "dataqa-out/interim/manifest.parquet")
    assert manifest["label"].value_counts().to_dict() == {"a": 8, "b": 8, "c": 2}
    assert set(manifest["split"]) == {"train"}  # empty split cells take data.default_split
    # crossval drops to 2 folds, loudly, and records both numbers
    metrics = json.loads((tmp_path / "dataqa-out/metrics/crossval.json").read_text())
    assert (metrics["folds_requested"], metrics["folds"]) == (3, 2)
    assert "class 'c' has only 2 images, fewer than crossval.folds=3" in logs["crossval"]
    # the small class is the gate's one failed rule (min_images_per_class: 2 < 5)
    gate = json.loads((tmp_path / "reports/gate.json").read_text())
    failed = sorted(n for n, r in gate["rules"].items() if r["passed"] is False)
    assert codes == {**dict.fromkeys(STAGES[:-1], 0), "gate": 1}
    assert failed == ["min_images_per_class"]
    assert gate["rules"]["min_images_per_class"]["value"] == 2
    assert snapshot(src) == before
