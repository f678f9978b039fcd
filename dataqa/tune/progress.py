"""Progress of a round: one line per epoch with an estimate of the time the round has
left, so that a trial never runs minutes in silence.

The estimate assumes every remaining trial runs all its epochs at the mean epoch time
measured so far in this round (this process): pruning and early stopping only make it
shorter, so it is an upper bound and is printed as "<= ...". With several workers on one
study the trials left are the round's (any worker), the speed this process's.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from dataqa.engine.fit import EpochLog
from dataqa.engine.progress import fmt_seconds


@dataclass
class RoundClock:
    """``trials`` x ``epochs`` planned for round ``name``; ``trials_done()`` says how many
    of the round's trials are finished (any worker)."""

    name: str
    trials: int
    epochs: int
    trials_done: Callable[[], int]
    emit: Callable[[str], None]
    budget_left: Callable[[], float] | None = None  # seconds of tune.budget_seconds left
    epoch_seconds: list[float] = field(default_factory=list)
    started: float = field(default_factory=time.perf_counter)

    def eta(self, epoch: int) -> float:
        """Seconds left in the round after ``epoch`` of the running trial."""
        if not self.epoch_seconds:
            return math.nan
        mean = sum(self.epoch_seconds) / len(self.epoch_seconds)
        after = max(self.trials - self.trials_done() - 1, 0)
        return mean * (max(self.epochs - epoch, 0) + after * self.epochs)

    def epoch(self, number: int, entry: EpochLog) -> None:
        """One line for ``entry`` of trial ``number``."""
        self.epoch_seconds.append(entry.seconds)
        done = self.trials_done()
        val = "" if not math.isfinite(entry.val_loss) else (
            f"  val loss {entry.val_loss:.4f} acc {entry.val_acc:.4f}")
        self.emit(f"tune [{self.name}] trial {min(done + 1, self.trials)}/{self.trials} "
                  f"(#{number}) epoch {entry.epoch}/{self.epochs}: train loss "
                  f"{entry.train_loss:.4f} acc {entry.train_acc:.4f}{val}  "
                  f"{entry.seconds:.1f} s; round left <= {fmt_seconds(self.eta(entry.epoch))}"
                  + ("" if self.budget_left is None else
                     f", budget left {fmt_seconds(max(self.budget_left(), 0.0))}"))


@dataclass
class RunsClock:
    """Per-epoch lines for a fixed list of runs (the baseline, the cleaning comparison):
    ``total_epochs`` planned over all runs; time left = mean epoch time so far x the
    epochs still planned (an upper bound: early stopping only shortens it)."""

    label: str
    total_epochs: int
    emit: Callable[[str], None]
    done: int = 0
    seconds: float = 0.0

    def run(self, name: str, epochs: int) -> Callable[[EpochLog], bool]:
        """The engine callback of one run of ``epochs``; it never stops the run."""
        def tick(entry: EpochLog) -> bool:
            self.done += 1
            self.seconds += entry.seconds
            left = self.total_epochs - self.done
            val = "" if not math.isfinite(entry.val_acc) else f" val acc {entry.val_acc:.4f}"
            self.emit(f"{self.label} {name} epoch {entry.epoch}/{epochs}: train loss "
                      f"{entry.train_loss:.4f}{val}  {entry.seconds:.1f} s; left <= "
                      f"{fmt_seconds(self.seconds / self.done * max(left, 0))}")
            return False
        return tick

    def finished(self, epochs: int, ran: int) -> None:
        """A run planned for ``epochs`` stopped after ``ran``: fewer epochs left."""
        self.total_epochs -= max(epochs - ran, 0)
