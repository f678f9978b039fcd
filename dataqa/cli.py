"""The ``dataqa`` command line: a thin layer over the library.

One subcommand per DVC stage plus ``gate``, ``report`` and ``review`` (:mod:`dataqa.review`), and ``init``
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
import contextlib
import errno
import importlib
import logging
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dataqa.errors import DataQAError, ParamsError, database_problem
from dataqa.text import EscapingFormatter, say

if TYPE_CHECKING:
    from dataqa.params import Params

EXIT_GATE_FAILED = 1
EXIT_ERROR = 2
EXIT_BUG = 3
EXIT_INTERRUPTED = 130
_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)
_NOT_ALLOWED = (errno.EACCES, errno.EPERM, errno.EROFS)  # the environment, not a bug


@dataclass(frozen=True)
class Command:
    name: str
    target: str  # "module:function"; the function takes Params (+ args) and returns an exit code
    help: str
    add_args: Callable[[argparse.ArgumentParser], None] | None = None
    params_in_sub: bool = False  # --params belongs to the sub-subcommands (review)

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


def _params_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--params", default="params.yaml",
                   help="params file; relative paths in it resolve against its folder "
                        "(default: params.yaml)")


def _review_args(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    ls = sub.add_parser("list", help="flagged, pending and decided per check",
                        description="Flagged, pending and decided images per check, from "
                                    "the last audit and the decisions file as it is now.")
    ls.add_argument("--pending", action="store_true",
                    help="print the paths of the images pending review, one per line")
    st = sub.add_parser("set", help="decide about images: keep, exclude or relabel",
                        description="Record a decision for each PATH in the decisions "
                                    "file (paths.reviews), keyed by the file's content "
                                    "hash; `dvc repro` applies it.")
    st.add_argument("paths", nargs="+", metavar="PATH",
                    help="an image path as the report shows it (relative to data.source), "
                         "or the image file's own path")
    what = st.add_mutually_exclusive_group(required=True)
    what.add_argument("--keep", dest="decision", action="store_const", const="keep",
                      help="the flags are fine: not pending again unless a new check "
                           "flags it")
    what.add_argument("--exclude", dest="decision", action="store_const", const="exclude",
                      help="quarantine it (reason 'excluded by review')")
    what.add_argument("--relabel", metavar="CLASS",
                      help="move it to CLASS (the clean table keeps the original label)")
    st.add_argument("--note", default="", help="free text, stored with the decision")
    st.add_argument("--by", default="",
                    help="who decides (default: $GIT_AUTHOR_NAME, else the login name)")
    im = sub.add_parser("import", help="merge a decisions file (e.g. downloaded from the "
                                       "report) into paths.reviews",
                        description="Validate FILE whole (an error names the row and "
                                    "writes nothing), then merge it: later decisions win; "
                                    "replaced rows are printed.")
    im.add_argument("file", metavar="FILE")
    im.add_argument("--by", default="", help="who, for rows that name nobody "
                                             "(default: $GIT_AUTHOR_NAME or the login name)")
    for sp in (ls, st, im):
        _params_arg(sp)


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
    Command("review", "dataqa.review.commands:run",
            "review decisions: list pending flags, keep / exclude / relabel images, import "
            "decisions downloaded from the report", _review_args, params_in_sub=True),
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
        if not cmd.params_in_sub:
            _params_arg(p)
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
    if cmd.name == "review" and args.action == "set" and extra.get("relabel"):
        extra["decision"] = "relabel"
    start = time.perf_counter()
    _log_warnings()

    def run() -> int:
        # the heavy imports (pandas, numpy: seconds on a busy machine) happen here, where
        # a Ctrl-C is already "interrupted", exit 130, instead of an import traceback
        from dataqa.checks import settings_models  # check plugins declare their settings
        from dataqa.params import load_params

        if not Path(args.params).is_file():
            raise ParamsError(f"no {args.params} here ({Path.cwd()}): run `dataqa init "
                              f"--source PATH` to set up a dataqa project in this folder, "
                              f"or pass --params FILE")
        # every key, check name and check setting, before the stage does any work
        params: Params = load_params(args.params, checks=settings_models())
        check_version(params)
        return int(cmd.load()(params, **extra) or 0)

    code = guarded(cmd.name, run)
    if code in (0, EXIT_GATE_FAILED):
        say(f"dataqa {cmd.name}: done in {time.perf_counter() - start:.1f} s", err=True)
    return code


def guarded(name: str, run: Callable[[], int]) -> int:
    """``run()``'s exit code, every exception mapped to one (see the module doc): a
    DataQAError, a full disk, a refused permission on a named file or a database that
    cannot be reached or answer in time is a message and exit 2; Ctrl-C is 130; anything
    else is a bug (3). The one mapping for ``init`` and every stage."""
    try:
        return run()
    except DataQAError as exc:
        say(f"dataqa {name}: error: {exc}", err=True)
        return EXIT_ERROR
    except KeyboardInterrupt:
        say(f"dataqa {name}: interrupted", err=True)
        _forget_unhandled_interrupt()
        return EXIT_INTERRUPTED
    except OSError as exc:
        where = f" ({exc.filename})" if exc.filename else ""
        if exc.errno in _DISK_FULL:
            say(f"dataqa {name}: error: disk full{where}: {exc.strerror}; free space "
                f"and rerun", err=True)
            return EXIT_ERROR
        if exc.errno in _NOT_ALLOWED and exc.filename:
            say(f"dataqa {name}: error: {exc.strerror}{where}: check the permissions "
                f"of the output folders", err=True)
            return EXIT_ERROR
        return _bug(name)
    except Exception as exc:
        if _caused_by_interrupt(exc):  # e.g. an extension's import: "initialization failed"
            say(f"dataqa {name}: interrupted", err=True)
            _forget_unhandled_interrupt()
            return EXIT_INTERRUPTED
        problem = database_problem(exc)
        if problem is not None:
            say(f"dataqa {name}: error: {problem}", err=True)
            return EXIT_ERROR
        return _bug(name)


def _caused_by_interrupt(exc: BaseException) -> bool:
    """Whether a KeyboardInterrupt is in ``exc``'s chain of causes (a Ctrl-C inside an
    extension module's import surfaces as ImportError "initialization failed")."""
    seen: set[int] = set()
    node: BaseException | None = exc
    while node is not None and id(node) not in seen:
        if isinstance(node, KeyboardInterrupt):
            return True
        seen.add(id(node))
        node = node.__cause__ or node.__context__
    return False


def _forget_unhandled_interrupt() -> None:
    """Exit 130, not death by SIGINT: when Ctrl-C lands while an extension module runs
    Python code through ``PyRun_String`` (pandas' import does), CPython marks the
    KeyboardInterrupt "unhandled" although it was handled here, and at exit kills
    itself with SIGINT (exit status -2). Running code through the same public entry
    point clears that mark."""
    import ctypes

    with contextlib.suppress(Exception):
        ctypes.pythonapi.PyRun_SimpleString(b"pass")


def _run_init(args: argparse.Namespace) -> int:
    from dataqa.project.init import run_init

    return guarded("init", lambda: run_init(args.source, args.preset, force=args.force,
                                            upgrade=args.upgrade, dvc_init=args.dvc_init))


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
    say(traceback.format_exc().rstrip(), err=True)
    say(f"dataqa {name}: this is a bug in dataqa, not a problem with your data or "
          f"params: please report it with the traceback above (exit code {EXIT_BUG})",
          err=True)
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
