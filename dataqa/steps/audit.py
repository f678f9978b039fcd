"""DVC stage ``audit``: run the checks that ``params.yaml: audit.checks`` lists.

Inputs (read only when a listed check ``requires`` them): the manifest, and from the
``tensors``/``crossval`` stages ``tensors.npy``, ``pred_probs.npy``,
``embeddings.npy`` (memory-mapped), plus the class list (``classes`` in the crossval
metrics JSON; without it, the sorted labels of the decodable rows, which is the order
the engine uses too). Outputs: ``issues.parquet`` and ``audit.json`` (layouts in
:mod:`dataqa.checks.runner`, which runs the checks).

When crossval could train no model (its metrics say ``evaluated: false``: nothing
decodable, one class, classes of one image), the checks that need its predictions or
embeddings are not run; ``audit.json`` lists them under ``not_evaluated`` with the
reason, every other check runs, and the gate reports their rules as not evaluated.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dataqa.checks import AuditContext, Check, CheckResult
from dataqa.checks.confidence import get_confidence_histogram
from dataqa.checks.runner import (  # noqa: F401  (re-exported: the audit's API)
    ID_COLUMNS,
    CheckFailed,
    build_checks,
    build_issues,
    build_metrics,
    run_checks,
    validate_result,
)
from dataqa.dataset.crossval_metrics import not_evaluated_reason, read_crossval_metrics
from dataqa.dataset.manifest import (
    decodable,
    has_label,
    load_classes,
    read_manifest,
)
from dataqa.dataset.tensors import open_tensors
from dataqa.errors import StageInputError
from dataqa.io import write_json, write_parquet
from dataqa.model_strength import judge_model, review_only
from dataqa.params import Params
from dataqa.review import (
    Matched,
    add_review_metrics,
    flag_table,
    match,
    read_decisions,
    review_columns,
    review_summary,
)
from dataqa.text import say

# input name -> the stage that writes it (for "run the ... stage first")
INPUT_STAGES = {"pred_probs": "crossval", "embeddings": "crossval", "tensors": "tensors"}


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
                       seed=params.engine.seed, memory_mb=params.audit.memory_mb,
                       image_size=params.engine.image_size)
    n = len(manifest)
    for key, users in needed.items():
        path = params.path(key)
        if not path.is_file():
            raise StageInputError(
                f"{path}: not found; check(s) {', '.join(users)} need {key}: "
                f"run the '{INPUT_STAGES[key]}' stage first")
        if key == "tensors":
            setattr(ctx, key, open_tensors(path, rows=n))  # the one tensor-file reader
            continue
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
    expected = decodable(manifest).to_numpy(dtype=bool) & has_label(manifest)
    bad = np.flatnonzero(expected & ~np.isfinite(np.asarray(probs)).all(axis=1))
    if len(bad):
        shown = ", ".join(f"row {i} ({manifest['path'].iloc[i]})" for i in bad[:5])
        raise StageInputError(
            f"{path}: {len(bad)} decodable, labelled image(s) have non-finite (NaN/inf) "
            f"predicted probabilities: {shown}{', ...' if len(bad) > 5 else ''}; "
            f"rerun the 'crossval' stage")


def dataset_evidence(params: Params, ctx: AuditContext, *, model: bool = True
                     ) -> dict[str, Any]:
    """Dataset-level evidence beside the per-image checks, when its inputs exist:
    ``confidence`` (histogram of the out-of-fold max softmax probability, overall and
    per class) and ``learning_curve`` (would more data help? with a recommendation)."""
    out: dict[str, Any] = {}
    pred_probs = ctx.pred_probs
    if pred_probs is None and model and params.path("pred_probs").is_file():
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
    model = judge_model(np.asarray(probs), ctx.labels, params.audit.model_strength)
    if not model["reliable"]:
        say(f"audit: WARNING: {model['reason']}; label flags are review-only. "
              f"What to do: {model.get('advice', '')}")
    return model


MODEL_INPUTS = frozenset({"pred_probs", "embeddings"})


def model_not_evaluated(params: Params) -> str | None:
    """Why crossval trained no model (``evaluated: false`` in its metrics), or None."""
    return not_evaluated_reason(read_crossval_metrics(params))


def load_review(params: Params, manifest: pd.DataFrame) -> Matched:
    """The decisions file (``paths.reviews``; none when absent) matched to the manifest
    by content hash; warnings (a relabel to an unknown class, decisions for images not
    in the source) are printed, naming the row."""
    path = params.path("reviews")
    decisions = read_decisions(path)
    matched = match(manifest["sha256"].tolist(), decisions,
                    classes=load_classes(params, manifest), labels=manifest["label"].tolist(),
                    source=str(params.paths.reviews))
    for line in matched.warnings:
        say(f"audit: WARNING: {line}")
    if matched.unmatched:
        rows = ", ".join(str(d.row) for d in matched.unmatched[:8])
        say(f"audit: {len(matched.unmatched)} decision(s) of {params.paths.reviews} name "
              f"images not in the source (rows {rows}{', ...' if len(matched.unmatched) > 8 else ''}"
              f"): kept in the file, applied when the image is back")
    return matched


def add_pending_leaks(metrics: dict[str, Any], manifest: pd.DataFrame, issues: pd.DataFrame,
                      matched: Matched) -> None:
    """``checks.<c>.pending_cross_split_pairs`` for each duplicate check: its cross-split
    pairs (leakage) once the images a person excluded, or kept for this check, are left
    out of their groups (what the gate's ``max_cross_split_duplicates`` compares)."""
    from dataqa.checks.exact_duplicate import summarize_groups

    for name, summary in metrics.get("checks", {}).items():
        col = f"{name}_group"
        if "cross_split_pairs" not in summary or col not in issues:
            continue
        resolved = np.array([d is not None and (d.decision == "exclude" or name in d.checks)
                             for d in matched.decisions], dtype=bool)
        groups = issues[col].fillna(-1).to_numpy(dtype=np.int64).copy()
        groups[resolved] = -1
        exact = None
        if name != "exact_duplicate" and "exact_duplicate_group" in issues:
            exact = issues["exact_duplicate_group"].fillna(-1).to_numpy(dtype=np.int64)
            exact = np.where(groups >= 0, exact, -1)
        pending = summarize_groups(manifest, groups, max_examples=0, exclude=exact)
        summary["pending_cross_split_pairs"] = pending["cross_split_pairs"]


def run_stage(params: Params) -> int:
    original = read_manifest(params.path("manifest"))
    matched = load_review(params, original)
    # the audit judges the dataset as reviewed: a relabelled image under its new class
    manifest = original.assign(label=matched.reviewed_labels(original["label"]))
    checks = build_checks(params.audit)
    reason = model_not_evaluated(params)
    skipped = [c.name for c in checks if reason and c.requires & MODEL_INPUTS]
    checks = [c for c in checks if c.name not in skipped]
    ctx = load_inputs(params, manifest, checks)
    ctx.model = None if reason else judge_audit_model(params, ctx)
    results = run_checks(checks, ctx)
    issues = build_issues(manifest, results)
    metrics = build_metrics(manifest, results, min_per_class=params.audit.min_per_class,
                            classes=ctx.classes)
    demoted = sorted(review_only({"model": ctx.model}))
    flags = flag_table(issues, [r.name for r in results])
    issues = pd.concat([issues, review_columns(flags, matched, original["label"],
                                               demoted=demoted)], axis=1)
    add_review_metrics(metrics, review_summary(flags, matched, demoted=demoted))
    metrics["review"]["file"] = str(params.paths.reviews)  # for the report to name it
    add_pending_leaks(metrics, manifest, issues, matched)
    metrics.update(dataset_evidence(params, ctx, model=reason is None))
    if skipped:
        metrics["not_evaluated"] = {name: f"no model could be trained: {reason}"
                                    for name in skipped}
        say(f"audit: not evaluated (no model could be trained: {reason}): "
              f"{', '.join(skipped)}")
    if ctx.model is not None:
        metrics["model"] = ctx.model
    write_parquet(params.path("issues"), issues)
    write_json(params.path("audit_metrics"), metrics)
    _print_summary(results, metrics, params.path("issues"))
    return 0


def _print_summary(results: Sequence[CheckResult], metrics: dict[str, Any],
                   issues_path: Path) -> None:
    ds = metrics["dataset"]
    say(f"audit: {ds['n_files']} files, {ds['n_undecodable']} undecodable, "
          f"{metrics['balance']['n_classes']} classes")
    review = metrics.get("review", {})
    for r in results:
        info = review.get("checks", {}).get(r.name)
        if info is None:
            say(f"  {r.name:<20} {r.n_issues:>7} suspected ({r.summary['rate']:.2%}; "
                f"not flags: the model is too weak to judge)")
            continue
        say(f"  {r.name:<20} {r.n_issues:>7} flagged ({r.summary['rate']:.2%}), "
            f"{info['pending']} pending review")
    if review:
        say(f"  review: {review['n_pending']} of {review['n_images']} images pending "
            f"({review['pending_rate']:.1%}), {review['n_decided']} decided")
    say(f"  -> {issues_path}")
