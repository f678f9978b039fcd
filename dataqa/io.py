"""Atomic output writing: every output is written to a temporary file in the same
directory, flushed and fsynced, then renamed over the target. An interrupted run
leaves the previous good file or none, never a half-written one.

A full disk or quota (``ENOSPC``, ``EDQUOT``) while writing is an
:class:`~dataqa.errors.OutputError` naming the output; the temporary file is removed
and the previous output is kept. Files written through a memory map (the tensors) are
first given their blocks with :func:`preallocate`: writing a page of a sparse file on a
full disk is a SIGBUS, which no ``except`` can catch.

:func:`load_npy` is the one reader of an ``.npy`` file dataqa did not write (the user's
predictions): its header is checked against the file's size before any array is
allocated."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import numpy as np

from dataqa.errors import OutputError

if TYPE_CHECKING:  # pandas costs each spawned scan worker a second; it imports this
    import pandas as pd

_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str], suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path next to ``target``; on success rename it over ``target``.

    The temporary file keeps ``suffix`` (e.g. ``.npy``) so that libraries which append
    extensions do not rename it behind our back.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix or ".tmp",
                                    dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        try:
            yield tmp
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
        except OSError as exc:
            if is_disk_full(exc):
                raise OutputError(f"{target}: disk full while writing it ({exc}); the "
                                  f"previous file, if any, is kept and no temporary file "
                                  f"is left: free space and rerun") from None
            raise
        # mkstemp creates 0600; an output should have the usual mode (0644 under umask 022)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


@contextlib.contextmanager
def open_regular(path: str | os.PathLike[str]) -> Iterator[tuple[IO[bytes], os.stat_result]]:
    """``(file, stat)`` of ``path``, which must be a regular file: the one guarded open
    of a source file (the scan, every read after it, ``dataqa init``'s header sample).

    Opened with ``O_NONBLOCK`` so that a FIFO cannot block the open, then checked with
    ``fstat`` on the open descriptor (no race with a swap after the check): a FIFO, a
    device (``/dev/zero`` through a symlink), a socket or a folder is an OSError.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise OSError(errno.EINVAL, f"not a regular file ({_file_kind(st.st_mode)})")
        fh = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    with fh:
        yield fh, st


def _file_kind(mode: int) -> str:
    for test, name in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISDIR, "a folder")):
        if test(mode):
            return name
    return "not a plain file"


def is_disk_full(exc: OSError) -> bool:
    """ENOSPC/EDQUOT, also from libraries (pyarrow) that keep the errno only in the text."""
    return exc.errno in _DISK_FULL or any(
        f"[Errno {code}]" in str(exc) or os.strerror(code) in str(exc) for code in _DISK_FULL)


def preallocate(path: Path, size: int) -> None:
    """Reserve ``size`` bytes of disk for ``path`` (an existing file) now, so that a full
    disk is an OSError here instead of a SIGBUS when a memory map writes the page later.
    A filesystem without ``fallocate`` support keeps the sparse file (no worse than before)."""
    fd = os.open(path, os.O_RDWR)
    try:
        os.posix_fallocate(fd, 0, size)
    except OSError as exc:
        if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
            raise
    finally:
        os.close(fd)


def release_pages(array: np.ndarray) -> None:
    """Unmap the pages of a memory-mapped array that this process has touched (the
    file's data stays in the page cache, and is read back on the next access). A pass
    over a memory-mapped file of N rows otherwise keeps all N rows in the process's
    resident memory: 1 GB of tensors at 1M images (issue 23). Written pages of a
    writable map must be flushed first. No-op for an array that is not a file map."""
    import mmap

    base: Any = array
    while base is not None and not isinstance(base, mmap.mmap):
        if isinstance(base, np.memmap) and getattr(base, "_mmap", None) is not None:
            base = base._mmap  # type: ignore[attr-defined]
        else:
            base = getattr(base, "base", None)
    if isinstance(base, mmap.mmap) and hasattr(mmap, "MADV_DONTNEED"):
        with contextlib.suppress(OSError, ValueError):
            base.madvise(mmap.MADV_DONTNEED)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_bytes(target: str | os.PathLike[str], data: bytes) -> None:
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


def write_text(target: str | os.PathLike[str], text: str) -> None:
    write_bytes(target, text.encode("utf-8"))


def write_json(target: str | os.PathLike[str], obj: Any) -> None:
    write_text(target, json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def write_parquet(target: str | os.PathLike[str], frame: pd.DataFrame) -> None:
    with atomic_path(target, suffix=".parquet") as tmp:
        frame.to_parquet(tmp, index=False)


def write_npy(target: str | os.PathLike[str], array: np.ndarray) -> None:
    with atomic_path(target, suffix=".npy") as tmp:
        np.save(tmp, array, allow_pickle=False)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def load_npy(path: str | os.PathLike[str]) -> np.ndarray:
    """The array in ``path``, an ``.npy`` file from outside dataqa; ``ValueError`` saying
    what is wrong when its header does not describe its bytes.

    ``np.load`` allocates what the header claims before reading: a header saying 10^12
    rows in a file of a few bytes asks for terabytes (MemoryError). Here the shape's
    byte count must equal the bytes after the header, the dtype must hold numbers (no
    objects: ``allow_pickle=False`` too) and the file must be regular (never blocking).
    """
    from numpy.lib import format as npy_format

    with open_regular(path) as (fh, st):
        try:
            version = npy_format.read_magic(fh)
            if version == (1, 0):
                shape, fortran, dtype = npy_format.read_array_header_1_0(fh)
            elif version in ((2, 0), (3, 0)):
                shape, fortran, dtype = npy_format.read_array_header_2_0(fh)
            else:  # pragma: no cover - numpy knows no other version
                raise ValueError(f"unknown .npy format version {version}")
        except ValueError as exc:
            raise ValueError(f"not an .npy array file ({exc})") from None
        if dtype.hasobject or dtype.kind not in "biufcSUV":
            raise ValueError(f"holds {dtype} values, not numbers")
        count = 1
        for n in shape:
            count *= int(n)
        need, have = count * dtype.itemsize, st.st_size - fh.tell()
        if need != have:
            raise ValueError(f"its header claims shape {tuple(shape)} of {dtype} "
                             f"({need} bytes) but the file holds {have} bytes of data")
        fh.seek(0)
        return np.load(fh, allow_pickle=False)  # type: ignore[no-any-return]
