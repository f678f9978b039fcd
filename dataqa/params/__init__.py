"""Typed, validated params: one dataclass per ``params.yaml`` section.

``load_params`` reads the YAML safely and converts each section into its dataclass.
An unknown or misspelled key is a :class:`ParamsError` that names the key, where it
was found and the allowed keys; a value of the wrong type names the key and the
expected type. Sections are validated once, here, at the boundary; the rest of the
code receives typed objects and never looks at raw dicts.

Paths live in the ``paths`` section, which ``dvc.yaml`` templates with ``${paths.*}``;
Python code never hard-codes an output path.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args, get_origin

from dataqa.errors import ParamsError
from dataqa.params import rules
from dataqa.params.bounds import check_bounds
from dataqa.params.tune import (  # noqa: F401  (re-exported: one place to import params from)
    TuneBaseline,
    TuneCleaning,
    TuneDiagnose,
    TuneFidelity,
    TuneFineRound,
    TuneFixed,
    TuneJointRound,
    TuneLrRound,
    TuneParams,
    TunePruning,
    TuneRounds,
    TuneSelection,
    TuneSizing,
    TuneSpace,
    TuneStopping,
)
from dataqa.params.yamlread import read_yaml

T = TypeVar("T")


# --------------------------------------------------------------------------- sections
@dataclass(frozen=True)
class Paths:
    """Every file a stage reads or writes, relative to the params file's folder. Outputs
    live under ``out`` (rebuilt by ``dvc repro``, git-ignored) and ``reports/`` (small
    files meant for git: HTML reports, gate results, metrics)."""

    out: str = "dataqa-out"  # the folder every pipeline output (but reports/) lies in
    manifest: str = "dataqa-out/interim/manifest.parquet"
    tensors: str = "dataqa-out/interim/tensors.npy"
    tensor_index: str = "dataqa-out/interim/tensor_index.parquet"
    pred_probs: str = "dataqa-out/interim/pred_probs.npy"
    embeddings: str = "dataqa-out/interim/embeddings.npy"
    crossval_metrics: str = "dataqa-out/metrics/crossval.json"
    issues: str = "dataqa-out/audit/issues.parquet"
    audit_metrics: str = "dataqa-out/metrics/audit.json"
    learning_curve: str = "dataqa-out/audit/learning_curve.json"
    gate_json: str = "reports/gate.json"
    gate_junit: str = "reports/gate.junit.xml"
    clean: str = "dataqa-out/clean/clean.parquet"
    quarantine: str = "dataqa-out/clean/quarantine.parquet"
    augmented_dir: str = "dataqa-out/augmented"
    augmented_manifest: str = "dataqa-out/augmented/manifest.parquet"
    subsets_dir: str = "dataqa-out/subsets"
    tune_dir: str = "dataqa-out/tune"
    tune_summary: str = "dataqa-out/tune/summary.json"  # what the tuning report renders
    tune_metrics: str = "dataqa-out/metrics/tuning.json"
    tune_curves: str = "reports/plots/tuning_curves.csv"
    best_params: str = "dataqa-out/models/best_params.yaml"
    audit_html: str = "reports/audit.html"
    tuning_html: str = "reports/tuning.html"
    prepare_gate_json: str = "reports/prepare_gate.json"
    prepare_gate_junit: str = "reports/prepare_gate.junit.xml"
    filter_metrics: str = "dataqa-out/metrics/filter.json"
    augment_metrics: str = "dataqa-out/metrics/augment.json"
    augmented_tensors: str = "dataqa-out/augmented/tensors.npy"  # copies letterboxed like tensors
    prepared_metrics: str = "dataqa-out/metrics/prepared.json"  # subsets table + prepared gate
    fingerprint: str = "dataqa-out/interim/source_fingerprint.json"  # what DVC depends on
    external: str = "predictions"  # the user's own predictions (crossval.mode: external)
    # the headline numbers `dvc metrics show` displays (<= ~30 keys; dataqa/headline.py)
    headline: str = "reports/metrics.json"
    tune_headline: str = "reports/tuning_metrics.json"


@dataclass(frozen=True)
class DataqaParams:
    """The dataqa release a project's outputs come from (``dataqa init`` writes it; every
    stage lists it in dvc.yaml). A stage refuses to run under another release: run
    ``dataqa init --upgrade``, and ``dvc repro`` reruns the stages."""

    version: str | None = None  # null: not checked


@dataclass(frozen=True)
class DataParams:
    source: str = "data/sample"  # ImageFolder directory or CSV (path,label[,split])
    layout: Literal["auto", "class", "split/class"] = "auto"  # of a directory source
    default_split: str = "train"  # split of rows that name none (ImageFolder, CSV without split)


@dataclass(frozen=True)
class ScanParams:
    workers: int = 2  # decoding processes; 0 = decode in the main process
    chunk_size: int = 64  # files per task sent to a worker (bounds memory in flight)
    max_pixels: int = 40_000_000  # larger images are flagged, never decoded (bomb guard)
    max_bytes: int = 1 << 30  # larger files are flagged, never read (1 GiB)
    decode_timeout: float | None = 10.0  # seconds per file decode; slower: a flagged row
    extensions: list[str] = field(default_factory=lambda: [
        ".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"])  # ImageFolder only

    def __post_init__(self) -> None:
        for key, least in (("workers", 0), ("chunk_size", 1), ("max_pixels", 1)):
            if getattr(self, key) < least:
                raise ParamsError(f"params.yaml: scan.{key}: must be >= {least}, "
                                  f"got {getattr(self, key)}")
        bad = [e for e in self.extensions if not (e.startswith(".") and len(e) > 1)]
        if bad:
            raise ParamsError(f"params.yaml: scan.extensions: {bad} do not look like "
                              f"extensions (write them as '.png')")


@dataclass(frozen=True)
class EngineParams:
    image_size: int = 32  # side of the square training tensor, pixels (letterboxed)
    channels: Literal["auto", "gray", "rgb"] = "auto"  # auto: rgb if >= 10% of images have colour
    arch: str = "small_resnet"  # small_resnet | resnet18 | resnet34 | ... (torchvision)
    width: int = 32  # channels of the first stage of small_resnet
    depth: int = 2  # residual blocks per stage of small_resnet
    dropout: float = 0.0
    # a torchvision weights name of engine.arch (DEFAULT, IMAGENET1K_V1, ...: torchvision's
    # cache under TORCH_HOME) or a local state_dict file (dataqa/engine/backbones.py)
    weights: str | None = None
    device: Literal["auto", "cpu", "cuda"] = "auto"
    cpu_threads: int | None = None  # torch threads on CPU; null: torch's default (all cores)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.image_size < 8:
            raise ParamsError(f"params.yaml: engine.image_size: must be >= 8, "
                              f"got {self.image_size}")
        if self.cpu_threads is not None and self.cpu_threads < 1:
            raise ParamsError(f"params.yaml: engine.cpu_threads: must be >= 1, "
                              f"got {self.cpu_threads}")


@dataclass(frozen=True)
class ExternalPredictionsParams:
    """``crossval.mode: external``: the user's own out-of-sample predictions, keyed by
    image path (dataqa/dataset/external.py). File paths are relative to params.yaml's
    folder; keep them under ``paths.external`` (a dependency of the crossval stage in
    dvc.yaml, so replacing a file there reruns crossval and everything after it)."""

    # .parquet / .csv: a `path` column (as in the manifest: relative to the source root)
    # plus one column per class, named as the labels; .npy: (N, K) in `paths` order
    pred_probs: str | None = None
    embeddings: str | None = None  # optional; .parquet/.csv (path + numbers) or .npy
    paths: str | None = None  # .npy files only: a .txt file, one image path per line
    classes: list[str] | None = None  # .npy pred_probs only: the class of each column
    path_column: str = "path"


@dataclass(frozen=True)
class CrossvalParams:
    """Out-of-fold predictions for the label/outlier/duplicate checks. Budgets left
    null adapt to the device (dataqa/engine/crossval.py: DEVICE_BUDGETS)."""

    # train: K-fold training of engine.arch by the engine (from engine.weights when set);
    # linear_probe: embed once with the frozen pretrained backbone, K-fold logistic
    # regression; finetune: the pretrained net trained whole per fold, fine-tuning budgets
    # (dataqa/engine/probe.py); external: read the user's out-of-sample predictions
    # (crossval.external) instead
    mode: Literal["train", "linear_probe", "finetune", "external"] = "train"
    external: ExternalPredictionsParams = field(default_factory=ExternalPredictionsParams)
    folds: int = 5  # stratified; reduced (loudly) to the smallest class count if needed
    probe_c: float = 1.0  # linear_probe: inverse L2 strength of the logistic regression
    embed_batch_size: int = 64  # linear_probe: images per forward pass (bounds memory)
    epochs: int | None = None  # null: by device (more on GPU)
    batch_size: int | None = None  # null: by device
    lr: float | None = None  # peak of the one-cycle schedule; null: by device
    # null: by device (small_cnn), or engine.arch when engine.weights is set
    arch: str | None = None
    optimizer: Literal["sgd", "adamw"] | None = None  # null: by device (adamw)
    width: int | None = None  # null: by device (cuda 64, cpu 16); engine.width is for tuning
    depth: int | None = None  # null: by device (small_resnet only)
    weight_decay: float | None = None  # null: by device
    label_smoothing: float | None = None  # null: by device
    flip: bool = False  # random horizontal flips (wrong for digits and text)
    crop_padding: int = 2  # random translation by up to this many pixels, zero fill

    def __post_init__(self) -> None:
        for key, least in (("folds", 2), ("epochs", 1), ("batch_size", 1), ("width", 1),
                           ("depth", 1), ("crop_padding", 0), ("embed_batch_size", 1)):
            value = getattr(self, key)
            if value is not None and value < least:
                raise ParamsError(f"params.yaml: crossval.{key}: must be >= {least}, "
                                  f"got {value}")
        if self.lr is not None and not self.lr > 0:
            raise ParamsError(f"params.yaml: crossval.lr: must be > 0, got {self.lr}")
        if not self.probe_c > 0:
            raise ParamsError(f"params.yaml: crossval.probe_c: must be > 0, got {self.probe_c}")


@dataclass(frozen=True)
class TensorsParams:
    workers: int = 2  # decoding processes; 0 = decode in the main process
    chunk_size: int = 256  # images per task sent to a worker (bounds memory in flight)

    def __post_init__(self) -> None:
        rules.check_section("tensors", self)


@dataclass(frozen=True)
class AuditParams:
    checks: list[str] = field(default_factory=lambda: ["integrity"])
    settings: dict[str, dict[str, Any]] = field(default_factory=dict)  # per-check settings
    min_per_class: int = 20  # classes under this count are reported as insufficient
    learning_curve: list[float] = field(default_factory=lambda: [0.1, 0.25, 0.5, 1.0])
    # passes over the whole training pool that every learning-curve point gets in images
    # seen; null: crossval's epochs on CUDA, 3 on CPU (dataqa/engine/learning_curve.py)
    learning_curve_epochs: int | None = None
    # working memory (MB) of one audit step beyond its inputs: the chunk sizes of the
    # thumbnails, neighbour queries and pair verification follow from it, not from N
    memory_mb: int = 512
    # is the out-of-fold model strong enough to judge labels? min_skill, confidence,
    # ece_bins, max_ece (dataqa/checks/model_strength.py); a weak model's label flags
    # become review-only
    model_strength: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        rules.check_section("audit", self)


@dataclass(frozen=True)
class GateParams:
    """Thresholds of the audit gate (rules table: dataqa/gate.py AUDIT_RULES). A key set
    to null switches its rule off; a rule whose value the metrics lack (a check that did
    not run) is listed as 'not evaluated' and does not fail the gate."""

    max_undecodable_rate: float | None = 0.05  # share of files, in [0, 1]
    min_images_per_class: int | None = 10  # decodable images in the smallest class
    # check name -> max share of images it flags, in [0, 1]; an unknown check name is an error
    max_rates: dict[str, float] = field(default_factory=dict)
    max_cross_split_duplicates: int | None = 0  # pairs, per check reporting cross_split_pairs
    max_imbalance_ratio: float | None = None  # largest / smallest non-empty class
    # prepared-data gate (`dataqa gate --on prepared`, after filter/augment/subsample)
    min_clean_per_class: int | None = 10  # clean images in the smallest class
    max_quarantined_share: float | None = 0.2  # share of the manifest left out, in [0, 1]
    max_balanced_imbalance_ratio: float | None = 3.0  # largest / smallest after balancing


@dataclass(frozen=True)
class FilterParams:
    """What happens to the rows each audit check flags (dataqa/prepare/filter.py).
    Undecodable rows are always quarantined; one image of each duplicate group is kept."""

    # check -> drop (quarantine) | review (keep, marked) | keep (ignore the flag)
    policy: dict[str, Literal["drop", "review", "keep"]] = field(default_factory=dict)
    default_policy: Literal["drop", "review", "keep"] = "review"  # checks policy omits
    # check -> a row fails when <check>_score < this (replaces the check's own flag)
    min_score: dict[str, float] = field(default_factory=dict)
    relabel: bool = False  # apply label_suggested to label issues the model is sure of
    relabel_min_confidence: float = 0.95  # out-of-fold probability of the suggested class
    # an image that this many checks of review policy flag (independent evidence, e.g.
    # light + low_information + grayscale on a placeholder) is quarantined; null: never
    quarantine_min_flags: int | None = 3

    def __post_init__(self) -> None:
        rules.check_section("filter", self)


@dataclass(frozen=True)
class AugmentParams:
    """The one augmentation policy (dataqa/augmentation/): class-balancing copies on
    CPU and the tuning run's batched device augmentation use the same keys."""

    seed: int = 0
    balance_target: float = 0.5  # classes below this share of the largest get copies
    max_copies_per_source: int = 20  # copies of one image at most (tiny classes)
    size: int | None = None  # side of the written copies, px; null: engine.image_size
    geometry: Literal["longest", "shortest"] = "longest"  # canvas: pad, or crop to fill
    min_area: float = 0.8  # least share of the image all crops keep (zoom, shortest), >= 0.25
    hflip: bool = False
    rotate_limit: float = 10.0  # degrees
    brightness_contrast: float = 0.2  # limit of both (albumentations RandomBrightnessContrast)
    output_format: Literal["png"] = "png"

    def __post_init__(self) -> None:
        rules.check_section("augment", self)


