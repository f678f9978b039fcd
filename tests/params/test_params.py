"""params.yaml is validated at the boundary: unknown keys and wrong types are errors
that name the key and the allowed values."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from dataqa.errors import ParamsError
from dataqa.params import Params, load_params

REPO = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "params.yaml"
    p.write_text(text)
    return p


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("scan:\n  workerz: 2\n", "scan.workerz: unknown key 'workerz'. Did you mean 'workers'?"),  # misspelt key, suggestion
        ("sacn: {}\n", "sacn: unknown key 'sacn'"),  # misspelt section
        ("scan:\n  workers: two\n", "scan.workers: expected an integer, got 'two'"),  # wrong type
        ("scan:\n  workers: true\n", "scan.workers: expected an integer"),  # bool is not an int
        ("engine:\n  channels: rgbx\n", "engine.channels: expected one of 'auto', 'gray' or 'rgb', got 'rgbx'"),  # literal choices
        ("gate:\n  max_rates: {label: high}\n", "gate.max_rates.label: expected a number"),  # nested mapping value
        ("data: [1, 2]\n", "data: expected a mapping"),  # section is not a mapping
        ("- just\n- a list\n", "expected a mapping of sections"),  # whole file is a list
        ("scan: {workers: 1\n", "not valid YAML"),  # syntax error
    ],
)
def test_rejects_bad_params(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ParamsError, match=None) as info:
        load_params(write(tmp_path, text))
    assert message in str(info.value)
    assert "params.yaml" in str(info.value)  # the file is named


def test_unknown_key_lists_allowed_keys(tmp_path: Path) -> None:
    with pytest.raises(ParamsError) as info:
        load_params(write(tmp_path, "scan:\n  nope: 1\n"))
    assert "Allowed keys here: chunk_size, decode_timeout, extensions, max_bytes, max_pixels, workers" in str(info.value)


def test_missing_file_is_clear(tmp_path: Path) -> None:
    with pytest.raises(ParamsError, match="params file not found"):
        load_params(tmp_path / "absent.yaml")


def test_empty_file_gives_defaults(tmp_path: Path) -> None:
    params = load_params(write(tmp_path, ""))
    assert params.model_dump() == Params().model_dump()  # root is not a key
    assert params.root == tmp_path.resolve()
    assert params.path("manifest") == tmp_path.resolve() / "dataqa-out/interim/manifest.parquet"


def test_int_accepted_where_float_expected(tmp_path: Path) -> None:
    params = load_params(write(tmp_path, "gate:\n  max_undecodable_rate: 1\n"))
    assert params.gate.max_undecodable_rate == 1.0
    assert isinstance(params.gate.max_undecodable_rate, float)


def test_repository_params_are_valid() -> None:
    params = load_params(REPO / "params.yaml")
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    # every section written in the repo's params.yaml is one the code knows
    assert set(raw) <= {f for f in Params.model_fields if f != "root"}
    assert params.data.source == "data/sample"


def test_absolute_paths_are_kept(tmp_path: Path) -> None:
    params = load_params(write(tmp_path, f"data:\n  source: {tmp_path / 'imgs'}\n"))
    assert params.resolve(params.data.source) == tmp_path / "imgs"
