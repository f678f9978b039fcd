"""Typed params of the ``tune`` section (the tuning run, dataqa/tune/): search space,
fixed values, rounds, stopping, pruning, diagnoses, fidelity and the cleaning comparison.
Kept apart from :mod:`dataqa.params` because it is the largest section; validated by the
same strict loader. Every leaf is a scalar or a list of scalars, so
``dvc exp run -S tune.<key>=<value>`` works."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from dataqa.errors import ParamsError
from dataqa.params import rules


@dataclass(frozen=True)
class TuneSpace:
    """Search ranges of the joint round (round 2); the fine round narrows them. Every
    leaf is a scalar or a list of scalars, so ``dvc exp run -S tune.space.<key>=...``
    works."""

    lr_min: float = 1e-5  # round 1 searches [lr_min, lr_max] log-uniformly
    lr_max: float = 1e-1
    batch_size_min: int = 16  # powers of two in [min, max], capped at n_train // 4
    batch_size_max: int = 256
    weight_decay_min: float = 1e-6  # log-uniform
    weight_decay_max: float = 1e-2
    dropout_min: float = 0.0
    dropout_max: float = 0.5
    optimizers: list[str] = field(default_factory=lambda: ["sgd", "adamw"])
    momentum_min: float = 0.8  # sgd momentum / adamw beta1
    momentum_max: float = 0.99
    plateau_factor_min: float = 0.2  # LR decay factor on plateau (the guide: 0.9, /2, /5)
    plateau_factor_max: float = 0.9
    widths: list[int] | None = None  # small_resnet widths; null: 16,32,64 (GPU) / 8,16,32 (CPU)
    depths: list[int] = field(default_factory=lambda: [1, 2])  # blocks per stage
    searched: list[str] = field(default_factory=lambda: [
        "lr", "batch_size", "weight_decay", "dropout", "optimizer", "momentum",
        "plateau_factor", "width", "depth"])  # round 2/3 search these; the rest stay fixed


@dataclass(frozen=True)
class TuneFixed:
    """Values of the hyperparameters a round does not search (round 1: all but lr).
    null width/depth/dropout take engine.width/depth/dropout."""

    lr: float = 1e-2  # used only when a round does not search lr
    batch_size: int = 64
    weight_decay: float = 5e-4
    dropout: float | None = None
    optimizer: str = "sgd"
    momentum: float = 0.9
    plateau_factor: float = 0.5
    width: int | None = None
    depth: int | None = None
    label_smoothing: float = 0.0


@dataclass(frozen=True)
class TuneLrRound:
    """Round 1: the learning rate alone, few epochs, smallest subset."""

    trials: int | None = None  # null: by device (see dataqa/tune/space.py DEVICE_BUDGETS)
    epochs: int | None = None
    subset: str = "p10"  # data/subsets/<subset>.parquet
    sampler: Literal["qmc", "random", "tpe"] = "qmc"


@dataclass(frozen=True)
class TuneJointRound:
    """Round 2: every name in space.searched, lr narrowed around round 1's best."""

    trials: int | None = None
    epochs: int | None = None
    subset: str = "p10"
    sampler: Literal["qmc", "random", "tpe"] = "qmc"
    lr_decades: float = 1.0  # lr range = round-1 best x/÷ 10**lr_decades (within space)


@dataclass(frozen=True)
class TuneFineRound:
    """Round 3: ranges narrowed around round 2's top trials, more epochs, larger subset.
    Its first trials re-run round 2's top configurations (subsample fidelity)."""

    trials: int | None = None
    epochs: int | None = None
    subset: str = "p100"
    sampler: Literal["qmc", "random", "tpe"] = "tpe"
    top_k: int = 5  # round-2 top trials: they span the narrowed ranges and are re-run first
    margin: float = 0.1  # share of the round-2 range added on each side of that span


@dataclass(frozen=True)
class TuneRounds:
    lr: TuneLrRound = field(default_factory=TuneLrRound)
    joint: TuneJointRound = field(default_factory=TuneJointRound)
    fine: TuneFineRound = field(default_factory=TuneFineRound)


