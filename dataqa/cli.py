"""The ``dataqa`` command line: a thin layer over the library.

One subcommand per DVC stage plus ``gate`` and ``report``, and ``init``
(:mod:`dataqa.project.init`: set up a project). Run where no params file exists, a stage
command says to run ``dataqa init``; run under another dataqa release than the project's
``dataqa.version``, it says to run ``dataqa init --upgrade``. The stage scripts in
``stages/`` call :func:`main` with their stage name, so argument parsing exists once.
Exit codes: 0 success; 1 a gate rule failed (``dataqa gate``); 2 a
:class:`dataqa.errors.DataQAError` (its message is printed, no traceback) or a full disk;
3 an unexpected exception, i.e. a bug in dataqa: its traceback is printed, then a line
saying so. (A full disk, or a permission error on a named file, is the environment: 2.) Everything printed goes through :func:`dataqa.text.printable`, so an escape
sequence in a file name or CSV cell reaches the terminal as visible text.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import logging
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dataqa.errors import DataQAError, ParamsError
from dataqa.params import Params, load_params
from dataqa.text import EscapingFormatter, printable

EXIT_GATE_FAILED = 1
EXIT_ERROR = 2
EXIT_BUG = 3
_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)
_NOT_ALLOWED = (errno.EACCES, errno.EPERM, errno.EROFS)  # the environment, not a bug


@dataclass(frozen=True)
class Command:
    name: str
    target: str  # "module:function"; the function takes Params (+ args) and returns an exit code
    help: str
    add_args: Callable[[argparse.ArgumentParser], None] | None = None

    def load(self) -> Callable[..., int | None]:
        module, func = self.target.split(":")
        return getattr(importlib.import_module(module), func)  # type: ignore[no-any-return]


def _tune_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--worker", action="store_true",
                   help="join the study in tune.storage and run trials only (no outputs); "
                        "start any number of these on any number of hosts")
    p.add_argument("--n-trials", type=int, default=None,
                   help="with --worker: trials this worker runs (default: until the "
                        "study's budget is spent)")


def _gate_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--on", choices=["audit", "prepared"], default="audit",
                   help="which gate: the audit results (default) or the prepared data "
                        "(after filter, augment, subsample)")


def _report_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--kind", choices=["audit", "tuning"], default="audit",
                   help="which report to write (default: audit)")


COMMANDS: list[Command] = [
    Command("fingerprint", "dataqa.steps.fingerprint:run_stage",
            "list data.source (size and mtime of each file, no file opened): the small "
            "file DVC depends on instead of hashing the raw tree"),
    Command("scan", "dataqa.steps.scan:run_stage",
            "decode every file of data.source once; write the manifest"),
    Command("tensors", "dataqa.steps.tensors:run_stage",
            "letterbox every decodable image into one uint8 tensor file"),
    Command("crossval", "dataqa.steps.crossval:run_stage",
            "out-of-fold predicted probabilities and embeddings (K-fold training)"),
    Command("learning_curve", "dataqa.steps.learning_curve:run_stage",
            "validation accuracy when training on growing fractions: would more data help?"),
    Command("audit", "dataqa.steps.audit:run_stage",
            "run the checks listed in audit.checks; write issues.parquet and audit.json"),
    Command("gate", "dataqa.steps.gate:run_stage",
            "evaluate the gate thresholds; exit 1 when a rule fails", _gate_args),
    Command("filter", "dataqa.steps.filter:run_stage",
            "split the manifest into clean and quarantine tables (raw files untouched)"),
    Command("augment", "dataqa.steps.augment:run_stage",
            "aspect-preserving augmentation that balances small classes"),
    Command("subsample", "dataqa.steps.subsample:run_stage",
            "stratified validation split and training subsets for tuning"),
    Command("tune", "dataqa.steps.tune:run_stage",
            "coarse-to-fine hyperparameter search with diagnoses", _tune_args),
    Command("report", "dataqa.steps.report:run_stage",
            "write the self-contained HTML report", _report_args),
    Command("tuning_report", "dataqa.steps.tuning_report:run_stage",
            "write the tuning report from the tune stage's summary (= report --kind tuning)"),
]


def _init_parser(sub: Any) -> None:
    p = sub.add_parser(
        "init", help="set up a dataqa project here: params.yaml, dvc.yaml, stages/",
        description="Inspect an image source and write params.yaml, dvc.yaml, thin "
                    "stages/<stage>.py scripts and .gitignore entries in this folder.")
    p.add_argument("--source", help="image folder (<class>/<file> or <split>/<class>/"
                                    "<file>) or CSV (path,label[,split])")
    p.add_argument("--preset", default="digits",
                   help="starting params (dataqa/presets/): digits (default), photos")
    p.add_argument("--force", action="store_true", help="overwrite existing files")
    p.add_argument("--upgrade", action="store_true",
                   help="after upgrading dataqa: set dataqa.version in params.yaml (the "
                        "rest stays) so `dvc repro` reruns the stages")
    p.add_argument("--dvc-init", action="store_true",
                   help="run `dvc init` when this folder is not a DVC project yet")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dataqa",
        description="Settle the quality of an image-classification dataset, then tune.")
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _init_parser(sub)
    for cmd in COMMANDS:
        p = sub.add_parser(cmd.name, help=cmd.help, description=cmd.help)
        p.add_argument("--params", default="params.yaml",
                       help="params file; relative paths in it resolve against its folder "
                            "(default: params.yaml)")
        if cmd.add_args:
            cmd.add_args(p)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "init":
        return _run_init(args)
    cmd = next(c for c in COMMANDS if c.name == args.command)
    extra = {k: v for k, v in vars(args).items() if k not in ("command", "params")}
    start = time.perf_counter()
    _log_warnings()
    try:
        if not Path(args.params).is_file():
            raise ParamsError(f"no {args.params} here ({Path.cwd()}): run `dataqa init "
                              f"--source PATH` to set up a dataqa project in this folder, "
                              f"or pass --params FILE")
        from dataqa.checks import settings_models  # check plugins declare their settings

        # every key, check name and check setting, before the stage does any work
        params: Params = load_params(args.params, checks=settings_models())
        check_version(params)
        code = cmd.load()(params, **extra)
    except DataQAError as exc:
        print(f"dataqa {cmd.name}: error: {printable(exc)}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print(f"dataqa {cmd.name}: interrupted", file=sys.stderr)
        return 130
    except OSError as exc:
        name = f" ({printable(exc.filename)})" if exc.filename else ""
        if exc.errno in _DISK_FULL:
            print(f"dataqa {cmd.name}: error: disk full{name}: {exc.strerror}; free space "
                  f"and rerun", file=sys.stderr)
            return EXIT_ERROR
        if exc.errno in _NOT_ALLOWED and exc.filename:
            print(f"dataqa {cmd.name}: error: {exc.strerror}{name}: check the permissions "
                  f"of the output folders", file=sys.stderr)
            return EXIT_ERROR
        return _bug(cmd.name)
    except Exception:
        return _bug(cmd.name)
    print(f"dataqa {cmd.name}: done in {time.perf_counter() - start:.1f} s", file=sys.stderr)
    return int(code or 0)


def _run_init(args: argparse.Namespace) -> int:
    from dataqa.project.init import run_init

    try:
        return run_init(args.source, args.preset, force=args.force, upgrade=args.upgrade,
                        dvc_init=args.dvc_init)
    except DataQAError as exc:
        print(f"dataqa init: error: {printable(exc)}", file=sys.stderr)
        return EXIT_ERROR
    except Exception:
        return _bug("init")


def check_version(params: Params) -> None:
    """A project made by another dataqa release must be upgraded first, so DVC knows the
    outputs are stale (``dataqa.version`` is a param of every stage)."""
    from dataqa.project.init import installed_version

    wanted, have = params.dataqa.version, installed_version()
    if wanted is None or have is None or wanted == have:
        return
    raise ParamsError(f"params.yaml: dataqa.version is {wanted} but the installed dataqa is "
                      f"{have}: run `dataqa init --upgrade`, then `dvc repro` reruns the "
                      f"stages")


def _bug(name: str) -> int:
    """Print the traceback of the exception being handled and say it is a bug."""
    print(printable(traceback.format_exc()).rstrip(), file=sys.stderr)
    print(f"dataqa {name}: this is a bug in dataqa, not a problem with your data or "
          f"params: please report it with the traceback above (exit code {EXIT_BUG})",
          file=sys.stderr)
    return EXIT_BUG


def _log_warnings() -> None:
    """dataqa's warnings (logged, e.g. a class folder without images) go to stderr with
    control characters escaped, unless the application configured logging itself."""
    root, pkg = logging.getLogger(), logging.getLogger("dataqa")
    if root.handlers or pkg.handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(EscapingFormatter("%(name)s: %(levelname)s: %(message)s"))
    handler.setLevel(logging.WARNING)
    handler.dataqa_default = True  # type: ignore[attr-defined]  # show_progress may lower it
    pkg.addHandler(handler)


def stage_main(name: str) -> None:
    """Entry point of ``stages/<name>.py``: ``dataqa <name>`` with the script's arguments."""
    raise SystemExit(main([name, *sys.argv[1:]]))


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version("dataqa")
    except PackageNotFoundError:  # running from a source tree
        return "dataqa (source)"


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
