"""The exception tree of dataqa, documented in one place.

Every error that dataqa raises on purpose derives from :class:`DataQAError`; the CLI
(:mod:`dataqa.cli`) catches exactly this base class, prints its message naming the
file, row or key, and exits with code 2 (``EXIT_ERROR``). Exit codes, as ``cli.main``
returns them:

- 0: the stage succeeded;
- 1: ``dataqa gate`` ran and a rule failed (``EXIT_GATE_FAILED``; not an error, see
  :mod:`dataqa.gate`);
- 2: a :class:`DataQAError` (bad params, source, stage input, training, disk full);
- 3: anything else escaping, i.e. a bug in dataqa: its traceback, then a "this is a bug"
  line (``EXIT_BUG``), so CI can tell a crash from bad input or a failed gate;
- 130: interrupted (Ctrl-C).

Messages and warnings are printed with control characters escaped. A full disk
(``ENOSPC``/``EDQUOT``) while writing an output is an :class:`OutputError` (exit 2).

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
