"""Where the source lies relative to the pipeline's outputs: refused when they mix.

An ImageFolder source that contains an output folder ingests the pipeline's own files
on the next run (``data.source: .`` lists ``data/augmented/images/*.png`` as a class
``data``); an output written inside the source modifies the raw data the user handed
over; a source inside an output folder (``data/augmented``) is deleted by DVC before
that stage runs. :func:`check_layout` makes each of these a :class:`SourceError`
naming the ``paths`` key, checked against every entry of ``params.paths`` (whatever
keys other sections add there), with every link resolved. An empty ``data.source`` is
refused outright. A CSV source is checked by its listed files instead of its folder: a
CSV next to ``params.yaml`` is fine as long as no row names an output.

:func:`check_dependency_folder`: the folder of ``paths.external`` (the user's own
predictions) is a DVC dependency of the crossval stage, so DVC itself opens and hashes
every file in it: a FIFO there blocks ``dvc repro``, a link to ``/dev/zero`` reads
forever. ``dataqa init`` and the ``fingerprint`` stage (which runs first on every
``dvc repro``) refuse such entries, naming them, before DVC gets to that folder.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from pathlib import Path

from dataqa.errors import SourceError
from dataqa.params import Params
from dataqa.text import shown

# ``paths`` entries that the user provides rather than the pipeline writes
INPUT_KEYS = frozenset({"external", "reviews"})


def output_paths(params: Params) -> dict[str, Path]:
    """``paths`` key -> resolved absolute path, for every entry of ``params.paths``, the
    most specific first (``paths.augmented_dir`` before the ``paths.out`` folder holding
    it), so a message names the output a path really belongs to."""
    # the whole section at once (names compared, no file read: the dependency test of
    # tests/steps records it as such)
    paths = {name: params.resolve(value).resolve()
             for name, value in params.paths if name not in INPUT_KEYS}
    return dict(sorted(paths.items(), key=lambda kv: (-len(kv[1].parts), kv[0])))


def check_layout(params: Params) -> None:
    """SourceError when ``data.source`` is empty, contains an output, or lies inside one
    (ImageFolder); see the module doc."""
    raw = params.data.source
    if not str(raw).strip():
        raise SourceError("params.yaml: data.source is empty; name an ImageFolder directory "
                          "or a .csv file")
    source = params.resolve(raw).resolve()
    outputs = output_paths(params)
    for key, out in outputs.items():
        if source == out or source.is_relative_to(out):
            raise SourceError(f"data.source {source} lies inside the output paths.{key} "
                              f"({out}); DVC deletes outputs before a stage runs: keep raw "
                              f"data elsewhere")
    if source.is_dir():
        inside = sorted(k for k, out in outputs.items() if out.is_relative_to(source))
        if inside:
            shown = ", ".join(f"paths.{k} ({outputs[k]})" for k in inside[:5])
            more = f" and {len(inside) - 5} more" if len(inside) > 5 else ""
            raise SourceError(f"data.source {source} contains the pipeline's outputs "
                              f"{shown}{more}: the scan would list them as images and stages "
                              f"would write into the raw data; point data.source at the "
                              f"image folder itself (e.g. data/sample), not a parent")


def check_listed_files(params: Params, root: Path, paths: Iterable[str]) -> None:
    """SourceError when a listed file (a CSV row) is one of the pipeline's outputs.

    ``root`` is the resolved folder the paths are relative to, and every path resolves
    inside it (:func:`dataqa.dataset.sources.list_source` refuses the others). So only
    the outputs inside ``root``, or holding it, can be hit: without any (an ImageFolder
    source, which :func:`check_layout` has already kept apart from every output; a CSV
    whose folder holds no output) no file is looked at. Otherwise each file costs one
    string-prefix test against the precomputed resolved output paths (the real path of
    its folder is resolved once per folder; a file that is itself a link, once)."""
    outputs = output_paths(params)
    root = root.resolve()
    relevant = {k: out for k, out in outputs.items()
                if out == root or out.is_relative_to(root) or root.is_relative_to(out)}
    if not relevant:
        return
    exact = {str(out): k for k, out in reversed(relevant.items())}  # most specific wins
    prefixes = tuple(str(out) + os.sep for out in relevant.values())
    real_dirs: dict[str, str] = {}
    bad = []
    for rel in paths:
        folder, name = os.path.split(os.path.join(root, rel))
        real_dir = real_dirs.get(folder)
        if real_dir is None:
            real_dir = real_dirs[folder] = os.path.realpath(folder)
        full = os.path.join(real_dir, name)
        if os.path.islink(full):
            full = os.path.realpath(full)
        if full in exact or full.startswith(prefixes):
            key = exact.get(full) or next(k for k, out in relevant.items()
                                          if full.startswith(str(out) + os.sep))
            bad.append(f"'{rel}' (paths.{key})")
    if bad:
        raise SourceError(f"{root}: {len(bad)} listed file(s) are the pipeline's own "
                          f"outputs: {', '.join(bad[:10])}; list raw images only")


def check_dependency_folder(folder: Path, what: str) -> None:
    """SourceError naming every entry under ``folder`` (``what``: its params key) that is
    not a regular file or a folder once links are followed (FIFO, socket, device, a
    broken link or a link loop): DVC would block on or read forever from it when it
    hashes the folder. A missing folder is fine (DVC says so itself)."""
    if not folder.is_dir():
        return
    bad: list[str] = []
    for dirpath, dirnames, filenames in os.walk(folder):
        for name in dirnames + filenames:
            full = os.path.join(dirpath, name)
            try:
                mode = os.stat(full).st_mode  # follows links, as DVC does; never opens
            except OSError as exc:
                bad.append(f"'{shown(os.path.relpath(full, folder))}' "
                           f"({exc.strerror or 'cannot be read'})")
                continue
            if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
                kind = ("a FIFO" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode)
                        else "a device")
                bad.append(f"'{shown(os.path.relpath(full, folder))}' ({kind})")
        if len(bad) > 20:
            break
    if bad:
        raise SourceError(f"{folder} ({what}, a DVC dependency of the crossval stage): "
                          f"{', '.join(bad[:20])}: not a regular file; DVC hashes every "
                          f"file of this folder and would block or read forever: remove it")
