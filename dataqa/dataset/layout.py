"""Which folder layout an image directory uses: ``root/<class>/*`` or
``root/<split>/<class>/*`` (torchvision/Keras style ``train/ants``, ``val/bees``).

``data.layout`` chooses: ``class``, ``split/class`` or ``auto``. Decisions for ``auto``:

- split names are :data:`SPLIT_NAMES`, matched case-insensitively (``Train`` is
  ``train``); a split's value in the manifest is the folder name lower-cased, so a CSV
  that says ``Train`` and a tree that says ``train/`` agree;
- every visible top-level folder is a split name and at least one of them holds a
  sub-folder: ``split/class``;
- no top-level folder is a split name, or they all are but none holds a sub-folder
  (``train/x.png``: no class to read): ``class`` (the lister then warns that the split
  folders become labels);
- some top-level folders are split names and others are not (``train/``, ``cats/``):
  ambiguous, a :class:`SourceError` naming both groups and the setting that decides.

The chosen layout and the reason are returned as words, for ``dataqa init`` and the scan
to print.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from dataqa.errors import SourceError

Layout = Literal["auto", "class", "split/class"]
LAYOUTS: tuple[str, ...] = ("auto", "class", "split/class")
SPLIT_NAMES = frozenset({"train", "training", "val", "valid", "validation", "test",
                         "testing", "dev"})
VALIDATION_NAMES = ("val", "valid", "validation", "dev")  # in order of preference


def is_split_name(name: str) -> bool:
    return name.strip().lower() in SPLIT_NAMES


def canonical_split(name: str) -> str:
    """A split name as the manifest stores it: known split names lower-cased (``Train``
    -> ``train``), other names unchanged."""
    stripped = name.strip()
    return stripped.lower() if stripped.lower() in SPLIT_NAMES else stripped


def resolve_layout(root: Path, layout: str) -> tuple[str, str]:
    """``(layout, reason)`` for the directory ``root``: ``layout`` is ``class`` or
    ``split/class``."""
    if layout not in LAYOUTS:
        raise SourceError(f"params.yaml: data.layout: {layout!r} is not one of "
                          f"{', '.join(LAYOUTS)}")
    folders = _visible_folders(root)
    if layout != "auto":
        return layout, "set by data.layout"
    splits = [f for f in folders if is_split_name(f)]
    others = [f for f in folders if not is_split_name(f)]
    if splits and others:
        raise SourceError(
            f"{root}: data.layout: auto cannot tell the layout: the top-level folders "
            f"{splits} look like splits, but {others} do not. Set data.layout: class "
            f"(every top-level folder is a class) or data.layout: split/class "
            f"(<split>/<class>/<file>; the other folders are then splits too)")
    if splits and any(_visible_folders(root / s) for s in splits):
        return "split/class", (f"top-level folders {splits} are split names holding "
                               f"class folders")
    if splits:
        return "class", (f"top-level folders {splits} are split names but hold no class "
                         f"folders: read as classes")
    return "class", "top-level folders are classes"


def validation_split(splits: list[str]) -> str | None:
    """The split to validate on among ``splits`` (``val``, ``valid``, ``validation``,
    ``dev``, in that order of preference), or None."""
    lowered = {s.lower(): s for s in splits}
    return next((lowered[n] for n in VALIDATION_NAMES if n in lowered), None)


def _visible_folders(folder: Path) -> list[str]:
    """Names of the folders in ``folder``, hidden ones left out. An entry that cannot be
    examined (a symlink loop) is left out here: the lister names it in its own error."""
    try:
        with os.scandir(folder) as it:
            return sorted(e.name for e in it if not e.name.startswith(".") and _is_dir(e))
    except OSError as exc:
        raise SourceError(f"{folder}: cannot list folder ({exc.strerror or exc})") from None


def _is_dir(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_dir()
    except OSError:
        return False
