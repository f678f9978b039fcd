"""Typed, validated params: one pydantic model per ``params.yaml`` section.

Each key is declared once, here (the ``tune`` section in :mod:`dataqa.params.tune`; each
check's ``audit.settings.<check>`` by the check plugin, as its ``Settings``): type,
default, bounds and a one-line ``description``. :func:`load_params` reads the YAML
strictly (:mod:`dataqa.params.yamlread`) and validates the whole file in one pass; a bad
value is one :class:`~dataqa.errors.ParamsError` naming the key path, the value and what
is allowed (:mod:`dataqa.params.base`). The rest of the code receives typed, frozen
objects (``params.scan.workers``) and never looks at raw dicts.

Paths live in the ``paths`` section, which ``dvc.yaml`` templates with ``${paths.*}``;
Python code never hard-codes an output path.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, Field, model_validator

from dataqa.errors import ParamsError
from dataqa.params.base import BIG, SEED_MAX, Section, key_path, rule_error, unknown_key, validate
from dataqa.params.tune import (  # noqa: F401  (re-exported: one place to import params from)
    TuneBaseline,
    TuneCleaning,
    TuneDiagnose,
    TuneFidelity,
    TuneFineRound,
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

# A crop of a centred canvas keeps >= sqrt(share) of the content along each axis only
# when the window covers at least half the canvas side; below 0.25 the bound fails.
MIN_AREA_FLOOR = 0.25
VAL = "val"  # the validation split's table name: no subset may take it
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")

Share = Annotated[float, Field(ge=0.0, le=1.0)]
PositiveShare = Annotated[float, Field(gt=0.0, le=1.0)]
Count = Annotated[int, Field(ge=0, le=BIG)]
Ratio = Annotated[float, Field(ge=1.0, le=float(BIG))]


def _extension(value: str) -> str:
    if not (value.startswith(".") and len(value) > 1):
        raise rule_error("an extension written like '.png'", value)
    return value


# --------------------------------------------------------------------------- sections
class Paths(Section):
    """Every file a stage reads or writes, relative to the params file's folder. Outputs
    live under ``out`` (rebuilt by ``dvc repro``, git-ignored) and ``reports/`` (small
    files meant for git: HTML reports, gate results, metrics)."""

    out: str = Field("dataqa-out", description="the folder every pipeline output (but reports/) lies in")
    manifest: str = Field("dataqa-out/interim/manifest.parquet", description="one row per file (scan)")
    tensors: str = Field("dataqa-out/interim/tensors.npy", description="letterboxed uint8 training tensors")
    tensor_index: str = Field("dataqa-out/interim/tensor_index.parquet", description="manifest row of each tensor")
    pred_probs: str = Field("dataqa-out/interim/pred_probs.npy", description="out-of-fold probabilities (crossval)")
    embeddings: str = Field("dataqa-out/interim/embeddings.npy", description="out-of-fold embeddings (crossval)")
    crossval_metrics: str = Field("dataqa-out/metrics/crossval.json", description="crossval's metrics (classes, accuracy)")
    issues: str = Field("dataqa-out/audit/issues.parquet", description="one row per image, a column pair per check")
    audit_metrics: str = Field("dataqa-out/metrics/audit.json", description="the audit's metrics (checks, balance)")
    learning_curve: str = Field("dataqa-out/audit/learning_curve.json", description="accuracy against data fraction")
    learning_curve_plot: str = Field("reports/plots/learning_curve.csv", description="its points, one row per fraction (DVC plot)")
    gate_json: str = Field("reports/gate.json", description="the audit gate's verdict")
    gate_junit: str = Field("reports/gate.junit.xml", description="the audit gate as JUnit")
    clean: str = Field("dataqa-out/clean/clean.parquet", description="rows the filter keeps")
    quarantine: str = Field("dataqa-out/clean/quarantine.parquet", description="rows the filter leaves out")
    augmented_dir: str = Field("dataqa-out/augmented", description="augmented copies (PNG)")
    augmented_manifest: str = Field("dataqa-out/augmented/manifest.parquet", description="rows of the augmented copies")
    subsets_dir: str = Field("dataqa-out/subsets", description="validation split and training subsets")
    tune_dir: str = Field("dataqa-out/tune", description="the tuning run's studies and files")
    tune_summary: str = Field("dataqa-out/tune/summary.json", description="what the tuning report renders")
    tune_metrics: str = Field("dataqa-out/metrics/tuning.json", description="the tuning run's metrics")
    tune_curves: str = Field("reports/plots/tuning_curves.csv", description="per-epoch curves (DVC plot)")
    best_params: str = Field("dataqa-out/models/best_params.yaml", description="the best configuration found")
    audit_html: str = Field("reports/audit.html", description="the audit report")
    tuning_html: str = Field("reports/tuning.html", description="the tuning report")
    prepare_gate_json: str = Field("reports/prepare_gate.json", description="the prepared-data gate's verdict")
    prepare_gate_junit: str = Field("reports/prepare_gate.junit.xml", description="the prepared-data gate as JUnit")
    filter_metrics: str = Field("dataqa-out/metrics/filter.json", description="the filter's counts")
    augment_metrics: str = Field("dataqa-out/metrics/augment.json", description="the augmentation's counts")
    augmented_tensors: str = Field("dataqa-out/augmented/tensors.npy", description="copies letterboxed like tensors")
    prepared_metrics: str = Field("dataqa-out/metrics/prepared.json", description="subsets table + prepared gate")
    fingerprint: str = Field("dataqa-out/interim/source_fingerprint.json", description="sizes + mtimes of data.source (DVC dep)")
    external: str = Field("predictions", description="your own predictions for crossval.mode: external (a crossval dep)")
    # issue 22: an input in the user's git (not an output); the audit reads it
    reviews: str = Field("reviews.csv", description="review decisions: keep / exclude / relabel per image (dataqa review), in git")
    headline: str = Field("reports/metrics.json", description="the headline numbers `dvc metrics show` displays")
    tune_headline: str = Field("reports/tuning_metrics.json", description="the tuning run's headline numbers")


class DataqaParams(Section):
    """The dataqa release a project's outputs come from (``dataqa init`` writes it; every
    stage lists it in dvc.yaml). A stage refuses to run under another release: run
    ``dataqa init --upgrade``, and ``dvc repro`` reruns the stages."""

    version: str | None = Field(None, description="release the outputs come from; null: not checked")


class DataParams(Section):
    """Where the images are."""

    source: str = Field("data/sample", description="an image folder or a CSV (path,label[,split])")
    layout: Literal["auto", "class", "split/class"] = Field(
        "auto", description="of a folder: auto | class (<class>/<file>) | split/class (<split>/<class>/<file>)")
    default_split: str = Field("train", description="split of images whose source names none")


class ScanParams(Section):
    """Decoding every file once."""

    workers: int = Field(2, ge=0, le=256, description="decoding processes (0: in the main process)")
    chunk_size: int = Field(64, ge=1, le=1_000_000, description="files per task; bounds the memory in flight")
    max_pixels: int = Field(40_000_000, ge=1, le=2**32, description="larger images are flagged, never decoded (bomb guard)")
    max_bytes: int = Field(1 << 30, ge=1, le=2**40, description="larger files are flagged, never read")
    decode_timeout: float | None = Field(10.0, gt=0, le=86_400, description="seconds per decode; slower: flagged")
    extensions: list[Annotated[str, AfterValidator(_extension)]] = Field(
        default_factory=lambda: [".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"],
        description="file extensions read from a folder source")


class EngineParams(Section):
    """The training engine's network and device."""

    image_size: int = Field(32, ge=8, le=1024, description="side of the square training tensor, px (letterboxed)")
    channels: Literal["auto", "gray", "rgb"] = Field("auto", description="auto: rgb if >= 10% of images have colour")
    arch: str = Field("small_resnet", description="small_resnet | small_cnn | resnet18 | ... (torchvision)")
    width: int = Field(32, ge=1, le=4096, description="channels of the first stage of small_resnet")
    depth: int = Field(2, ge=1, le=64, description="residual blocks per stage of small_resnet")
    dropout: float = Field(0.0, ge=0.0, le=1.0, description="dropout before the classifier")
    weights: str | None = Field(None, description="torchvision weights name (DEFAULT, IMAGENET1K_V1) or a local file")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto | cpu | cuda")
    cpu_threads: int | None = Field(None, ge=1, le=1024, description="torch threads on CPU; null: torch's default")
    seed: int = Field(0, ge=0, le=SEED_MAX, description="seed of weights and batch order")


