"""The contract every registered check fulfils (one test class, every plugin).

Each check runs on a synthetic, internally consistent :class:`AuditContext` (conftest
fixture ``audit_context``: undecodable rows, flipped labels, outliers, exact copies) that
holds only the arrays the check declares in ``requires``, so an undeclared input shows
up as a failure here rather than in production.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from dataqa.checks import REGISTRY, get_check
from dataqa.errors import ParamsError
from dataqa.io import _json_default
from dataqa.params.base import Section

get_check("integrity")  # loads every check module, filling REGISTRY
NAMES = sorted(REGISTRY)
INPUTS = {"pred_probs", "embeddings", "tensors"}


def run(make_audit_context, name: str, seed: int = 0):
    cls = REGISTRY[name]
    planted = make_audit_context(n=60, k=3, seed=seed, requires=cls.requires)
    before = planted.ctx.manifest.copy()
    result = cls().find(planted.ctx)
    pd.testing.assert_frame_equal(planted.ctx.manifest, before)  # checks only read
    return planted, result


def test_registry_is_not_empty():
    assert "integrity" in NAMES


@pytest.mark.parametrize("name", NAMES)
class TestCheckContract:
    def test_declaration(self, name):
        cls = REGISTRY[name]
        assert cls.name == name and name.isidentifier()
        assert set(cls.requires) <= INPUTS, f"{name}: unknown inputs {set(cls.requires) - INPUTS}"
        assert issubclass(cls.Settings, Section)  # declared like every params section
        assert all(f.description for f in cls.Settings.model_fields.values())
        assert isinstance(cls.description, str) and cls.description, "describe the flag"

    def test_columns_scores_alignment(self, name, audit_context):
        planted, res = run(audit_context, name)
        frame, n = res.frame, len(planted.ctx.manifest)
        assert res.name == name
        assert frame.index.equals(planted.ctx.manifest.index) and len(frame) == n
        assert frame[f"is_{name}_issue"].dtype == bool
        assert pd.api.types.is_float_dtype(frame[f"{name}_score"])
        score = frame[f"{name}_score"].to_numpy()
        assert np.isfinite(score).all() and (score >= 0).all() and (score <= 1).all()
        stray = [c for c in frame if c != f"is_{name}_issue" and not c.startswith(f"{name}_")]
        assert not stray, f"columns must be prefixed '{name}_': {stray}"

    def test_summary(self, name, audit_context):
        _, res = run(audit_context, name)
        assert res.summary["count"] == int(res.frame[f"is_{name}_issue"].sum())
        assert 0.0 <= res.summary["rate"] <= 1.0
        json.dumps(res.summary, default=_json_default)  # audit.json must hold it

    def test_same_seed_same_output(self, name, audit_context):
        _, first = run(audit_context, name, seed=3)
        _, second = run(audit_context, name, seed=3)
        pd.testing.assert_frame_equal(first.frame, second.frame)
        assert json.dumps(first.summary, default=_json_default, sort_keys=True) == \
            json.dumps(second.summary, default=_json_default, sort_keys=True)

    def test_unknown_setting_rejected(self, name):
        with pytest.raises(ParamsError, match=f"{name}.no_such_setting"):
            REGISTRY[name]({"no_such_setting": 1})
