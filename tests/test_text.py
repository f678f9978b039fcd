"""printable(): control characters, bidi overrides and undecodable bytes become visible."""

from __future__ import annotations

import os

from dataqa.text import printable


def test_escapes_controls_and_keeps_text() -> None:
    assert printable("a\x1b]0;x\x07b\n\tc") == "a\\x1b]0;x\\x07b\n\tc"  # \n and \t kept
    assert printable("\x9b2J \u202eevil") == "\\x9b2J \\u202eevil"
    assert printable("ünïcödé 数字") == "ünïcödé 数字"


def test_undecodable_file_name_shows_its_byte() -> None:
    assert printable(os.fsdecode(b"caf\xe9.png")) == "caf\\xe9.png"


def test_idempotent() -> None:
    once = printable("x\x1by\x00")
    assert printable(once) == once