class ExternalPredictionsParams(Section):
    """``crossval.mode: external``: the user's own out-of-sample predictions, keyed by
    image path (dataqa/dataset/external.py); paths relative to params.yaml's folder."""

    pred_probs: str | None = Field(None, description=".parquet/.csv (path + a column per class) or .npy (N, K)")
    embeddings: str | None = Field(None, description="optional; .parquet/.csv (path + numbers) or .npy")
    paths: str | None = Field(None, description=".npy files only: a .txt list of image paths, one per row")
    classes: list[str] | None = Field(None, description=".npy pred_probs only: class name of each column")
    path_column: str = Field("path", description="column holding the image path")


class CrossvalParams(Section):
    """Out-of-fold predictions for the label/outlier/duplicate checks. Budgets left
    null adapt to the device (dataqa/engine/crossval.py: DEVICE_BUDGETS)."""

    mode: Literal["train", "linear_probe", "finetune", "external"] = Field(
        "train", description="train | linear_probe | finetune (both need engine.weights) | external")
    external: ExternalPredictionsParams = Field(
        default_factory=ExternalPredictionsParams, description="mode external: your prediction files")
    folds: int = Field(5, ge=2, le=100, description="stratified folds (reduced loudly to the smallest class)")
    probe_c: float = Field(1.0, gt=0, le=1e6, description="linear_probe: inverse L2 strength")
    embed_batch_size: int = Field(64, ge=1, le=65_536, description="linear_probe: images per forward pass")
    epochs: int | None = Field(None, ge=1, le=10_000, description="null: adapt to the device")
    batch_size: int | None = Field(None, ge=1, le=65_536, description="null: adapt to the device")
    lr: float | None = Field(None, gt=0, le=10.0, description="peak of the one-cycle schedule; null: by device")
    arch: str | None = Field(None, description="null: by device, or engine.arch when engine.weights is set")
    optimizer: Literal["sgd", "adamw"] | None = Field(None, description="null: by device (adamw)")
    width: int | None = Field(None, ge=1, le=4096, description="null: by device")
    depth: int | None = Field(None, ge=1, le=64, description="null: by device (small_resnet only)")
    weight_decay: float | None = Field(None, ge=0, le=1, description="null: by device")
    label_smoothing: float | None = Field(None, ge=0, le=1, description="null: by device")
    flip: bool = Field(False, description="random horizontal flips (wrong for digits and text)")
    crop_padding: int = Field(2, ge=0, le=512, description="random translation by up to this many px")


