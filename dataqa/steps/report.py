"""DVC stage ``report``: render one kind of :data:`dataqa.report.REPORTS` and write it."""

from __future__ import annotations

from dataqa.errors import ParamsError
from dataqa.headline import write_audit_headline
from dataqa.io import write_text
from dataqa.params import Params
from dataqa.report import REPORTS
from dataqa.text import say


def run_stage(params: Params, kind: str = "audit") -> int:
    """Render the ``kind`` report and write it atomically; prints where it went."""
    if kind not in REPORTS:
        raise ParamsError(f"unknown report kind '{kind}'; known: {', '.join(REPORTS)}")
    spec = REPORTS[kind]
    html = spec.load()(params)
    target = params.path(spec.output)
    write_text(target, html)
    if kind == "audit":  # the DVC headline metrics: before the gate, like the report
        write_audit_headline(params)
    say(f"report {kind}: {target} ({len(html.encode('utf-8')) / 1e6:.2f} MB)")
    return 0