@dataclass(frozen=True)
class TuneStopping:
    """Per-trial training control, passed to the engine (dataqa/engine/fit.py)."""

    patience: int = 3  # epochs without val-loss improvement before early stopping
    min_epochs: int = 3  # early stopping never stops a trial before this many epochs
    plateau_patience: int = 1  # LR x plateau_factor after more epochs than this without val-loss improvement
    diverge_factor: float = 10.0  # non-finite loss, or an epoch's train loss over this x the first steps': diverged
    stall_tolerance: float = 0.01  # train loss moved less than this share by epoch 2-3: stalled


@dataclass(frozen=True)
class TunePruning:
    pruner: Literal["median", "halving", "none"] = "median"
    startup_trials: int = 3  # trials of a round that are never pruned (median)
    warmup_epochs: int = 1  # epochs reported before a trial may be pruned


@dataclass(frozen=True)
class TuneDiagnose:
    """Thresholds of the automatic diagnoses (dataqa/tune/diagnose.py; README "Reading
    the reports" explains each verdict)."""

    overfit_gap: float = 0.10  # train acc - val acc above this (and val loss rising): overfitting
    overfit_rise: float = 0.05  # val loss this share above its minimum, rising 2+ epochs
    chance_ratio: float = 0.80  # final train loss >= this x ln(K) (chance): undertrained
    still_improving: float = 0.02  # train loss fell this share in the last epoch: undertrained
    barely_moves: float = 0.05  # train loss moved less than this share over the run: lr too low
    oscillation: float = 0.10  # 2+ epochs whose train loss rose this share: lr too high
    noise_cv: float = 0.50  # step-loss std / mean train loss in the last epoch: noisy
    edge_fraction: float = 0.10  # best within this share of a range's end: on the edge

    def __post_init__(self) -> None:
        rules.check_section("tune.diagnose", self)


@dataclass(frozen=True)
class TuneSizing:
    """Per-class minimum images a round's subset must give (original images: augmented
    copies are not counted). A round whose subset has fewer moves to the next larger
    subset with the same classes, and says so."""

    min_train_per_class: int = 20
    min_val_per_class: int = 5

    def __post_init__(self) -> None:
        rules.check_section("tune.sizing", self)


@dataclass(frozen=True)
class TuneSelection:
    """How trials are ranked: ``smoothed`` = the best mean validation accuracy over
    ``window`` consecutive evaluated epochs (a one-epoch spike does not win),
    ``checkpoint`` = validation accuracy at the lowest-validation-loss epoch (the
    checkpoint early stopping keeps), ``max`` = the best single epoch (optimistic)."""

    metric: Literal["smoothed", "checkpoint", "max"] = "smoothed"
    window: int = 3

    def __post_init__(self) -> None:
        rules.check_section("tune.selection", self)


@dataclass(frozen=True)
class TuneBaseline:
    """The reference: crossval's configuration (dataqa/engine/crossval.py) trained on the
    final round's data, and the best tuned configuration re-trained there, ``seeds`` times
    each (the same seeds); both are reported as mean ± std."""

    enabled: bool = True
    seeds: int = 3
    epochs: int | None = None  # null: crossval's epochs for the baseline

    def __post_init__(self) -> None:
        rules.check_section("tune.baseline", self)


@dataclass(frozen=True)
class TuneFidelity:
    """Subsample fidelity: the fine round first re-runs round 2's ``rounds.fine.top_k``
    best configurations on its larger subset; the Spearman rank correlation of the two
    scores says whether the small subset (and few epochs) can be trusted; with fewer than
    ``min_configs`` pairs no verdict is given."""

    min_spearman: float = 0.5  # rank agreement below this: warning
    min_configs: int = 5  # fewer configurations on both subsets: "not enough to judge"

    def __post_init__(self) -> None:
        rules.check_section("tune.fidelity", self)


@dataclass(frozen=True)
class TuneCleaning:
    """'Does cleaning help?': the best configuration on the clean training set against
    the unfiltered one (same val set, epochs and config), several seeds each."""

    enabled: bool = True
    seeds: int = 2
    epochs: int | None = None  # null: the fine round's epochs
    subset: str = "p100"  # the clean training set
    with_augmented: bool = False  # include augmented copies in the clean arm


