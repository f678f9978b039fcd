"""The one reader of crossval.json (dataset/crossval_metrics.py, issue 25): absent,
broken and good files, read strictly by the stages and leniently by the headline."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from dataqa.dataset.crossval_metrics import (
    crossval_classes,
    not_evaluated_reason,
    read_crossval_metrics,
)
from dataqa.errors import StageInputError
from dataqa.io import write_json
from dataqa.params import Params


def test_absent_broken_and_good_files(params_for: Callable[..., Params]) -> None:
    params = params_for()
    path = params.path("crossval_metrics")
    assert read_crossval_metrics(params) is None and crossval_classes(params) is None
    assert not_evaluated_reason(None) is None
    path.parent.mkdir(parents=True)
    for broken in ("{not json", "[1, 2]"):
        path.write_text(broken)
        with pytest.raises(StageInputError, match=r"crossval\.json.*rerun the 'crossval'"):
            read_crossval_metrics(params)
        assert read_crossval_metrics(params, strict=False) == {}
    write_json(path, {"classes": ["b", 3]})
    with pytest.raises(StageInputError, match="'classes' must be a list of strings"):
        crossval_classes(params)
    write_json(path, {"classes": ["cat", "dog"], "evaluated": False,
                      "not_evaluated_reason": "one class"})
    assert crossval_classes(params) == ["cat", "dog"]
    assert not_evaluated_reason(read_crossval_metrics(params)) == "one class"
    assert not_evaluated_reason({"evaluated": True}) is None
