"""Declarations of the ``tune`` section (the tuning run, dataqa/tune/): the time budget,
the starting configuration, search space, rounds, stopping, pruning, diagnoses, fidelity
and the comparisons (start vs tuned, clean vs unfiltered).
Kept apart from :mod:`dataqa.params` because it is the largest section; validated by the
same loader. Every leaf is a scalar or a list of scalars, so
``dvc exp run -S tune.<key>=<value>`` works."""

from __future__ import annotations

from typing import Annotated, Literal, get_args

from pydantic import Field, model_validator

from dataqa.params.base import BIG, SEED_MAX, Section, rule_error

Optimizer = Literal["sgd", "adamw"]
Sampler = Literal["qmc", "random", "tpe"]
Hyper = Literal["arch", "schedule", "lr", "batch_size", "weight_decay", "dropout", "optimizer",
                "momentum", "plateau_factor", "width", "depth", "unfreeze"]
OPTIMIZERS: tuple[Optimizer, ...] = get_args(Optimizer)
HYPERS: tuple[Hyper, ...] = get_args(Hyper)
Width = Annotated[int, Field(ge=1, le=4096)]
Depth = Annotated[int, Field(ge=1, le=64)]


def _lr(default: float, description: str) -> float:
    return Field(default, gt=0, le=10.0, description=description)  # type: ignore[no-any-return]


class TuneSpace(Section):
    """Search ranges of the joint round (round 2); the fine round narrows them. Every
    range is widened to hold the starting configuration (tune.start), the first trial of
    every round. The architectures (small_cnn, small_resnet) and schedules (onecycle,
    plateau, cosine) are the engine's; with engine.weights only what applies to a
    pretrained backbone is searched (dataqa/tune/space.py)."""

    lr_min: float = _lr(1e-5, "round 1 searches [lr_min, lr_max] log-uniformly")
    lr_max: float = _lr(1e-1, "upper end of the learning-rate range")
    batch_size_min: int = Field(16, ge=1, le=65_536, description="powers of two in [min, max], capped at n_train // 4")
    batch_size_max: int = Field(256, ge=1, le=65_536, description="largest batch size searched")
    weight_decay_min: float = Field(1e-6, gt=0, le=1, description="log-uniform")
    weight_decay_max: float = Field(1e-2, gt=0, le=1, description="upper end of the weight-decay range")
    dropout_min: float = Field(0.0, ge=0, lt=1, description="lower end of the dropout range")
    dropout_max: float = Field(0.5, ge=0, lt=1, description="upper end of the dropout range")
    optimizers: list[Optimizer] = Field(default_factory=lambda: list(OPTIMIZERS), min_length=1,
                                        description="sgd | adamw")
    momentum_min: float = Field(0.8, ge=0, lt=1, description="sgd momentum / adamw beta1")
    momentum_max: float = Field(0.99, ge=0, lt=1, description="upper end of the momentum range")
    plateau_factor_min: float = Field(0.2, gt=0, lt=1, description="learning-rate decay factor on a plateau")
    plateau_factor_max: float = Field(0.9, gt=0, lt=1, description="upper end of the decay-factor range")
    widths: list[Width] | None = Field(None, min_length=1, description="net widths; null: 16,32,64 (GPU) / 8,16,32 (CPU)")
    depths: list[Depth] = Field(default_factory=lambda: [1, 2], min_length=1, description="small_resnet blocks per stage")
    searched: list[Hyper] = Field(default_factory=lambda: list(HYPERS),
                                  description="rounds 2/3 search these (those that apply); the rest: the start's")

    @model_validator(mode="after")
    def _ranges(self) -> TuneSpace:
        for name in ("lr", "weight_decay"):
            lo, hi = getattr(self, f"{name}_min"), getattr(self, f"{name}_max")
            if not lo < hi:
                raise rule_error(f"{name}_min < {name}_max", [lo, hi], f"{name}_min")
        for name in ("batch_size", "dropout", "momentum", "plateau_factor"):
            lo, hi = getattr(self, f"{name}_min"), getattr(self, f"{name}_max")
            if not lo <= hi:
                raise rule_error(f"{name}_min <= {name}_max", [lo, hi], f"{name}_min")
        return self


def _trials() -> int | None:
    return Field(None, ge=0, le=100_000, description="null: from tune.budget_seconds (dataqa/tune/budget.py); 0 skips")  # type: ignore[no-any-return]


