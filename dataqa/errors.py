"""The exception tree of dataqa, documented in one place.

Every error that dataqa raises on purpose derives from :class:`DataQAError`; the CLI
catches this base class, prints its message (control characters escaped) and exits with
code 2. Exit code 1 is a failed gate rule, which is not an error (see :mod:`dataqa.gate`).
Anything else escaping is a bug in dataqa: the CLI prints its traceback and a "this is a
bug" line and exits with code 3, so CI can tell a crash from bad input or a failed gate.
A full disk (``ENOSPC``/``EDQUOT``) anywhere is an :class:`OutputError` (exit 2).

DataQAError
 ├── ParamsError     params.yaml is missing, malformed, or has an unknown/invalid key
 ├── SourceError     the image source (ImageFolder or CSV) is unusable: a bad row,
 │                   a path escaping the root, a missing file, no images at all
 ├── StageInputError a stage's input file is missing or inconsistent (run the
 │                   earlier stage first)
 ├── EngineError     training cannot proceed (single class, class smaller than folds,
 │                   NaN predictions, unreadable weights file)
 └── OutputError     an output cannot be written (disk full, quota); no partial or
                     temporary file is left behind
"""

from __future__ import annotations


class DataQAError(Exception):
    """Base class of every error dataqa raises on purpose."""


class ParamsError(DataQAError):
    """params.yaml is missing, malformed, or holds an unknown or invalid key."""


class SourceError(DataQAError):
    """The image source is unusable; the message names the file, row or column."""


class StageInputError(DataQAError):
    """A stage's input is missing or does not match the manifest."""


class EngineError(DataQAError):
    """Training or cross-validation cannot proceed on this data."""


class OutputError(DataQAError):
    """An output could not be written (disk full, quota exceeded); nothing partial is left."""
