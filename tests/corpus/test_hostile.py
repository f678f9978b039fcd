"""Hostile inputs, round two (issue 15): every case ends in exit code 2 with a message
naming the file, row or key, or in a flagged row; never a traceback, never a hang
(each subprocess has a timeout), never a temporary file left behind. A bug (an
unexpected exception) is exit code 3 with its traceback and a line saying so."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
import yaml

import dataqa.dataset.scan
from dataqa.dataset.imageio import decode_image
from tests.corpus.make_corpus import (
    encoded,
    float_tiff_with,
    oversized_header_jpeg,
    photo,
    repeated_scan_jpeg,
)
from tests.corpus.test_corpus import stage, write_params
from tests.pipeline.workspace import REPO, draw_digit_folder


def cli(params: Path, name: str = "scan", timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``python -m dataqa.cli <name>`` as a user runs it (a separate process)."""
    return subprocess.run([sys.executable, "-m", "dataqa.cli", name, "--params", str(params)],
                          cwd=REPO, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "PYTHONPATH": str(REPO)},
                          errors="surrogateescape")


def digits(src: Path) -> None:
    draw_digit_folder(src, classes=2, per_class=6)


def raw_name(folder: Path, name: bytes) -> bytes:
    return os.fsencode(folder) + b"/" + name


# --------------------------------------------------------------- sources that must stop
def non_utf8_file(src: Path) -> str:
    digits(src)
    with open(raw_name(src / "0", b"caf\xe9.png"), "wb") as fh:
        fh.write((src / "0" / "d000.png").read_bytes())
    return "src"


def non_utf8_folder(src: Path) -> str:
    digits(src)
    os.mkdir(raw_name(src, b"c\xe9"))
    with open(raw_name(src, b"c\xe9/a.png"), "wb") as fh:
        fh.write((src / "0" / "d000.png").read_bytes())
    return "src"


def file_link_loop(src: Path) -> str:
    digits(src)
    os.symlink("b.png", src / "0" / "a.png")
    os.symlink("a.png", src / "0" / "b.png")
    return "src"


def folder_link_loop(src: Path) -> str:
    digits(src)
    os.symlink("loop", src / "loop")  # a class folder that is a link to itself
    return "src"


def csv_with(cells: bytes) -> Callable[[Path], str]:
    def make(src: Path) -> str:
        digits(src)
        (src / "list.csv").write_bytes(b"path,label\n0/d000.png,a\n" + cells + b"\n")
        return "src/list.csv"
    return make


SOURCE_ERRORS: dict[str, tuple[Callable[[Path], str], tuple[str, ...]]] = {
    "non_utf8_file_name": (non_utf8_file, ("not valid UTF-8", "0/caf\\xe9.png", "rename")),
    "non_utf8_folder_name": (non_utf8_folder, ("not valid UTF-8", "c\\xe9")),
    "file_symlink_loop": (file_link_loop, ("'0/a.png' is a symlink loop",)),
    "class_folder_symlink_loop": (folder_link_loop, ("'loop' is a symlink loop",)),
    "csv_nul_byte": (csv_with(b"0/d001.png,b\x00ad"), ("row 3: cell 2 holds a NUL byte",)),
    "csv_cell_over_128k": (csv_with(b"0/d001.png," + b"x" * 140_000),
                           ("row 3: cannot be read as CSV", "field larger than field limit")),
    "csv_long_cell": (csv_with(b"0/d001.png," + b"x" * 5000),
                      ("row 3: cell 2 holds 5000 characters",)),
}


@pytest.mark.parametrize("kind", list(SOURCE_ERRORS))
def test_source_error(tmp_path: Path, kind: str) -> None:
    make, says = SOURCE_ERRORS[kind]
    (tmp_path / "src").mkdir()
    proc = cli(write_params(tmp_path, make(tmp_path / "src")))
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and proc.stderr.startswith("dataqa scan: error:")
    for words in says:
        assert words in proc.stderr, f"{words!r} not in {proc.stderr!r}"
    assert not (tmp_path / "data/interim/manifest.parquet").exists()


# --------------------------------------------------------------- params that must stop
def with_text(extra: bytes) -> Callable[[Path], None]:
    def edit(params: Path) -> None:
        params.write_bytes(params.read_bytes() + extra)
    return edit


