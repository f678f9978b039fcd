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
- **statistics** of the manifest that describe *what kind* of picture a file is:
  luminance entropy, compressed bits per pixel, colourfulness, mean brightness, size
  and aspect ratio. Each is a robust z (median/MAD with a floor, :mod:`dataqa.checks.robust`),
  capped at ``z_cap``; the evidence is the root mean square (RMS) of the ``stats_top``
  *largest* capped |z| of the image, flagged above ``stats_threshold``.

  Why the largest few and not all of them: an image of another kind differs in the
  statistics that describe its kind and is ordinary in the others; averaging over all
  of them diluted the evidence by the ones it is ordinary in, and the more statistics
  the list held, the less any difference counted. Measured (issue 12): on the photo set
  (tests/photoset.py) the "image not found" placeholders are -10 and -20 σ in entropy,
  -4 and -5 σ in bits per pixel and +3.2 σ in brightness, the screenshot -6.5 σ, -2.5 σ
  and +3.3 σ (and +2.5 σ in size), but they are ordinary photo sizes and aspects, so
  the RMS over all six (cap 8) was 3.3..4.2, under the 4.4 that digits need: nothing
  was flagged. The RMS of the 3 largest is invariant to adding a statistic an image is
  ordinary in.

  The constants, in robust σ (1.4826 MAD: σ of a normal distribution): ``z_cap`` 6 and
  ``stats_top`` 3 mean one statistic alone adds at most 6 / √3 = 3.46, under the
  threshold 4.0: it takes at least two statistics far out (two at the cap give 4.9),
  so that an image that differs in *one* way only (a dark, blurred, upscaled or
  stretched digit) is the image-quality checks' business, not an outlier. The threshold
  4.0 is "the three most unusual statistics 4 σ out on average" (a normal statistic
  passes 4 σ once in 16,000). Measured (benchmarks/README.md "checks"): clean MNIST
  digits at most 2.4, ordinary photos of the photo set at most 2.5, digits with one
  planted quality problem at most 3.65; planted photos among digits 6 (all at the cap),
  placeholders and screenshot among photos 4.2..5.0.

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
from dataclasses import dataclass

import numpy as np
import pandas as pd

from dataqa.checks import register
from dataqa.checks.base import AuditContext, Check, CheckResult
from dataqa.checks.neighbors import get_knn
from dataqa.checks.robust import get_robust_z
from dataqa.errors import ParamsError

# statistic -> floor of its robust scale: differences under this are never remarkable.
# Only statistics that say what kind of picture it is; brightness spread, sharpness and
# percentiles are the image-quality checks' (dark, light, blurry, low_information).
STAT_FLOORS: dict[str, float] = {
    "stat_entropy": 0.1,  # luminance histogram entropy, bits
    "stat_bpp": 0.1,  # lossless bits per pixel (complexity)
    "stat_colorfulness": 0.02,  # in [0, 1]; 0 for every image of a grey dataset
    "stat_mean": 0.02,  # mean luminance in [0, 1]
    "log_side": 0.25,  # log of the geometric mean side: x1.3
    "log_aspect": 0.1,  # abs(log(width / height)): a turned photo is not unusual
}
EMBEDDING_FLOOR = 0.1  # log mean k-NN distance: 10% further is never remarkable


@dataclass(frozen=True)
class OutlierSettings:
    threshold: float = 5.0  # robust z of the embedding k-NN distance that flags
    stats_threshold: float = 4.0  # RMS of the stats_top largest capped robust z that flags
    stats_top: int = 3  # how many of the image's most unusual statistics count
    neighbors: int = 10  # k of the embedding k-NN
    min_class_size: int = 20  # smaller classes are compared with the whole dataset
    z_cap: float = 6.0  # most one statistic contributes (see the module docstring)
    use_embeddings: bool = True
    use_stats: bool = True
    use_pred_probs: bool = False  # cleanlab entropy OOD score of the predictions

    def __post_init__(self) -> None:
        where = "params.yaml: audit.settings.outlier"
        for key in ("threshold", "stats_threshold", "z_cap"):
            if not getattr(self, key) > 0:
                raise ParamsError(f"{where}.{key}: must be > 0, got {getattr(self, key)}")
        if self.neighbors < 1:
            raise ParamsError(f"{where}.neighbors: must be >= 1, got {self.neighbors}")
        if self.stats_top < 1:
            raise ParamsError(f"{where}.stats_top: must be >= 1, got {self.stats_top}")
        if not (self.use_embeddings or self.use_stats or self.use_pred_probs):
            raise ParamsError(f"{where}: use_embeddings, use_stats and use_pred_probs are "
                              "all false; enable at least one")


