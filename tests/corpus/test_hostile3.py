"""Hostile inputs, round three (issue 26): one case per class of defect found by the
182-case replay: secrets and escapes in what dataqa prints or writes, hangs at the edges
(FIFOs, databases that never answer, Ctrl-C), tracebacks from sizes that lie, writes of
``dataqa init`` that fail, layout and split surprises, unclear errors. Each case ends in
a stated outcome (exit 2 with a message naming the file/row/key, a warning the report
also shows, or exit 130) under a timeout, never a traceback or a hang."""

from __future__ import annotations

import contextlib
import io
import json
import os
import socket
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dataqa.cli import main
from dataqa.params import load_params
from tests.corpus.test_corpus import stage, write_params
from tests.pipeline.workspace import REPO, draw_digit_folder

# a name from the data that tries everything at once: clear screen, retitle + bell, a
# forged output line, a bidi override and an invisible byte-order mark
EVIL = "x\x1b[2J\x1b]0;pwned\x07\ngate audit: PASSED\u202e\ufeff"
RAW = ("\x1b", "\x07", "\u202e", "\ufeff", "\ngate audit: PASSED")


def digits(src: Path, classes: int = 2, per_class: int = 6) -> None:
    draw_digit_folder(src, classes=classes, per_class=per_class)


def no_raw(text: str) -> None:
    """None of EVIL's active parts reached the text raw."""
    for part in RAW:
        assert part not in text, (part, text)


def run_cli(args: list[str], cwd: Path, timeout: float = 120,
            **popen: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dataqa.cli", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "PYTHONPATH": str(REPO)},
                          errors="surrogateescape", **popen)  # type: ignore[call-overload]


# --------------------------------------------------------------- terminal and XML output
def test_gate_lines_and_junit_hold_data_names_escaped(tmp_path: Path) -> None:
    """Evidence lines name a class and a file from the data: printed escaped on one
    line each; gate.junit.xml parses (no raw control character) and shows them."""
    digits(tmp_path / "src")
    params_file = write_params(tmp_path, "src", gate={
        "max_undecodable_rate": 0.05, "min_images_per_class": 10, "max_imbalance_ratio": None,
        "max_cross_split_duplicates": None, "max_rates": {}})
    params = load_params(params_file)
    metrics = {"dataset": {"undecodable_rate": 0.5},
               "balance": {"min_class_count": 1, "counts_per_class": {EVIL: 1, "ok": 20}},
               "checks": {}}
    params.path("audit_metrics").parent.mkdir(parents=True, exist_ok=True)
    params.path("audit_metrics").write_text(json.dumps(metrics))
    params.path("manifest").parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"path": [f"{EVIL}/a.png"], "decode_error": [f"not an image{EVIL}"]}
                 ).to_parquet(params.path("manifest"))
    code, log = stage("gate", params_file)
    assert code == 1, log
    no_raw(log)
    assert "x\\x1b[2J\\x1b]0;pwned\\x07\\ngate audit: PASSED\\u202e\\ufeff" in log
    assert [ln for ln in log.splitlines() if ln.startswith("gate audit:")] == [
        "gate audit: FAILED (2 failed, 0 not evaluated, 2 rules)"]
    raw = params.path("gate_junit").read_bytes()
    root = ET.fromstring(raw)  # expat refuses a raw control character
    messages = " ".join(f.get("message", "") for f in root.iter("failure"))
    assert "\\x1b[2J" in messages and "\\x07" in messages
    assert b"\x1b" not in raw and b"\x07" not in raw


def test_init_prints_class_names_escaped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    digits(tmp_path / "src")
    (tmp_path / "src" / "0").rename(tmp_path / "src" / EVIL.replace("\n", "\r\n"))
    proj = tmp_path / "proj"
    proj.mkdir()
    monkeypatch.chdir(proj)
    assert main(["init", "--source", str(tmp_path / "src")]) == 0
    out = capsys.readouterr()
    no_raw(out.out + out.err)
    assert "x\\x1b[2J\\x1b]0;pwned\\x07\\x0d\\ngate audit: PASSED" in out.out


