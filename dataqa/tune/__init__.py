"""The tuning run: from a known-good start, coarse-to-fine Optuna search in rounds within
one time budget, with the shared training engine, automatic diagnoses, subsample
fidelity, and a final comparison that never hands back a configuration worse than the
start.

Modules, one job each: :mod:`~dataqa.tune.start` (the starting configuration and the
one mapping onto the engine's config), :mod:`~dataqa.tune.space` (search spaces and
rounds), :mod:`~dataqa.tune.budget` (trials and epochs from a measured epoch time),
:mod:`~dataqa.tune.search` (the rounds, the comparisons, the decision),
:mod:`~dataqa.tune.trial` (one trial: an engine ``fit`` with Optuna pruning),
:mod:`~dataqa.tune.compare` (the one A/B runner: start vs tuned, clean vs unfiltered),
:mod:`~dataqa.tune.diagnose` (curves -> diagnoses with the guide's remedies),
:mod:`~dataqa.tune.sizing` (rounds sized by the data), :mod:`~dataqa.tune.progress` (a
line per epoch with the time left), :mod:`~dataqa.tune.fidelity`,
:mod:`~dataqa.tune.study` (storage and the multi-worker round protocol),
:mod:`~dataqa.tune.data` / :mod:`~dataqa.tune.load` (the resident data),
:mod:`~dataqa.tune.results` (the one ranking of trials, the decision, summary and
outputs); :mod:`~dataqa.steps.tune` is the thin ``dataqa tune`` entry point.
"""

from dataqa.tune.diagnose import REMEDIES, Diagnosis, diagnose_trial, find_edges
from dataqa.tune.fidelity import get_fidelity
from dataqa.tune.space import Dim, RoundPlan, Space, plan_rounds

__all__ = ["REMEDIES", "Diagnosis", "Dim", "RoundPlan", "Space", "diagnose_trial",
           "find_edges", "get_fidelity", "plan_rounds"]
