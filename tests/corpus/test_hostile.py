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

import dataqa.steps.scan
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
    assert not (tmp_path / "dataqa-out/interim/manifest.parquet").exists()


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
                        ("report.thumb_size: expected a value in [16, 1024], got 0",)),
    "thumb_size_negative": (with_values(report={"thumb_size": -5}), ("report.thumb_size: expected a value in [16, 1024], got -5",)),
    "seed_negative": (with_values(engine={"seed": -1}), ("engine.seed: expected a value in [0, ", "got -1")),
    "image_size_huge": (with_values(engine={"image_size": 100000}),
                        ("engine.image_size: expected a value in [8, 1024], got 100000",)),
    "nan_rate": (with_values(gate={"max_undecodable_rate": float("nan")}),
                 ("gate.max_undecodable_rate: expected a finite number", "got nan")),
    "share_over_one": (with_values(split={"val_fraction": 1.5}),
                       ("split.val_fraction: expected a value in (0, 1), got 1.5",)),
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

    monkeypatch.setattr(dataqa.steps.scan, "run_stage", broken)
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

    monkeypatch.setattr(dataqa.steps.scan, "run_stage", denied)
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
    assert not (tmp_path / "dataqa-out/interim/manifest.parquet").exists()
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
    assert not (tmp_path / "dataqa-out/interim/tensors.npy").exists()
    assert no_temporary_files(tmp_path / "data") == []


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("mount") is None,
                    reason="a real full disk needs a small tmpfs: root and mount(8)")
def test_a_real_full_tmpfs_during_tensors(tmp_path: Path) -> None:
    digits(tmp_path / "src")
    params = write_params(tmp_path, "src", engine={"image_size": 512})
    assert stage("scan", params)[0] == 0
    interim = tmp_path / "dataqa-out/interim"
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
