"""``dvc.yaml`` generated from the one declaration of what each stage reads and writes
(:data:`dataqa.steps.reads.STAGES`): never kept by hand, so it cannot drift from the
code (``tests/steps/test_stage_reads.py`` checks the declaration against what each
stage touches)."""

from __future__ import annotations

import textwrap
from importlib import resources

from dataqa.steps.reads import STAGES, Out, deps, params, script


def _ref(key: str) -> str:
    return "${" + key + "}"


def _out_lines(out: Out) -> list[str]:
    props = ([] if out.cache else [("cache", "false")]) + list(out.plot)
    lines = [f"      # {line}" for line in textwrap.wrap(out.comment, 80)]
    if not props:
        return [*lines, f"      - {_ref(out.key)}"]
    return [*lines, f"      - {_ref(out.key)}:", *(f"          {k}: {v}" for k, v in props)]


def stage_text(name: str) -> str:
    reads = STAGES[name]
    cmd = f"python stages/{script(name)}.py" + (f" {reads.args}" if reads.args else "")
    lines = [f"  {name}:", f"    cmd: {cmd}"]
    if reads.always_changed:
        lines.append("    always_changed: true")
    lines += ["    deps:", f"      - stages/{script(name)}.py",
              *(f"      - {_ref(k)}" for k in deps(name))]
    lines += ["    params:", *(f"      - {k}" for k in params(name))]
    outs = reads.out_list()
    for kind in ("outs", "metrics", "plots"):
        mine = [o for o in outs if o.kind == kind]
        if mine:
            lines.append(f"    {kind}:")
            for out in mine:
                lines += _out_lines(out)
    return "\n".join(lines) + "\n"


def dvc_yaml_text() -> str:
    """The whole ``dvc.yaml`` ``dataqa init`` writes."""
    head = (resources.files("dataqa") / "project" / "templates" / "dvc_header.txt").read_text(
        encoding="utf-8")
    return head + "stages:\n" + "\n".join(stage_text(name) for name in STAGES)


def stage_names() -> list[str]:
    """The stage scripts dvc.yaml runs, in order (one per script)."""
    return list(dict.fromkeys(script(name) for name in STAGES))