# --------------------------------------------------------------- secrets and databases
def test_a_storage_password_never_reaches_the_terminal(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Refused connection to tune.storage, through the CLI: exit 2, the reason, the URL
    without its password (printable redacts every URL the CLI prints)."""
    import dataqa.steps.scan
    from dataqa.tune.study import open_storage

    digits(tmp_path / "src")
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"postgresql://me:s3cret-pw@127.0.0.1:{port}/db"
    params = write_params(tmp_path, "src", tune={"storage": url})
    monkeypatch.setattr(dataqa.steps.scan, "run_stage",
                        lambda p: open_storage(p.tune, tmp_path / "tune") and 0)
    code, log = stage("scan", params)
    assert code == 2, log
    assert "s3cret-pw" not in log
    assert "postgresql://me:***@127.0.0.1" in log
    assert "Connection refused" in log and "Traceback" not in log


def test_a_database_that_never_answers_times_out(monkeypatch: pytest.MonkeyPatch,
                                                 tmp_path: Path) -> None:
    """A host that accepts the connection and says nothing: the connect timeout ends it
    (libpq's smallest, 2 s here) as a ParamsError, never a hang."""
    import dataqa.database
    from dataqa.errors import ParamsError
    from dataqa.params import TuneParams
    from dataqa.tune.study import open_storage

    monkeypatch.setattr(dataqa.database, "CONNECT_TIMEOUT_S", 2)
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(4)  # accepts (the kernel does), never answers
        url = f"postgresql://me:pw@127.0.0.1:{server.getsockname()[1]}/db"
        start = time.monotonic()
        with pytest.raises(ParamsError, match=r"me:\*\*\*@.*timeout expired"):
            open_storage(TuneParams(storage=url), tmp_path / "tune")
        assert time.monotonic() - start < 15


def test_storage_urls_get_the_declared_driver_and_timeouts() -> None:
    from dataqa.database import STATEMENT_TIMEOUT_S, engine_kwargs, engine_url

    # the README's form means psycopg2 (declared), not SQLAlchemy 2.1's psycopg 3
    assert engine_url("postgresql://u:pw@h/db") == "postgresql+psycopg2://u:pw@h/db"
    assert engine_url("postgresql+psycopg://u@h/db") == "postgresql+psycopg://u@h/db"
    assert engine_url("sqlite:///x.db") == "sqlite:///x.db"
    pg = engine_kwargs(engine_url("postgresql://u@h/db"))["connect_args"]
    assert pg["connect_timeout"] > 0
    assert pg["options"] == f"-c statement_timeout={STATEMENT_TIMEOUT_S * 1000}"
    assert engine_kwargs("mysql+pymysql://u@h/db")["connect_args"]["read_timeout"] > 0
    import sqlalchemy as sa

    engine = sa.create_engine(engine_url("postgresql://u:pw@h/db"))  # no "No module psycopg"
    assert engine.dialect.driver == "psycopg2"


def test_a_database_error_anywhere_is_exit_2_not_a_bug(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """SQLAlchemy's OperationalError escaping any stage (a lost database mid-run) is the
    environment: exit 2 with the driver's reason, the URL redacted, no traceback."""
    import sqlalchemy.exc

    import dataqa.steps.scan

    digits(tmp_path / "src")
    params = write_params(tmp_path, "src")

    def lost(params: object) -> int:
        raise sqlalchemy.exc.OperationalError(
            "SELECT 1", {}, Exception("password authentication failed for user \"me\" "
                                      "(postgresql://me:pw0@db/x)"))

    monkeypatch.setattr(dataqa.steps.scan, "run_stage", lost)
    code, log = stage("scan", params)
    assert code == 2, log
    assert "password authentication failed" in log and "me:***@db" in log
    assert "pw0" not in log and "Traceback" not in log


# --------------------------------------------------------------- hangs at the edges
@pytest.mark.timeout(60)
def test_init_never_blocks_on_a_fifo_in_the_source(tmp_path: Path) -> None:
    """The header sample opens files through the scan's guarded reader (non-blocking,
    regular files only): a FIFO named like an image is listed, never waited on."""
    digits(tmp_path / "src")
    os.mkfifo(tmp_path / "src" / "0" / "a_fifo.png")
    proj = tmp_path / "proj"
    proj.mkdir()
    proc = run_cli(["init", "--source", str(tmp_path / "src")], proj, timeout=45)
    assert proc.returncode == 0, proc.stderr
    assert "files: 13" in proc.stdout


@pytest.mark.timeout(60)
@pytest.mark.parametrize("where", ["init", "fingerprint"])
def test_a_fifo_in_the_predictions_folder_is_refused_before_dvc_sees_it(
        tmp_path: Path, where: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """DVC hashes paths.external (a crossval dependency) itself and would block on a
    FIFO there: init and the fingerprint stage (first on every repro) name it first."""
    digits(tmp_path / "src")
    (tmp_path / "predictions" / "sub").mkdir(parents=True)
    os.mkfifo(tmp_path / "predictions" / "sub" / "preds.parquet")
    if where == "init":
        monkeypatch.chdir(tmp_path)
        code, log = stage_like(["init", "--source", "src"])
    else:
        code, log = stage("fingerprint", write_params(tmp_path, "src"))
    assert code == 2, log
    assert "sub/preds.parquet' (a FIFO)" in log and "DVC" in log and "Traceback" not in log


def stage_like(argv: list[str]) -> tuple[int, str]:
    """``dataqa <argv>`` in-process; (exit code, stdout + stderr)."""

    buf = io.StringIO()
    with contextlib.redirect_stderr(buf), contextlib.redirect_stdout(buf):
        code = main(argv)
    return code, buf.getvalue()


# --------------------------------------------------------------- sizes that lie
def test_reads_are_sized_by_the_file_not_the_byte_limit(tmp_path: Path) -> None:
    """The default scan.max_bytes (1 GiB) must not mean a 1 GiB buffer per file: under
    a 1 GiB address-space limit every file of a normal folder is still read."""
    digits(tmp_path / "src")
    code = ("import resource, sys; from pathlib import Path\n"
            "from dataqa.dataset.imageio import read_regular\n"
            "from dataqa.params import ScanParams\n"
            "limit = ScanParams().max_bytes\n"
            "resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))\n"
            "data = [read_regular(p, limit) for p in sorted(Path(sys.argv[1]).rglob('*.png'))]\n"
            "print(len(data), sum(map(len, data)))\n")
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path / "src")], cwd=REPO,
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split()[0] == "12"


def test_a_grown_file_is_still_caught_at_the_byte_limit(tmp_path: Path) -> None:
    from dataqa.dataset.imageio import TooLarge, read_regular

    path = tmp_path / "a.png"
    path.write_bytes(b"x" * 100)
    assert read_regular(path, 100) == b"x" * 100
    with pytest.raises(TooLarge):
        read_regular(path, 99)


@pytest.fixture
def scanned(tmp_path: Path) -> Callable[..., Path]:
    """A scanned digits source (2 classes x 6) in external mode; returns the params file
    after ``write(preds)`` put the predictions under predictions/."""
    digits(tmp_path / "src")

    def make(**external: object) -> Path:
        params = write_params(tmp_path, "src", crossval={"mode": "external",
                                                        "external": external})
        if not load_params(params).path("manifest").exists():
            code, log = stage("scan", params)
            assert code == 0, log
        (tmp_path / "predictions").mkdir(exist_ok=True)
        return params
    return make


def manifest_paths(params: Path) -> list[str]:
    frame = pd.read_parquet(load_params(params).path("manifest"), columns=["path"])
    return frame["path"].astype(str).tolist()


def test_an_npy_header_claiming_terabytes_is_refused_before_allocating(
        scanned: Callable[..., Path], tmp_path: Path) -> None:
    params = scanned(pred_probs="predictions/p.npy", paths="predictions/paths.txt",
                     classes=["0", "1"])
    (tmp_path / "predictions/paths.txt").write_text("\n".join(manifest_paths(params)))
    buf = io.BytesIO()
    np.save(buf, np.full((12, 2), 0.5))
    header = buf.getvalue().replace(b"(12, 2)", b"(1000000000000, 2)")
    (tmp_path / "predictions/p.npy").write_bytes(header)
    code, log = stage("crossval", params)
    assert code == 2, log
    assert "p.npy: not a readable .npy file (its header claims shape (1000000000000, 2)" in log
    assert "MemoryError" not in log


def test_complex_predictions_are_refused(scanned: Callable[..., Path], tmp_path: Path) -> None:
    params = scanned(pred_probs="predictions/p.npy", paths="predictions/paths.txt",
                     classes=["0", "1"])
    (tmp_path / "predictions/paths.txt").write_text("\n".join(manifest_paths(params)))
    np.save(tmp_path / "predictions/p.npy", np.full((12, 2), 0.5 + 0.25j))
    code, log = stage("crossval", params)
    assert code == 2, log
    assert "holds complex numbers" in log
    from dataqa import label_issues
    from dataqa.errors import PredictionsError

    with pytest.raises(PredictionsError, match="complex"):
        label_issues(np.array([0, 1]), np.array([[1 + 0j, 0], [0, 1]]))


def test_invisible_characters_in_a_paths_file_are_shown(scanned: Callable[..., Path],
                                                        tmp_path: Path) -> None:
    """A leading byte-order mark is accepted (as for a CSV source); one further down
    (two files pasted together) is shown as \\ufeff in the "not in the manifest" error."""
    params = scanned(pred_probs="predictions/p.npy", paths="predictions/paths.txt",
                     classes=["0", "1"])
    paths = manifest_paths(params)
    np.save(tmp_path / "predictions/p.npy", np.full((12, 2), 0.5))
    (tmp_path / "predictions/paths.txt").write_text("\ufeff" + "\n".join(paths))
    code, log = stage("crossval", params)
    assert code == 0, log
    paths[6] = "\ufeff" + paths[6]
    (tmp_path / "predictions/paths.txt").write_text("\ufeff" + "\n".join(paths))
    code, log = stage("crossval", params)
    assert code == 2, log
    assert f"row 6 '\\ufeff{paths[6][1:]}'" in log


# --------------------------------------------------------------- unclear errors
def test_an_unbalanced_csv_quote_is_named(tmp_path: Path) -> None:
    digits(tmp_path / "src")
    rows = [f"{c}/d{i:03d}.png,{c}" for c in "01" for i in range(6)]
    rows[5] = '"' + rows[5]  # row 7 in a spreadsheet: the quote swallows the rest
    (tmp_path / "src/list.csv").write_text("path,label\n" + "\n".join(rows) + "\n")
    code, log = stage("scan", write_params(tmp_path, "src/list.csv"))
    assert code == 2, log
    assert "row 7: cell 1 spans 7 lines" in log and "unbalanced quote" in log
    assert "empty label" not in log


# --------------------------------------------------------------- writes of dataqa init
def test_init_when_predictions_is_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                         ) -> None:
    digits(tmp_path / "src")
    (tmp_path / "predictions").write_text("my notes")
    monkeypatch.chdir(tmp_path)
    code, log = stage_like(["init", "--source", "src"])
    assert code == 2, log
    assert f"{tmp_path / 'predictions'}: exists and is not a folder" in log
    assert not (tmp_path / "params.yaml").exists()  # checked before anything is written
    assert (tmp_path / "predictions").read_text() == "my notes"


def test_init_in_a_read_only_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A refused write is exit 2 naming the file. As root (permissions do not stop
    root) the refusal of a read-only file system is injected."""
    import errno

    import dataqa.io

    digits(tmp_path / "src")
    proj = tmp_path / "proj"
    proj.mkdir()
    monkeypatch.chdir(proj)
    if os.geteuid() == 0:
        def refuse(target: object, text: str) -> None:
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(target))
        monkeypatch.setattr(dataqa.io, "write_text", refuse)
        monkeypatch.setattr("dataqa.project.init.write_text", refuse)
    else:  # pragma: no cover - depends on the user running the tests
        proj.chmod(0o555)
    try:
        code, log = stage_like(["init", "--source", str(tmp_path / "src")])
    finally:
        proj.chmod(0o755)
    assert code == 2, log
    assert f"{proj / 'params.yaml'}: cannot be written" in log and "Traceback" not in log


@pytest.mark.parametrize(("text", "says"), [
    ("- a\n- b\n", "expected a mapping of sections (dataqa:, data:, ...), found"),
    ("data:\n  source: [x\n", "params.yaml: line 3: not valid YAML"),
    ("dataqa: 5\n", "dataqa: expected a mapping (version: ...), found int 5"),
    ("\xff\xfe", "not UTF-8"),
])
def test_init_upgrade_on_a_broken_params_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              text: str, says: str) -> None:
    (tmp_path / "params.yaml").write_bytes(text.encode("latin-1"))
    monkeypatch.chdir(tmp_path)
    code, log = stage_like(["init", "--upgrade"])
    assert code == 2, log
    assert says in log and "Traceback" not in log
    assert (tmp_path / "params.yaml").read_bytes() == text.encode("latin-1")  # untouched


@pytest.mark.timeout(120)
def test_dvc_init_inside_a_git_subfolder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                         ) -> None:
    """DVC refuses a plain `dvc init` below a git repository's top; init passes
    --subdir there (and would show DVC's reason if it still failed)."""
    digits(tmp_path / "src")
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    proj = tmp_path / "sub" / "proj"
    proj.mkdir(parents=True)
    monkeypatch.chdir(proj)
    code, log = stage_like(["init", "--source", str(tmp_path / "src"), "--dvc-init"])
    assert code == 0, log
    assert "ran `dvc init --subdir`" in log and (proj / ".dvc").is_dir()


# --------------------------------------------------------------- layout and split surprises
def test_layout_and_split_surprises_are_warnings_the_report_shows(tmp_path: Path) -> None:
    """A hidden class folder, a nested split (train/val/<class>) and a split that is
    neither trained nor validated on (holdout): each a warning in the log and in the
    manifest's listing warnings, which the report's "Source listing" section shows."""
    src = tmp_path / "src"
    for split in ("train", "holdout"):
        draw_digit_folder(src / split, classes=2, per_class=4)
    draw_digit_folder(src / "train" / "val", classes=1, per_class=2)  # class 'val' of train
    draw_digit_folder(src / "train" / ".cats", classes=1, per_class=2)
    (src / "train" / ".git").mkdir()  # a tool folder: quiet
    params = write_params(tmp_path, "src", data={"layout": "split/class"})
    code, log = stage("scan", params)
    assert code == 0, log
    warnings = pd.read_parquet(load_params(params).path("manifest")).attrs["warnings"]
    expected = ["1 hidden folder(s) or image file(s) (name starting with '.') are skipped: "
                "train/.cats/",
                "class folder(s) 'train/val' have a split name",
                "8 row(s) of split(s) 'holdout' (8) are neither in split.train_splits "
                "['train'] nor split.val_split (None)"]
    for text in expected:
        assert any(text in w for w in warnings), (text, warnings)
        assert text in log
    assert ".git" not in log


def test_no_training_split_stops_the_first_stage(tmp_path: Path) -> None:
    src = tmp_path / "src"
    for split in ("Test", "val"):
        draw_digit_folder(src / split, classes=2, per_class=3)
    params = write_params(tmp_path, "src")
    code, log = stage("fingerprint", params)
    assert code == 2, log
    assert ("split.train_splits: ['train'] names no split of the source, so nothing can be "
            "trained on; its splits: 'test' (6), 'val' (6)") in log


# --------------------------------------------------------------- interrupts
def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            found += [int(c) for c in (task / "children").read_text().split()]
    return found


def _loaded(pid: int, library: str) -> bool:
    with contextlib.suppress(OSError):
        return library in Path(f"/proc/{pid}/maps").read_text()
    return False


@pytest.mark.timeout(120)
@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs Linux /proc")
@pytest.mark.parametrize("when", ["while importing", "as the workers start"])
def test_ctrl_c_exits_130_within_seconds_without_worker_tracebacks(tmp_path: Path,
                                                                   when: str) -> None:
    """Ctrl-C (SIGINT to the whole process group, as a terminal sends it) during the
    imports, or just as the scan's worker processes start (where a KeyboardInterrupt
    inside the pool's submit used to deadlock the scan about one time in fifteen):
    exit 130 within seconds, one "interrupted" line, no traceback from any process."""
    import signal

    draw_digit_folder(tmp_path / "src", classes=3, per_class=40)
    params = write_params(tmp_path, "src", scan={"workers": 2, "chunk_size": 4})
    # preexec_fn: Ctrl-C's default action in the child even when this test runs in a
    # background job, which inherits SIGINT ignored (Python then installs no handler)
    proc = subprocess.Popen([sys.executable, "-m", "dataqa.cli", "scan", "--params",
                             str(params)], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)},
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 60
        while proc.poll() is None:  # wait for the moment, then Ctrl-C at once
            assert time.monotonic() < deadline, f"never reached: {when}"
            if when == "while importing" and _loaded(proc.pid, "numpy"):
                break  # the CLI runs: its heavy imports (numpy, pandas) are under way
            if when == "as the workers start" and _children(proc.pid):
                break
            time.sleep(0.005)
        os.killpg(proc.pid, signal.SIGINT)
        sent = time.monotonic()
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
    assert proc.returncode == 130, err
    assert time.monotonic() - sent < 10
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    assert err.strip().endswith("dataqa scan: interrupted")


@pytest.mark.timeout(120)
def test_a_failing_dvc_init_shows_dvcs_reason(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                              ) -> None:
    digits(tmp_path / "src")
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / ".dvc").write_text("")  # a file where DVC wants its folder
    monkeypatch.chdir(proj)
    code, log = stage_like(["init", "--source", str(tmp_path / "src"), "--dvc-init"])
    assert code == 2, log
    assert "`dvc init --no-scm` failed in" in log and "File exists" in log
