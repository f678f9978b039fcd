"""Typed params of the ``tune`` section (the tuning run, dataqa/tune/): the time budget,
the starting configuration, search space, rounds, stopping, pruning, diagnoses, fidelity
and the comparisons (start vs tuned, clean vs unfiltered).
Kept apart from :mod:`dataqa.params` because it is the largest section; validated by the
same strict loader. Every leaf is a scalar or a list of scalars, so
``dvc exp run -S tune.<key>=<value>`` works."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from dataqa.params import rules


@dataclass(frozen=True)
class TuneSpace:
    """Search ranges of the joint round (round 2); the fine round narrows them. Every
    range is widened to hold the starting configuration (tune.start), which is the first
    trial of every round. The architectures (small_cnn, small_resnet) and schedules
    (onecycle, plateau, cosine) are the engine's; with engine.weights only what applies
    to a pretrained backbone is searched (dataqa/tune/space.py). Every leaf is a scalar
    or a list of scalars, so ``dvc exp run -S tune.space.<key>=...`` works."""

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
    widths: list[int] | None = None  # net widths; null: 16,32,64 (GPU) / 8,16,32 (CPU)
    depths: list[int] = field(default_factory=lambda: [1, 2])  # small_resnet blocks per stage
    searched: list[str] = field(default_factory=lambda: [
        "arch", "schedule", "lr", "batch_size", "weight_decay", "dropout", "optimizer",
        "momentum", "plateau_factor", "width", "depth", "unfreeze"])  # rounds 2/3; the rest: the start's


@dataclass(frozen=True)
class TuneLrRound:
    """Round 1: the learning rate alone, few epochs, smallest subset."""

    trials: int | None = None  # null: from tune.budget_seconds (dataqa/tune/budget.py)
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
    """Round 3: ranges narrowed around round 2's top trials, larger subset, the final
    epochs (those of the start-vs-tuned comparison). After the start, its first trials
    re-run round 2's top configurations (subsample fidelity)."""

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
    """Start against tuned (dataqa/tune/compare.py): the starting configuration and the
    best tuned one, each trained ``seeds`` times (fresh seeds, the same for both) on the
    final round's data for the final round's epochs; the tuned one is kept only when its
    mean beats the start's by more than the seed spread."""

    enabled: bool = True  # false: best_params.yaml holds the best trial, unchecked
    seeds: int = 2

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
    """'Does cleaning help?': the chosen configuration on the clean training set against
    the unfiltered one (same val set, the final epochs, config and seeds), several seeds
    each (dataqa/tune/compare.py, the runner of the start-vs-tuned comparison)."""

    enabled: bool = True
    seeds: int = 2
    subset: str = "p100"  # the clean training set
    with_augmented: bool = False  # include augmented copies in the clean arm


@dataclass(frozen=True)
class TuneParams:
    # the whole tune stage (search, comparisons) in seconds of training; trials and epochs
    # follow from a measured epoch time (dataqa/tune/budget.py)
    budget_seconds: float = 90.0
    # the known-good starting configuration, the first trial of every round: crossval
    # (crossval's configuration) or a YAML file, e.g. a previous best_params.yaml
    start: str = "crossval"
    storage: str | None = None  # None: journal file under paths.tune_dir; or an RDB URL
    study_name: str = "dataqa"  # rounds are studies <study_name>-lr, -joint, -fine
    seed: int = 0  # trial seed = seed + round offset + trial number
    heartbeat_interval: int = 10  # seconds (RDB storage): a killed worker's trial fails
    grace_period: int = 30  # seconds without heartbeat before a trial is stale
    max_retry: int = 1  # re-runs of a trial whose worker died
    round_wait_seconds: int = 3600  # longest wait for other workers' trials of a round
    augment: bool = True  # train with params.augment's policy, batched on the device
    space: TuneSpace = field(default_factory=TuneSpace)
    rounds: TuneRounds = field(default_factory=TuneRounds)
    stopping: TuneStopping = field(default_factory=TuneStopping)
    pruning: TunePruning = field(default_factory=TunePruning)
    diagnose: TuneDiagnose = field(default_factory=TuneDiagnose)
    sizing: TuneSizing = field(default_factory=TuneSizing)
    selection: TuneSelection = field(default_factory=TuneSelection)
    baseline: TuneBaseline = field(default_factory=TuneBaseline)
    fidelity: TuneFidelity = field(default_factory=TuneFidelity)
    cleaning: TuneCleaning = field(default_factory=TuneCleaning)
