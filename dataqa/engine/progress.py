"""Progress lines on stderr for stage runs.

The CLI configures no logging; a stage that trains for minutes must still show its
epoch lines. ``show_progress`` attaches one stderr handler to the ``dataqa`` logger
unless the application (or pytest) already configured logging.
"""

from __future__ import annotations

import logging
import math
import sys

from dataqa.text import EscapingFormatter


def show_progress(level: int = logging.INFO) -> None:
    """INFO lines of every ``dataqa.*`` logger to stderr, once per process."""
    root, pkg = logging.getLogger(), logging.getLogger("dataqa")
    for existing in pkg.handlers:  # the CLI's warnings handler: show progress lines too
        if getattr(existing, "dataqa_default", False):
            existing.setLevel(level)
            existing.setFormatter(EscapingFormatter("%(asctime)s %(name)s: %(message)s",
                                                    "%H:%M:%S"))
            pkg.setLevel(level)
            return
    if root.handlers or pkg.handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(EscapingFormatter("%(asctime)s %(name)s: %(message)s", "%H:%M:%S"))
    pkg.addHandler(handler)
    pkg.setLevel(level)


def fmt_seconds(s: float) -> str:
    if not math.isfinite(s):
        return "?"
    if s < 90:
        return f"{s:.0f} s"
    if s < 5400:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.1f} h"


def eta_line(prefix: str, done_units: float, total_units: float, elapsed: float) -> str:
    """``prefix`` plus the time left when ``done_units`` of ``total_units`` of work took
    ``elapsed`` seconds (learning curve: units = images seen)."""
    left = math.nan if done_units <= 0 else elapsed * (total_units - done_units) / done_units
    return f"{prefix}; left ~{fmt_seconds(max(left, 0.0))}"
