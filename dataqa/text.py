"""Text that is safe to print to a terminal.

File names, CSV cells and labels come from untrusted data; printed raw, an escape
sequence in one (``ESC ] 0 ; title BEL``, ``ESC [ 2 J``) retitles or clears the user's
terminal, and a bidirectional override reorders what the user reads. :func:`printable`
replaces every control character (Unicode category ``Cc``: C0, DEL, C1) except newline
and tab, and the bidirectional embedding/override/isolate marks, by a visible escape
(``\\x1b``, ``\\u202e``). It is idempotent (an escape is plain text), so applying it to
a message that already holds escaped parts is harmless. The CLI applies it to every
message and log line it prints; code that builds messages from data need not.
"""

from __future__ import annotations

import logging
import re

# C0 except \t and \n, DEL, C1; bidi embeddings/overrides (U+202A-202E) and isolates
# (U+2066-2069); plus lone surrogates (a non-UTF-8 file name decoded by the OS layer)
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    if 0xDC80 <= code <= 0xDCFF:  # os.fsdecode's surrogateescape: the raw byte
        return f"\\x{code - 0xDC00:02x}"
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def printable(text: object) -> str:
    """``str(text)`` with control characters shown as escapes (see the module doc)."""
    return _UNSAFE.sub(_escape, str(text))


def has_unsafe(text: str) -> bool:
    """Whether :func:`printable` would change ``text``."""
    return _UNSAFE.search(text) is not None


class EscapingFormatter(logging.Formatter):
    """A logging formatter whose lines pass through :func:`printable`."""

    def format(self, record: logging.LogRecord) -> str:
        return printable(super().format(record))
