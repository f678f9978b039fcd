"""Every numeric params key has a range (dataqa/params/bounds.py), and it is enforced."""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path

import pytest
import yaml

from dataqa.errors import ParamsError
from dataqa.params import Params, load_params
from dataqa.params.bounds import BOUNDS, bound_for


def numeric_keys(cls: type, prefix: str = "") -> list[str]:
    """Dotted names of the int/float fields of the schema (``*`` for mapping keys)."""
    out: list[str] = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.name == "root":
            continue
        tp, name = hints[f.name], f"{prefix}{f.name}"
        inner = [a for a in typing.get_args(tp) if dataclasses.is_dataclass(a)]
        if dataclasses.is_dataclass(tp):
            out += numeric_keys(tp, name + ".")  # type: ignore[arg-type]
        elif typing.get_origin(tp) is dict and inner:
            out += numeric_keys(inner[0], name + ".*.")
        elif typing.get_origin(tp) is dict:
            if typing.get_args(tp)[1] in (int, float):
                out.append(name + ".*")
        elif "int" in str(tp) or "float" in str(tp):
            out.append(name)
    return out


def test_every_numeric_key_has_a_bound() -> None:
    keys = numeric_keys(Params)
    assert len(keys) > 90
    missing = [k for k in keys if bound_for(k.replace("*", "x")) is None]
    assert missing == [], f"add a bound to dataqa/params/bounds.py BOUNDS for {missing}"


def test_no_bound_names_a_key_that_does_not_exist() -> None:
    keys = set(numeric_keys(Params))
    patterns = {k for k in BOUNDS if "*" in k}
    stale = [k for k in BOUNDS if k not in keys and k not in patterns]
    assert stale == []


def test_defaults_and_the_project_params_are_within_bounds() -> None:
    load_params(Path(__file__).resolve().parents[2] / "params.yaml")


@pytest.mark.parametrize(("section", "key", "value"), [
    ("report", "thumb_size", 0), ("engine", "seed", -1), ("engine", "image_size", 100000),
    ("crossval", "lr", 1e6), ("scan", "workers", 100000), ("gate", "max_undecodable_rate", 2.0),
    ("tune", "seed", -3), ("augment", "rotate_limit", float("inf")),
])
def test_a_value_out_of_bounds_names_key_and_range(tmp_path: Path, section: str, key: str,
                                                   value: float) -> None:
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump({section: {key: value}}))
    with pytest.raises(ParamsError, match=rf"{section}\.{key}: .* outside"):
        load_params(path)
