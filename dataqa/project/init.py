"""``dataqa init``: set up a dataqa project in the current folder.

Writes, beside each other: ``params.yaml`` (a preset from ``dataqa/presets/`` with
``data.source``, ``dataqa.version`` and, for a ``<split>/<class>`` tree, the validation
split filled in, also from a CSV's split column), ``dvc.yaml`` (``templates/dvc.yaml.in``: every stage runs the installed
dataqa through ``stages/<stage>.py``; its deps are the source, the files and params it
reads and ``dataqa.version``, never dataqa's own sources), the thin stage scripts and
``.gitignore`` entries for the output folder.

Decisions:

- existing files with other content are never overwritten without ``--force``; files
  whose content is already what init would write count as fine (init is idempotent);
- ``params.yaml`` is produced by ruamel.yaml with DVC's own dumper settings (block
  style, comments kept), so ``dvc exp run -S key=value`` rewrites one value and nothing
  else (tests/project/test_init.py round-trips it through DVC's serializer);
- presets are data: ``digits.yaml`` is complete; another preset names ``extends:`` and
  sets only the keys that differ (merged into the base, its comments kept);
- ``--upgrade`` edits ``dataqa.version`` in place (the user's other edits stay), which
  makes ``dvc repro`` rerun every stage; it reports template files that differ from
  this release's;
- without ``.dvc/`` init says what to run, or runs ``dvc init`` with ``--dvc-init``
  (``--no-scm`` when the folder is not in a git repository).
"""

from __future__ import annotations

import io
import re
import subprocess
import sys
from importlib import resources
from pathlib import Path
from typing import Any

from dataqa.errors import DataQAError, ParamsError
from dataqa.io import write_text
from dataqa.project.inspect import SourceSummary, inspect_source

STAGE_SCRIPT = '''"""DVC stage '{name}': see `dataqa {name} --help`."""

from dataqa.cli import stage_main

if __name__ == "__main__":
    stage_main("{name}")
'''
GITIGNORE_HEAD = "# dataqa outputs (rebuilt by `dvc repro`)"


# --------------------------------------------------------------------------- package data
def preset_names() -> list[str]:
    folder = resources.files("dataqa") / "presets"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


def _yaml() -> Any:
    from ruamel.yaml import YAML

    y = YAML()  # round-trip, as DVC's dumper (dvc/utils/serialize/_yaml.py)
    y.default_flow_style = False
    return y


def load_preset(name: str) -> Any:
    """The preset ``name`` as a ruamel round-trip mapping (``extends`` resolved)."""
    if name not in preset_names():
        raise ParamsError(f"--preset {name}: unknown preset; known: {', '.join(preset_names())}")
    text = (resources.files("dataqa") / "presets" / f"{name}.yaml").read_text(encoding="utf-8")
    doc = _yaml().load(text)
    base = doc.pop("extends", None) if hasattr(doc, "pop") else None
    if base is None:
        return doc
    out = load_preset(str(base))
    _merge(out, doc)
    return out


def _merge(base: Any, over: Any) -> None:
    for key, value in over.items():
        if hasattr(value, "items") and hasattr(base.get(key), "items"):
            _merge(base[key], value)
        else:
            base[key] = value


def dvc_yaml_text() -> str:
    return (resources.files("dataqa") / "project" / "templates" / "dvc.yaml.in").read_text(
        encoding="utf-8")


def stage_names() -> list[str]:
    """The stage scripts the dvc.yaml template runs, in order."""
    return list(dict.fromkeys(re.findall(r"python stages/(\w+)\.py", dvc_yaml_text())))


def installed_version() -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("dataqa")
    except PackageNotFoundError:
        return None


# --------------------------------------------------------------------------- rendering
def render_params(preset: str, source: str, summary: SourceSummary | None,
                  version: str) -> str:
    doc = load_preset(preset)
    doc["dataqa"]["version"] = version
    doc["data"]["source"] = source
    if summary is not None and summary.layout in ("split/class", "csv"):
        val = summary.validation_split
        if val is not None:
            doc["split"]["val_split"] = val
        trains = [s for s in summary.splits if s in ("train", "training")]
        if trains:
            doc["split"]["train_splits"] = trains
    buf = io.StringIO()
    _yaml().dump(doc, buf)
    from dataqa.params.docs import annotate  # each key's comment: its declaration's

    return annotate(buf.getvalue())


# the folder of crossval.mode: external's files is a dependency of the crossval stage:
# DVC refuses a missing dependency, so every project starts with it
EXTERNAL_README = ("Your own out-of-sample predictions for `crossval.mode: external` go here "
                   "(see dataqa's README,\n\"Your own predictions\"). The crossval stage "
                   "depends on this folder (`paths.external`).\n")


