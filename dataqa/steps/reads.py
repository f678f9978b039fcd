"""What each pipeline stage reads and writes, declared once; ``dvc.yaml`` is generated
from it (:mod:`dataqa.project.dvcyaml`, by ``dataqa init``).

One :class:`Reads` per stage, in pipeline order, in :data:`STAGES`:

- ``params``: the params keys the stage reads (a section name covers every key under it);
  ``dataqa.version`` is added to every stage by the generator (the CLI checks it);
- ``files``: the ``paths.<key>`` files and folders the stage reads (DVC deps);
- ``outs``: the ``paths.<key>`` it writes (an :class:`Out` for DVC's ``cache``,
  ``metrics`` and ``plots`` variants);
- ``also``: deps the recorded comparison cannot see, each with its reason: an order
  (``tune`` runs after the prepared-data gate passed, the gate after the report is
  written), files named through another key (``paths.external`` holds what
  ``crossval.external.*`` names), or a read only in a mode the small test run does not
  take;
- ``inspects``: ``paths.*`` entries the stage looks at (``stat`` only) but must not
  depend on, each with its reason: the fingerprint stage refuses FIFOs in
  ``paths.external`` precisely so that DVC never hashes that folder before it ran.

Params that decide only where work runs (:data:`NOT_DEPENDENCIES`, e.g. ``cluster``) are
read by several stages but are never a dependency, each with its reason.

A stage that reads ``data.source`` (the raw images) also depends on
``paths.fingerprint`` (the listing DVC watches instead of the raw tree); the generator
adds it. ``tests/steps/test_stage_reads.py`` runs every stage on a small dataset while
recording the keys and files it touches and fails when a declaration here says less
(stale outputs) or more (needless reruns) than the code does.

Adding a read to a stage: one entry in its ``params`` or ``files`` below, then
``dataqa init --source data/sample --preset digits --force`` rewrites ``dvc.yaml``.
This module imports nothing heavy: ``dataqa init`` reads it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class Out:
    """One output: ``paths.<key>``; ``kind`` is DVC's section (outs, metrics, plots)."""

    key: str
    kind: Literal["outs", "metrics", "plots"] = "outs"
    cache: bool = True
    plot: tuple[tuple[str, str], ...] = ()  # DVC plot properties (x, y, template)
    comment: str = ""


@dataclass(frozen=True)
class Reads:
    """What one stage reads (params keys, files) and writes."""

    params: tuple[str, ...] = ()
    files: tuple[str, ...] = ()
    outs: tuple[Out | str, ...] = ()
    also: tuple[tuple[str, str], ...] = ()  # (paths key, why it is a dep)
    inspects: tuple[tuple[str, str], ...] = ()  # (paths key, why it is not a dep)
    script: str = ""  # stages/<script>.py; default: the stage's name
    args: str = ""  # command-line arguments of the script
    always_changed: bool = False

    def out_list(self) -> list[Out]:
        return [o if isinstance(o, Out) else Out(o) for o in self.outs]


def _p(*keys: str) -> tuple[str, ...]:
    """A tuple of keys (no one-element tuple trap)."""
    return keys


# the audit gate's thresholds and the prepared-data gate's (dataqa/gate.py): each gate,
# and the report showing the audit gate, reads its own, so one never reruns the other
AUDIT_GATE = ("gate.max_undecodable_rate", "gate.min_images_per_class", "gate.max_rates",
              "gate.max_cross_split_duplicates", "gate.max_imbalance_ratio")
PREPARED_GATE = ("gate.min_clean_per_class", "gate.max_quarantined_share",
                 "gate.max_balanced_imbalance_ratio")
# what the tuning run's batched device augmentation takes from the one policy
AUGMENT_POLICY = ("augment.geometry", "augment.min_area", "augment.hflip",
                  "augment.rotate_limit", "augment.brightness_contrast")
FINGERPRINT = "paths.fingerprint"
# params every stage may read that are never a dependency, each with its reason
NOT_DEPENDENCIES: tuple[tuple[str, str], ...] = (
    ("cluster", "where the work runs, not what it computes: the local and Ray backends "
                "write byte-identical outputs (tests/cluster), so moving a run to a "
                "cluster reruns nothing"),
)
RAW = "data.source"  # reading it means reading the raw images: depend on the listing