@dataclass(frozen=True)
class ClassSubset:
    """A training subset of a few classes: listed, or the ``largest`` k by count."""

    classes: list[str] = field(default_factory=list)
    largest: int | None = None
    fraction: float = 1.0  # of each chosen class's training pool (min_per_class applies)


@dataclass(frozen=True)
class SplitParams:
    """The one validation split (dataqa/dataset/splits.py) that the learning curve,
    augment and subsample share."""

    seed: int = 0
    val_fraction: float = 0.2  # per class, drawn once from the training rows
    val_split: str | None = None  # use the manifest rows of this split as validation instead
    train_splits: list[str] = field(default_factory=lambda: ["train"])  # others held out

    def __post_init__(self) -> None:
        rules.check_section("split", self)


@dataclass(frozen=True)
class SubsampleParams:
    seed: int = 0  # order of each class's pool (the nested subsets)
    fractions: dict[str, float] = field(default_factory=lambda: {"p10": 0.1, "p100": 1.0})
    min_per_class: int = 2  # per class in every fraction subset (capped at what exists)
    class_subsets: dict[str, ClassSubset] = field(default_factory=dict)
    use_augmented: bool = True  # training subsets draw from augmented copies too

    def __post_init__(self) -> None:
        rules.check_section("subsample", self)


