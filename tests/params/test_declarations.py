"""Every declared key refuses a wrong type, NaN and an out-of-range value, with one
error naming the key, before the first stage does any work.

The cases are generated from the declarations themselves (:func:`dataqa.params.base.
leaves` over :class:`~dataqa.params.Params` and every check's ``Settings``), so a key
added tomorrow is tried too. Each case writes a params file holding that one bad value
and runs ``dataqa scan`` on a source it would happily read: the CLI must exit 2 with
exactly one error line naming the key, and no manifest may be written.
"""

from __future__ import annotations

import re
import types
import typing
from pathlib import Path
from typing import Any, get_args, get_origin

import numpy as np
import pytest
import yaml
from PIL import Image

from dataqa.checks import settings_models
from dataqa.cli import main
from dataqa.params import Params
from dataqa.params.base import Leaf, Section, key_path, leaves

SAMPLE = "dark"  # a key for mappings keyed by check or subset name: valid as both


def _base(tp: Any) -> Any:
    while True:
        origin = get_origin(tp)
        if origin is typing.Annotated:
            tp = get_args(tp)[0]
        elif origin in (typing.Union, types.UnionType):
            args = [a for a in get_args(tp) if a is not type(None)]
            tp = args[0] if len(args) == 1 else tp
            if len(args) != 1:
                return tp
        else:
            return tp


def _numeric(tp: Any) -> bool:
    return _base(tp) in (int, float)


def _outside(leaf: Leaf, item: Any) -> Any:
    """A value just outside the declared bounds (the lower side when there is one)."""
    m = re.fullmatch(r"([\[(])(\S+), (\S+)([\])])", leaf.bounds)
    step = 1 if _base(item) is int else 0.5
    if m:
        lo_open, lo, _, _ = m.groups()
        lo = float(lo)
        return (lo if lo_open == "(" else lo - step) if _base(item) is float else int(lo) - 1
    m = re.fullmatch(r"(>=|>) (\S+)", leaf.bounds)
    assert m, leaf
    lo = float(m.group(2))
    return (lo if m.group(1) == ">" else lo - step) if _base(item) is float else int(lo) - 1


def cases_of(leaf: Leaf, prefix: tuple[str, ...] = ()) -> list[tuple[str, Any, str]]:
    """(case id, raw params, the key the error must name) for one declared key."""
    loc = tuple(SAMPLE if p == "*" else p for p in (*prefix, *leaf.loc))
    tp = _base(leaf.annotation)
    origin = get_origin(tp)
    item = get_args(tp)[-1] if origin in (list, dict) else tp
    wrong: Any = 12345 if tp is str or get_origin(tp) is typing.Literal else "x"
    out = [("type", _nest(loc, wrong), key_path(loc)), ("nan", _nest(loc, float("nan")),
                                                           key_path(loc))]
    item_loc: tuple[Any, ...] = (*loc, SAMPLE) if origin is dict else (*loc, 0)

    def holding(v: Any) -> Any:
        return {SAMPLE: v} if origin is dict else [v] if origin is list else v

    if origin in (list, dict) and _numeric(item):
        out[1] = ("nan", _nest(loc, holding(float("nan"))), key_path(item_loc))
    if leaf.bounds:
        key = key_path(item_loc) if origin in (list, dict) else key_path(loc)
        out.append(("range", _nest(loc, holding(_outside(leaf, item if origin else tp))), key))
    return [(f"{'.'.join(loc)}-{kind}", raw, key) for kind, raw, key in out]


def _nest(loc: tuple[str, ...], value: Any) -> dict[str, Any]:
    raw: Any = value
    for part in reversed(loc):
        raw = {part: raw}
    return raw


def _sections(model: type[Section], loc: tuple[str, ...]) -> list[tuple[type[Section], tuple]]:
    out = [(model, loc)]
    for name, field in model.model_fields.items():
        tp = _base(field.annotation)
        inner = _base(get_args(tp)[-1]) if get_origin(tp) is dict else None
        if isinstance(tp, type) and issubclass(tp, Section):
            out += _sections(tp, (*loc, name))
        elif isinstance(inner, type) and issubclass(inner, Section):
            out += _sections(inner, (*loc, name, SAMPLE))
    return out


CHECKS = settings_models()
CASES = [c for leaf in leaves(Params) for c in cases_of(leaf)]
CASES += [c for name, model in sorted(CHECKS.items()) for leaf in leaves(model)
          for c in cases_of(leaf, ("audit", "settings", name))]
