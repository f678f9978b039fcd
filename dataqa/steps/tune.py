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

import contextlib
from collections.abc import Iterator

from dataqa.engine.device import pick_device
from dataqa.errors import ParamsError
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
    with trial_workers(params, enabled=not worker):
        summary = search(td, params, plans=plans, device=device, worker=worker,
                         n_trials=n_trials)
    if summary is None:
        return 0
    results.write_outputs(params, summary)  # the tuning report is its own stage
    print_progress(f"tune: done in {summary['seconds']:.1f} s (budget "
                   f"{params.tune.budget_seconds:.0f} s). {summary['headline']}")
    return 0


@contextlib.contextmanager
def trial_workers(params: Params, *, enabled: bool = True) -> Iterator[None]:
    """With ``cluster.backend: ray``: ``cluster.tune_workers`` Ray tasks (null: as many as
    the cluster runs at once), each ``dataqa tune --worker`` on the same params, join
    the study while the body runs; on leaving, wait for them (they stop when the last
    round's budget is used); on an error or Ctrl-C, cancel them. The study lives in
    ``tune.storage``, which must then be a database URL every node reaches."""
    cluster = params.cluster
    if not enabled or cluster.backend != "ray" or cluster.tune_workers == 0:
        yield
        return
    from dataqa import cluster as cl

    if not params.tune.storage or "://" not in params.tune.storage:
        raise ParamsError("params.yaml: tune.storage: tuning on a Ray cluster "
                          "(cluster.backend: ray) needs a database URL that every node "
                          "reaches (postgresql://user@host:port/db), or cluster.tune_workers: 0")
    cl.connect(cluster)
    n = cluster.tune_workers or cl.slots(cluster, gpus=True)
    print_progress(f"tune: {n} trial worker(s) on the Ray cluster ({cl.describe()})")
    refs = cl.start_tasks(_trial_worker, [(params,)] * n, cluster, gpus=True)
    try:
        yield
    except BaseException:
        import ray

        cl.cancel(ray, refs)
        raise
    cl.gather(refs, what="tune")


def _trial_worker(params: Params) -> int:
    """One Ray task: ``dataqa tune --worker`` on ``params`` (the project folder on a
    shared filesystem, the study in ``tune.storage``)."""
    return run_stage(params, worker=True)


__all__ = ["run_stage"]