@dataclass(frozen=True)
class TuneParams:
    storage: str | None = None  # None: journal file under paths.tune_dir; or an RDB URL
    study_name: str = "dataqa"  # rounds are studies <study_name>-lr, -joint, -fine
    seed: int = 0  # trial seed = seed + round offset + trial number
    heartbeat_interval: int = 10  # seconds (RDB storage): a killed worker's trial fails
    grace_period: int = 30  # seconds without heartbeat before a trial is stale
    max_retry: int = 1  # re-runs of a trial whose worker died
    round_wait_seconds: int = 3600  # longest wait for other workers' trials of a round
    augment: bool = True  # train with params.augment's policy, batched on the device
    space: TuneSpace = field(default_factory=TuneSpace)
    fixed: TuneFixed = field(default_factory=TuneFixed)
    rounds: TuneRounds = field(default_factory=TuneRounds)
    stopping: TuneStopping = field(default_factory=TuneStopping)
    pruning: TunePruning = field(default_factory=TunePruning)
    diagnose: TuneDiagnose = field(default_factory=TuneDiagnose)
    sizing: TuneSizing = field(default_factory=TuneSizing)
    selection: TuneSelection = field(default_factory=TuneSelection)
    baseline: TuneBaseline = field(default_factory=TuneBaseline)
    fidelity: TuneFidelity = field(default_factory=TuneFidelity)
    cleaning: TuneCleaning = field(default_factory=TuneCleaning)


# Cross-field rules of the tune section live here, not in dataqa/tune/, so that checking
# params imports no tuning code (no Optuna, no SciPy): the CLI checks them before any stage.

# Values a hyperparameter can never leave: a best value at such a bound needs no widening.
NATURAL_BOUNDS: dict[str, tuple[float, float]] = {
    "dropout": (0.0, 1.0), "momentum": (0.0, 1.0), "plateau_factor": (0.0, 1.0)}


def check_space(tune: TuneParams) -> None:
    """Cross-field rules of ``tune.space`` and ``tune.fixed``, stated once."""
    s = tune.space
    where = "params.yaml: tune.space"
    for name in ("lr", "weight_decay"):
        lo, hi = getattr(s, f"{name}_min"), getattr(s, f"{name}_max")
        if not 0 < lo < hi:
            raise ParamsError(f"{where}.{name}_min/{name}_max: need 0 < min < max "
                              f"(log scale), got {lo}, {hi}")
    for name in ("dropout", "momentum", "plateau_factor"):
        lo, hi = getattr(s, f"{name}_min"), getattr(s, f"{name}_max")
        blo, bhi = NATURAL_BOUNDS[name]
        if not blo <= lo <= hi < bhi:
            raise ParamsError(f"{where}.{name}_min/{name}_max: need {blo} <= min <= max "
                              f"< {bhi}, got {lo}, {hi}")
    if not 1 <= s.batch_size_min <= s.batch_size_max:
        raise ParamsError(f"{where}.batch_size_min/max: need 1 <= min <= max, got "
                          f"{s.batch_size_min}, {s.batch_size_max}")
    bad_opt = [o for o in s.optimizers if o not in ("sgd", "adamw")] + (
        [tune.fixed.optimizer] if tune.fixed.optimizer not in ("sgd", "adamw") else [])
    if bad_opt or not s.optimizers:
        raise ParamsError(f"{where}.optimizers / tune.fixed.optimizer: allowed sgd, adamw; "
                          f"got {bad_opt or 'an empty list'}")
    for name in ("widths", "depths"):
        values = getattr(s, name)
        if values is None and name == "widths":
            continue
        if not values or any(v < 1 for v in values):
            raise ParamsError(f"{where}.{name}: need a non-empty list of integers >= 1")
    known = {"lr", "batch_size", "weight_decay", "dropout", "optimizer", "momentum",
             "plateau_factor", "width", "depth"}
    unknown = sorted(set(s.searched) - known)
    if unknown:
        raise ParamsError(f"{where}.searched: unknown {unknown}; allowed: {sorted(known)}")
