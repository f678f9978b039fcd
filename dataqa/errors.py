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

The environment, not dataqa, is named with exit code 2 too: a full disk, a refused
permission on a named file, and a database (``tune.storage``) that refuses the
connection, the password or does not answer within its timeouts (SQLAlchemy's
``OperationalError``, :func:`database_problem`).

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
 └── PredictionsError out-of-sample predictions given to dataqa (``label_issues``
                     arrays, ``crossval.mode: external`` files) are malformed or do not
                     match the manifest; also a ValueError, for library callers
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
class PredictionsError(DataQAError, ValueError):
    """Given out-of-sample predictions are malformed or misaligned; the message names
    the file, row or column."""


def database_problem(exc: BaseException) -> str | None:
    """What a database error says, for the user, when ``exc`` is SQLAlchemy's
    ``OperationalError`` (refused connection, wrong password, connect or statement
    timeout: the database, not dataqa, is at fault); else None. Told by its class
    name so that this module imports nothing; the CLI redacts URLs in what it prints."""
    if not any(c.__name__ == "OperationalError" and c.__module__.startswith("sqlalchemy")
               for c in type(exc).__mro__):
        return None
    orig = getattr(exc, "orig", None) or exc
    first = (str(orig).strip().splitlines() or [type(orig).__name__])[0]
    return (f"the database of tune.storage cannot be used: {type(orig).__name__}: {first} "
            f"(check the host, port, user, password and that it answers; connect and "
            f"statement timeouts apply)")
