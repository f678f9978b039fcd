"""The ``tune`` stage: load the prepared subsets, run the search
(:func:`dataqa.tune.search.search`: rounds within ``tune.budget_seconds``, each starting
from the known-good configuration, then start vs tuned and the cleaning comparison) and
write the outputs (:func:`dataqa.tune.results.write_outputs`: metrics, curves, the
configuration to use, summary); the HTML report is the ``tuning_report`` stage's
(:mod:`dataqa.steps.tuning_report`), so a template edit never reruns the search.

``dataqa tune`` runs trials itself and then writes everything; ``dataqa tune --worker``
only joins the study in ``tune.storage`` and runs trials (any number of them, on any
number of hosts; see :mod:`dataqa.tune.study`).
"""

from __future__ import annotations

from dataqa.engine.device import pick_device
from dataqa.params import Params
from dataqa.tune import results
from dataqa.tune.data import available_subsets
from dataqa.tune.search import search
from dataqa.tune.space import plan_rounds
from dataqa.tune.trial import print_progress


def run_stage(params: Params, *, worker: bool = False, n_trials: int | None = None) -> int:
    """Entry point of ``dataqa tune``; returns the exit code."""
    from dataqa.tune.load import load_tune_data

    device = pick_device(params.engine.device, cpu_threads=params.engine.cpu_threads)
    plans = plan_rounds(params.tune)
    names = [p.subset for p in plans if p.trials != 0]
    cleaning = params.tune.cleaning.enabled and not worker
    if cleaning:
        names.append(params.tune.cleaning.subset)
    sdir = params.path("subsets_dir")
    if all((sdir / f"{n}.parquet").is_file() for n in names):
        # every subset is a candidate when a round's own is too small (sizing)
        names += available_subsets(sdir)
    td = load_tune_data(params, names, device=device, with_raw=cleaning)
    summary = search(td, params, plans=plans, device=device, worker=worker, n_trials=n_trials)
    if summary is None:
        return 0
    results.write_outputs(params, summary)  # the tuning report is its own stage
    print_progress(f"tune: done in {summary['seconds']:.1f} s (budget "
                   f"{params.tune.budget_seconds:.0f} s). {summary['headline']}")
    return 0


__all__ = ["run_stage"]
