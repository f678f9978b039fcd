"""What listing a folder source and a CSV source share: how many problems one error
message shows, and resolving a path without following a symlink loop."""

from __future__ import annotations

from pathlib import Path

MAX_LISTED = 20  # problems shown in one error message; the count says how many more


def resolve_or_none(path: Path) -> Path | None:
    """``path`` with every symlink resolved; None for a symlink loop."""
    try:
        return path.resolve()
    except (RuntimeError, OSError):  # RuntimeError: loop (Python 3.11/3.12)
        return None
