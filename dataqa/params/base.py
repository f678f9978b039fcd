"""The one way a params value is declared and checked.

Every section of ``params.yaml`` (and every check's ``audit.settings.<check>``) is a
:class:`Section`: a frozen pydantic v2 model whose fields carry the type, default,
bounds (``Field(ge=..., le=...)``) and a one-line ``description``. Validation is
pydantic's, strict (``"5"`` is not an integer, ``true`` is not a number), with unknown
keys forbidden and NaN/infinity refused. Rules across keys are ``model_validator``\\ s
raising :func:`rule_error`. :func:`params_error` turns pydantic's errors into the one
:class:`~dataqa.errors.ParamsError` form: ``<file>: <key.path>: expected <what is
allowed>, got <value>`` (unknown keys: ``unknown key 'x'. Did you mean 'y'? Allowed keys
here: ...``).
"""

from __future__ import annotations

import difflib
import types
import typing
from typing import Annotated, Any, ClassVar, Self, TypeVar, get_args, get_origin

from annotated_types import Ge, Gt, Le, Lt
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator
from pydantic_core import PydanticCustomError

from dataqa.errors import ParamsError

RULE = "dataqa_rule"
SEED_MAX = 2**32 - 1  # numpy / torch seeds
BIG = 10**9  # a generous upper bound of counts: what fits a machine, not advice
M = TypeVar("M", bound=BaseModel)


class Section(BaseModel):
    """Base of every params section and check settings model."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)
    # where the section sits in params.yaml (``tune.space``), for the messages of a
    # section built in code (set by :mod:`dataqa.params` once the tree is declared)
    params_key: ClassVar[tuple[str, ...]] = ()

    def __init__(self, **data: Any) -> None:
        """Built in code (``ScanParams(workers=-1)``): the same :class:`ParamsError` as
        a loaded file, named by where the section sits (``params_key``)."""
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise params_error(exc, type(self), where="params.yaml",
                               prefix=type(self).params_key) from None

    # pydantic's own flag: nested validation builds sections without calling __init__
    # (so a file's errors keep their full key path and are all collected)
    __init__.__pydantic_base_init__ = True  # type: ignore[attr-defined]

    @model_validator(mode="before")
    @classmethod
    def _empty_is_default(cls, data: Any) -> Any:
        """An empty YAML section or mapping (``scan:`` alone) reads as ``{}``."""
        if data is None:
            return {}
        if isinstance(data, dict):
            return {k: ({} if v is None and _is_mapping(cls, k) else v) for k, v in data.items()}
        return data

    def replace(self, **changes: Any) -> Self:
        """A copy with ``changes``, validated like a loaded file (:class:`ParamsError`)."""
        return validate(type(self), {**dict(self), **changes})


def _is_mapping(cls: type[BaseModel], key: Any) -> bool:
    field = cls.model_fields.get(key) if isinstance(key, str) else None
    return field is not None and get_origin(_strip(field.annotation)) is dict


def rule_error(allowed: str, value: Any, key: str = "") -> PydanticCustomError:
    """The error of a rule across keys, for ``raise`` in a validator; ``key`` is the
    dotted key below the model it is raised in (empty: the model itself)."""
    return PydanticCustomError(RULE, "expected {allowed}, got {value}",
                               {"allowed": allowed, "value": value, "key": key})


def validate(cls: type[M], raw: Any, *, where: str = "params.yaml",
             prefix: tuple[str, ...] | None = None) -> M:
    """``raw`` validated into ``cls``, or the :class:`ParamsError` of its errors;
    ``prefix`` is the key path of ``cls`` in the params file (default: where the
    section sits, ``params_key``)."""
    try:
        return cls.model_validate(raw)
    except ValidationError as exc:
        if prefix is None:
            prefix = getattr(cls, "params_key", ())
        raise params_error(exc, cls, where=where, prefix=prefix) from None


def params_error(exc: ValidationError, model: type[BaseModel], *, where: str,
                 prefix: tuple[str, ...] = ()) -> ParamsError:
    """One :class:`ParamsError` for ``exc``: one line per key (the first error of each)."""
    lines: list[str] = []
    seen: set[str] = set()
    for err in exc.errors():
        ctx = err.get("ctx") or {}
        loc = tuple(err["loc"])
        if err["type"] == RULE and ctx.get("key"):
            loc += tuple(ctx["key"].split("."))
        key = key_path(prefix + loc)
        if key in seen:
            continue
        seen.add(key)
        lines.append(f"{where}: {key}: {_problem(err, model, loc)}")
    return ParamsError("\n".join(lines))


def key_path(loc: tuple[Any, ...]) -> str:
    """``('audit', 'learning_curve', 0)`` -> ``audit.learning_curve[0]``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def unknown_key(key: str, allowed: typing.Iterable[str]) -> str:
    """``unknown key 'x'. Did you mean 'y'? Allowed keys here: ...``."""
    allowed = sorted(allowed)
    near = difflib.get_close_matches(key, allowed, n=1)
    hint = f" Did you mean '{near[0]}'?" if near else ""
    return f"unknown key '{key}'.{hint} Allowed keys here: {', '.join(allowed)}"


_WHAT = {
    "int_type": "an integer", "int_parsing": "an integer", "int_from_float": "an integer",
    "float_type": "a number", "float_parsing": "a number", "bool_type": "true or false",
    "bool_parsing": "true or false", "string_type": "a string", "list_type": "a list",
    "dict_type": "a mapping", "model_type": "a mapping", "model_attributes_type": "a mapping",
    "finite_number": "a finite number (not NaN or infinity)", "none_required": "null",
}


