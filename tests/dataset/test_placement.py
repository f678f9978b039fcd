"""Listed files against the outputs (dataset/placement.py, issue 25): no file is looked
at when a whole-root test proves none can be an output; otherwise a file that is an
output, directly or through a link, is refused naming its ``paths`` key."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from dataqa.dataset.placement import check_listed_files
from dataqa.errors import SourceError
from dataqa.params import Params, load_params


def params_in(ws: Path, source: str) -> Params:
    (ws / "params.yaml").write_text(yaml.safe_dump({"data": {"source": source}}))
    return load_params(ws / "params.yaml")


def untouchable() -> Iterator[str]:
    raise AssertionError("a file was looked at although no output can be among them")
    yield ""  # pragma: no cover


def test_no_file_is_looked_at_when_no_output_lies_in_the_root(tmp_path: Path) -> None:
    (tmp_path / "imgs").mkdir()
    params = params_in(tmp_path, "imgs")
    check_listed_files(params, tmp_path / "imgs", untouchable())


def test_every_file_of_a_root_inside_an_output_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "dataqa-out" / "augmented" / "images"
    root.mkdir(parents=True)
    (root / "a.png").write_bytes(b"x")
    params = params_in(tmp_path, "dataqa-out/augmented/images/list.csv")
    with pytest.raises(SourceError, match=r"'a.png' \(paths.augmented_dir\)"):
        check_listed_files(params, root, ["a.png"])


def test_a_file_reaching_an_output_through_a_link_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "dataqa-out" / "augmented" / "images"
    out.mkdir(parents=True)
    (out / "0000001.png").write_bytes(b"x")
    (tmp_path / "imgs").mkdir()
    (tmp_path / "imgs" / "ok.png").write_bytes(b"x")
    (tmp_path / "imgs" / "file_link.png").symlink_to(out / "0000001.png")
    (tmp_path / "folder_link").symlink_to(out, target_is_directory=True)
    params = params_in(tmp_path, "list.csv")
    check_listed_files(params, tmp_path, ["imgs/ok.png"])  # the CSV's folder holds outputs
    with pytest.raises(SourceError) as err:
        check_listed_files(params, tmp_path, ["imgs/ok.png", "imgs/file_link.png",
                                              "folder_link/0000001.png",
                                              "dataqa-out/metrics/crossval.json"])
    msg = str(err.value)
    assert "3 listed file(s)" in msg and "'imgs/ok.png'" not in msg
    assert "'imgs/file_link.png' (paths.augmented_dir)" in msg
    assert "'folder_link/0000001.png' (paths.augmented_dir)" in msg
    assert "'dataqa-out/metrics/crossval.json' (paths.crossval_metrics)" in msg
