"""Recording what a stage touches: the params keys it reads (a ``__getattribute__`` hook
on the params models' :class:`~dataqa.params.base.Section` base, installed only while
recording) and the ``paths.*`` files it reads and writes (keys asked for, and a snapshot
of every path's files before and after the stage), compared with the declaration of
:mod:`dataqa.steps.reads`."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from dataqa.params import Params
from dataqa.params.base import Section
from dataqa.steps.reads import NOT_DEPENDENCIES, STAGES, deps

# the whole paths section (the layout check compares the source with every output path:
# names, no file read) and the folder of every output: not a file read
NOT_FILES = {"paths", "paths.out"}
NOT_KEYS = {"root", "dataqa.version"}  # the params file's folder; checked by the CLI


@dataclass
class Record:
    keys: set[str] = field(default_factory=set)  # params keys read (paths.* included)
    written: set[str] = field(default_factory=set)  # paths.* keys whose files changed


def _prefix(obj: Section) -> tuple[str, ...] | None:
    if isinstance(obj, Params):
        return ()
    return type(obj).params_key or None  # a model not placed in params.yaml: not recorded


@contextlib.contextmanager
def recording() -> Iterator[set[str]]:
    """Every params key read while inside, as dotted paths (a whole section read at
    once, ``dict(section)`` or ``model_dump``, records the section's key)."""
    seen: set[str] = set()
    get = object.__getattribute__

    def hook(self: Any, name: str) -> Any:
        value = get(self, name)
        if name[:1] != "_" and name in type(self).model_fields and not isinstance(value, Section):
            prefix = _prefix(self)
            if prefix is not None:
                seen.add(".".join((*prefix, name)))
        return value

    def whole(method: Any) -> Any:
        def wrapped(self: Any, *a: Any, **k: Any) -> Any:
            prefix = _prefix(self)
            if prefix:
                seen.add(".".join(prefix))
            return method(self, *a, **k)
        return wrapped

    saved = {n: Section.__dict__.get(n) for n in ("__getattribute__", "__iter__", "model_dump")}
    Section.__getattribute__ = hook  # type: ignore[method-assign]
    Section.__iter__ = whole(Section.__iter__)  # type: ignore[method-assign]
    Section.model_dump = whole(Section.model_dump)  # type: ignore[method-assign]
    try:
        yield seen
    finally:
        for name, old in saved.items():
            if old is None:
                delattr(Section, name)
            else:
                setattr(Section, name, old)


def snapshot(params: Params) -> dict[str, Any]:
    """paths key -> a fingerprint of its file or folder (None: absent)."""
    out: dict[str, Any] = {}
    for name in type(params.paths).model_fields:
        key = f"paths.{name}"
        if key in NOT_FILES:
            continue
        p = params.path(name)
        if p.is_file():
            st = p.stat()
            out[key] = (st.st_mtime_ns, st.st_size)
        elif p.is_dir():
            out[key] = tuple(sorted((str(f.relative_to(p)), f.stat().st_mtime_ns, f.stat().st_size)
                                    for f in p.rglob("*") if f.is_file()))
        else:
            out[key] = None
    return out


def record_stage(params: Params, run: Any, **kwargs: Any) -> Record:
    """Run ``run(params, **kwargs)`` (a stage) while recording; ``params`` is loaded
    before, outside the recording."""
    before = snapshot(params)
    with recording() as seen:
        run(params, **kwargs)
    after = snapshot(params)
    written = {k for k in before if before[k] != after[k]}
    return Record(keys=set(seen), written=written)


# --------------------------------------------------------------------------- comparison
def _covers(declared: str, key: str) -> bool:
    return key == declared or key.startswith(declared + ".")


def _inside(params: Params, key: str, declared: str) -> bool:
    """paths key ``key`` is the file of ``declared`` or lies in its folder."""
    p, d = params.path(key.split(".", 1)[1]), params.path(declared.split(".", 1)[1])
    return p == d or d in p.parents


def problems(name: str, rec: Record, params: Params) -> list[str]:
    """What the declaration of stage ``name`` says less or more than ``rec`` shows."""
    reads = STAGES[name]
    declared_params = list(reads.params)
    also = {key for key, _ in reads.also}
    files = [k for k in deps(name) if k not in also]
    outs = [o.key for o in reads.out_list()]
    read_params = {k for k in rec.keys
                   if k not in NOT_KEYS and k != "paths" and not k.startswith("paths.")
                   and not any(_covers(d, k) for d, _ in NOT_DEPENDENCIES)}
    touched = {k for k in rec.keys if k.startswith("paths.") and k not in NOT_FILES}
    read_files = touched - rec.written - {key for key, _ in reads.inspects}
    out: list[str] = []
    for key in sorted(read_params):
        if not any(_covers(d, key) for d in declared_params):
            out.append(f"{name}: reads params key {key} that dvc.yaml does not list "
                       f"(a change leaves a stale output)")
    for d in declared_params:
        if not any(_covers(d, k) or _covers(k, d) for k in read_params):
            out.append(f"{name}: lists params key {d} that it never reads (needless reruns)")
    for key in sorted(read_files):
        if not any(_inside(params, key, d) for d in files + outs):
            out.append(f"{name}: reads {key} that dvc.yaml does not list as a dep")
    for d in files:
        if d == "paths.fingerprint" and any(_covers(p, "data.source") or _covers("data.source", p)
                                            for p in read_params):
            continue  # the raw images' stand-in: reading data.source is reading it
        if not any(_inside(params, k, d) for k in read_files):
            out.append(f"{name}: lists dep {d} that it never reads (needless reruns)")
    for key in sorted(rec.written):
        if not any(_inside(params, key, d) for d in outs):
            out.append(f"{name}: writes {key} that dvc.yaml does not list as an output")
    for d in outs:
        if not any(_inside(params, k, d) for k in rec.written):
            out.append(f"{name}: lists output {d} that it does not write")
    return out
