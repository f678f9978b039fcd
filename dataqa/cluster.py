"""Ray as the engine beyond one machine (``cluster.backend: ray``).

dataqa runs on one machine by default (``local``: process pools, and no Ray import).
With ``backend: ray`` and the optional extra (``pip install "dataqa[ray]"``) the work
that splits into independent pieces runs as Ray tasks on the cluster at
``cluster.address``:

- scan and tensors: one task per chunk of the file list (``scan.chunk_size`` /
  ``tensors.chunk_size`` files); the driver puts each chunk's rows back at their
  positions, so the manifest and the tensor file are byte-identical to the local
  backend's;
- the K-fold pass: one task per fold holding ``num_gpus`` GPUs (1: a fold per GPU;
  0.5: two folds share one) and ``num_cpus`` CPUs; the images go to the object store
  once, the driver gathers the held-out predictions;
- tuning: ``tune_workers`` tasks join the Optuna study in ``tune.storage`` beside the
  driver (Optuna's own RDB protocol decides which trial each runs).

This process (the driver, e.g. ``dvc repro`` on a head or a laptop) writes every output
in its own project folder, atomically, after every task has returned. The nodes must
run the same dataqa release and reach ``data.source`` (scan, tensors) and the project
folder (tuning) at the same path: a shared filesystem.

Failures: a task whose worker process or node is lost is re-run by Ray (up to
``max_retries`` times); when that is exhausted the stage stops with a
:class:`ClusterError` (exit 2) and writes nothing. An error raised inside a task (a
:class:`~dataqa.errors.DataQAError` such as a source that a node cannot see, or a bug)
is raised here as itself and not retried. Ctrl-C (KeyboardInterrupt) cancels the
run's tasks still queued or running before it propagates.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from dataqa.errors import DataQAError, ParamsError
from dataqa.params import ClusterParams

log = logging.getLogger("dataqa.cluster")

EXTRA_HINT = 'pip install "dataqa[ray]"'
IN_FLIGHT_PER_CPU = 2  # chunks queued per cluster CPU: one running, one waiting
CANCEL_ATTEMPTS = 5  # cancels of a task that goes on running, a second apart


class ClusterError(DataQAError):
    """The cluster could not be reached, or a task was lost more often than
    ``cluster.max_retries`` allows; nothing was written."""


def is_ray(cluster: ClusterParams) -> bool:
    return cluster.backend == "ray"


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ParamsError(f"params.yaml: cluster.backend: ray needs Ray, an optional "
                          f"extra: {EXTRA_HINT}") from None
    return ray


def connect(cluster: ClusterParams) -> Any:
    """Join the cluster at ``cluster.address`` once per process; returns the ``ray``
    module. An address nobody answers is a :class:`ClusterError` naming it."""
    ray = _ray()
    if ray.is_initialized():
        return ray
    address = None if cluster.address == "auto" and os.environ.get("RAY_ADDRESS") \
        else cluster.address
    try:
        ray.init(address=address, logging_level=logging.WARNING, log_to_driver=True)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = os.environ.get("RAY_ADDRESS") if address is None else cluster.address
        raise ClusterError(
            f"params.yaml: cluster.address: cannot join the Ray cluster at {where!r} "
            f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); "
            "start one with `ray start --head` (then `ray start --address HEAD:PORT` on "
            "the other nodes), or set cluster.backend: local") from None
    log.info("cluster: joined Ray at %s: %s", cluster.address, describe())
    return ray


def describe() -> str:
    """Nodes and resources of the joined cluster, for logs and outputs."""
    ray = _ray()
    res = ray.cluster_resources()
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    return (f"{len(nodes)} node(s), {res.get('CPU', 0):g} CPU, {res.get('GPU', 0):g} GPU")


def slots(cluster: ClusterParams, *, gpus: bool = False) -> int:
    """How many tasks of this configuration the cluster runs at once (at least 1)."""
    ray = _ray()
    res = ray.cluster_resources()
    n = int(res.get("CPU", 1) // cluster.num_cpus) if cluster.num_cpus > 0 else 1 << 20
    if gpus and cluster.num_gpus > 0:
        n = min(n, int(res.get("GPU", 0) // cluster.num_gpus))
    return max(1, n)


def map_tasks(fn: Callable[..., Any], calls: Sequence[tuple[Any, ...]], cluster: ClusterParams,
              *, what: str, gpus: bool = False, shared: dict[str, Any] | None = None,
              in_flight: int | None = None) -> Iterator[tuple[int, Any]]:
    """Run ``fn(*calls[i], **shared)`` as Ray tasks; yield ``(i, result)`` as they finish.

    At most ``in_flight`` tasks are submitted at once (default: twice what the cluster
    runs at once), so the driver holds a bounded number of results. ``shared``
    values go to the object store once and reach every task (e.g. the images of the
    K-fold pass). Each task holds ``cluster.num_cpus`` CPUs (and ``num_gpus`` GPUs when
    ``gpus``). Lost workers or nodes: retried by Ray; see the module docstring for
    errors and Ctrl-C. ``what`` names the work in messages ("scan", "crossval")."""
    ray = connect(cluster)
    options: dict[str, Any] = {"num_cpus": cluster.num_cpus,
                               "max_retries": cluster.max_retries, "retry_exceptions": False}
    if gpus and cluster.num_gpus > 0:
        options["num_gpus"] = cluster.num_gpus
    remote = ray.remote(_call).options(**options)
    refs_shared = {k: ray.put(v) for k, v in (shared or {}).items()}
    limit = in_flight or IN_FLIGHT_PER_CPU * slots(cluster, gpus=gpus)
    pending: dict[Any, int] = {}
    todo = iter(enumerate(calls))
    try:
        while True:
            while len(pending) < limit:
                item = next(todo, None)
                if item is None:
                    break
                i, args = item
                pending[remote.remote(fn, args, refs_shared)] = i
            if not pending:
                return
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                i = pending.pop(ref)
                yield i, _get(ray, ref, what)
    finally:
        cancel(ray, list(pending))


def _call(fn: Callable[..., Any], args: tuple[Any, ...], shared: dict[str, Any]) -> Any:
    """The task body: ``shared`` arrives as object refs inside a dict, so fetch them."""
    import ray

    values = {k: ray.get(v) for k, v in shared.items()}
    return fn(*args, **values)


def _get(ray: Any, ref: Any, what: str) -> Any:
    """A task's result; its own error raised as itself, a lost task as ClusterError."""
    from ray import exceptions as rex

    try:
        return ray.get(ref)
    except rex.RayTaskError as exc:
        cause = exc.cause if isinstance(getattr(exc, "cause", None), BaseException) else None
        if cause is not None:
            raise cause from None  # a DataQAError keeps its exit code, a bug its traceback
        raise
    except (rex.WorkerCrashedError, rex.NodeDiedError, rex.ObjectLostError,
            rex.OwnerDiedError, rex.TaskUnschedulableError, rex.RaySystemError) as exc:
        raise ClusterError(
            f"{what}: a Ray task was lost and re-run cluster.max_retries times without "
            f"finishing ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); "
            "nothing was written: check the nodes (`ray status`) and rerun") from None


