"""Text that is safe to print to a terminal or to put into XML, and URLs without secrets.

File names, CSV cells and labels come from untrusted data; printed raw, an escape
sequence in one (``ESC ] 0 ; title BEL``, ``ESC [ 2 J``) retitles or clears the user's
terminal, a bidirectional override reorders what the user reads, and a newline in a
class name forges a line of output (a fake ``gate audit: PASSED``). One function per
destination, each idempotent (an escape is plain text, so applying one to a message that
already holds escaped parts is harmless):

- :func:`printable`: a whole *message* for the terminal. Every control character
  (Unicode category ``Cc``: C0, DEL, C1) except newline and tab, the bidirectional
  embedding/override/isolate marks and lone surrogates (undecodable name bytes) become a
  visible escape (``\\x1b``, ``\\u202e``). :func:`say` prints through it; no other module
  of dataqa calls ``print`` (tests/test_security.py rule ``print``), and the CLI applies
  it to every error and log line.
- :func:`shown`: one *data-derived name* (a class, a path, a CSV cell) inside a message:
  as :func:`printable`, and also newline, carriage return, tab and the invisible format
  characters (zero-width spaces and joiners, the byte-order mark ``U+FEFF``, line and
  paragraph separators) escaped, so a name is always one visible line.
- :func:`xml_text`: text for an XML attribute or element (JUnit): the characters XML 1.0
  forbids (C0 but tab/newline, ``U+FFFE``/``U+FFFF``, surrogates) and those a terminal
  would act on are escaped as by :func:`printable`; ElementTree then escapes markup.
- :func:`redact_urls`: every ``scheme://user:password@host`` in a text with the password
  replaced by ``***``; :func:`printable` and :func:`xml_text` apply it, so a storage
  URL's password never reaches a terminal, a log or a report file.
"""

from __future__ import annotations

import logging
import re
import sys
from typing import TextIO

# C0 except \t and \n, DEL, C1; bidi embeddings/overrides (U+202A-202E) and isolates
# (U+2066-2069); plus lone surrogates (a non-UTF-8 file name decoded by the OS layer)
_CONTROLS = "\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff"
_UNSAFE = re.compile(f"[{_CONTROLS}]")
# in a name also: \t \n, invisible format characters (soft hyphen, Arabic letter mark,
# zero-width space/joiners, LRM/RLM, line/paragraph separators, word joiner..., BOM)
_UNSAFE_NAME = re.compile(f"[{_CONTROLS}\t\n\u00ad\u061c\u180e\u200b-\u200f\u2028\u2029"
                          f"\u2060-\u2065\ufeff\ufff9-\ufffb]")
# not allowed in XML 1.0 at all, on top of what a terminal would act on
_UNSAFE_XML = re.compile(f"[{_CONTROLS}\ufffe\uffff]")
# scheme://[user[:password]@]host...: the password part (no '@' or '/' inside it)
_URL_SECRET = re.compile(r"\b([a-zA-Z][a-zA-Z0-9+.-]*://[^\s:/@'\"]*):([^\s@/'\"]+)@")


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    if char in "\n\t":  # only names escape these
        return "\\n" if char == "\n" else "\\t"
    code = ord(char)
    if 0xDC80 <= code <= 0xDCFF:  # os.fsdecode's surrogateescape: the raw byte
        return f"\\x{code - 0xDC00:02x}"
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def redact_urls(text: object) -> str:
    """``str(text)`` with the password of every URL replaced by ``***``
    (``postgresql://me:pw@db/x`` -> ``postgresql://me:***@db/x``)."""
    return _URL_SECRET.sub(lambda m: f"{m.group(1)}:***@", str(text))


def printable(text: object) -> str:
    """``str(text)`` with control characters shown as escapes and URL passwords redacted
    (see the module doc); newline and tab are kept."""
    return _UNSAFE.sub(_escape, redact_urls(text))


def shown(name: object) -> str:
    """One data-derived name as a single visible line (see the module doc)."""
    return _UNSAFE_NAME.sub(_escape, str(name))


def xml_text(text: object) -> str:
    """``str(text)`` safe for XML 1.0 and for a terminal showing it (see the module doc)."""
    return _UNSAFE_XML.sub(_escape, redact_urls(text))


def has_unsafe(text: str) -> bool:
    """Whether :func:`printable` would change ``text``'s characters."""
    return _UNSAFE.search(text) is not None


def say(*lines: object, err: bool = False, file: TextIO | None = None) -> None:
    """Print ``lines`` (one per line) through :func:`printable`: the one way dataqa
    writes to the terminal (stdout, or stderr with ``err``)."""
    out = file if file is not None else (sys.stderr if err else sys.stdout)
    print(printable("\n".join(str(line) for line in lines)), file=out, flush=err)


class EscapingFormatter(logging.Formatter):
    """A logging formatter whose lines pass through :func:`printable`."""

    def format(self, record: logging.LogRecord) -> str:
        return printable(super().format(record))
