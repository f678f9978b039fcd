"""The tuning run: coarse-to-fine Optuna search in rounds on the prepared subsets, with
the shared training engine, automatic diagnoses, subsample fidelity and the cleaning
comparison.

Modules, one job each: :mod:`~dataqa.tune.space` (search spaces and rounds from params),
:mod:`~dataqa.tune.trial` (one trial: an engine ``fit`` with Optuna pruning),
:mod:`~dataqa.tune.diagnose` (curves -> diagnoses with the guide's remedies),
:mod:`~dataqa.tune.sizing` (rounds sized by the data), :mod:`~dataqa.tune.baseline`
(crossval's configuration as the reference), :mod:`~dataqa.tune.progress` (a line per
epoch with the time left), :mod:`~dataqa.tune.fidelity`, :mod:`~dataqa.tune.cleaning`,
:mod:`~dataqa.tune.study`
(storage and the multi-worker round protocol), :mod:`~dataqa.tune.data` /
:mod:`~dataqa.tune.load` (the resident data), :mod:`~dataqa.tune.results` (summary and
outputs) and :mod:`~dataqa.steps.tune` (``dataqa tune``).
"""

from dataqa.tune.diagnose import REMEDIES, Diagnosis, diagnose_trial, find_edges
from dataqa.tune.fidelity import get_fidelity
from dataqa.tune.space import Dim, RoundPlan, Space, plan_rounds

__all__ = ["REMEDIES", "Diagnosis", "Dim", "RoundPlan", "Space", "diagnose_trial",
           "find_edges", "get_fidelity", "plan_rounds"]