class TensorsParams(Section):
    """Decoding every image once more, into training tensors."""

    workers: int = Field(2, ge=0, le=256, description="decoding processes (speed only)")
    chunk_size: int = Field(256, ge=1, le=1_000_000, description="images per task sent to a worker")


class ModelStrengthSettings(Section):
    """``audit.model_strength``: is the out-of-fold model strong enough to judge labels
    (dataqa/model_strength.py)? A weak model's label flags become review-only."""

    min_skill: float = Field(0.5, ge=-1, le=1, description="lower bound of (acc - baseline) / (1 - baseline) to trust")
    confidence: float = Field(0.95, ge=0.5, lt=1, description="of the accuracy interval (Wilson score)")
    ece_bins: int = Field(15, ge=1, le=10_000, description="bins of the calibration error")
    max_ece: float | None = Field(None, ge=0, le=1, description="also require ECE <= this; null: reported only")


class AuditParams(Section):
    """The checks the audit runs, and their settings."""

    checks: list[str] = Field(default_factory=lambda: ["integrity"], description="checks to run, in order")
    settings: dict[str, dict[str, Any] | None] = Field(
        default_factory=dict, description="per-check settings, declared by each check (README)")
    min_per_class: int = Field(20, ge=0, le=BIG, description="classes under this count are insufficient")
    learning_curve: list[PositiveShare] = Field(
        default_factory=lambda: [0.1, 0.25, 0.5, 1.0], description="fractions of the data (two or more)")
    learning_curve_epochs: int | None = Field(None, ge=1, le=10_000, description="passes per point; null: by device")
    memory_mb: int = Field(512, ge=64, le=BIG, description="working memory of one check, MB")
    model_strength: ModelStrengthSettings = Field(
        default_factory=ModelStrengthSettings, description="when the model may judge labels")

    @model_validator(mode="after")
    def _rules(self) -> AuditParams:
        if len(set(self.learning_curve)) < 2:
            raise rule_error("at least two different fractions", self.learning_curve,
                             "learning_curve")
        dup = sorted({c for c in self.checks if self.checks.count(c) > 1})
        if dup:
            raise rule_error("each check listed once", dup, "checks")
        return self


