"""Progress lines on stderr for stage runs.

The CLI configures no logging; a stage that trains for minutes must still show its
epoch lines. ``show_progress`` attaches one stderr handler to the ``dataqa`` logger
unless the application (or pytest) already configured logging.
"""

from __future__ import annotations

import logging
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
