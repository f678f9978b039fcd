"""``outlier``: images that do not belong to the dataset (a photo among digits, a
placeholder picture among photos, noise), as opposed to images of the right kind with a
quality problem (dark, light, blurry, odd size: the image-quality checks' job).

Two kinds of evidence, either one suffices:

- **embedding**: the mean cosine distance to the ``neighbors`` nearest images in the
  out-of-fold embedding space, as cleanlab's ``OutOfDistribution`` feature score (which
  is ``exp(-d / median(d))`` of that mean distance). We take the robust z of the
  log-distance instead, so the flag is relative to the dataset's own spread, and use
  the faiss k-NN of :mod:`dataqa.checks.neighbors` (exact below 25,000 rows, HNSW
  above; shared with near_duplicate's embedding search through its cache; cleanlab's
  sklearn search would run twice and grow as N^2). Flagged above ``threshold``.
- **statistics** of the manifest that describe *what kind* of picture a file shows:
  luminance entropy, compressed bits per pixel, colourfulness and mean brightness. Each
  is a robust z (median/MAD with a floor, :mod:`dataqa.checks.robust`), capped at
  ``z_cap``; the evidence is the *geometric mean of the image's ``stats_top`` largest*
  capped |z|, flagged above ``stats_threshold``: a soft "several statistics at once".

  Why (issue 12, measured on the photo set of tests/photoset.py, the bundled sample and
  the 10,000 MNIST test digits): the previous evidence, the RMS of all six capped z
  (these four plus size and aspect ratio), flagged nothing on photos: the "image not
  found" placeholders (entropy -10 / -20 σ, bits per pixel -3.8 / -5.2 σ, brightness
  +3.2 σ) and the screenshot (-6.5 σ, -2.5 σ, +3.3 σ) have ordinary photo sizes and
  aspects, and an average over every statistic is diluted by those an image is
  ordinary in (the longer the list, the less any difference counts). Taking the few
  largest fixes that. Their geometric mean, not their RMS, because one statistic far
  out drags others along when the image has *one* problem (a near-white digit: mean
  +19 σ, bits per pixel -3.4 σ; RMS 4.06, geometric mean 3.05) while an image of
  another kind is out in all three (the screenshot: RMS 4.22, geometric mean 3.69): the
  RMS left 4 % between them, the geometric mean 20 %. A single statistic, however far,
  never flags (the product has a factor near 0).

  Size and aspect ratio are not compared: they say how a file was produced, not what
  it shows, and are odd_size's and odd_aspect_ratio's business (a 140 x 28 padded digit
  is +16 σ in aspect, and its padding pulls entropy and bits per pixel to -3.7 σ: with
  the aspect counted it was further out than the screenshot).

  The constants are in robust σ (1.4826 MAD, the σ of a normal distribution):
  ``stats_threshold`` 3.5 is Iglewicz and Hoaglin's cut-off for a robust (modified) z
  score; ``stats_top`` 3: three statistics at once (of four: colourfulness is 0 on a
  grey dataset, so there the three others must all be out); ``z_cap`` 6 bounds one
  statistic so that, at the cap, the two others must still average (geometric) 2.7 σ.
  Measured (benchmarks/README.md "checks"): clean MNIST digits at most 2.8 (10,000),
  ordinary photos of the photo set at most 2.2, the sample's image-quality plants (dark,
  light, blurred, odd size or aspect, near copies) at most 3.3, the test's dark /
  blurred / upscaled / stretched digits at most 2.2; planted photos and textures among
  digits 3.7..6, placeholders and screenshot among photos 3.7..4.6.

Every z-score is taken against the image's class *and* against the whole dataset and
the smaller one counts: a '1' filed under '8' is unusual for its class but not for the
dataset (a label issue, not an outlier), and a small class of documents among photos is
usual for its class. Classes under ``min_class_size`` use the dataset only.

``optionally`` (``use_pred_probs``) cleanlab's entropy-based ``OutOfDistribution`` score
of the out-of-fold probabilities is a third evidence (off by default: on a strong model
it mostly repeats the label check).

``outlier_score`` = 1 / (1 + r^2) where r is the largest evidence over its threshold
(flagged iff r > 1, i.e. score < 0.5); ``outlier_reason`` says which evidence and, for
the statistics, which ones and how far.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from pydantic import Field, model_validator

from dataqa.checks import register
from dataqa.checks.base import AuditContext, Check, CheckResult
from dataqa.checks.neighbors import get_knn
from dataqa.checks.robust import get_robust_z
from dataqa.params.base import BIG, Section, rule_error

# statistic -> floor of its robust scale: differences under this are never remarkable.
# Only statistics that say what kind of picture it is; brightness spread, sharpness and
# percentiles are the image-quality checks' (dark, light, blurry, low_information).
STAT_FLOORS: dict[str, float] = {
    "stat_entropy": 0.1,  # luminance histogram entropy, bits
    "stat_bpp": 0.1,  # lossless bits per pixel (complexity)
    "stat_colorfulness": 0.02,  # in [0, 1]; 0 for every image of a grey dataset
    "stat_mean": 0.02,  # mean luminance in [0, 1]
}
# Not compared: size and aspect ratio say how a file was produced, not what it shows
# (odd_size's and odd_aspect_ratio's business; see the module docstring).
EMBEDDING_FLOOR = 0.1  # log mean k-NN distance: 10% further is never remarkable


class OutlierSettings(Section):
    """``audit.settings.outlier``."""

    threshold: float = Field(5.0, gt=0, le=100, description="robust z of the embedding k-NN distance that flags")
    stats_threshold: float = Field(3.5, gt=0, le=100, description="geometric mean of the stats_top largest capped |z| that flags")
    stats_top: int = Field(3, ge=1, le=1000, description="how many of the image's most unusual statistics count")
    neighbors: int = Field(10, ge=1, le=10_000, description="k of the embedding k-NN")
    min_class_size: int = Field(20, ge=1, le=BIG, description="smaller classes are compared with the whole dataset")
    z_cap: float = Field(6.0, gt=0, le=100, description="most one statistic contributes (module docstring)")
    use_embeddings: bool = Field(True, description="distance to the embedding k-NN")
    use_stats: bool = Field(True, description="unusual image statistics")
    use_pred_probs: bool = Field(False, description="cleanlab entropy OOD score of the predictions")

    @model_validator(mode="after")
    def _one_signal(self) -> OutlierSettings:
        if not (self.use_embeddings or self.use_stats or self.use_pred_probs):
            raise rule_error("at least one of use_embeddings, use_stats, use_pred_probs true",
                             False, "use_embeddings")
        return self


@register
class OutlierCheck(Check):
    name = "outlier"
    Settings = OutlierSettings
    requires = frozenset({"embeddings", "pred_probs"})
    description = ("the image is not the kind of picture the dataset holds: far from "
                   "every other image in the model's embedding space, or with several "
                   "statistics (entropy, compressed size, colour, brightness) far "
                   "outside its class's and the dataset's range")

    def find(self, ctx: AuditContext) -> CheckResult:
        s: OutlierSettings = self.settings
        n = len(ctx.manifest)
        groups = _class_keys(ctx)
        ratios: dict[str, np.ndarray] = {}  # evidence / its threshold: > 1 flags
        words: dict[str, list[str]] = {}
        # a model too weak to judge labels (dataqa/model_strength.py) gives
        # embeddings that say little about what kind of picture an image is
        skipped = ("embedding evidence left out: " + str(ctx.model.get("reason"))
                   if ctx.model is not None and not ctx.model_reliable else None)
        if s.use_embeddings and ctx.embeddings is not None and skipped is None:
            z = self._embedding_z(ctx, groups)
            ratios["embedding"] = z / s.threshold
            words["embedding"] = [f"far from its {s.neighbors} nearest images in the model's "
                                  f"embedding space (z={v:.1f})" for v in z]
        if s.use_stats:
            evidence, detail = self._stats_evidence(ctx, groups)
            ratios["stats"] = evidence / s.stats_threshold
            words["stats"] = [f"statistics unlike the rest (z={v:.1f}): {d}"
                              for v, d in zip(evidence, detail)]
        if s.use_pred_probs and ctx.pred_probs is not None:
            z = self._pred_probs_z(ctx, groups)
            ratios["pred_probs"] = z / s.threshold
            words["pred_probs"] = [f"uncertain out-of-fold prediction (z={v:.1f})" for v in z]

        names = list(ratios)
        stacked = (np.stack([ratios[k] for k in names]) if names
                   else np.full((1, n), np.nan))
        ratio = np.nan_to_num(stacked, nan=0.0).max(axis=0)
        ratio[~ctx.decoded] = 0.0
        is_issue = ratio > 1.0
        reason = np.full(n, None, dtype=object)
        for i in np.flatnonzero(is_issue):
            reason[i] = "; ".join(words[k][i] for j, k in enumerate(names)
                                  if stacked[j, i] > 1.0)
        summary = {
            "evidence": names,
            "by_evidence": {k: int(((np.nan_to_num(stacked[j]) > 1.0) & ctx.decoded).sum())
                            for j, k in enumerate(names)},
            "ratio_percentiles": _percentiles(ratio[ctx.decoded]),
        }
        if skipped and s.use_embeddings and ctx.embeddings is not None:
            summary["warnings"] = [skipped]
        return self.result(ctx, is_issue, 1.0 / (1.0 + ratio**2), summary, reason=reason)

    # evidence ------------------------------------------------------------------------
    def _embedding_z(self, ctx: AuditContext, groups: np.ndarray) -> np.ndarray:
        """One-sided robust z (N,) of the log mean cosine distance to the k nearest
        (NaN where there is no embedding)."""
        emb = np.asarray(ctx.embeddings, dtype=np.float32)
        ok = np.flatnonzero(ctx.decoded & np.isfinite(emb).all(axis=1))
        out = np.full(len(emb), np.nan)
        if len(ok) < 3:
            return out
        dist, _ = get_knn(emb[ok], k=self.settings.neighbors, memory_mb=ctx.memory_mb,
                          cache=True, overwrite=True)
        values = np.full(len(emb), np.nan)
        values[ok] = np.log(dist.mean(axis=1).astype(float) + 1e-6)
        z = _class_and_dataset_z(values, EMBEDDING_FLOOR, groups, self.settings.min_class_size)
        out[ok] = np.maximum(z[ok], 0.0)
        return out

    def _stats_evidence(self, ctx: AuditContext, groups: np.ndarray
                        ) -> tuple[np.ndarray, list[str]]:
        """Geometric mean (N,) of the ``stats_top`` largest capped |robust z| of the
        statistics (NaN where none is known; an unknown one counts as 0), and the two
        furthest statistics of each row (as many as count) in words."""
        features = _stat_features(ctx.manifest)
        n = len(ctx.manifest)
        if not features:
            return np.full(n, np.nan), [""] * n
        z = np.stack([_class_and_dataset_z(np.where(ctx.decoded, v, np.nan),
                                           STAT_FLOORS[name], groups,
                                           self.settings.min_class_size)
                      for name, v in features.items()], axis=1)  # (N, F), signed
        capped = np.minimum(np.abs(z), self.settings.z_cap)
        largest = -np.sort(-np.nan_to_num(capped, nan=0.0), axis=1)[:, :self.settings.stats_top]
        with np.errstate(divide="ignore"):  # log(0) = -inf: a geometric mean of 0
            gmean = np.exp(np.log(largest).sum(axis=1) / self.settings.stats_top)
        evidence = np.where(np.isfinite(capped).any(axis=1), gmean, np.nan)
        names = list(features)
        top = np.argsort(-np.nan_to_num(capped, nan=-1.0), axis=1)[:, :self.settings.stats_top]
        detail = [", ".join(f"{names[j]} {z[i, j]:+.1f}σ" for j in top[i] if np.isfinite(z[i, j]))
                  for i in range(n)]
        return evidence, detail

    def _pred_probs_z(self, ctx: AuditContext, groups: np.ndarray) -> np.ndarray:
        """One-sided robust z (N,) of -log cleanlab's entropy OOD score."""
        from cleanlab.outlier import OutOfDistribution

        probs = np.asarray(ctx.pred_probs, dtype=np.float64)
        out = np.full(len(probs), np.nan)
        if ctx.labels is None:
            return out
        labels = np.asarray(ctx.labels)
        ok = np.flatnonzero(ctx.decoded & np.isfinite(probs).all(axis=1) & (labels >= 0))
        if len(ok) < 3 or len(np.unique(labels[ok])) < 2:
            return out
        p = probs[ok] / probs[ok].sum(axis=1, keepdims=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # cleanlab warns about classes it never saw
            ood = OutOfDistribution().fit_score(pred_probs=p, labels=labels[ok],
                                                verbose=False)
        values = np.full(len(probs), np.nan)
        values[ok] = -np.log(np.clip(ood, 1e-6, 1.0))
        z = _class_and_dataset_z(values, 0.05, groups, self.settings.min_class_size)
        out[ok] = np.maximum(z[ok], 0.0)
        return out


def _class_and_dataset_z(values: np.ndarray, floor: float, groups: np.ndarray,
                         min_class_size: int) -> np.ndarray:
    """(N,) signed robust z against the row's class and against the whole dataset,
    whichever is nearer to 0 (see the module docstring)."""
    by_class = get_robust_z(values, floor=floor, groups=groups,
                            min_group_size=min_class_size)[0]
    overall = get_robust_z(values, floor=floor)[0]
    return np.where(np.abs(by_class) <= np.abs(overall), by_class, overall)


def _class_keys(ctx: AuditContext) -> np.ndarray:
    """(N,) class label per row (object; None when unknown) for per-class references."""
    return ctx.manifest["label"].astype("string").to_numpy(dtype=object, na_value=None)


def _stat_features(manifest: pd.DataFrame) -> dict[str, np.ndarray]:
    """The statistics compared, as (N,) float arrays (NaN when missing)."""
    def col(name: str) -> np.ndarray:
        if name not in manifest:
            return np.full(len(manifest), np.nan)
        return manifest[name].to_numpy(dtype=float, na_value=np.nan)

    out = {name: col(name) for name in STAT_FLOORS}
    return {k: np.where(np.isfinite(v), v, np.nan) for k, v in out.items()
            if np.isfinite(v).any()}


def _percentiles(values: np.ndarray) -> dict[str, float | None]:
    finite = values[np.isfinite(values)]
    if not len(finite):
        return {"p50": None, "p99": None, "max": None}
    p50, p99, top = np.percentile(finite, [50, 99, 100])
    return {"p50": round(float(p50), 3), "p99": round(float(p99), 3),
            "max": round(float(top), 3)}
