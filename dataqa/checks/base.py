"""The contract every check plugin fulfils.

A check is one small class: a ``name``, a ``Settings`` model (a
:class:`dataqa.params.base.Section`: each setting's type, default, bounds and one-line
description, validated with the rest of params.yaml as ``audit.settings.<name>``), the inputs it ``requires``, and ``find(ctx)`` that *returns* a
:class:`CheckResult`: a frame aligned with the manifest (same index, same order) with
``is_<name>_issue`` (bool) and ``<name>_score`` (float in [0, 1], 1 = clean), plus any
extra columns prefixed ``<name>_``, and a summary dict (JSON-serialisable). Checks never
write files and never decode images: image statistics come from the manifest, pixels
from the tensors.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from dataqa.params.base import Section, validate


@dataclass
class AuditContext:
    """What checks may read. Arrays are aligned with ``manifest`` rows; rows that did
    not decode have NaN predictions/embeddings and zero tensors (see ``decoded``)."""

    manifest: pd.DataFrame
    classes: list[str] = field(default_factory=list)  # class names, index = class id
    labels: np.ndarray | None = None  # (N,) int class ids, -1 for unknown
    pred_probs: np.ndarray | None = None  # (N, K) out-of-fold probabilities
    embeddings: np.ndarray | None = None  # (N, D) penultimate-layer features
    tensors: np.ndarray | None = None  # (N, H, W, C) uint8, letterboxed
    seed: int = 0
    memory_mb: float = 512.0  # working memory a check may use beyond its inputs (audit.memory_mb)
    image_size: int | None = None  # training side (engine.image_size), px
    previous: dict[str, CheckResult] = field(default_factory=dict)  # earlier checks' results
    # the out-of-fold model's strength (dataqa/model_strength.py), when judged
    model: dict[str, Any] | None = None

    @property
    def model_reliable(self) -> bool:
        """False when the out-of-fold model was judged too weak to rest verdicts on."""
        return self.model is None or bool(self.model.get("reliable", True))

    @property
    def decoded(self) -> np.ndarray:
        return self.manifest["decode_error"].isna().to_numpy()


@dataclass
class CheckResult:
    name: str
    frame: pd.DataFrame
    summary: dict[str, Any]

    @property
    def issue_col(self) -> str:
        return f"is_{self.name}_issue"

    @property
    def score_col(self) -> str:
        return f"{self.name}_score"

    @property
    def n_issues(self) -> int:
        return int(self.frame[self.issue_col].sum())


class NoSettings(Section):
    """A check without settings: ``audit.settings.<name>`` must be empty."""


class Check(abc.ABC):
    """Base class of check plugins. Subclasses set ``name``, ``Settings``, ``requires``
    and implement ``find``."""

    name: ClassVar[str]
    Settings: ClassVar[type[Section]] = NoSettings
    requires: ClassVar[frozenset[str]] = frozenset()  # of: pred_probs, embeddings, tensors
    description: ClassVar[str] = ""  # one sentence for the report: what a flag means

    def __init__(self, settings: dict[str, Any] | Section | None = None) -> None:
        if isinstance(settings, self.Settings):
            self.settings: Any = settings
        else:
            self.settings = validate(self.Settings, settings or {},
                                     prefix=("audit", "settings", self.name))

    @abc.abstractmethod
    def find(self, ctx: AuditContext) -> CheckResult:
        """Flag and score every manifest row; see the module docstring."""

    # helpers for implementations --------------------------------------------------
    def result(self, ctx: AuditContext, is_issue: np.ndarray, score: np.ndarray,
               summary: dict[str, Any] | None = None, **extra: Any) -> CheckResult:
        """Build the aligned result frame; scores are clipped to [0, 1]."""
        n = len(ctx.manifest)
        is_issue = np.asarray(is_issue, dtype=bool)
        score = np.clip(np.nan_to_num(np.asarray(score, dtype=float), nan=1.0), 0.0, 1.0)
        if is_issue.shape != (n,) or score.shape != (n,):
            raise ValueError(f"check {self.name}: result not aligned with the manifest")
        frame = pd.DataFrame({f"is_{self.name}_issue": is_issue, f"{self.name}_score": score},
                             index=ctx.manifest.index)
        for key, values in extra.items():
            frame[f"{self.name}_{key}"] = values
        base = {"count": int(is_issue.sum()), "rate": float(is_issue.mean()) if n else 0.0,
                "settings": self.settings.model_dump()}
        base.update(summary or {})
        return CheckResult(self.name, frame, base)
