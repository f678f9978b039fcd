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


__all__ = ["REPORTS", "ReportKind"]