class GateParams(Section):
    """Thresholds of the audit gate (rules table: dataqa/gate.py AUDIT_RULES). A key set
    to null switches its rule off; a rule whose value the metrics lack (a check that did
    not run) is listed as 'not evaluated' and does not fail the gate."""

    max_undecodable_rate: Share | None = Field(0.05, description="share of files that do not decode")
    min_images_per_class: Count | None = Field(10, description="decodable images in the smallest class")
    max_rates: dict[str, Share] = Field(default_factory=dict, description="check -> largest share of images it may flag")
    max_cross_split_duplicates: Count | None = Field(0, description="duplicate pairs across splits (leakage)")
    max_imbalance_ratio: Ratio | None = Field(None, description="largest / smallest class")
    min_clean_per_class: Count | None = Field(10, description="prepared gate: clean images in the smallest class")
    max_quarantined_share: Share | None = Field(0.2, description="prepared gate: share of the manifest left out")
    max_balanced_imbalance_ratio: Ratio | None = Field(3.0, description="prepared gate: largest / smallest after balancing")


Policy = Literal["drop", "review", "keep"]


class FilterParams(Section):
    """What happens to the rows each audit check flags (dataqa/prepare/filter.py).
    Undecodable rows are always quarantined; one image of each duplicate group is kept."""

    policy: dict[str, Policy] = Field(default_factory=dict, description="check -> drop (quarantine) | review (keep, marked) | keep")
    default_policy: Policy = Field("review", description="policy of the checks `policy` omits")
    min_score: dict[str, Share] = Field(default_factory=dict, description="check -> a row fails when <check>_score < this")
    relabel: bool = Field(False, description="apply the suggested label to confident label issues instead")
    relabel_min_confidence: float = Field(0.95, ge=0, le=1, description="out-of-fold probability of the suggested class")
    quarantine_min_flags: int | None = Field(3, ge=2, le=BIG, description="flagged by this many review checks: quarantined")


class AugmentParams(Section):
    """The one augmentation policy (dataqa/augmentation/): class-balancing copies on
    CPU and the tuning run's batched device augmentation use the same keys."""

    seed: int = Field(0, ge=0, le=SEED_MAX, description="seed of the copies")
    balance_target: float = Field(0.5, gt=0, le=1, description="classes under this share of the largest get copies")
    max_copies_per_source: int = Field(20, ge=0, le=BIG, description="copies of one image at most")
    size: int | None = Field(None, ge=8, le=1024, description="side of the written copies, px; null: engine.image_size")
    geometry: Literal["longest", "shortest"] = Field(
        "longest", description="longest: fit inside, pad | shortest: fill, crop (>= min_area kept)")
    min_area: float = Field(0.8, ge=MIN_AREA_FLOOR, le=1, description="least share of the image every crop keeps")
    hflip: bool = Field(False, description="mirror copies (digits must not be mirrored)")
    rotate_limit: float = Field(10.0, ge=0, le=180, description="degrees")
    brightness_contrast: float = Field(0.2, ge=0, lt=1, description="limit of both (RandomBrightnessContrast)")
    output_format: Literal["png"] = Field("png", description="file format of the copies")


