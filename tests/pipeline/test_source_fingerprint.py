"""DVC never reads the raw tree (issue 15): a FIFO and a symlink to /dev/zero in the
source leave `dvc status` and `dvc repro` responsive (every command has a timeout: a
hang fails the test instead of blocking the suite), and an unchanged source reruns
nothing after the cheap `fingerprint` listing."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pytest

from tests.pipeline.workspace import make_workspace, run, stages_run

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]
QUICK = 120  # seconds: DVC itself needs a few; a read of a FIFO or /dev/zero never ends


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = make_workspace(tmp_path_factory.mktemp("fingerprint") / "ws")
    os.mkfifo(root / "data" / "sample" / "1" / "pipe.png")  # nobody ever writes to it
    return root


def test_dvc_status_does_not_read_the_source(workspace: Path) -> None:
    proc = run(["dvc", "status", "--json"], workspace, timeout=QUICK)
    assert "fingerprint" in json.loads(proc.stdout)


def test_dvc_repro_lists_the_fifo_as_a_flagged_row_and_reruns_nothing_unchanged(
        workspace: Path) -> None:
    proc = run(["dvc", "repro", "scan"], workspace, timeout=QUICK)
    assert stages_run(proc.stdout + proc.stderr) == ["fingerprint", "scan"]
    manifest = pd.read_parquet(workspace / "dataqa-out/interim/manifest.parquet")
    row = manifest[manifest["path"] == "1/pipe.png"].iloc[0]
    assert str(row["decode_error"]).startswith("cannot read: not a regular file (a FIFO)")
    fp = json.loads((workspace / "dataqa-out/interim/source_fingerprint.json").read_text())
    assert fp["special_files"] == 1 and fp["files"] == len(manifest)
    # unchanged source: the listing runs, its output is the same, the scan is skipped
    again = run(["dvc", "repro", "scan"], workspace, timeout=QUICK)
    assert stages_run(again.stdout + again.stderr) == ["fingerprint"]
    # a changed source: the scan reruns
    (workspace / "data" / "sample" / "1" / "d000.png").unlink()
    third = run(["dvc", "repro", "scan"], workspace, timeout=QUICK)
    assert stages_run(third.stdout + third.stderr) == ["fingerprint", "scan"]


def test_a_symlink_to_dev_zero_is_a_named_error_not_a_hang(workspace: Path) -> None:
    link = workspace / "data" / "sample" / "0" / "zero.png"
    link.symlink_to("/dev/zero")
    try:
        status = run(["dvc", "status"], workspace, timeout=QUICK)
        assert status.returncode == 0
        proc = run(["dvc", "repro", "scan"], workspace, check=False, timeout=QUICK)
        assert proc.returncode != 0
        out = proc.stdout + proc.stderr
        assert "'0/zero.png' is a symlink to /dev/zero, outside the source root" in out
        assert "Traceback" not in out
    finally:
        link.unlink()
