"""The HTML report: self-contained, escaped, sections pluggable, thumbnails bounded."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from dataqa.errors import ParamsError, StageInputError
from dataqa.io import write_parquet
from dataqa.report import charts, page, thumbs
from dataqa.steps import audit, report

VOID = {"meta", "img", "input", "br", "hr", "link", "source", "col", "area", "base", "wbr"}


class TagChecker(HTMLParser):
    """Records unbalanced tags and every attribute value (to look for URLs)."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.attrs: list[tuple[str, str]] = []
        self.ids: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.attrs += [(k, v or "") for k, v in attrs]
        self.ids += [v for k, v in attrs if k == "id"]
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.attrs += [(k, v or "") for k, v in attrs]

    def handle_endtag(self, tag):
        if tag in VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:]}")
        else:
            self.stack.pop()


@pytest.fixture
def built(image_folder, manifest_for, params_for):
    """Audit + report on the planted folder; returns (params, html)."""
    pf = image_folder()
    params = params_for(data={"source": str(pf.root)}, scan={"max_pixels": 4096},
                        audit={"checks": ["integrity"]}, report={"thumb_size": 64},
                        gate={"max_rates": {"integrity": 0.1}})
    write_parquet(params.path("manifest"), manifest_for(pf))
    audit.run_stage(params)
    assert report.run_stage(params) == 0
    return params, params.path("audit_html").read_text(encoding="utf-8")


def test_user_names_are_escaped_everywhere(built, hostile):
    _, html = built
    assert hostile["name"] == "<script>x</script>.png"
    assert hostile["name"] not in html  # the raw file name never appears
    assert hostile["label"] not in html  # nor the raw class folder name (charts included)
    assert "&lt;script&gt;x&lt;/script&gt;.png" in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    assert html.count("<script") == 1  # only the page's own inline script


def test_self_contained(built):
    _, html = built
    for needle in ("http://", "https://", 'src="//', "src='//", "@import", "<link",
                   "url(", "<iframe", "<object"):
        assert needle not in html, needle
    checker = TagChecker()
    checker.feed(html)
    src = [v for k, v in checker.attrs if k in ("src", "href")]
    assert src and all(v.startswith(("data:image/", "#")) for v in src)


def test_html_is_well_formed_with_sections_in_order(built):
    _, html = built
    checker = TagChecker()
    checker.feed(html)
    checker.close()
    assert checker.errors == [] and checker.stack == []
    sections = re.findall(r'<section id="([^"]+)"', html)
    assert sections == ["review", "gate", "checks", "overview", "balance", "integrity", "labels", "accuracy",
                        "confidence", "duplicates", "outliers", "complexity", "gallery-integrity"]
    assert len(checker.ids) == len(set(checker.ids))


def test_gate_and_cards_show_rules(built):
    _, html = built
    gate_part = html.split('<section id="gate">')[1].split("</section>")[0]
    # 4 undecodable of 15 violates the default 0.05; 6/15 flagged violates 0.1
    assert gate_part.count('class="fail"') == 3  # undecodable, min per class, integrity rate
    assert "max_rates.integrity" in gate_part
    cards = html.split('<section id="checks">')[1].split("</section>")[0]
    assert ">6</span> flagged (40.00%)" in cards and "FAIL" in cards


def test_gallery_thumbnails_and_placeholders(built):
    _, html = built
    gallery = html.split('<section id="gallery-integrity">')[1].split("</section>")[0]
    items = re.findall(r'<div class="item" data-score="([^"]+)" data-path="([^"]+)"', gallery)
    # undecodable first (score 0), then the usable ones (0.5), ties by path
    assert items == [("0.0", "cat/huge.png"), ("0.0", "cat/truncated.png"),
                     ("0.0", "cat/zero.png"), ("0.0", "dog/notes.png"),
                     ("0.5", "dog/&lt;script&gt;x&lt;/script&gt;.png"),
                     ("0.5", "dog/anim.gif")]
    assert gallery.count("data:image/") == 2  # only the two decodable flagged images
    assert gallery.count('class="ph"') == 4  # placeholders carry the reason
    assert "undecodable: zero-byte file" in gallery
    assert "reason: extension says PNG, content is JPEG" in gallery


def test_gallery_size_caps_the_gallery(image_folder, manifest_for, params_for):
    pf = image_folder()
    params = params_for(data={"source": str(pf.root)}, scan={"max_pixels": 4096},
                        report={"gallery_size": 2})
    write_parquet(params.path("manifest"), manifest_for(pf))
    audit.run_stage(params)
    report.run_stage(params)
    html = params.path("audit_html").read_text()
    assert len(re.findall(r'<div class="item" ', html)) == 2
    assert "6 flagged, 6 pending review; showing the 2 pending with the lowest" in html


def test_without_integrity_check_undecodable_files_still_listed(image_folder, manifest_for,
                                                               params_for):
    pf = image_folder()
    params = params_for(data={"source": str(pf.root)}, scan={"max_pixels": 4096},
                        audit={"checks": []})
    write_parquet(params.path("manifest"), manifest_for(pf))
    audit.run_stage(params)
    report.run_stage(params)
    html = params.path("audit_html").read_text()
    table = html.split('<section id="integrity">')[1].split("</section>")[0]
    assert table.count("<tr data-search") == 4 and "zero-byte file" in table
    assert '<section id="checks">' not in html  # no check ran: no cards


def test_stale_issues_rejected(built):
    params, _ = built
    issues = pd.read_parquet(params.path("issues"))
    write_parquet(params.path("issues"), issues.iloc[:-1])
    with pytest.raises(StageInputError, match="rerun the 'audit' stage"):
        report.run_stage(params)