def _epochs() -> int | None:
    return Field(None, ge=1, le=10_000, description="null: from tune.budget_seconds (fine: the final epochs)")  # type: ignore[no-any-return]


class TuneLrRound(Section):
    """Round 1: the learning rate alone, few epochs, smallest subset."""

    trials: int | None = _trials()
    epochs: int | None = _epochs()
    subset: str = Field("p10", description="the subset the round trains on (subsample)")
    sampler: Sampler = Field("qmc", description="qmc | random | tpe")


class TuneJointRound(Section):
    """Round 2: every name in space.searched, lr narrowed around round 1's best."""

    trials: int | None = _trials()
    epochs: int | None = _epochs()
    subset: str = Field("p10", description="the subset the round trains on (subsample)")
    sampler: Sampler = Field("qmc", description="qmc | random | tpe")
    lr_decades: float = Field(1.0, gt=0, le=10, description="lr range = round-1 best x/÷ 10**lr_decades")


class TuneFineRound(Section):
    """Round 3: ranges narrowed around round 2's top trials, larger subset, the final
    epochs (those of the start-vs-tuned comparison). After the start, its first trials
    re-run round 2's top configurations (subsample fidelity)."""

    trials: int | None = _trials()
    epochs: int | None = _epochs()
    subset: str = Field("p100", description="the subset the round trains on (subsample)")
    sampler: Sampler = Field("tpe", description="qmc | random | tpe")
    top_k: int = Field(5, ge=1, le=10_000, description="round-2 configurations re-run first (fidelity needs >= 5)")
    margin: float = Field(0.1, ge=0, le=10, description="share of the round-2 range added on each side")


class TuneRounds(Section):
    """The three rounds (null trials/epochs: from tune.budget_seconds)."""

    lr: TuneLrRound = Field(default_factory=TuneLrRound, description="round 1: the learning rate")
    joint: TuneJointRound = Field(default_factory=TuneJointRound, description="round 2: every searched name")
    fine: TuneFineRound = Field(default_factory=TuneFineRound, description="round 3: narrowed ranges")


class TuneStopping(Section):
    """Per-trial training control, passed to the engine (dataqa/engine/fit.py)."""

    patience: int = Field(3, ge=1, le=10_000, description="epochs without val-loss improvement before stopping")
    min_epochs: int = Field(3, ge=1, le=10_000, description="early stopping never stops before this many epochs")
    plateau_patience: int = Field(1, ge=0, le=10_000, description="LR decays after more epochs than this without improvement")
    diverge_factor: float = Field(10.0, gt=1, le=float(BIG), description="train loss over this x the first steps': diverged")
    stall_tolerance: float = Field(0.01, ge=0, le=1, description="train loss moved less than this share by epoch 2-3: stalled")


class TunePruning(Section):
    """Stopping unpromising trials early (Optuna pruners)."""

    pruner: Literal["median", "halving", "none"] = Field("median", description="median | halving | none")
    startup_trials: int = Field(3, ge=0, le=100_000, description="trials of a round never pruned (median)")
    warmup_epochs: int = Field(1, ge=0, le=10_000, description="epochs reported before a trial may be pruned")


def _ratio(default: float, description: str) -> float:
    return Field(default, ge=0, le=float(BIG), description=description)  # type: ignore[no-any-return]


class TuneDiagnose(Section):
    """Thresholds of the automatic diagnoses (dataqa/tune/diagnose.py; README "Reading
    the reports" explains each verdict)."""

    overfit_gap: float = _ratio(0.10, "train - val accuracy above this, val loss rising: overfitting")
    overfit_rise: float = _ratio(0.05, "val loss this share above its minimum, rising 2+ epochs")
    chance_ratio: float = _ratio(0.80, "final train loss >= this x ln(K): undertrained")
    still_improving: float = _ratio(0.02, "train loss fell this share in the last epoch: undertrained")
    barely_moves: float = _ratio(0.05, "train loss moved less than this share: lr too low")
    oscillation: float = _ratio(0.10, "train loss up this share in 2+ epochs: lr too high")
    noise_cv: float = _ratio(0.50, "step-loss std / mean train loss in the last epoch: noisy")
    edge_fraction: float = Field(0.10, ge=0, le=0.5, description="best within this share of a range's end: on the edge")


