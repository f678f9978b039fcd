"""Progress lines on stderr for stage runs.

The CLI configures no logging; a stage that trains for minutes must still show its
epoch lines. ``show_progress`` attaches one stderr handler to the ``dataqa`` logger
unless the application (or pytest) already configured logging.
"""

from __future__ import annotations

import logging
import sys


def show_progress(level: int = logging.INFO) -> None:
    """INFO lines of every ``dataqa.*`` logger to stderr, once per process."""
    root, pkg = logging.getLogger(), logging.getLogger("dataqa")
    if root.handlers or pkg.handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s: %(message)s", "%H:%M:%S"))
    pkg.addHandler(handler)
    pkg.setLevel(level)
