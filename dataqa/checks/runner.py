"""The check runner of the ``audit`` stage: build the checks that
``params.yaml: audit.checks`` lists, run them in order, enforce the plugin contract,
and assemble ``issues.parquet`` (one row per manifest row: ``id``, ``path``, ``label``,
``split``, then each check's columns in run order) and ``audit.json`` (DVC metrics;
layout in :func:`build_metrics`). Reading the inputs is the step's
(:mod:`dataqa.steps.audit`).

A check raising :class:`~dataqa.errors.DataQAError` propagates unchanged; any other
exception is a bug in that check and is re-raised as :class:`CheckFailed` naming the
check, with the original traceback chained (never swallowed, never turned into a
user-facing "bad input" message).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from dataqa.checks import AuditContext, Check, CheckResult, get_check
from dataqa.dataset import balance
from dataqa.errors import DataQAError
from dataqa.params import AuditParams

ID_COLUMNS = ["id", "path", "label", "split"]


class CheckFailed(RuntimeError):
    """A check crashed with an unexpected exception (a bug, not bad input)."""


def build_checks(audit: AuditParams) -> list[Check]:
    """Instantiate the listed checks with their settings, in order.

    Unknown check names (in ``checks`` or as keys of ``settings``) and unknown or
    ill-typed settings are :class:`ParamsError`. Settings of a known check that is not
    listed are still validated, so a typo does not wait until the check is enabled.
    """
    for name, settings in audit.settings.items():
        if name not in audit.checks:
            get_check(name)(settings)  # validates the name and its settings
    return [get_check(name)(audit.settings.get(name)) for name in audit.checks]


def run_checks(checks: Sequence[Check], ctx: AuditContext) -> list[CheckResult]:
    """Run ``checks`` in order; each sees the earlier results in ``ctx.previous``."""
    results = []
    for check in checks:
        try:
            result = check.find(ctx)
        except DataQAError:
            raise
        except Exception as exc:
            raise CheckFailed(f"check '{check.name}' failed: {type(exc).__name__}: {exc}"
                              ) from exc
        validate_result(check.name, result, ctx)
        ctx.previous[check.name] = result
        results.append(result)
    return results


def validate_result(name: str, result: CheckResult, ctx: AuditContext) -> None:
    """The plugin contract, enforced at run time (a violation is a bug in the check)."""
    frame = result.frame
    issue, score = f"is_{name}_issue", f"{name}_score"
    problems = []
    if result.name != name:
        problems.append(f"result named '{result.name}'")
    if not frame.index.equals(ctx.manifest.index):
        problems.append("frame index differs from the manifest's")
    if issue not in frame or frame[issue].dtype != bool:
        problems.append(f"'{issue}' missing or not bool")
    if score not in frame:
        problems.append(f"'{score}' missing")
    else:
        s = frame[score].to_numpy(dtype=float)
        if np.isnan(s).any() or (s < 0).any() or (s > 1).any():
            problems.append(f"'{score}' outside [0, 1]")
    stray = [c for c in frame.columns if c != issue and not str(c).startswith(f"{name}_")]
    if stray:
        problems.append(f"columns without the '{name}_' prefix: {stray}")
    if problems:
        raise CheckFailed(f"check '{name}' broke the check contract: {'; '.join(problems)}")


def build_issues(manifest: pd.DataFrame, results: Sequence[CheckResult]) -> pd.DataFrame:
    """``issues.parquet``: id columns, then each check's columns in run order."""
    parts = [manifest[ID_COLUMNS]] + [r.frame for r in results]
    return pd.concat(parts, axis=1).reset_index(drop=True)


def build_metrics(manifest: pd.DataFrame, results: Sequence[CheckResult], *,
                  min_per_class: int, classes: list[str] | None = None) -> dict[str, Any]:
    """``audit.json``::

        dataset:  n_files, n_decodable, n_undecodable, undecodable_rate, counts_per_split
        balance:  n_classes, counts_per_class, counts_per_split{split: {class: n}},
                  min_class_count, max_class_count, imbalance_ratio, normalized_entropy,
                  min_per_class, classes_under_min, n_classes_under_min
        checks:   {name: {count, rate, settings, ...the check's own summary}}
        summary:  checks_run, n_flagged_any, rate_flagged_any
    """
    n = len(manifest)
    any_flag = np.zeros(n, dtype=bool)
    for r in results:
        any_flag |= r.frame[r.issue_col].to_numpy(dtype=bool)
    return {
        "dataset": balance.dataset_summary(manifest),
        "balance": balance.class_balance(manifest, min_per_class=min_per_class,
                                         classes=_all_classes(manifest, classes)),
        "checks": {r.name: r.summary for r in results},
        "summary": {"checks_run": [r.name for r in results],
                    "n_flagged_any": int(any_flag.sum()),
                    "rate_flagged_any": float(any_flag.mean()) if n else 0.0},
    }


def _all_classes(manifest: pd.DataFrame, classes: list[str] | None) -> list[str]:
    """Sorted union of the model's classes and every label of the manifest, so a class
    whose every file is broken shows with count 0."""
    return sorted(set(classes or []) | set(manifest["label"].dropna().astype(str)))