def with_values(**over: dict[str, object]) -> Callable[[Path], None]:
    def edit(params: Path) -> None:
        raw = yaml.safe_load(params.read_text())
        for section, values in over.items():
            raw[section].update(values)
        params.write_text(yaml.safe_dump(raw, sort_keys=False))
    return edit


PARAMS_ERRORS: dict[str, tuple[Callable[[Path], None], tuple[str, ...]]] = {
    "non_utf8_byte": (with_text(b"# caf\xe9\n"), ("byte 0xe9 is not UTF-8", "line ")),
    "deep_nesting": (with_text(b"deep: " + b"[" * 50_000 + b"]" * 50_000 + b"\n"),
                     ("nested more than 32 levels deep",)),
    "duplicate_section": (with_text(b"scan:\n  workers: 1\n"),
                          ("key 'scan' appears twice", "first on line")),
    "thumb_size_zero": (with_values(report={"thumb_size": 0}),
                        ("report.thumb_size: 0 is outside the allowed range [16, 1024]",)),
    "thumb_size_negative": (with_values(report={"thumb_size": -5}), ("report.thumb_size: -5",)),
    "seed_negative": (with_values(engine={"seed": -1}), ("engine.seed: -1 is outside",)),
    "image_size_huge": (with_values(engine={"image_size": 100000}),
                        ("engine.image_size: 100000 is outside the allowed range [8, 1024]",)),
    "nan_rate": (with_values(gate={"max_undecodable_rate": float("nan")}),
                 ("gate.max_undecodable_rate: nan is outside",)),
    "share_over_one": (with_values(subsample={"val_fraction": 1.5}),
                       ("subsample.val_fraction: 1.5",)),
}


@pytest.mark.parametrize("kind", list(PARAMS_ERRORS))
def test_params_error(tmp_path: Path, kind: str) -> None:
    edit, says = PARAMS_ERRORS[kind]
    digits(tmp_path / "src")
    params = write_params(tmp_path, "src")
    edit(params)
    proc = cli(params)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and proc.stderr.startswith("dataqa scan: error:")
    for words in says:
        assert words in proc.stderr, f"{words!r} not in {proc.stderr!r}"


# --------------------------------------------------------------- terminal escapes
def test_escape_sequences_are_printed_escaped(tmp_path: Path) -> None:
    digits(tmp_path / "src")
    (tmp_path / "src" / "list.csv").write_text(
        "path,label\n0/d000.png,a\n0/gone\x1b]0;pwned\x07\x1b[2J.png,b\u202e\n")
    proc = cli(write_params(tmp_path, "src/list.csv"))
    assert proc.returncode == 2
    assert "\x1b" not in proc.stderr and "\x07" not in proc.stderr
    assert "0/gone\\x1b]0;pwned\\x07\\x1b[2J.png" in proc.stderr


def test_warnings_are_printed_escaped(tmp_path: Path) -> None:
    digits(tmp_path / "src")
    (tmp_path / "src" / "empty\x1b[2J").mkdir()  # a class folder without images: a warning
    proc = cli(write_params(tmp_path, "src"))
    assert proc.returncode == 0, proc.stderr
    assert "class folder 'empty\\x1b[2J' holds no image file" in proc.stderr
    assert "\x1b" not in proc.stderr


# --------------------------------------------------------------- a bug is exit code 3
def test_an_unexpected_exception_is_exit_code_3_with_its_traceback(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    digits(tmp_path / "src")
    params = write_params(tmp_path, "src")

    def broken(params: object) -> int:
        raise ZeroDivisionError("an internal slip")

    monkeypatch.setattr(dataqa.dataset.scan, "run_stage", broken)
    code, log = stage("scan", params)
    assert code == 3
    assert "Traceback" in log and "ZeroDivisionError: an internal slip" in log
    assert "this is a bug in dataqa" in log and "exit code 3" in log


def test_a_permission_error_on_a_file_is_an_error_not_a_bug(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    digits(tmp_path / "src")
    params = write_params(tmp_path, "src")

    def denied(params: object) -> int:
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), "/ro/data/x.parquet")

    monkeypatch.setattr(dataqa.dataset.scan, "run_stage", denied)
    code, log = stage("scan", params)
    assert code == 2 and "/ro/data/x.parquet" in log and "Traceback" not in log


