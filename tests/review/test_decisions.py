"""The decisions file is untrusted: every problem is an error naming the row; the
writer neutralises spreadsheet formulas and reads them back unchanged."""

from __future__ import annotations

import pytest

from dataqa.review import decisions as dec
from dataqa.review.decisions import Decision, DecisionsError, merge, parse_decisions, to_csv

A, B = "a" * 64, "b" * 64
HEAD = "sha256,path,decision,label,note,by,at,checks\n"


def rows(*lines: str) -> bytes:
    return (HEAD + "".join(f"{line}\n" for line in lines)).encode()


def test_round_trip_neutralises_formulas() -> None:
    made = [Decision(A, "relabel", "x/1.png", "dog", "=cmd()", "@eve", "2026-12-07T12:00:00Z",
                     ("label",)),
            Decision(B, "keep", "-odd.png", "", "fine, \"quoted\"\nnewline", "bob", "",
                     ("dark", "light"))]
    text = to_csv(made)
    assert "'=cmd()" in text and "'@eve" in text and "'-odd.png" in text
    back = parse_decisions(text.encode(), source="f")
    assert sorted(back, key=lambda d: d.sha256) == made  # row numbers do not compare


@pytest.mark.parametrize(("data", "message"), [
    (rows(f"{'z' * 64},p,keep,,,,,"), r"f: row 2: sha256 'z+' is not 64 hex"),
    (rows(f"{A},p,delete,,,,,"), r"row 2: decision 'delete' is not one of keep, exclude"),
    (rows(f"{A},p,relabel,,,,,"), r"row 2: decision 'relabel' needs the new class"),
    (rows(f"{A},p,keep,,,,,", f"{A},q,exclude,,,,,"),  # one image, two verdicts
     r"rows 2 and 3 decide differently about one image \(sha256 aaaaaaaaaaaa..., q\): "
     r"keep vs exclude"),
    (HEAD.encode() + f"{A},caf\xe9.png,keep,,,,,\n".encode("latin-1"),
     r"row 2: not UTF-8 text \(byte 0xe9"),
    (rows(f"{A},p\x00,keep,,,,,"), r"row 2: a NUL byte"),
    (b"sha256,path\n" + f"{A},p\n".encode(), r"row 1: the header must name .* missing "
                                             r"\['decision'\]"),
    (b"sha256,decision,colour\n", r"row 1: .*unknown or repeated \['colour'\]"),
    (rows(f"{A},p,keep"), r"row 2: 3 cells, the header has 8"),
    (rows(f'{A},"p,keep,,,,,'), r"row 2: malformed CSV"),
    (rows(f"{A},p,keep,,,,yesterday,"), r"row 2: 'at' 'yesterday' is not an ISO 8601"),
    (rows(f"{A},p,keep,,{'n' * 5000},,,"), r"row 2: column 'note' holds 5000 characters"),
    (rows(f"{A},p,keep,,,,,dark;rm -rf"), r"row 2: 'checks' holds 'rm -rf', not a check"),
])
def test_bad_rows_are_errors_naming_the_row(data: bytes, message: str) -> None:
    with pytest.raises(DecisionsError, match=message):
        parse_decisions(data, source="f")


def test_a_huge_file_is_refused_before_it_is_read(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(dec, "MAX_BYTES", 1000)
    path = tmp_path / "reviews.csv"
    path.write_bytes(rows(*[f"{A},p,keep,,,,," for _ in range(20)]))
    with pytest.raises(DecisionsError, match=r"reviews.csv: 0 MiB is larger than a "
                                             r"decisions file can be"):
        dec.read_decisions(path)


def test_bom_blank_lines_identical_repeats_and_missing_file(tmp_path) -> None:
    got = parse_decisions(b"\xef\xbb\xbf" + rows(f"{A},p,keep,,,,,", "", f"{A},p,KEEP,,,,,"),
                          source="f")
    assert [(d.sha256, d.decision) for d in got] == [(A, "keep")]
    assert dec.read_decisions(tmp_path / "none.csv") == []
    assert parse_decisions(b"", source="f") == []


def test_merge_later_decisions_win() -> None:
    old = [Decision(A, "keep", at="2026-12-07T10:00:00Z"),
           Decision(B, "keep", at="2026-12-07T10:00:00Z")]
    new = [Decision(A, "exclude", at="2026-12-07T11:00:00Z"),  # newer: replaces
           Decision(B, "exclude", at="2026-12-07T09:00:00Z"),  # older: ignored
           Decision("c" * 64, "keep")]
    m = merge(old, new)
    assert {d.sha256: d.decision for d in m.decisions} == {A: "exclude", B: "keep",
                                                           "c" * 64: "keep"}
    assert [(o.decision, n.decision) for o, n in m.replaced] == [("keep", "exclude")]
    assert len(m.older) == 1 and len(m.added) == 1