class ClassSubset(Section):
    """A training subset of a few classes: listed, or the ``largest`` k by count."""

    classes: list[str] = Field(default_factory=list, description="the classes (or give largest)")
    largest: int | None = Field(None, ge=1, le=BIG, description="the k largest classes (or give classes)")
    fraction: PositiveShare = Field(1.0, description="of each chosen class's training pool")

    @model_validator(mode="after")
    def _one_of(self) -> ClassSubset:
        if bool(self.classes) == (self.largest is not None):
            raise rule_error("exactly one of 'classes' (a list) or 'largest' (k)",
                             {"classes": self.classes, "largest": self.largest})
        return self


class SplitParams(Section):
    """The one validation split (dataqa/dataset/splits.py) that the learning curve,
    augment and subsample share."""

    seed: int = Field(0, ge=0, le=SEED_MAX, description="seed of the draw")
    val_fraction: float = Field(0.2, gt=0, lt=1, description="per class, held out once from the training rows")
    val_split: str | None = Field(None, description="a split name to use as validation instead (e.g. val)")
    train_splits: list[str] = Field(default_factory=lambda: ["train"], description="splits whose images may be used for training")


class SubsampleParams(Section):
    """Training subsets: nested fractions and class subsets."""

    seed: int = Field(0, ge=0, le=SEED_MAX, description="order of each class's pool (smaller subsets nest)")
    fractions: dict[str, PositiveShare] = Field(
        default_factory=lambda: {"p10": 0.1, "p100": 1.0}, description="subset name -> share of each class")
    min_per_class: int = Field(2, ge=1, le=BIG, description="per class in every fraction subset")
    class_subsets: dict[str, ClassSubset] = Field(default_factory=dict, description="subset name -> classes and fraction")
    use_augmented: bool = Field(True, description="training subsets draw from augmented copies too")

    @model_validator(mode="after")
    def _names(self) -> SubsampleParams:
        names = list(self.fractions) + list(self.class_subsets)
        for name in names:
            if name == VAL or not _NAME.match(name):
                raise rule_error(f"a subset name of letters, digits, '_', '-', '.' (not "
                                 f"'{VAL}': the validation split)", name)
        both = sorted(set(self.fractions) & set(self.class_subsets))
        if both:
            raise rule_error("each name in fractions or class_subsets, not both", both)
        if not names:
            raise rule_error("at least one subset in fractions or class_subsets", {})
        return self


class ReportParams(Section):
    """The HTML reports."""

    gallery_size: int = Field(48, ge=0, le=10_000, description="flagged images shown per check")
    thumb_size: int = Field(96, ge=16, le=1024, description="thumbnail side, px (longest)")
    max_thumbnails: int = Field(1000, ge=0, le=1_000_000, description="images decoded per report at most")
    max_table_rows: int = Field(1000, ge=1, le=10_000_000, description="rows per file table")


class ClusterParams(Section):
    """Where scan, tensors, the K-fold folds and tuning trials run (dataqa/cluster.py):
    ``local`` (this machine; needs no Ray) or a Ray cluster (``pip install
    "dataqa[ray]"``). The outputs are the same either way and land in this project's
    folder; no stage depends on these keys."""

    backend: Literal["local", "ray"] = Field("local", description="local | ray")
    address: str = Field("auto", description="ray: auto (the cluster `ray start` runs here, or $RAY_ADDRESS) | HOST:PORT | ray://HOST:PORT")
    num_cpus: float = Field(1.0, ge=0, le=4096, description="CPUs each task holds")
    num_gpus: float = Field(0.0, ge=0, le=1024, description="GPUs each fold / trial worker holds (0.5: two share a GPU)")
    max_retries: int = Field(3, ge=0, le=1000, description="re-runs of a task whose worker or node was lost")
    tune_workers: int | None = Field(None, ge=0, le=100_000, description="Ray tasks running tuning trials beside the driver; null: as many as fit")