def test_unknown_kind(params_for):
    with pytest.raises(ParamsError, match="unknown report kind 'nope'"):
        report.run_stage(params_for(), kind="nope")


# --------------------------------------------------------------------------- sections
def test_registered_section_is_rendered_in_order(monkeypatch):
    monkeypatch.setattr(page, "_SECTIONS", list(page._SECTIONS))
    page.section("demo", order=2)(lambda d: page.Section("b", "B", "gate.html.j2",
                                                         {"rules": []}))
    page.section("demo", order=1)(lambda d: [page.Section("a", "<A>", "gate.html.j2",
                                                          {"rules": []})])
    page.section("demo", order=3)(lambda d: None)  # a builder may leave itself out
    secs = page.build_sections("demo", None)
    assert [s.id for s in secs] == ["a", "b"]
    html = page.render_page(title="t", facts=[("k", "<v>")], sections=secs)
    assert "<h2>&lt;A&gt;</h2>" in html and "&lt;v&gt;" in html


def test_duplicate_section_ids_rejected(monkeypatch):
    monkeypatch.setattr(page, "_SECTIONS", list(page._SECTIONS))
    for order in (1, 2):
        page.section("demo", order=order)(lambda d: page.Section("x", "X", "gate.html.j2"))
    with pytest.raises(ValueError, match="same id"):
        page.build_sections("demo", None)


# --------------------------------------------------------------------------- charts
EVIL = '<b>&"x'
CHARTS = [
    charts.bar_chart([EVIL, "b"], {"train": [3, 4], EVIL: [1, 0]}, title=EVIL),  # stacked
    charts.histogram([1, 2, 2, 3, np.nan, np.inf], xlabel=EVIL),  # non-finite ignored
    charts.histogram([5, 5, 5], log_x=True),  # a single value still draws
    charts.histogram([]),  # no data: a message, not an error
    charts.scatter([28] * 1000 + [64, 640], [28] * 1000 + [48, 480], xlabel=EVIL),
    charts.line_chart({EVIL: ([0.1, 0.5, 1.0], [0.8, 0.9, 0.95]), "b": ([0.1], [0.7])}),
    charts.heatmap([[5, 1], [0, 7]], [EVIL, "b"], [EVIL, "b"], title=EVIL),
]


@pytest.mark.parametrize("svg", CHARTS)
def test_charts_are_valid_escaped_svg(svg):
    root = ET.fromstring(str(svg))  # well-formed XML: every text escaped
    assert root.tag == "svg"
    assert EVIL not in str(svg) and "nan" not in str(svg).lower().replace("nan=", "")
    assert "http" not in str(svg)


def test_scatter_bins_points():
    # 100,000 points of 3 exact sizes give 3 circles
    x = np.repeat([28.0, 32.0, 640.0], [50_000, 30_000, 20_000])
    svg = str(charts.scatter(x, x / 2))
    assert svg.count("<circle") == 3
    assert "50,000 images" in svg


@pytest.mark.parametrize(("lo", "hi", "expected"), [
    (0, 10, [0, 2, 4, 6, 8, 10]),  # step 2
    (0, 1, [0, 0.2, 0.4, 0.6, 0.8, 1.0]),  # fractions
    (3, 3, [3]),  # degenerate range
])
def test_nice_ticks(lo, hi, expected):
    assert charts.nice_ticks(lo, hi) == pytest.approx(expected)


# --------------------------------------------------------------------------- thumbs
@pytest.mark.parametrize(("shape", "mime"), [
    ((28, 28), "png"),  # flat tiny digit-like image: PNG smaller, never enlarged
    ((300, 200, 3), "jpeg"),  # noisy photo-like image: JPEG smaller
])
def test_make_thumbnail(tmp_path, shape, mime):
    rng = np.random.default_rng(0)
    arr = (np.zeros(shape, np.uint8) if mime == "png" else
           rng.integers(0, 256, shape, dtype=np.uint8))
    path = tmp_path / "x.png"
    Image.fromarray(arr).save(path)
    t = thumbs.make_thumbnail(path, size=64, max_pixels=10**7)
    assert t.uri.startswith(f"data:image/{mime};base64,")
    assert max(t.width, t.height) == min(64, max(shape[:2]))
    assert (t.width, t.height) == ((28, 28) if mime == "png" else (43, 64))


def test_thumbnailer_decodes_once_and_respects_limit(tmp_path, monkeypatch):
    for i in range(5):
        Image.fromarray(np.full((8, 8), i * 40, np.uint8)).save(tmp_path / f"{i}.png")
    m = pd.DataFrame({"path": [f"{i}.png" for i in range(5)] + ["gone.png", "bad.png"],
                      "decode_error": [None] * 6 + ["zero-byte file"]},
                     index=range(7))
    calls = []
    real = thumbs.reopen_bytes
    monkeypatch.setattr(thumbs, "reopen_bytes",  # every read goes through the checked reopen
                        lambda root, rel, **kw: calls.append(root / rel) or real(root, rel, **kw))
    t = thumbs.Thumbnailer(m, tmp_path, size=16, max_pixels=10**6, limit=3)
    t.want([0, 1, 0, 6, 5])
    t.load()
    t.want([1, 2, 3, 4])
    t.load()
    assert sorted(p.name for p in calls) == ["0.png", "1.png", "2.png", "gone.png"]
    assert t.get(6).note == "undecodable: zero-byte file"  # never opened
    assert t.get(5).note.startswith("file missing")
    assert t.get(3).note.endswith("max_thumbnails reached") and t.get(2).uri
    assert t.n_decoded == 3
