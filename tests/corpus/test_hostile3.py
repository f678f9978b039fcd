"""Hostile inputs, round three (issue 26): one case per class of defect found by the
182-case replay: secrets and escapes in what dataqa prints or writes, hangs at the edges
(FIFOs, databases that never answer, Ctrl-C), tracebacks from sizes that lie, writes of
``dataqa init`` that fail, layout and split surprises, unclear errors. Each case ends in
a stated outcome (exit 2 with a message naming the file/row/key, a warning the report
also shows, or exit 130) under a timeout, never a traceback or a hang."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

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