@dataclass(frozen=True)
class ReportParams:
    gallery_size: int = 48  # flagged images shown per check; full lists live in Parquet
    thumb_size: int = 96  # pixels, longest side
    max_thumbnails: int = 1000  # images decoded per report at most (keeps 100k fast)
    max_table_rows: int = 1000  # rows per file table (e.g. undecodable files)

    def __post_init__(self) -> None:
        rules.check_section("report", self)


# ------------------------------------------------------------ cluster (issue 23)
@dataclass(frozen=True)
class ClusterParams:
    """Where scan, tensors, the K-fold pass and tuning trials run (dataqa/cluster.py):
    ``local`` (this machine, the default; needs no Ray) or a Ray cluster (``pip install
    "dataqa[ray]"``). Outputs are the same either way and land in this project's
    folder; no stage depends on these keys in dvc.yaml."""

    backend: Literal["local", "ray"] = "local"
    # auto: the cluster `ray start` runs on this host (or $RAY_ADDRESS); host:port of a
    # head node, or ray://host:port (Ray Client)
    address: str = "auto"
    num_cpus: float = 1.0  # CPUs each task holds (a scan/tensors chunk, a fold, a trial worker)
    num_gpus: float = 0.0  # GPUs each fold and trial worker holds; 0.5: two share one GPU
    max_retries: int = 3  # re-runs of a task whose worker process or node was lost
    # Ray tasks running tuning trials beside this process (they need tune.storage, a
    # database every node reaches); null: as many as the cluster holds at once
    tune_workers: int | None = None

    def __post_init__(self) -> None:
        rules.check_section("cluster", self)