class Params(Section):
    """The whole ``params.yaml``."""

    dataqa: DataqaParams = Field(default_factory=DataqaParams)
    paths: Paths = Field(default_factory=Paths)
    data: DataParams = Field(default_factory=DataParams)
    scan: ScanParams = Field(default_factory=ScanParams)
    tensors: TensorsParams = Field(default_factory=TensorsParams)
    engine: EngineParams = Field(default_factory=EngineParams)
    crossval: CrossvalParams = Field(default_factory=CrossvalParams)
    audit: AuditParams = Field(default_factory=AuditParams)
    gate: GateParams = Field(default_factory=GateParams)
    filter: FilterParams = Field(default_factory=FilterParams)
    augment: AugmentParams = Field(default_factory=AugmentParams)
    split: SplitParams = Field(default_factory=SplitParams)
    subsample: SubsampleParams = Field(default_factory=SubsampleParams)
    tune: TuneParams = Field(default_factory=TuneParams)
    report: ReportParams = Field(default_factory=ReportParams)
    cluster: ClusterParams = Field(default_factory=ClusterParams)
    root: Path = Field(Path("."), exclude=True)  # folder of params.yaml (not a key)

    def path(self, name: str) -> Path:
        """Absolute path of ``paths.<name>`` (relative paths resolve against ``root``)."""
        return self.resolve(getattr(self.paths, name))

    def resolve(self, value: str | Path) -> Path:
        p = Path(value).expanduser()
        return p if p.is_absolute() else (self.root / p)


SECTIONS = [name for name in Params.model_fields if name != "root"]


def _name_sections(cls: type[BaseModel], key: tuple[str, ...]) -> None:
    for name, field in cls.model_fields.items():
        sub = field.annotation
        if isinstance(sub, type) and issubclass(sub, Section) and not sub.params_key:
            sub.params_key = (*key, name)
            _name_sections(sub, (*key, name))


_name_sections(Params, ())


# --------------------------------------------------------------------------- loading
def load_params(path: str | Path = "params.yaml", *,
                checks: Mapping[str, type[BaseModel]] | None = None) -> Params:
    """Read and validate ``params.yaml``; missing sections and keys take defaults.

    ``checks`` (check name -> its ``Settings`` model: :func:`dataqa.checks.settings_models`,
    passed by the CLI) also validates the check names (``audit.checks``, the keys of
    ``audit.settings``, ``filter.policy``, ``filter.min_score``, ``gate.max_rates``) and
    each check's settings, in the same error form.
    """
    path = Path(path)
    if not path.is_file():
        raise ParamsError(f"{path}: params file not found")
    raw = read_yaml(path)
    raw = {} if raw is None else raw
    where = str(path)
    if not isinstance(raw, dict):
        raise ParamsError(f"{where}: expected a mapping of sections, got {type(raw).__name__}")
    if "root" in raw:
        raise ParamsError(f"{where}: root: {unknown_key('root', SECTIONS)}")
    params = validate(Params, raw, where=where)
    if checks is not None:
        check_plugins(params, checks, where=where)
    return params.replace(root=path.resolve().parent)


def check_plugins(params: Params, checks: Mapping[str, type[BaseModel]], *,
                  where: str = "params.yaml") -> None:
    """Check names against the registry ``checks`` and each check's settings against
    its model; :class:`ParamsError` naming the key path."""
    known = sorted(checks)
    for i, name in enumerate(params.audit.checks):
        if name not in checks:
            near = difflib.get_close_matches(name, known, n=1)
            hint = f" Did you mean '{near[0]}'?" if near else ""
            raise ParamsError(f"{where}: {key_path(('audit', 'checks', i))}: expected one of "
                              f"the checks ({', '.join(known)}), got {name!r}.{hint}")
    for keys, mapping in ((("audit", "settings"), params.audit.settings),
                          (("filter", "policy"), params.filter.policy),
                          (("filter", "min_score"), params.filter.min_score),
                          (("gate", "max_rates"), params.gate.max_rates)):
        for name in mapping:
            if name not in checks:
                raise ParamsError(f"{where}: {key_path((*keys, name))}: "
                                  f"{unknown_key(name, known)}")
    for name, settings in params.audit.settings.items():
        validate(checks[name], settings, where=where, prefix=("audit", "settings", name))