class TuneSizing(Section):
    """Per-class minimum images a round's subset must give (original images); a round
    whose subset has fewer moves to the next larger subset with the same classes."""

    min_train_per_class: int = Field(20, ge=1, le=BIG, description="training images per class")
    min_val_per_class: int = Field(5, ge=1, le=BIG, description="validation images per class")


class TuneSelection(Section):
    """How trials are ranked: ``smoothed`` = the best mean validation accuracy over
    ``window`` consecutive epochs, ``checkpoint`` = at the lowest-validation-loss epoch,
    ``max`` = the best single epoch (optimistic)."""

    metric: Literal["smoothed", "checkpoint", "max"] = Field("smoothed", description="smoothed | checkpoint | max")
    window: int = Field(3, ge=1, le=10_000, description="epochs averaged by smoothed")


class TuneBaseline(Section):
    """Start against tuned (dataqa/tune/compare.py): the starting configuration and the
    best tuned one, each trained ``seeds`` times (fresh seeds, the same for both) on the
    final round's data for the final epochs; the tuned one is kept only when its mean
    beats the start's by more than the seed spread."""

    enabled: bool = Field(True, description="false: best_params.yaml holds the best trial, unchecked")
    seeds: int = Field(2, ge=1, le=1000, description="runs of each, reported as mean ± std")


class TuneFidelity(Section):
    """Subsample fidelity: Spearman rank agreement of round 2's top configurations on
    the small and the large subset."""

    min_spearman: float = Field(0.5, ge=-1, le=1, description="rank agreement below this: warning")
    min_configs: int = Field(5, ge=3, le=BIG, description="fewer configurations on both subsets: not judged")


class TuneCleaning(Section):
    """'Does cleaning help?': the configuration to use on the clean training set against
    the unfiltered one (same val set, the final epochs, config and seeds), several seeds
    each (dataqa/tune/compare.py, the runner of the start-vs-tuned comparison)."""

    enabled: bool = Field(True, description="run the comparison")
    seeds: int = Field(2, ge=1, le=1000, description="runs of each arm")
    subset: str = Field("p100", description="the clean training set")
    with_augmented: bool = Field(False, description="include augmented copies in the clean arm")


class TuneParams(Section):
    """The tuning run (dataqa/tune/)."""

    budget_seconds: float = Field(90.0, ge=1.0, le=30 * 86_400.0, description="the whole stage; trials and epochs follow from a measured epoch time")
    start: str = Field("crossval", min_length=1, description="the known-good start, first trial of every round: crossval or a YAML file (e.g. a previous best_params.yaml)")
    storage: str | None = Field(None, description="null: a journal file under paths.tune_dir; or a database URL")
    study_name: str = Field("dataqa", description="rounds are the studies <study_name>-lr, -joint, -fine")
    seed: int = Field(0, ge=0, le=SEED_MAX, description="trial seed = seed + round offset + trial number")
    heartbeat_interval: int = Field(10, ge=1, le=86_400, description="seconds (database storage)")
    grace_period: int = Field(30, ge=1, le=86_400, description="seconds without heartbeat before a trial is stale")
    max_retry: int = Field(1, ge=0, le=100, description="re-runs of a trial whose worker died")
    round_wait_seconds: int = Field(3600, ge=0, le=30 * 86_400, description="longest wait for other workers' trials")
    augment: bool = Field(True, description="train with the augment section's policy, batched on the device")
    space: TuneSpace = Field(default_factory=TuneSpace, description="ranges of the joint round")
    rounds: TuneRounds = Field(default_factory=TuneRounds, description="lr / joint / fine")
    stopping: TuneStopping = Field(default_factory=TuneStopping, description="per-trial training control")
    pruning: TunePruning = Field(default_factory=TunePruning, description="stopping unpromising trials")
    diagnose: TuneDiagnose = Field(default_factory=TuneDiagnose, description="thresholds of the diagnoses")
    sizing: TuneSizing = Field(default_factory=TuneSizing, description="per-class minimum images per round")
    selection: TuneSelection = Field(default_factory=TuneSelection, description="how trials are ranked")
    baseline: TuneBaseline = Field(default_factory=TuneBaseline, description="the start vs the best tuned, at equal budget")
    fidelity: TuneFidelity = Field(default_factory=TuneFidelity, description="small vs large subset agreement")
    cleaning: TuneCleaning = Field(default_factory=TuneCleaning, description="does cleaning help?")