@dataclass(frozen=True)
class Params:
    dataqa: DataqaParams = field(default_factory=DataqaParams)
    paths: Paths = field(default_factory=Paths)
    data: DataParams = field(default_factory=DataParams)
    scan: ScanParams = field(default_factory=ScanParams)
    tensors: TensorsParams = field(default_factory=TensorsParams)
    engine: EngineParams = field(default_factory=EngineParams)
    crossval: CrossvalParams = field(default_factory=CrossvalParams)
    audit: AuditParams = field(default_factory=AuditParams)
    gate: GateParams = field(default_factory=GateParams)
    filter: FilterParams = field(default_factory=FilterParams)
    augment: AugmentParams = field(default_factory=AugmentParams)
    split: SplitParams = field(default_factory=SplitParams)
    subsample: SubsampleParams = field(default_factory=SubsampleParams)
    tune: TuneParams = field(default_factory=TuneParams)
    report: ReportParams = field(default_factory=ReportParams)
    cluster: ClusterParams = field(default_factory=ClusterParams)
    root: Path = field(default=Path("."), compare=False)  # folder of params.yaml

    def path(self, name: str) -> Path:
        """Absolute path of ``paths.<name>`` (relative paths resolve against ``root``)."""
        return self.resolve(getattr(self.paths, name))

    def resolve(self, value: str | Path) -> Path:
        p = Path(value).expanduser()
        return p if p.is_absolute() else (self.root / p)


