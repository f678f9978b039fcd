"""Stage ``fingerprint``: a small file that changes exactly when the source does.

DVC used to list ``${data.source}`` as a dependency of the scan, so ``dvc status`` and
``dvc repro`` hashed every byte of the raw tree themselves: a FIFO in an ImageFolder
blocked them forever, a symlink to ``/dev/zero`` read forever, and a large tree was
re-hashed on every ``dvc status``. Now the ``fingerprint`` stage (``always_changed``
in dvc.yaml, so it runs on every ``dvc repro``) lists the source with the scan's own
rules (:func:`dataqa.dataset.sources.list_source`: same errors, same skipped files)
and writes ``paths.fingerprint``: counts and one SHA-256 over each listed file's path,
label, split, kind, size and modification time (``stat``, never opening a file), plus
the bytes of the source CSV. Stages that read the raw files depend on that file; when
it is unchanged, DVC reruns nothing, and ``dvc status`` never touches the source.

A special file (FIFO, socket, device) with an image extension is listed with its kind
and becomes a flagged manifest row in the scan ("cannot read: not a regular file").
A content change that keeps both size and mtime (``touch -r`` after editing) is not
seen here; the reopen after the scan (:mod:`dataqa.dataset.reopen`) still refuses the
file by its hash.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from dataqa.dataset.sources import list_source


def fingerprint(source: Path, *, default_split: str, extensions: list[str],
                check: Callable[[pd.DataFrame], object] | None = None) -> dict[str, Any]:
    """The fingerprint of ``source`` as a JSON-ready mapping (see the module doc).
    ``check(listing)`` may stop it (raise) before anything is hashed."""
    root, files = list_source(source, default_split=default_split, extensions=extensions,
                              quiet=True)
    if check is not None:
        check(files)
    digest = hashlib.sha256()
    total = special = 0
    for rel, label, split in files[["path", "label", "split"]].itertuples(index=False):
        try:
            st = os.stat(root / rel)  # follows links (inside the root: checked); no open
            kind = "file" if stat.S_ISREG(st.st_mode) else "special"
            size, mtime = st.st_size, st.st_mtime_ns
        except OSError as exc:
            kind, size, mtime = f"unreadable:{exc.errno}", -1, 0
        special += kind != "file"
        total += max(size, 0) if kind == "file" else 0
        digest.update(f"{rel}\0{label}\0{split}\0{kind}\0{size}\0{mtime}\n".encode(
            "utf-8", "surrogateescape"))
    real = Path(source).resolve()
    if real.is_file():  # a CSV: its labels and splits are in its bytes
        digest.update(hashlib.sha256(real.read_bytes()).digest())
    return {"source": str(real), "root": str(root), "files": len(files),
            "bytes": total, "special_files": special, "sha256": digest.hexdigest()}
