"""Worker process pools that Ctrl-C always stops: the one way dataqa starts processes
(the scan's decoders, the tensors stage's letterboxing).

A terminal's Ctrl-C sends SIGINT to the whole foreground process group, the workers
included. With a plain :class:`~concurrent.futures.ProcessPoolExecutor` that printed
each worker's KeyboardInterrupt traceback, and about one time in fifteen deadlocked the
scan: a KeyboardInterrupt raised inside ``submit`` (which starts the workers) while it
held the pool's lock left ``shutdown`` waiting for that lock forever. Here:

- while the pool is created and while ``submit`` runs (it may start a worker), SIGINT
  is blocked in this thread and recorded instead of raised from any thread; once the
  call is done, a recorded Ctrl-C is raised as KeyboardInterrupt (none is lost);
- workers start with SIGINT blocked (the mask is inherited through fork and exec) and
  their first act is to ignore it, then unblock it: a Ctrl-C never interrupts a
  worker, so no worker prints a traceback; the main process decides;
- leaving the ``with`` block by an exception (KeyboardInterrupt included) terminates
  the workers at once (SIGTERM) instead of waiting for their chunks, so the CLI exits
  130 within a second or so.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from types import FrameType, TracebackType
from typing import Any, TypeVar

T = TypeVar("T")
_SIGINT = {signal.SIGINT}


@contextlib.contextmanager
def interrupts_deferred() -> Iterator[None]:
    """Within the block, Ctrl-C is recorded, not raised (and blocked in this thread, so
    processes started here inherit it blocked); it is raised once the block is left."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    got: list[int] = []

    def record(signum: int, frame: FrameType | None) -> None:
        got.append(signum)

    previous = signal.signal(signal.SIGINT, record)
    old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, _SIGINT)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)  # a pending one -> record
        signal.signal(signal.SIGINT, previous)
    if got:
        if callable(previous) and previous is not signal.default_int_handler:
            previous(signal.SIGINT, None)
        elif previous != signal.SIG_IGN:
            raise KeyboardInterrupt


def _start_worker(initializer: Callable[..., object] | None, initargs: tuple[Any, ...]) -> None:
    """First thing in a worker: ignore Ctrl-C (the main process handles it), then let
    signals in (a SIGINT pending since the start is discarded by the ignore)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _SIGINT)
    if initializer is not None:
        initializer(*initargs)


class WorkerPool:
    """A :class:`ProcessPoolExecutor` with the interrupt rules of the module doc; use it
    as a context manager."""

    def __init__(self, max_workers: int, *, initializer: Callable[..., object] | None = None,
                 initargs: tuple[Any, ...] = (), mp_context: Any = None) -> None:
        with interrupts_deferred():
            self._pool = ProcessPoolExecutor(max_workers=max_workers, mp_context=mp_context,
                                             initializer=_start_worker,
                                             initargs=(initializer, initargs))

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        with interrupts_deferred():
            return self._pool.submit(fn, *args, **kwargs)

    def terminate(self) -> None:
        """Stop every worker now (their chunks are abandoned) and the pool with them."""
        for process in list(getattr(self._pool, "_processes", {}).values()):
            with contextlib.suppress(Exception):
                process.terminate()
        self._pool.shutdown(wait=False, cancel_futures=True)

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if kind is None:
            self._pool.shutdown(wait=True)
        else:
            self.terminate()
