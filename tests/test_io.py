"""Outputs are written whole and atomically: an error mid-write leaves the old file."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dataqa import io


def test_failed_write_keeps_previous_file_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "out.json"
    io.write_json(target, {"a": 1})
    with pytest.raises(RuntimeError), io.atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed mid-write")
    assert json.loads(target.read_text()) == {"a": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]


@pytest.mark.parametrize(
    ("writer", "value", "reader"),
    [
        (io.write_json, {"x": np.float32(0.5), "n": np.int64(3)}, lambda p: json.loads(p.read_text())),  # numpy scalars serialise
        (io.write_npy, np.arange(6, dtype=np.uint8).reshape(2, 3), np.load),  # arrays keep dtype and shape
        (io.write_parquet, pd.DataFrame({"a": [1, 2]}), pd.read_parquet),  # frames round-trip without index
        (io.write_text, "héllo\n", lambda p: p.read_text(encoding="utf-8")),  # text is utf-8
    ],
)
def test_round_trip(tmp_path: Path, writer, value, reader) -> None:  # type: ignore[no-untyped-def]
    target = tmp_path / "sub" / "out.bin"
    writer(target, value)
    got = reader(target)
    if isinstance(value, pd.DataFrame):
        pd.testing.assert_frame_equal(got, value)
    elif isinstance(value, np.ndarray):
        np.testing.assert_array_equal(got, value)
        assert got.dtype == value.dtype
    elif isinstance(value, dict):
        assert got == {"x": 0.5, "n": 3}
    else:
        assert got == value
    assert [p.name for p in target.parent.iterdir()] == ["out.bin"]


def test_outputs_get_the_usual_file_mode(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        io.write_text(tmp_path / "report.html", "<p>hi</p>")
    finally:
        os.umask(old)
    assert (tmp_path / "report.html").stat().st_mode & 0o777 == 0o644


def test_release_pages_drops_a_memory_map_from_resident_memory(tmp_path):
    """A pass over a memory-mapped file keeps its pages resident in the process until
    they are released; the data stays readable after (issue 23: 1 GB of tensors at 1M)."""
    import resource

    from dataqa.io import release_pages

    page = resource.getpagesize()

    def rss() -> int:
        return int(open("/proc/self/statm").read().split()[1]) * page

    path = tmp_path / "t.npy"
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=(4096, 64, 64))
    out[:] = 7
    out.flush()
    release_pages(out)
    del out
    arr = np.load(path, mmap_mode="r")
    before = rss()
    assert int(arr[::1, ::7, ::7].sum(dtype=np.int64)) > 0  # touches every page
    touched = rss()
    release_pages(arr)
    assert touched - before > 8 << 20 and rss() < touched - (8 << 20)
    assert arr[4095, 63, 63] == 7
    release_pages(np.zeros(3))  # not a map: nothing happens