def _problem(err: Any, model: type[BaseModel], loc: tuple[Any, ...]) -> str:
    kind, ctx, value = err["type"], err.get("ctx") or {}, err.get("input")
    if kind == "extra_forbidden":
        parent = _model_at(model, loc[:-1])
        names = list(parent.model_fields) if parent else []
        return unknown_key(str(loc[-1]), [n for n in names if n != "root"])
    if kind == RULE:
        return f"expected {ctx['allowed']}, got {ctx['value']!r}"
    if kind == "literal_error":
        allowed = f"one of {ctx['expected']}"
    elif kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        allowed = _range(model, loc) or err["msg"].replace("Input should be ", "a value ")
    elif kind in ("too_short", "too_long"):
        allowed = err["msg"].replace("List should have", "a list with")
    else:
        allowed = _WHAT.get(kind, err["msg"])
    return f"expected {allowed}, got {value!r}"


# --------------------------------------------------------------------------- introspection
def _strip(tp: Any) -> Any:
    """``Annotated[X, ...]`` -> X; ``X | None`` -> X."""
    while True:
        if get_origin(tp) is Annotated:
            tp = get_args(tp)[0]
        elif get_origin(tp) in (typing.Union, types.UnionType):
            args = [a for a in get_args(tp) if a is not type(None)]
            if len(args) != 1:
                return tp
            tp = args[0]
        else:
            return tp


def _step(tp: Any, part: Any) -> tuple[Any, list[Any]]:
    """The type one key below ``tp`` and its constraints (annotated metadata)."""
    tp = _strip(tp)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        field = tp.model_fields.get(str(part))
        return (field.annotation, list(field.metadata)) if field else (None, [])
    if get_origin(tp) in (dict, list):
        inner = get_args(tp)[-1]
        meta = []
        while get_origin(inner) is Annotated:
            inner, *more = get_args(inner)
            meta += [m for x in more for m in getattr(x, "metadata", [x])]
        return inner, meta
    return None, []


def _walk(model: type[BaseModel], loc: tuple[Any, ...]) -> tuple[Any, list[Any]]:
    tp: Any = model
    meta: list[Any] = []
    for part in loc:
        tp, meta = _step(tp, part)
        if tp is None:
            break
    return tp, meta


def _model_at(model: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel] | None:
    tp = _strip(_walk(model, loc)[0])
    return tp if isinstance(tp, type) and issubclass(tp, BaseModel) else None


def bounds_text(meta: list[Any]) -> str:
    """``[0, 1]``, ``(0, 1]``, ``>= 1`` ... of a field's ge/gt/le/lt constraints."""
    lo = next((("[", m.ge) for m in meta if isinstance(m, Ge)), None) or \
        next((("(", m.gt) for m in meta if isinstance(m, Gt)), None)
    hi = next((("]", m.le) for m in meta if isinstance(m, Le)), None) or \
        next(((")", m.lt) for m in meta if isinstance(m, Lt)), None)
    if lo and hi:
        return f"{lo[0]}{_num(lo[1])}, {_num(hi[1])}{hi[0]}"
    if lo:
        return f"{'>=' if lo[0] == '[' else '>'} {_num(lo[1])}"
    if hi:
        return f"{'<=' if hi[0] == ']' else '<'} {_num(hi[1])}"
    return ""


def _num(x: Any) -> str:
    """``1000000000`` rather than ``1e+09``; ``0.25`` as is."""
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e15 else f"{x:g}"


def _annotated_meta(tp: Any) -> list[Any]:
    """Constraints written in ``Annotated[...]`` inside ``tp`` (``Share | None``)."""
    if get_origin(tp) is Annotated:
        _, *more = get_args(tp)
        return [m for x in more for m in getattr(x, "metadata", [x])]
    if get_origin(tp) in (typing.Union, types.UnionType):
        return [m for a in get_args(tp) for m in _annotated_meta(a)]
    return []


def field_bounds(model: type[BaseModel], loc: tuple[Any, ...]) -> str:
    """The bounds of the key at ``loc`` below ``model`` (``[0, 1]``), or ""."""
    tp, meta = _walk(model, loc)
    return bounds_text(meta + _annotated_meta(tp))


def _range(model: type[BaseModel], loc: tuple[Any, ...]) -> str:
    text = field_bounds(model, loc)
    if not text:
        return ""
    return f"a value in {text}" if text[0] in "[(" else f"a value {text}"


# --------------------------------------------------------------------------- the declarations
class Leaf(typing.NamedTuple):
    """One declared key: its path (``*``: any key of a mapping), type, bounds text
    (``[0, 1]``, or ""), one-line description and default."""

    loc: tuple[str, ...]
    annotation: Any
    bounds: str
    description: str
    default: Any


def leaves(model: type[BaseModel], prefix: tuple[str, ...] = ()) -> list[Leaf]:
    """Every key declared under ``model``, depth first, in declaration order; a nested
    section (or a mapping of sections) is walked, not listed."""
    out: list[Leaf] = []
    for name, field in model.model_fields.items():
        if name == "root":
            continue
        loc, tp = (*prefix, name), _strip(field.annotation)
        inner = _strip(get_args(tp)[-1]) if get_origin(tp) is dict else None
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            out += leaves(tp, loc)
        elif isinstance(inner, type) and issubclass(inner, BaseModel):
            out += leaves(inner, (*loc, "*"))
        else:
            default = field.get_default(call_default_factory=True)
            out.append(Leaf(loc, field.annotation,
                            bounds_text(list(field.metadata) + _annotated_meta(field.annotation)
                                        + _annotated_meta(get_args(tp)[-1] if get_args(tp) else tp)),
                            field.description or "", default))
    return out
