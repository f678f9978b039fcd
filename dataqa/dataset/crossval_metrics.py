"""The one reader of ``paths.crossval_metrics`` (``crossval.json``), written by the
crossval stage (trained, probe or external mode: :mod:`dataqa.steps.crossval`,
:mod:`dataqa.dataset.external`).

Every module that parses that file comes here: the class list (:func:`crossval_classes`,
used by the audit, the filter and the report through
:func:`dataqa.dataset.manifest.load_classes`), whether a model was trained
(:func:`not_evaluated_reason`, the audit), and the whole document (the report, the
headline metrics). Standard library only, so a stage that merely reads the file imports
no training code (no torch: the audit with image-level checks stays light).
"""

from __future__ import annotations

import json
from typing import Any

from dataqa.errors import StageInputError
from dataqa.params import Params


def read_crossval_metrics(params: Params, *, strict: bool = True) -> dict[str, Any] | None:
    """The parsed document, or None when the file does not exist (no crossval ran).
    ``strict``: a file that is not a JSON object is a :class:`StageInputError` naming it
    (rerun crossval); otherwise (the headline metrics: best effort) it reads as ``{}``."""
    path = params.path("crossval_metrics")
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        if not strict:
            return {}
        raise StageInputError(f"{path}: not valid JSON ({exc}); "
                              f"rerun the 'crossval' stage") from None
    if not isinstance(data, dict):
        if not strict:
            return {}
        raise StageInputError(f"{path}: expected a JSON object, got "
                              f"{type(data).__name__}; rerun the 'crossval' stage")
    return data


def crossval_classes(params: Params) -> list[str] | None:
    """``classes`` of the crossval metrics (index = class id), or None when the file or
    the key is absent."""
    data = read_crossval_metrics(params)
    classes = data.get("classes") if data is not None else None
    if classes is None:
        return None
    if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
        raise StageInputError(f"{params.path('crossval_metrics')}: key 'classes' must be "
                              f"a list of strings")
    return list(classes)


def not_evaluated_reason(metrics: dict[str, Any] | None) -> str | None:
    """Why crossval did not train (its metrics say ``evaluated: false``), or None."""
    if metrics is not None and metrics.get("evaluated", True) is False:
        return str(metrics.get("not_evaluated_reason") or "crossval did not train a model")
    return None
