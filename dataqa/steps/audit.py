"""The ``audit`` stage: run the checks that ``params.yaml: audit.checks`` lists.

Inputs (read only when a listed check ``requires`` them): the manifest, and from the
``tensors``/``crossval`` stages ``tensors.npy``, ``pred_probs.npy``,
``embeddings.npy`` (memory-mapped), plus the class list (``classes`` in the crossval
metrics JSON; without it, the sorted labels of the decodable rows, which is the order
the engine uses too). Outputs: ``issues.parquet`` (one row per manifest row: ``id``,
``path``, ``label``, ``split``, then each check's columns in run order) and
``audit.json`` (DVC metrics; layout in :func:`build_metrics`).

A check raising :class:`~dataqa.errors.DataQAError` propagates unchanged; any other
exception is a bug in that check and is re-raised as :class:`CheckFailed` naming the
check, with the original traceback chained (never swallowed, never turned into a
user-facing "bad input" message).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dataqa.checks import AuditContext, Check, CheckResult, get_check
from dataqa.checks.confidence import get_confidence_histogram
from dataqa.checks.model_strength import ModelStrengthSettings, judge_model
from dataqa.dataset import balance
from dataqa.dataset.manifest import read_manifest
from dataqa.errors import DataQAError, ParamsError, StageInputError
from dataqa.io import write_json, write_parquet
from dataqa.params import AuditParams, Params, check_settings

ID_COLUMNS = ["id", "path", "label", "split"]

# input name -> the stage that writes it (for "run the ... stage first")
INPUT_STAGES = {"pred_probs": "crossval", "embeddings": "crossval", "tensors": "tensors"}


class CheckFailed(RuntimeError):
    """A check crashed with an unexpected exception (a bug, not bad input)."""


def build_checks(audit: AuditParams) -> list[Check]:
    """Instantiate the listed checks with their settings, in order.

    Unknown check names (in ``checks`` or as keys of ``settings``) and unknown or
    ill-typed settings are :class:`ParamsError`. Settings of a known check that is not
    listed are still validated, so a typo does not wait until the check is enabled.
    """
    if len(set(audit.checks)) != len(audit.checks):
        dup = sorted({c for c in audit.checks if audit.checks.count(c) > 1})
        raise ParamsError(f"params.yaml: audit.checks: listed twice: {', '.join(dup)}")
    for name, settings in audit.settings.items():
        if name not in audit.checks:
            get_check(name)(settings)  # validates the name and its settings
    return [get_check(name)(audit.settings.get(name)) for name in audit.checks]


def load_inputs(params: Params, manifest: pd.DataFrame, checks: Sequence[Check]
                ) -> AuditContext:
    """Build the :class:`AuditContext`, loading only the arrays the checks need."""
    needed: dict[str, list[str]] = {}
    for check in checks:
        for key in sorted(check.requires):
            if key not in INPUT_STAGES:
                raise CheckFailed(f"check '{check.name}' requires unknown input '{key}'")
            needed.setdefault(key, []).append(check.name)
    classes = load_classes(params, manifest)
    index = {c: i for i, c in enumerate(classes)}
    labels = manifest["label"].map(index).fillna(-1).to_numpy(dtype=np.int64)
    ctx = AuditContext(manifest=manifest, classes=classes, labels=labels,
                       seed=params.engine.seed, image_size=params.engine.image_size)
    n = len(manifest)
    for key, users in needed.items():
        path = params.path(key)
        if not path.is_file():
            raise StageInputError(
                f"{path}: not found; check(s) {', '.join(users)} need {key}: "
                f"run the '{INPUT_STAGES[key]}' stage first")
        try:
            array = np.load(path, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise StageInputError(f"{path}: not a readable .npy file ({exc}); "
                                  f"rerun the '{INPUT_STAGES[key]}' stage") from None
        if array.shape[0] != n:
            raise StageInputError(
                f"{path}: {array.shape[0]} rows but the manifest has {n}; "
                f"rerun the '{INPUT_STAGES[key]}' stage")
        if key == "pred_probs" and (array.ndim != 2 or array.shape[1] != len(classes)):
            raise StageInputError(
                f"{path}: shape {array.shape} does not match {len(classes)} classes "
                f"({', '.join(classes[:5])}{', ...' if len(classes) > 5 else ''}); "
                f"rerun the 'crossval' stage")
        if key == "pred_probs":
            _check_predictions(path, array, manifest)
        setattr(ctx, key, array)
    return ctx


def _check_predictions(path: Path, probs: np.ndarray, manifest: pd.DataFrame) -> None:
    """Crossval leaves NaN rows only where an image did not decode or has no label. A
    non-finite row for a decodable, labelled image (a corrupted or hand-edited file)
    would silently drop that image from the label check: an error naming the rows."""
    label = manifest["label"].astype("string")
    expected = (manifest["decode_error"].isna() & label.notna()
                & (label.str.strip() != "")).fillna(False).to_numpy(dtype=bool)
    bad = np.flatnonzero(expected & ~np.isfinite(np.asarray(probs)).all(axis=1))
    if len(bad):
        shown = ", ".join(f"row {i} ({manifest['path'].iloc[i]})" for i in bad[:5])
        raise StageInputError(
            f"{path}: {len(bad)} decodable, labelled image(s) have non-finite (NaN/inf) "
            f"predicted probabilities: {shown}{', ...' if len(bad) > 5 else ''}; "
            f"rerun the 'crossval' stage")


def load_classes(params: Params, manifest: pd.DataFrame) -> list[str]:
    """Class names, index = class id: ``classes`` of the crossval metrics when that file
    exists, else the sorted labels of the decodable rows."""
    path = params.path("crossval_metrics")
    if path.is_file():
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise StageInputError(f"{path}: not valid JSON ({exc}); "
                                  f"rerun the 'crossval' stage") from None
        classes = data.get("classes") if isinstance(data, dict) else None
        if classes is not None:
            if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
                raise StageInputError(f"{path}: key 'classes' must be a list of strings")
            return list(classes)
    ok = manifest["decode_error"].isna()
    return sorted(str(c) for c in manifest.loc[ok, "label"].dropna().unique())


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


def dataset_evidence(params: Params, ctx: AuditContext) -> dict[str, Any]:
    """Dataset-level evidence beside the per-image checks, when its inputs exist:
    ``confidence`` (histogram of the out-of-fold max softmax probability, overall and
    per class) and ``learning_curve`` (would more data help? with a recommendation)."""
    out: dict[str, Any] = {}
    pred_probs = ctx.pred_probs
    if pred_probs is None and params.path("pred_probs").is_file():
        pred_probs = np.load(params.path("pred_probs"), mmap_mode="r", allow_pickle=False)
    if pred_probs is not None and pred_probs.shape[0] == len(ctx.manifest):
        probs = np.asarray(pred_probs, dtype=np.float64)
        ok = np.isfinite(probs).all(axis=1) & (ctx.labels >= 0) if ctx.labels is not None \
            else np.isfinite(probs).all(axis=1)
        labels = ctx.labels[ok] if ctx.labels is not None else None
        out["confidence"] = get_confidence_histogram(probs[ok], labels, classes=ctx.classes)
    lc_path = params.path("learning_curve")
    if lc_path.is_file():
        try:
            out["learning_curve"] = json.loads(lc_path.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise StageInputError(f"{lc_path}: not valid JSON ({exc}); rerun the "
                                  f"'learning_curve' stage") from None
    return out


def judge_audit_model(params: Params, ctx: AuditContext) -> dict[str, Any] | None:
    """The out-of-fold model's strength (``audit.json: model``), or None without
    predictions (no crossval ran and no check needs them)."""
    probs = ctx.pred_probs
    if probs is None and params.path("pred_probs").is_file():
        probs = np.load(params.path("pred_probs"), mmap_mode="r", allow_pickle=False)
    if probs is None or ctx.labels is None or probs.shape[0] != len(ctx.manifest):
        return None
    settings = check_settings(ModelStrengthSettings, params.audit.model_strength,
                              "params.yaml: audit.model_strength")
    model = judge_model(np.asarray(probs), ctx.labels, settings)
    if not model["reliable"]:
        print(f"audit: WARNING: {model['reason']}; label flags are review-only. "
              f"What to do: {model.get('advice', '')}")
    return model


def _all_classes(manifest: pd.DataFrame, classes: list[str] | None) -> list[str]:
    """Sorted union of the model's classes and every label of the manifest, so a class
    whose every file is broken shows with count 0."""
    return sorted(set(classes or []) | set(manifest["label"].dropna().astype(str)))


def run_stage(params: Params) -> int:
    manifest = read_manifest(params.path("manifest"))
    checks = build_checks(params.audit)
    ctx = load_inputs(params, manifest, checks)
    ctx.model = judge_audit_model(params, ctx)
    results = run_checks(checks, ctx)
    issues = build_issues(manifest, results)
    metrics = build_metrics(manifest, results, min_per_class=params.audit.min_per_class,
                            classes=ctx.classes)
    metrics.update(dataset_evidence(params, ctx))
    if ctx.model is not None:
        metrics["model"] = ctx.model
    write_parquet(params.path("issues"), issues)
    write_json(params.path("audit_metrics"), metrics)
    _print_summary(results, metrics, params.path("issues"))
    return 0


def _print_summary(results: Sequence[CheckResult], metrics: dict[str, Any],
                   issues_path: Path) -> None:
    ds = metrics["dataset"]
    print(f"audit: {ds['n_files']} files, {ds['n_undecodable']} undecodable, "
          f"{metrics['balance']['n_classes']} classes")
    for r in results:
        print(f"  {r.name:<20} {r.n_issues:>7} flagged ({r.summary['rate']:.2%})")
    print(f"  -> {issues_path}")
