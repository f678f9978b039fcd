"""Page machinery shared by every report: the Jinja environment, sections and their
registry, and the page renderer.

A report page is a header plus an ordered list of :class:`Section` objects. Each section
is built by a function registered with :func:`section` for a report kind and an order
(slots listed in :mod:`dataqa.report.sections`); the function receives the report's data
object and returns a :class:`Section` (its own template under ``templates/`` and the
context that template reads as ``ctx``), a list of them, or None to leave it out.
Adding a section = one module under ``dataqa/report/sections/`` + one template.

Autoescaping is on for every template: file names and labels are user data.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jinja2

TEMPLATES = Path(__file__).parent / "templates"


@dataclass
class Section:
    id: str  # HTML anchor, unique in the page
    title: str
    template: str  # file under templates/, rendered with ``ctx`` = context
    context: dict[str, Any] = field(default_factory=dict)
    summary: str = ""  # a few words next to the title in the table of contents


Builder = Callable[[Any], "Section | Sequence[Section] | None"]


@dataclass(frozen=True)
class SectionDef:
    kind: str
    order: float
    name: str
    build: Builder


_SECTIONS: list[SectionDef] = []


def section(kind: str, order: float) -> Callable[[Builder], Builder]:
    """Register a section builder for reports of ``kind`` at position ``order``."""
    def deco(fn: Builder) -> Builder:
        _SECTIONS.append(SectionDef(kind, order, f"{fn.__module__}.{fn.__qualname__}", fn))
        return fn
    return deco


def build_sections(kind: str, data: Any) -> list[Section]:
    """Call every builder registered for ``kind`` in order; drop the ones returning None."""
    _load_sections()
    out: list[Section] = []
    for sd in sorted((s for s in _SECTIONS if s.kind == kind), key=lambda s: (s.order, s.name)):
        built = sd.build(data)
        if built is None:
            continue
        out.extend([built] if isinstance(built, Section) else built)
    ids = [s.id for s in out]
    dup = sorted({i for i in ids if ids.count(i) > 1})
    if dup:
        raise ValueError(f"report sections with the same id: {dup}")
    return out


def _load_sections() -> None:
    from dataqa.report import sections

    for info in pkgutil.iter_modules(sections.__path__):
        importlib.import_module(f"{sections.__name__}.{info.name}")


def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=True,  # everything, whatever the file extension
        undefined=jinja2.StrictUndefined,
        trim_blocks=True, lstrip_blocks=True,
    )
    env.filters["pct"] = lambda v, d=1: "-" if v is None else f"{100 * float(v):.{d}f}%"
    env.filters["num"] = _num
    return env


def _num(v: Any, digits: int = 4) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        return f"{v:,.0f}" if v.is_integer() and abs(v) < 1e15 else f"{v:.{digits}g}"
    return str(v)


def render_page(*, title: str, facts: Sequence[tuple[str, Any]], sections: Sequence[Section],
                globals_: dict[str, Any] | None = None) -> str:
    """The whole HTML document. ``facts`` are (label, value) pairs shown in the header;
    ``globals_`` are visible to every section template (e.g. ``thumbs``)."""
    env = environment()
    env.globals.update(globals_ or {})
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return env.get_template("page.html.j2").render(
        title=title, facts=list(facts), sections=list(sections), generated=generated)


def records(frame: Any, columns: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Rows of a DataFrame as plain dicts for templates: numpy scalars become Python
    values and missing values (NaN, NA, NaT) become None."""
    import pandas as pd

    cols = list(columns) if columns is not None else list(frame.columns)
    sub = frame[cols].astype(object)
    sub = sub.where(pd.notna(sub), None)
    return [{c: (v.item() if hasattr(v, "item") else v) for c, v in zip(cols, row)}
            for row in sub.itertuples(index=False, name=None)]
