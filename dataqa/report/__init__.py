"""The ``report`` stage: self-contained HTML reports (inline CSS, SVG, thumbnails).

One entry per report kind in :data:`REPORTS`: the module function that renders the page
(``render(params) -> str``) and the ``paths`` entry it is written to. A new kind (e.g.
``tuning``) is one entry here plus its own module; its sections register themselves
with :func:`dataqa.report.page.section` (see :mod:`dataqa.report.sections`).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

from dataqa.errors import ParamsError
from dataqa.io import write_text
from dataqa.params import Params


@dataclass(frozen=True)
class ReportKind:
    target: str  # "module:function" rendering the page: (Params) -> str
    output: str  # name of the ``paths`` entry the page is written to

    def load(self) -> Callable[[Params], str]:
        module, func = self.target.split(":")
        return getattr(importlib.import_module(module), func)  # type: ignore[no-any-return]


REPORTS: dict[str, ReportKind] = {
    "audit": ReportKind("dataqa.report.audit_report:render", "audit_html"),
    "tuning": ReportKind("dataqa.report.tuning_report:render", "tuning_html"),
}


def run_stage(params: Params, kind: str = "audit") -> int:
    """Render the ``kind`` report and write it atomically; prints where it went."""
    if kind not in REPORTS:
        raise ParamsError(f"unknown report kind '{kind}'; known: {', '.join(REPORTS)}")
    spec = REPORTS[kind]
    html = spec.load()(params)
    target = params.path(spec.output)
    write_text(target, html)
    if kind == "audit":  # the DVC headline metrics: before the gate, like the report
        from dataqa.headline import write_audit_headline

        write_audit_headline(params)
    print(f"report {kind}: {target} ({len(html.encode('utf-8')) / 1e6:.2f} MB)")
    return 0


__all__ = ["REPORTS", "ReportKind", "run_stage"]