def project_files(preset: str, source: str, summary: SourceSummary | None,
                  version: str) -> dict[str, str]:
    """relative path -> content of every file init writes (but .gitignore)."""
    files = {"params.yaml": render_params(preset, source, summary, version),
             "dvc.yaml": dvc_yaml_text(), "predictions/README.md": EXTERNAL_README}
    for name in stage_names():
        files[f"stages/{name}.py"] = STAGE_SCRIPT.format(name=name)
    return files


def gitignore_entries(out: str) -> list[str]:
    return [f"/{out.strip('/')}/", "/reports/*.html"]


def source_for_params(source: Path, folder: Path) -> str:
    """``data.source`` as written: relative to the project folder when inside it."""
    full = source.expanduser().resolve()
    try:
        return full.relative_to(folder.resolve()).as_posix()
    except ValueError:
        return full.as_posix()


# --------------------------------------------------------------------------- command
def run_init(source: str | None, preset: str = "digits", *, force: bool = False,
             upgrade: bool = False, dvc_init: bool = False, folder: Path | None = None) -> int:
    folder = Path.cwd() if folder is None else folder
    version = installed_version() or "0+source"
    if upgrade:
        return _upgrade(folder, version)
    if not source:
        raise ParamsError("dataqa init: --source PATH is required (an image folder or a CSV)")
    load_preset(preset)  # an unknown preset fails before anything is read
    summary = inspect_source(Path(source) if Path(source).is_absolute() else folder / source)
    print("\n".join(summary.lines()))
    src = source_for_params(Path(source) if Path(source).is_absolute() else folder / source,
                            folder)
    files = project_files(preset, src, summary, version)
    clash = [rel for rel, text in files.items() if (folder / rel).is_file()
             and (folder / rel).read_text(encoding="utf-8") != text]
    if clash and not force:
        raise DataQAError(f"{folder}: {', '.join(clash)} already exist with other content; "
                          f"pass --force to overwrite them (or `dataqa init --upgrade` "
                          f"to only refresh dataqa.version)")
    for rel, text in files.items():
        write_text(folder / rel, text)
    added = _update_gitignore(folder, gitignore_entries("dataqa-out"))
    print(f"wrote {', '.join(files)} (preset {preset}, dataqa {version})"
          + (f"; .gitignore += {', '.join(added)}" if added else ""))
    if summary.validation_split is not None:
        print(f"splits: split.val_split = {summary.validation_split}; cross-split "
              f"duplicates count as leakage")
    _dvc_setup(folder, dvc_init)
    return 0


def _update_gitignore(folder: Path, entries: list[str]) -> list[str]:
    path = folder / ".gitignore"
    text = path.read_text(encoding="utf-8") if path.is_file() else ""
    present = {line.strip() for line in text.splitlines()}
    missing = [e for e in entries if e not in present]
    if missing:
        sep = "" if not text or text.endswith("\n") else "\n"
        write_text(path, text + sep + "\n".join([GITIGNORE_HEAD, *missing]) + "\n")
    return missing


def _dvc_setup(folder: Path, dvc_init: bool) -> None:
    if (folder / ".dvc").is_dir():
        print("next: dvc repro")
        return
    in_git = any((p / ".git").exists() for p in [folder, *folder.resolve().parents])
    cmd = ["dvc", "init", "-q"] + ([] if in_git else ["--no-scm"])
    if not dvc_init:
        print(f"this folder is not a DVC project yet: run `{' '.join(cmd)}` (or "
              f"`dataqa init ... --dvc-init`), then `dvc repro`")
        return
    proc = subprocess.run([sys.executable, "-m", "dvc", *cmd[1:]], cwd=folder,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise DataQAError(f"`{' '.join(cmd)}` failed in {folder}: "
                          f"{(proc.stderr or proc.stdout).strip()}")
    print(f"ran `{' '.join(cmd)}`; next: dvc repro")


def _upgrade(folder: Path, version: str) -> int:
    path = folder / "params.yaml"
    if not path.is_file():
        raise ParamsError(f"no params.yaml in {folder}: run `dataqa init --source PATH` first")
    y = _yaml()
    doc = y.load(path.read_text(encoding="utf-8"))
    old = (doc.get("dataqa") or {}).get("version")
    if "dataqa" not in doc or doc["dataqa"] is None:
        doc["dataqa"] = {}
    doc["dataqa"]["version"] = version
    buf = io.StringIO()
    y.dump(doc, buf)
    write_text(path, buf.getvalue())
    print(f"params.yaml: dataqa.version {old} -> {version}; `dvc repro` reruns the stages")
    files = project_files("digits", "", None, version)
    stale = [rel for rel in files if rel != "params.yaml" and (
        not (folder / rel).is_file()
        or (folder / rel).read_text(encoding="utf-8") != files[rel])]
    if stale:
        print(f"differ from this release's templates: {', '.join(stale)}; to take them, run "
              f"`dataqa init --source <your source> --force` (overwrites them and params.yaml)")
    return 0