# --------------------------------------------------------------------------- loading
def load_params(path: str | Path = "params.yaml") -> Params:
    """Read and validate ``params.yaml``; missing sections and keys take defaults."""
    path = Path(path)
    if not path.is_file():
        raise ParamsError(f"{path}: params file not found")
    raw = read_yaml(path)
    raw = {} if raw is None else raw
    if not isinstance(raw, dict):
        raise ParamsError(f"{path}: expected a mapping of sections, got {type(raw).__name__}")
    raw = {k: v for k, v in raw.items()}
    params = build(Params, {k: v for k, v in raw.items() if k != "root"}, where=str(path))
    check_bounds(params, where=str(path))
    return dataclasses.replace(params, root=path.resolve().parent)


def build(cls: type[T], raw: Any, where: str) -> T:
    """Convert a raw mapping into dataclass ``cls``, strictly.

    ``where`` names the place for messages: ``"params.yaml"`` at the top level, then
    ``"params.yaml: scan"``, ``"params.yaml: scan.workers"`` as the keys nest.
    """
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ParamsError(f"{where}: expected a mapping, got {type(raw).__name__} ({raw!r})")
    fields = {f.name: f for f in dataclasses.fields(cls)  # type: ignore[arg-type]
              if f.init and f.name != "root"}
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in fields:
            allowed = ", ".join(sorted(fields))
            near = difflib.get_close_matches(str(key), list(fields), n=1)
            hint = f" Did you mean '{near[0]}'?" if near else ""
            raise ParamsError(f"{_join(where, str(key))}: unknown key '{key}'.{hint} "
                              f"Allowed keys here: {allowed}")
        kwargs[key] = _convert(hints[key], value, _join(where, key))
    return cls(**kwargs)


def _convert(tp: Any, value: Any, where: str) -> Any:
    origin = get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return build(tp, value, where)  # type: ignore[arg-type]
    if origin in (typing.Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(arg, value, where)
            except ParamsError as exc:
                errors.append(str(exc))
        raise ParamsError(errors[0] if len(errors) == 1 else
                          f"{where}: {value!r} matches none of {_name(tp)}")
    if origin is Literal:
        if value not in get_args(tp):
            choices = ", ".join(repr(a) for a in get_args(tp))
            raise ParamsError(f"{where}: {value!r} is not one of {choices}")
        return value
    if origin is list:
        if not isinstance(value, list):
            raise ParamsError(f"{where}: expected a list, got {value!r}")
        (item,) = get_args(tp)
        return [_convert(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise ParamsError(f"{where}: expected a mapping, got {value!r}")
        kt, vt = get_args(tp)
        return {_convert(kt, k, where): _convert(vt, v, _join(where, str(k)))
                for k, v in value.items()}
    if tp is Any:
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ParamsError(f"{where}: expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ParamsError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ParamsError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ParamsError(f"{where}: expected a string, got {value!r}")
        return value
    raise ParamsError(f"{where}: unsupported type {_name(tp)}")  # pragma: no cover


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if ": " in where else f"{where}: {key}"


def _name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def check_settings(cls: type[T], raw: dict[str, Any] | None, where: str) -> T:
    """Validate a plugin's settings mapping into its settings dataclass."""
    return build(cls, raw or {}, where)