# --------------------------------------------------------------- disk full
def no_temporary_files(folder: Path) -> list[str]:
    return [p.name for p in folder.rglob(".*") if p.is_file()]


def test_disk_full_during_scan_is_an_error_and_leaves_no_temp_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    digits(tmp_path / "src")
    params = write_params(tmp_path, "src")
    real = pd.DataFrame.to_parquet

    def full(self: pd.DataFrame, path: object, *args: object, **kw: object) -> None:
        real(self.head(1), path, *args, **kw)  # some bytes reach the disk, then no more
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(pd.DataFrame, "to_parquet", full)
    code, log = stage("scan", params)
    assert code == 2, log
    assert "manifest.parquet: disk full while writing it" in log and "Traceback" not in log
    assert not (tmp_path / "data/interim/manifest.parquet").exists()
    assert no_temporary_files(tmp_path / "data") == []


def test_disk_full_during_tensors_is_an_error_not_a_sigbus(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    digits(tmp_path / "src")
    params = write_params(tmp_path, "src")
    assert stage("scan", params)[0] == 0

    def full(fd: int, offset: int, length: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "posix_fallocate", full)
    code, log = stage("tensors", params)
    assert code == 2, log
    assert "tensors.npy: disk full while writing it" in log and "Traceback" not in log
    assert not (tmp_path / "data/interim/tensors.npy").exists()
    assert no_temporary_files(tmp_path / "data") == []


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("mount") is None,
                    reason="a real full disk needs a small tmpfs: root and mount(8)")
def test_a_real_full_tmpfs_during_tensors(tmp_path: Path) -> None:
    digits(tmp_path / "src")
    params = write_params(tmp_path, "src", engine={"image_size": 512})
    assert stage("scan", params)[0] == 0
    interim = tmp_path / "data/interim"
    manifest = (interim / "manifest.parquet").read_bytes()
    shutil.rmtree(interim)
    interim.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(interim)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        (interim / "manifest.parquet").write_bytes(manifest)
        proc = cli(params, "tensors")  # 12 x 512 x 512 = 3 MB > 1 MB
        assert proc.returncode == 2, proc.stderr
        assert "disk full" in proc.stderr and "Traceback" not in proc.stderr
        assert sorted(p.name for p in interim.iterdir()) == ["manifest.parquet"]
        # the scan on a disk with less room than its manifest: the same
        (interim / "manifest.parquet").unlink()
        (interim / "filler").write_bytes(b"\0" * (1024 * 1024 - 8192))
        proc = cli(params, "scan")
        assert proc.returncode == 2, proc.stderr
        assert "manifest.parquet: disk full" in proc.stderr and "Traceback" not in proc.stderr
        assert sorted(p.name for p in interim.iterdir()) == ["filler"]
    finally:
        subprocess.run(["umount", str(interim)], check=False)


# --------------------------------------------------------------- files that decode wrong
DECODER_KINDS: dict[str, tuple[Callable[[], bytes], str, str]] = {
    # name -> (bytes, decode_error prefix, integrity_kind)
    "0/slow_2000_scans.jpg": (lambda: repeated_scan_jpeg(2000, 64), "over the time budget",
                              "over_time_budget"),
    "0/header_claims_6000x6000.jpg": (oversized_header_jpeg, "truncated", "truncated"),
    "1/float_nan.tif": (lambda: float_tiff_with(float("nan")), "cannot decode", "corrupt"),
    "1/float_inf.tif": (lambda: float_tiff_with(float("inf")), "cannot decode", "corrupt"),
}


@pytest.mark.timeout(120)
def test_files_that_decode_wrong_are_flagged_by_integrity(tmp_path: Path) -> None:
    src = tmp_path / "src"
    draw_digit_folder(src, classes=2, per_class=8)
    for rel, (make, _, _) in DECODER_KINDS.items():
        (src / rel).write_bytes(make())
    params = write_params(tmp_path, "src", scan={"workers": 2})  # across processes too
    for name in ("scan", "tensors", "crossval", "audit"):
        code, log = stage(name, params)
        assert code == 0, log
    manifest = pd.read_parquet(tmp_path / "data/interim/manifest.parquet")
    issues = pd.read_parquet(tmp_path / "data/audit/issues.parquet")
    for rel, (_, error, kind) in DECODER_KINDS.items():
        row = int(manifest.index[manifest["path"] == rel][0])
        assert str(manifest.at[row, "decode_error"]).startswith(error), rel
        assert issues.at[row, "integrity_kind"] == kind, rel


