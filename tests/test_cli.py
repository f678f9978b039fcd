"""The CLI is a thin layer: one subcommand per stage, `--help` everywhere, and only
dataqa's own errors turned into a message and exit code 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from dataqa.cli import COMMANDS, EXIT_ERROR, main

STAGES = ["fingerprint", "scan", "tensors", "crossval", "learning_curve", "audit", "gate", "filter", "augment", "subsample",
          "tune", "report", "tuning_report"]


def test_every_stage_has_a_subcommand() -> None:
    # plus `review` (issue 22): decisions, not a stage
    assert [c.name for c in COMMANDS] == [*STAGES, "review"]


@pytest.mark.parametrize("action", ["list", "set", "import"])
def test_review_action_help(action: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["review", action, "--help"])
    assert info.value.code == 0
    assert "--params" in capsys.readouterr().out


def test_top_level_help_lists_subcommands() -> None:
    out = subprocess.run([sys.executable, "-m", "dataqa.cli", "--help"],
                         capture_output=True, text=True, check=True).stdout
    for name in STAGES:
        assert name in out


@pytest.mark.parametrize("name", STAGES)
def test_subcommand_help(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main([name, "--help"])
    assert info.value.code == 0
    assert "--params" in capsys.readouterr().out


def test_stage_targets_import() -> None:
    # every subcommand points at a real function (catches a renamed module)
    for cmd in COMMANDS:
        assert callable(cmd.load()), cmd.name


def test_params_error_is_a_message_not_a_traceback(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "params.yaml"
    bad.write_text("scan:\n  wrokers: 2\n")
    assert main(["scan", "--params", str(bad)]) == EXIT_ERROR
    err = capsys.readouterr().err
    assert "dataqa scan: error:" in err and "wrokers" in err
    assert "Traceback" not in err


def test_stage_script_runs_the_cli(tmp_path: Path) -> None:
    repo = Path(__file__).resolve().parents[1]
    proc = subprocess.run([sys.executable, str(repo / "stages" / "scan.py"), "--params",
                           str(tmp_path / "missing.yaml")], capture_output=True, text=True)
    assert proc.returncode == EXIT_ERROR
    assert "dataqa init --source" in proc.stderr  # the hint outside a project