def cancel(ray: Any, refs: Sequence[Any]) -> None:
    """Cancel tasks still queued or running (their worker processes are killed).

    Only refs whose result is not there yet: force-cancelling a task that has just
    finished races Ray's own bookkeeping of its reply (Ray 2.x aborts the driver with
    "Tried to complete task that was not pending"), so finished tasks are left alone
    and a run that ended normally cancels nothing."""
    if not refs:
        return
    try:
        _, refs = ray.wait(list(refs), num_returns=len(refs), timeout=0)
    except Exception:  # noqa: BLE001 - the cluster is gone: nothing left to cancel
        return
    for attempt in range(CANCEL_ATTEMPTS):
        for ref in refs:
            try:
                ray.cancel(ref, force=True)
            except Exception:  # noqa: BLE001 - already finished or its node is gone
                pass
        if attempt + 1 == CANCEL_ATTEMPTS:
            return
        # a cancel that reaches a task while it is being leased to a worker can be
        # dropped by Ray: whatever has not ended (a cancelled task ends with
        # TaskCancelledError) within a second is cancelled again
        try:
            _, refs = ray.wait(list(refs), num_returns=len(refs), timeout=1.0)
        except Exception:  # noqa: BLE001
            return
        if not refs:
            return


def start_tasks(fn: Callable[..., Any], calls: Sequence[tuple[Any, ...]],
                cluster: ClusterParams, *, gpus: bool = False) -> list[Any]:
    """Submit ``fn(*call)`` for each call without waiting; returns the object refs
    (wait with :func:`gather`, stop with :func:`cancel`)."""
    ray = connect(cluster)
    options: dict[str, Any] = {"num_cpus": cluster.num_cpus,
                               "max_retries": cluster.max_retries, "retry_exceptions": False}
    if gpus and cluster.num_gpus > 0:
        options["num_gpus"] = cluster.num_gpus
    remote = ray.remote(_call).options(**options)
    return [remote.remote(fn, args, {}) for args in calls]


def gather(refs: Sequence[Any], *, what: str) -> list[Any]:
    """Results of ``refs`` in order (errors as in :func:`map_tasks`); Ctrl-C or an
    error cancels the ones still running."""
    ray = _ray()
    try:
        return [_get(ray, ref, what) for ref in refs]
    except BaseException:
        cancel(ray, refs)
        raise