def test_a_decode_over_the_time_budget_is_stopped() -> None:
    data = repeated_scan_jpeg(60, 1024)  # 60 scans: allowed, but ~1 s to decode
    decoded = decode_image(data, 40_000_000, budget=0.05)
    assert decoded.image is None
    assert str(decoded.error).startswith("over the time budget: decoding stopped after 0.05 s")


# --------------------------------------------------------------- reopen after the scan
def swap_for_fifo(path: Path) -> None:
    path.unlink()
    os.mkfifo(path)


def swap_for_dev_zero(path: Path) -> None:
    path.unlink()
    path.symlink_to("/dev/zero")


def swap_for_outside_image(path: Path) -> None:
    outside = path.parents[2] / "outside.png"
    outside.write_bytes(path.read_bytes())
    path.unlink()
    path.symlink_to(outside)


def swap_for_other_image(path: Path) -> None:
    path.write_bytes(encoded(photo(28, 28, seed=5).convert("L"), "PNG"))


SWAPS: dict[str, tuple[Callable[[Path], None], str]] = {
    "fifo": (swap_for_fifo, "not a regular file (a FIFO)"),
    "dev_zero_symlink": (swap_for_dev_zero, "outside the source root"),
    "symlink_to_image_outside_root": (swap_for_outside_image, "outside the source root"),
    "replaced_image": (swap_for_other_image, "bytes, the scan read"),
}