SECTIONS = _sections(Params, ()) + [(m, ("audit", "settings", n)) for n, m in CHECKS.items()]
TYPOS = [(key_path((*loc, next(iter(m.model_fields)) + "x")), _nest(
    (*loc, next(iter(m.model_fields)) + "x"), 1), next(iter(m.model_fields)))
    for m, loc in SECTIONS if m.model_fields]


def test_the_walk_covers_every_key_and_every_check() -> None:
    keys = {c[0].rsplit("-", 1)[0] for c in CASES}
    assert len(keys) > 240  # issue 21 replaced tune.fixed (10 keys) by tune.start
    assert {k.split(".")[2] for k in keys if k.startswith("audit.settings.")} == set(CHECKS)
    every = leaves(Params) + [leaf for m in CHECKS.values() for leaf in leaves(m)]
    assert [leaf.loc for leaf in every if not leaf.description] == []  # one line of meaning
    numeric = [leaf for leaf in every if _numeric(leaf.annotation) or (
        get_origin(_base(leaf.annotation)) in (list, dict)
        and _numeric(get_args(_base(leaf.annotation))[-1]))]
    assert len(numeric) > 150
    assert [leaf.loc for leaf in numeric if not leaf.bounds] == []  # every number has a range


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A source that `scan` would happily read: only params can stop it."""
    root = tmp_path_factory.mktemp("src")
    for c in ("a", "b"):
        (root / c).mkdir()
        for i in range(2):
            Image.fromarray(np.full((8, 8), 40 * i + 60, dtype=np.uint8)).save(root / c / f"{i}.png")
    return root


def _run(tmp_path: Path, source: Path, bad: dict[str, Any],
         capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    raw: dict[str, Any] = {"data": {"source": str(source)}, "scan": {"workers": 0}}
    for section, value in bad.items():
        raw[section] = _merge(raw.get(section, {}), value)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    code = main(["scan", "--params", str(tmp_path / "params.yaml")])
    return code, capsys.readouterr().err


def _merge(a: Any, b: Any) -> Any:
    if isinstance(a, dict) and isinstance(b, dict):
        return {**a, **{k: _merge(a.get(k), v) for k, v in b.items()}}
    return b


@pytest.mark.parametrize(("bad", "key"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_a_bad_value_is_one_error_naming_the_key(tmp_path: Path, source: Path,
                                                 bad: dict[str, Any], key: str,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _run(tmp_path, source, bad, capsys)
    lines = [x for x in err.splitlines() if x.strip()]
    assert code == 2, err
    assert len(lines) == 1 and f": {key}: expected " in lines[0], err
    assert not (tmp_path / "dataqa-out").exists()  # the stage did no work


@pytest.mark.parametrize(("key", "bad", "meant"), TYPOS, ids=[t[0] for t in TYPOS])
def test_a_misspelled_key_is_named_with_a_suggestion(tmp_path: Path, source: Path, key: str,
                                                     bad: dict[str, Any], meant: str,
                                                     capsys: pytest.CaptureFixture[str]
                                                     ) -> None:
    code, err = _run(tmp_path, source, bad, capsys)
    assert code == 2, err
    assert f": {key}: unknown key '{key.rsplit('.', 1)[-1]}'. Did you mean '{meant}'?" in err


def test_the_issue_example_is_refused(tmp_path: Path, source: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    """`audit.settings.dark: {threshold: -5, floor: .nan}` used to load silently."""
    code, err = _run(tmp_path, source, {"audit": {"settings": {"dark": {
        "threshold": -5, "floor": float("nan")}}}}, capsys)
    assert code == 2
    assert "audit.settings.dark.threshold: expected a value in (0, 100], got -5" in err
    assert "audit.settings.dark.floor: expected a finite number" in err


@pytest.mark.parametrize(("bad", "says"), [
    ({"audit": {"checks": ["integrity", "darkk"]}},
     "audit.checks[1]: expected one of the checks"),
    ({"audit": {"settings": {"darkk": {}}}}, "audit.settings.darkk: unknown key 'darkk'. "
                                             "Did you mean 'dark'?"),
    ({"gate": {"max_rates": {"lable": 0.1}}}, "gate.max_rates.lable: unknown key 'lable'. "
                                              "Did you mean 'label'?"),
    ({"filter": {"policy": {"nope": "drop"}}}, "filter.policy.nope: unknown key 'nope'"),
    ({"filter": {"min_score": {"nope": 0.5}}}, "filter.min_score.nope: unknown key 'nope'"),
])
def test_unknown_check_names_are_refused(tmp_path: Path, source: Path, bad: dict[str, Any],
                                         says: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _run(tmp_path, source, bad, capsys)
    assert code == 2 and says in err, err