STAGES: dict[str, Reads] = {
    "fingerprint": Reads(
        # split.*: a source no split of which can train stops here (issue 26)
        params=_p("data.source", "data.default_split", "scan.extensions",
                  "split.train_splits", "split.val_split"),
        inspects=(("paths.external", "special files there are refused before DVC, which "
                                     "hashes the folder for crossval, can block on them"),),
        outs=(Out("paths.fingerprint", cache=False),),
        always_changed=True),
    "scan": Reads(
        # split.*: the listing's warning about splits neither trained nor validated on
        params=_p("data", "scan", "split.train_splits", "split.val_split"),
        outs=_p("paths.manifest")),
    "tensors": Reads(
        params=_p("data.source", "engine.image_size", "engine.channels", "tensors",
                  "scan.max_pixels", "scan.max_bytes", "scan.decode_timeout"),
        files=_p("paths.manifest"),
        outs=_p("paths.tensors", "paths.tensor_index")),
    "crossval": Reads(
        params=_p("engine", "crossval"),
        files=_p("paths.manifest", "paths.tensors", "paths.tensor_index"),
        also=(("paths.external", "the files crossval.external.* name lie there"),),
        outs=_p("paths.pred_probs", "paths.embeddings", "paths.crossval_metrics")),
    "learning_curve": Reads(
        params=_p("audit.learning_curve", "audit.learning_curve_epochs",
                  "audit.min_per_class", "audit.model_strength", "split.seed",
                  "split.val_fraction", "engine", "crossval"),
        files=_p("paths.manifest", "paths.tensors", "paths.tensor_index"),
        also=(("paths.embeddings", "read in crossval.mode linear_probe (a pretrained "
                                   "backbone: not in the small test run)"),),
        outs=("paths.learning_curve",
              Out("paths.learning_curve_plot", kind="plots", cache=False,
                  plot=(("x", "fraction"), ("y", "val_accuracy"))))),
    "audit": Reads(
        params=_p("audit", "engine.seed", "engine.image_size"),
        # paths.reviews: the people's decisions (issue 22); the audit is their one reader,
        # report, gate, filter and what follows rerun through its outputs
        files=_p("paths.manifest", "paths.tensors", "paths.pred_probs",
                 "paths.embeddings", "paths.crossval_metrics", "paths.learning_curve",
                 "paths.reviews"),
        outs=_p("paths.issues", "paths.audit_metrics")),
    "report": Reads(
        params=_p("report", *AUDIT_GATE, "data.source", "scan.max_pixels",
                  "scan.max_bytes", "scan.decode_timeout"),
        files=_p("paths.manifest", "paths.issues", "paths.audit_metrics",
                 "paths.crossval_metrics"),
        outs=(Out("paths.audit_html", cache=False),
              Out("paths.headline", kind="metrics", cache=False,
                  comment="the headline numbers (<= ~30) that `dvc metrics show` and "
                          "`dvc exp show` display"))),
    "gate": Reads(
        params=AUDIT_GATE,
        files=_p("paths.manifest", "paths.issues", "paths.audit_metrics",
                 "paths.audit_html"),
        outs=(Out("paths.gate_json", cache=False), Out("paths.gate_junit", cache=False))),
    "filter": Reads(
        params=_p("filter"),
        files=_p("paths.manifest", "paths.issues", "paths.audit_metrics",
                 "paths.pred_probs", "paths.crossval_metrics"),
        also=(("paths.gate_json", "order: the filter runs after the audit gate passed"),),
        outs=_p("paths.clean", "paths.quarantine", "paths.filter_metrics")),
    "augment": Reads(
        params=_p("augment", "engine.image_size", "split", "data.source",
                  "scan.max_pixels", "scan.max_bytes", "scan.decode_timeout"),
        files=_p("paths.clean", "paths.tensors"),
        outs=_p("paths.augmented_dir", "paths.augment_metrics")),
    "subsample": Reads(
        params=_p("split", "subsample"),
        files=_p("paths.clean", "paths.quarantine", "paths.augmented_dir"),
        outs=_p("paths.subsets_dir", "paths.prepared_metrics")),
    "gate_prepared": Reads(
        script="gate", args="--on prepared",
        params=PREPARED_GATE,
        files=_p("paths.prepared_metrics"),
        outs=(Out("paths.prepare_gate_json", cache=False),
              Out("paths.prepare_gate_junit", cache=False))),
    "tune": Reads(
        params=_p("tune", "engine", "crossval", *AUGMENT_POLICY),
        files=_p("paths.subsets_dir", "paths.tensors", "paths.tensor_index",
                 "paths.augmented_dir", "paths.manifest"),
        also=(("paths.prepare_gate_json", "order: the search runs after the "
                                          "prepared-data gate passed"),),
        outs=(Out("paths.tune_dir", comment="the journal and summary (paths.tune_summary "
                  "lies inside); DVC removes them before each run: a fresh study"),
              "paths.best_params", "paths.tune_metrics",
              Out("paths.tune_headline", kind="metrics", cache=False),
              Out("paths.tune_curves", kind="plots", cache=False,
                  plot=(("x", "epoch"), ("y", "val_loss"), ("template", "scatter"))))),
    "tuning_report": Reads(
        params=_p("report.thumb_size", "data.source", "scan.max_pixels", "scan.max_bytes",
                  "scan.decode_timeout"),
        files=_p("paths.tune_summary", "paths.augmented_dir", "paths.manifest"),
        outs=(Out("paths.tuning_html", cache=False),)),
}


def script(name: str) -> str:
    """The stage script ``stages/<script>.py`` stage ``name`` runs."""
    return STAGES[name].script or name


def deps(name: str) -> list[str]:
    """The ``paths.*`` keys stage ``name`` depends on (``files``, ``also`` and, when it
    reads the raw images, the fingerprint)."""
    reads = STAGES[name]
    out = list(reads.files) + [key for key, _ in reads.also]
    raw = any(p == RAW or RAW.startswith(p + ".") for p in reads.params)
    if raw and name != "fingerprint" and FINGERPRINT not in out:
        out.append(FINGERPRINT)
    return out


def params(name: str) -> list[str]:
    """The params keys of stage ``name`` in dvc.yaml: ``dataqa.version`` first."""
    return ["dataqa.version", *STAGES[name].params]


__all__ = ["FINGERPRINT", "Out", "Reads", "STAGES", "deps", "params", "script"]


def _check_table() -> None:  # a malformed table fails at import, not in a DVC run
    for name, reads in STAGES.items():
        also = [key for key, _ in reads.also]
        for key in [*reads.files, *also, *(o.key for o in reads.out_list())]:
            if not key.startswith("paths."):
                raise ValueError(f"dataqa.steps.reads: stage {name}: {key!r} is not a paths.* key")


_check_table()