@pytest.mark.timeout(120)
@pytest.mark.parametrize("swap", list(SWAPS))
def test_a_file_swapped_after_the_scan_is_refused_by_every_reader(tmp_path: Path,
                                                                  swap: str) -> None:
    make, says = SWAPS[swap]
    digits(tmp_path / "src")
    params = write_params(tmp_path, "src", gate={"max_undecodable_rate": None})
    for name in ("scan", "tensors", "crossval", "audit"):
        assert stage(name, params)[0] == 0
    target = tmp_path / "src" / "1" / "d002.png"
    make(target)
    # tensors: an error naming the file (a subprocess: a hang would be the timeout)
    proc = cli(params, "tensors", timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert "1/d002.png: changed since the scan" in proc.stderr and says in proc.stderr
    assert "Traceback" not in proc.stderr
    # the report is still written; the file's thumbnail says why it is missing
    from dataqa.params import load_params
    from dataqa.report.audit_report import load
    data = load(load_params(params))
    row = int(data.manifest.index[data.manifest["path"] == "1/d002.png"][0])
    data.thumbs.want([row])
    data.thumbs.load()
    assert data.thumbs.get(row).uri is None
    assert "changed since the scan" in str(data.thumbs.get(row).note)


# --------------------------------------------------------------- the worst data
def nothing_decodable(src: Path) -> str:
    for c in ("cat", "dog"):
        (src / c).mkdir(parents=True)
        for i in range(4):
            (src / c / f"broken{i}.png").write_bytes(b"not a picture")
    return "src"


def single_class(src: Path) -> str:
    draw_digit_folder(src, classes=1, per_class=8)
    return "src"


def classes_of_one(src: Path) -> str:
    draw_digit_folder(src, classes=3, per_class=6)
    for name in ("x", "y", "z"):  # three classes with one image each
        (src / name).mkdir()
        (src / name / "only.png").write_bytes((src / "0" / "d000.png").read_bytes())
    return "src"


def typo_label(src: Path) -> str:
    from tests.corpus.test_corpus import typo_label_csv
    return typo_label_csv(src)


WORST: dict[str, tuple[Callable[[Path], str], str, int]] = {
    # name -> (source, words of the not-evaluated reason, gate exit code)
    "nothing_decodable": (nothing_decodable, "no decodable image has a label", 1),
    "single_class": (single_class, "every labelled image is '0'", 0),
    "classes_of_one_image": (classes_of_one, "has 1 image", 1),
    "mistyped_label_one_image": (typo_label, "class 'cta' has 1 image", 1),
}


@pytest.mark.timeout(300)
@pytest.mark.parametrize("kind", list(WORST))
def test_worst_data_still_gets_a_report(tmp_path: Path, kind: str) -> None:
    make, reason, gate_code = WORST[kind]
    (tmp_path / "src").mkdir()
    params = write_params(tmp_path, make(tmp_path / "src"),
                          gate={"min_images_per_class": 2, "max_rates": {"label": 0.1}})
    codes, logs = {}, {}
    for name in ("scan", "tensors", "crossval", "learning_curve", "audit", "report", "gate"):
        codes[name], logs[name] = stage(name, params)
        assert "Traceback" not in logs[name], logs[name]
    assert codes == {**dict.fromkeys(codes, 0), "gate": gate_code}, logs
    crossval = yaml.safe_load((tmp_path / "reports/metrics/crossval.json").read_text())
    assert crossval["evaluated"] is False and reason in crossval["not_evaluated_reason"]
    audit = yaml.safe_load((tmp_path / "reports/metrics/audit.json").read_text())
    assert set(audit["not_evaluated"]) == {"label", "outlier"}
    assert "integrity" in audit["checks"] and "exact_duplicate" in audit["checks"]
    html = (tmp_path / "reports/audit.html").read_text(encoding="utf-8")
    assert "The label check was not evaluated: no model could be trained" in html
    gate = yaml.safe_load((tmp_path / "reports/gate.json").read_text())
    label_rule = gate["rules"]["max_rates.label"]
    assert label_rule["passed"] is None and "not evaluated: no model" in label_rule["message"]


@pytest.mark.timeout(300)
def test_a_diverging_learning_rate_is_an_error_not_completed(tmp_path: Path) -> None:
    draw_digit_folder(tmp_path / "src", classes=2, per_class=16)
    params = write_params(tmp_path, "src", crossval={"lr": 10.0, "epochs": 2})
    for name in ("scan", "tensors"):
        assert stage(name, params)[0] == 0
    code, log = stage("crossval", params)
    assert code == 2, log
    assert "diverged" in log and "lower crossval.lr" in log and "Traceback" not in log
    assert not (tmp_path / "reports/metrics/crossval.json").exists()


def test_saturated_held_out_predictions_count_as_diverged() -> None:
    import numpy as np

    from dataqa.engine.crossval import held_out_loss
    saturated = np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    assert held_out_loss(saturated, np.array([1, 1])) == float("inf")  # a 0 for a true class
    assert held_out_loss(saturated, np.array([0, 1])) == 0.0


# --------------------------------------------------------------- odd source layouts
def csv_symlinked_from_elsewhere(ws: Path) -> str:
    # the real CSV and its images live in 'elsewhere'; the project links to the CSV
    elsewhere = ws / "elsewhere"
    draw_digit_folder(elsewhere / "imgs", classes=2, per_class=6)
    rows = ["path,label"] + [f"imgs/{c}/d{i:03d}.png,{'ab'[c]}" for c in range(2)
                             for i in range(6)]
    (elsewhere / "list.csv").write_text("\n".join(rows) + "\n")
    # a decoy next to the link with the same relative paths but other pixels
    draw_digit_folder(ws / "src" / "imgs", classes=2, per_class=6, seed=9)
    (ws / "src" / "list.csv").symlink_to(elsewhere / "list.csv")
    return "src/list.csv"


def test_a_symlinked_csv_source_resolves_one_root_for_every_stage(tmp_path: Path) -> None:
    import numpy as np

    from dataqa.dataset.imageio import letterbox, open_image
    params = write_params(tmp_path, csv_symlinked_from_elsewhere(tmp_path))
    for name in ("scan", "tensors"):
        assert stage(name, params)[0] == 0
    manifest = pd.read_parquet(tmp_path / "data/interim/manifest.parquet")
    tensors = np.load(tmp_path / "data/interim/tensors.npy")
    real = tmp_path / "elsewhere"
    for i, rel in enumerate(manifest["path"]):  # the tensors are of the hashed files
        import hashlib
        assert manifest.at[i, "sha256"] == hashlib.sha256((real / rel).read_bytes()).hexdigest()
        pixels = np.asarray(open_image(real / rel, 10**7).convert("L"))
        assert (tensors[i, ..., 0] == letterbox(pixels, 16)[0]).all()


LAYOUTS: dict[str, tuple[str, str]] = {
    "dot": (".", "contains the pipeline's outputs"),
    "empty": ("", "data.source is empty"),
    "parent_of_outputs": ("data", "contains the pipeline's outputs paths.augmented_dir"),
    "inside_an_output": ("data/augmented", "lies inside the output paths.augmented_dir"),
}


@pytest.mark.parametrize("kind", list(LAYOUTS))
def test_a_source_mixed_with_the_outputs_is_refused(tmp_path: Path, kind: str) -> None:
    source, says = LAYOUTS[kind]
    draw_digit_folder(tmp_path / "data" / "augmented", classes=2, per_class=3)
    params = write_params(tmp_path, source)
    for name in ("fingerprint", "scan"):
        code, log = stage(name, params)
        assert code == 2, log
        assert says in log and "Traceback" not in log


def test_a_csv_row_naming_an_output_is_refused(tmp_path: Path) -> None:
    draw_digit_folder(tmp_path / "imgs", classes=2, per_class=3)
    (tmp_path / "data/augmented/images").mkdir(parents=True)
    (tmp_path / "data/augmented/images/0000001.png").write_bytes(
        (tmp_path / "imgs/0/d000.png").read_bytes())
    (tmp_path / "list.csv").write_text("path,label\nimgs/0/d000.png,a\nimgs/1/d000.png,b\n"
                                       "data/augmented/images/0000001.png,a\n")
    code, log = stage("scan", write_params(tmp_path, "list.csv"))
    assert code == 2
    assert "'data/augmented/images/0000001.png' (paths.augmented_dir)" in log


# --------------------------------------------------------------- listing: once, counted
def test_listing_counts_skipped_extensions_and_warns_on_look_alikes(tmp_path: Path) -> None:
    src = tmp_path / "src"
    draw_digit_folder(src, classes=2, per_class=4)
    png = (src / "0" / "d000.png").read_bytes()
    for name in ("a.jfif", "b.JPE", "c.heic", "d.HEIC"):
        (src / "0" / name).write_bytes(png)
    (src / "Cat").mkdir()
    (src / "cat").mkdir()
    for folder in ("Cat", "cat"):
        (src / folder / "x.png").write_bytes(png)
    nfc, nfd = "caf\u00e9", "cafe\u0301"
    for folder in (nfc, nfd):
        (src / folder).mkdir()
        (src / folder / "y.png").write_bytes(png)
    (src / "all").symlink_to(src, target_is_directory=True)  # a class folder -> the root
    params = write_params(tmp_path, "src")
    code, log = stage("scan", params)
    assert code == 0, log
    manifest = pd.read_parquet(tmp_path / "data/interim/manifest.parquet")
    assert manifest["path"].is_unique and not manifest["path"].str.startswith("all/").any()
    assert len(manifest) == 2 * 4 + 4  # each file once, through the link too
    assert ("4 file(s) with an image extension not in scan.extensions were skipped "
            "(2 .heic, 1 .jfif, 1 .jpe)") in log
    assert "look-alike class names" in log and "'Cat' vs 'cat'" in log
    assert "'cafe\\u0301' vs 'caf\\xe9'" in log  # shown escaped: they look the same
    assert manifest.attrs["skipped_extensions"] == {".heic": 2, ".jfif": 1, ".jpe": 1}
    for name in ("tensors", "crossval", "audit", "report"):
        assert stage(name, params)[0] == 0
    html = (tmp_path / "reports/audit.html").read_text(encoding="utf-8")
    assert "look-alike class names" in html and "<code>.heic</code> 2" in html


def test_csv_labels_01_and_1_are_warned_about(tmp_path: Path) -> None:
    draw_digit_folder(tmp_path / "imgs", classes=2, per_class=3)
    (tmp_path / "list.csv").write_text("path,label\nimgs/0/d000.png,01\nimgs/0/d001.png,1\n"
                                       "imgs/1/d000.png,2\n")
    code, log = stage("scan", write_params(tmp_path, "list.csv"))
    assert code == 0 and "'01' vs '1'" in log