@register
class OutlierCheck(Check):
    name = "outlier"
    Settings = OutlierSettings
    requires = frozenset({"embeddings", "pred_probs"})
    description = ("the image is not the kind of picture the dataset holds: far from "
                   "every other image in the model's embedding space, or with several "
                   "statistics (entropy, compressed size, colour, brightness, size) far "
                   "outside its class's and the dataset's range")

    def find(self, ctx: AuditContext) -> CheckResult:
        s: OutlierSettings = self.settings
        n = len(ctx.manifest)
        groups = _class_keys(ctx)
        ratios: dict[str, np.ndarray] = {}  # evidence / its threshold: > 1 flags
        words: dict[str, list[str]] = {}
        # a model too weak to judge labels (dataqa/checks/model_strength.py) gives
        # embeddings that say little about what kind of picture an image is
        skipped = ("embedding evidence left out: " + str(ctx.model.get("reason"))
                   if ctx.model is not None and not ctx.model_reliable else None)
        if s.use_embeddings and ctx.embeddings is not None and skipped is None:
            z = self._embedding_z(ctx, groups)
            ratios["embedding"] = z / s.threshold
            words["embedding"] = [f"far from its {s.neighbors} nearest images in the model's "
                                  f"embedding space (z={v:.1f})" for v in z]
        if s.use_stats:
            rms, detail = self._stats_rms(ctx, groups)
            ratios["stats"] = rms / s.stats_threshold
            words["stats"] = [f"statistics unlike the rest (RMS z={v:.1f}): {d}"
                              for v, d in zip(rms, detail)]
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
        dist, _ = get_knn(emb[ok], k=self.settings.neighbors, memory_mb=ctx.memory_mb)
        values = np.full(len(emb), np.nan)
        values[ok] = np.log(dist.mean(axis=1).astype(float) + 1e-6)
        z = _class_and_dataset_z(values, EMBEDDING_FLOOR, groups, self.settings.min_class_size)
        out[ok] = np.maximum(z[ok], 0.0)
        return out

    def _stats_rms(self, ctx: AuditContext, groups: np.ndarray
                   ) -> tuple[np.ndarray, list[str]]:
        """RMS (N,) of the ``stats_top`` largest capped |robust z| of the statistics
        (NaN where none is known), and the two furthest statistics of each row in words."""
        features = _stat_features(ctx.manifest)
        n = len(ctx.manifest)
        if not features:
            return np.full(n, np.nan), [""] * n
        z = np.stack([_class_and_dataset_z(np.where(ctx.decoded, v, np.nan),
                                           STAT_FLOORS[name], groups,
                                           self.settings.min_class_size)
                      for name, v in features.items()], axis=1)  # (N, F), signed
        capped = np.minimum(np.abs(z), self.settings.z_cap)
        # the largest first; an unknown statistic counts as ordinary (0)
        largest = -np.sort(-np.nan_to_num(capped, nan=0.0), axis=1)[:, :self.settings.stats_top]
        rms = np.where(np.isfinite(capped).any(axis=1),
                       np.sqrt((largest**2).sum(axis=1) / self.settings.stats_top), np.nan)
        names = list(features)
        top = np.argsort(-np.nan_to_num(capped, nan=-1.0), axis=1)[:, :2]
        detail = [", ".join(f"{names[j]} {z[i, j]:+.1f}σ" for j in top[i] if np.isfinite(z[i, j]))
                  for i in range(n)]
        return rms, detail

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

    out = {name: col(name) for name in STAT_FLOORS if name.startswith("stat_")}
    w, h = col("width"), col("height")
    with np.errstate(divide="ignore", invalid="ignore"):
        out["log_side"] = 0.5 * np.log(w * h)
        out["log_aspect"] = np.abs(np.log(w / h))  # orientation-symmetric: portrait = landscape
    return {k: np.where(np.isfinite(v), v, np.nan) for k, v in out.items()
            if np.isfinite(v).any()}


def _percentiles(values: np.ndarray) -> dict[str, float | None]:
    finite = values[np.isfinite(values)]
    if not len(finite):
        return {"p50": None, "p99": None, "max": None}
    p50, p99, top = np.percentile(finite, [50, 99, 100])
    return {"p50": round(float(p50), 3), "p99": round(float(p99), 3),
            "max": round(float(top), 3)}
