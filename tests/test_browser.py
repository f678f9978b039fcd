"""The HTML reports in a real browser (issue 7, item 1).

One module-scoped fixture runs the real pipeline once, in-process, through
``dataqa.cli.main`` (scan ... subsample, tune) on a tiny ImageFolder of real MNIST digits
(drawn digits when ``../shared`` is absent) with planted problems: a hostile file name,
a hostile class name, a corrupt file, an exact duplicate, a flipped label and a photo
among the digits. Then headless Chromium (Debian's ``chromium`` + ``chromium-driver``,
see ``tests/browser.py``) opens ``audit.html`` and ``tuning.html`` and the tests check
what a reviewer relies on: no console error, no request leaving the file, every
registered section present, every thumbnail decoded, working sorting and filtering, user
data shown as text. Full-page screenshots go to ``test-artifacts/``.
"""

from __future__ import annotations

import gzip
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import browser
import numpy as np
import pytest
import torch
import yaml
from PIL import Image, ImageDraw

from dataqa.cli import main
from dataqa.params import Params, load_params
from dataqa.report import audit_report, page, tuning_report

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "test-artifacts"
MNIST = REPO.parent / "shared" / "datasets" / "mnist-test"

HOSTILE_NAME = "<script>x</script>.png"  # issue 2's escaping canary, a flagged file
HOSTILE_LABEL = "<img src=x onerror=alert(1)>"  # a class folder: labels reach SVG text too
# class folder -> (digit drawn in it, images); the small one gets augmented copies
CLASSES = {"0": (0, 16), "1": (1, 16), "2": (2, 16), HOSTILE_LABEL: (7, 6)}
PER_CLASS = 16

# Pipeline in dvc.yaml order; the gates may fail on this deliberately dirty data (exit 1)
# without stopping the run: the reports must render either way.
STAGES: list[tuple[list[str], set[int]]] = [
    (["scan"], {0}), (["tensors"], {0}), (["crossval"], {0}), (["learning_curve"], {0}),
    (["audit"], {0}), (["report"], {0}), (["gate"], {0, 1}), (["filter"], {0}),
    (["augment"], {0}), (["subsample"], {0}), (["gate", "--on", "prepared"], {0, 1}),
    (["tune"], {0}), (["tuning_report"], {0}),
]

# Tiny budgets: 16x16 tensors, 2 folds x 1 epoch, 1 + 2 + 2 one-epoch tuning trials (the
# fewest that still give every tuning section: a best trial, fidelity pairs, cleaning).
TINY: dict[str, Any] = {
    "data": {"source": "images"},
    "scan": {"workers": 0},
    "tensors": {"workers": 0},
    "engine": {"image_size": 16, "device": "cpu", "cpu_threads": 1, "width": 8, "depth": 1},
    "crossval": {"folds": 2, "epochs": 1, "batch_size": 16},
    "audit": {"min_per_class": 10, "learning_curve": [0.5, 1.0], "learning_curve_epochs": 1},
    "report": {"gallery_size": 12, "thumb_size": 64},
    "subsample": {"fractions": {"p10": 0.25, "p100": 1.0}},
    "tune": {
        "rounds": {"lr": {"trials": 1, "epochs": 1},
                   "joint": {"trials": 2, "epochs": 1},
                   "fine": {"trials": 2, "epochs": 1, "top_k": 2}},
        "space": {"widths": [8], "depths": [1], "batch_size_min": 8,
                  "batch_size_max": 32},
        "stopping": {"min_epochs": 1},
        "cleaning": {"seeds": 2},
    },
}


# --------------------------------------------------------------------------- dataset
def digit_images(n: int) -> dict[int, list[np.ndarray]]:
    """``n`` (28, 28) uint8 images of each digit in CLASSES: the first ones of the MNIST
    test set when ``../shared`` has it, else digits drawn with PIL's default font."""
    wanted = sorted({d for d, _ in CLASSES.values()})
    if (MNIST / "t10k-images-idx3-ubyte.gz").is_file():
        raw = gzip.decompress((MNIST / "t10k-images-idx3-ubyte.gz").read_bytes())
        images = np.frombuffer(raw, np.uint8, offset=16).reshape(-1, 28, 28)
        labels = np.frombuffer(gzip.decompress(
            (MNIST / "t10k-labels-idx1-ubyte.gz").read_bytes()), np.uint8, offset=8)
        return {d: [images[i] for i in np.flatnonzero(labels == d)[:n]] for d in wanted}
    rng = np.random.default_rng(0)
    out: dict[int, list[np.ndarray]] = {}
    for d in wanted:
        out[d] = []
        for _ in range(n):
            img = Image.new("L", (28, 28), 0)
            x, y = rng.integers(7, 14, size=2)
            ImageDraw.Draw(img).text((int(x), int(y)), str(d), fill=int(rng.integers(180, 256)))
            out[d].append(np.asarray(img.rotate(float(rng.uniform(-15, 15)))))
    return out


def encode(arr: np.ndarray, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, fmt)
    return buf.getvalue()


def truncated(png: bytes) -> bytes:
    """The first half of a PNG: its pixel data ends early (an interrupted copy)."""
    return png[: len(png) // 2]


def write_dataset(root: Path) -> dict[str, str | None]:
    """The ImageFolder; returns the planted files: relative path -> the check whose
    gallery must show it (None: found by a 1-epoch model or not, so not required)."""
    digits = digit_images(PER_CLASS + 2)
    for cls, (d, n) in CLASSES.items():
        (root / cls).mkdir(parents=True)
        for i, arr in enumerate(digits[d][:n]):
            (root / cls / f"d{i:02d}.png").write_bytes(encode(arr))
    from skimage.data import astronaut  # bundled with scikit-image, nothing downloads

    photo = np.asarray(Image.fromarray(astronaut()).resize((48, 48)))
    planted = {
        # JPEG bytes named .png: flagged wrong_extension, so the hostile name is shown
        f"1/{HOSTILE_NAME}": ("integrity", encode(digits[1][PER_CLASS], "JPEG")),
        "2/corrupt.png": ("integrity", truncated(encode(digits[2][PER_CLASS]))),
        # sorts after 0/d00.png: the copy is the flagged one of the pair
        "0/d00_copy.png": ("exact_duplicate", (root / "0/d00.png").read_bytes()),
        "0/flipped.png": (None, encode(digits[2][PER_CLASS + 1])),  # a 2 labelled 0
        "1/photo.png": ("outlier", encode(photo)),  # a photo among digits
    }
    for rel, (_, data) in planted.items():
        # '/' cannot be in a POSIX file name: the hostile name is a folder '<script>x<'
        # holding 'script>.png', so the relative path reads '1/<script>x</script>.png'
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    # an image-like extension not in scan.extensions: skipped, counted, and shown in the
    # report's source-listing section (no check flags it: it is never read)
    (root / "2" / "holiday.heic").write_bytes(b"\x00\x00\x00\x18ftypheic")
    return {rel: check for rel, (check, _) in planted.items()}


@dataclass
class Built:
    params: Params
    planted: dict[str, str | None]  # relative path -> check whose gallery shows it


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Built]:
    """Both reports, from the real stages run in-process on the planted dataset."""
    root = tmp_path_factory.mktemp("browser")
    planted = write_dataset(root / "images")
    repo_params = yaml.safe_load((REPO / "params.yaml").read_text())
    tiny = dict(TINY, audit=dict(TINY["audit"], checks=repo_params["audit"]["checks"]))
    (root / "params.yaml").write_text(yaml.safe_dump(tiny))
    threads = torch.get_num_threads()
    # one torch thread: on the 2 shared cores of the dev box, 2 threads made the
    # pipeline 5x slower (contention), one runs it in ~10 s
    torch.set_num_threads(1)
    try:
        for args, ok in STAGES:
            code = main([*args, "--params", str(root / "params.yaml")])
            assert code in ok, f"dataqa {' '.join(args)} exited {code}"
    finally:
        torch.set_num_threads(threads)
    yield Built(load_params(root / "params.yaml"), planted)


@pytest.fixture(scope="module")
def driver() -> Iterator[Any]:
    missing = browser.missing_binaries()
    if missing:  # a failure, not a skip: `make test` installs them (system-deps)
        pytest.fail(f"{', '.join(missing)} not found; {browser.MISSING_HELP}", pytrace=False)
    with browser.open_browser() as drv:
        yield drv


@dataclass
class Opened:
    kind: str
    path: Path
    load: browser.PageLoad
    expected_ids: list[str]  # section ids the registry builds for this report's data


@pytest.fixture(scope="module")
def pages(built: Built, driver: Any) -> dict[str, Opened]:
    """Each report opened once; its load record and the section ids it must have."""
    p = built.params
    expected = {
        "audit": [s.id for s in page.build_sections("audit", audit_report.load(p))],
        "tuning": [s.id for s in page.build_sections("tuning", tuning_report.load(p))],
    }
    out = {}
    for kind, path_name in (("audit", "audit_html"), ("tuning", "tuning_html")):
        path = p.path(path_name)
        out[kind] = Opened(kind, path, browser.load(driver, path), expected[kind])
        browser.screenshot(driver, ARTIFACTS / f"{kind}.png")
    return out


def show(driver: Any, opened: Opened) -> None:
    """Load ``opened`` afresh: no sorting or filtering left over from another test."""
    driver.get(opened.path.resolve().as_uri())


KINDS = ["audit", "tuning"]


# --------------------------------------------------------------------------- tests
@pytest.mark.parametrize("kind", KINDS)
def test_no_console_error(pages: dict[str, Opened], kind: str) -> None:
    assert pages[kind].load.errors == []
    assert pages[kind].load.failures == []


@pytest.mark.parametrize("kind", KINDS)
def test_no_request_leaves_the_file(pages: dict[str, Opened], kind: str) -> None:
    opened = pages[kind]
    reqs = opened.load.requests
    assert opened.path.resolve().as_uri() in reqs  # the log works: the page itself is seen
    outside = [u[:120] for u in reqs if not u.startswith(("data:", "file:"))]
    assert outside == []
    files = [u for u in reqs if u.startswith("file:")]
    assert files == [opened.path.resolve().as_uri()]  # and no other local file either


@pytest.mark.parametrize("kind", KINDS)
def test_every_registered_section_is_present(pages: dict[str, Opened], built: Built,
                                             driver: Any, kind: str) -> None:
    opened = pages[kind]
    show(driver, opened)
    page._load_sections()
    registered = [s for s in page._SECTIONS if s.kind == kind]
    data = (audit_report.load if kind == "audit" else tuning_report.load)(built.params)
    # every builder contributes on this dataset (it plants something for each section)
    empty = [s.name for s in registered if s.build(data) in (None, [])]
    assert empty == []
    ids = driver.execute_script(
        "return Array.from(document.querySelectorAll('main > section'), s => s.id);")
    assert ids == opened.expected_ids
    nav = driver.execute_script(
        "return Array.from(document.querySelectorAll('nav a'), a => a.getAttribute('href'));")
    assert nav == [f"#{i}" for i in opened.expected_ids]
    # a section that is there but empty would pass the id test: each has visible content
    heights = driver.execute_script(
        "return Array.from(document.querySelectorAll('main > section'),"
        " s => [s.id, s.getBoundingClientRect().height]);")
    assert [i for i, h in heights if h < 40] == []


def test_audit_has_a_gallery_per_check(pages: dict[str, Opened], built: Built) -> None:
    checks = built.params.audit.checks
    assert [i for i in pages["audit"].expected_ids if i.startswith("gallery-")] == [
        f"gallery-{c}" for c in checks]


@pytest.mark.parametrize("kind", KINDS)
def test_every_image_is_decoded(pages: dict[str, Opened], built: Built, driver: Any,
                                kind: str) -> None:
    show(driver, pages[kind])
    imgs = driver.execute_script(
        "return Array.from(document.images, i => [i.src.slice(0, 22), i.complete,"
        " i.naturalWidth, i.naturalHeight]);")
    assert [i for i in imgs if not (i[0].startswith("data:image/") and i[1] and i[2] > 0
                                    and i[3] > 0)] == []
    if kind == "audit":  # galleries show thumbnails (other sections may show more)
        n_gallery = driver.execute_script(
            "return document.querySelectorAll('.gallery .item img').length;")
        assert n_gallery >= 3  # the hostile name, the duplicate, the photo at least
        assert len(imgs) >= n_gallery
        # the undecodable file gets a placeholder whose reason starts inside its box
        # (a long reason once overflowed it, cut off above the box)
        ph = driver.execute_script(
            "return Array.from(document.querySelectorAll('#g-integrity .ph'), p => {"
            " var b = p.getBoundingClientRect(), t = p.firstElementChild.getBoundingClientRect();"
            " return [p.textContent.trim(), t.top >= b.top && t.bottom <= b.bottom + 1]; });")
        assert [(text.split(":")[0], inside) for text, inside in ph] == [("undecodable", True)]
    else:  # before/after augmentation pairs of the minority classes
        assert len(imgs) >= 2 and len(imgs) % 2 == 0


def test_audit_gallery_shows_every_planted_file(pages: dict[str, Opened], built: Built,
                                                driver: Any) -> None:
    show(driver, pages["audit"])
    shown = driver.execute_script(
        "return Array.from(document.querySelectorAll('.gallery .item'),"
        " e => [e.parentNode.id, e.querySelector('.path').textContent]);")
    # each planted file is in the gallery of the check meant for it, under its own name
    missing = [(f"g-{check}", rel) for rel, check in built.planted.items()
               if check is not None and [f"g-{check}", rel] not in shown]
    assert missing == []


def test_audit_table_sorts_on_click(pages: dict[str, Opened], driver: Any) -> None:
    from selenium.webdriver.common.by import By

    show(driver, pages["audit"])
    table = driver.find_element(By.ID, "class-table")
    def rows() -> list[tuple[str, int]]:
        return [(r[0], int(r[1].replace(",", ""))) for r in driver.execute_script(
            "return Array.from(arguments[0].tBodies[0].rows,"
            " r => [r.cells[0].textContent, r.cells[r.cells.length - 1].textContent]);",
            table)]
    before = rows()
    headers = table.find_elements(By.CSS_SELECTOR, "thead th")
    assert headers[-1].text.startswith("total")
    headers[-1].click()  # ascending by total
    asc = rows()
    assert sorted(asc) == sorted(before)  # same rows, reordered
    assert [n for _, n in asc] == sorted(n for _, n in before)
    headers[-1].click()  # again: descending
    desc = rows()
    assert [n for _, n in desc] == sorted((n for _, n in before), reverse=True)
    assert desc != asc  # the totals differ (the small class), so the clicks reorder
    headers[0].click()  # class name, ascending (text order)
    assert [c for c, _ in rows()] == sorted((c.lower() for c, _ in before))


def test_audit_filter_and_gallery_order(pages: dict[str, Opened], driver: Any) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    show(driver, pages["audit"])
    box = driver.find_element(By.CSS_SELECTOR, "input[data-filter='integrity-table']")
    n_rows = len(driver.find_elements(By.CSS_SELECTOR, "#integrity-table tbody tr"))
    assert n_rows >= 2  # the corrupt file and the JPEG named .png at least

    def visible() -> list[str]:
        return [r.find_element(By.TAG_NAME, "td").text for r in driver.find_elements(
            By.CSS_SELECTOR, "#integrity-table tbody tr") if r.is_displayed()]

    box.send_keys("corrupt")
    assert visible() == ["2/corrupt.png"]
    box.clear()
    box.send_keys("<SCRIPT>")  # case-insensitive, matches the hostile name literally
    assert visible() == [f"1/{HOSTILE_NAME}"]
    box.clear()
    box.send_keys(" ")  # a blank query (an 'input' event) shows every row again
    assert len(visible()) == n_rows
    box.send_keys("no such file anywhere")
    assert visible() == []

    gallery = driver.find_element(By.ID, "g-integrity")
    def paths() -> list[str]:
        return [e.get_attribute("data-path") for e in gallery.find_elements(
            By.CSS_SELECTOR, ".item")]
    def scores() -> list[float]:
        return [float(e.get_attribute("data-score")) for e in gallery.find_elements(
            By.CSS_SELECTOR, ".item")]
    order = Select(driver.find_element(By.CSS_SELECTOR, "select[data-sort='g-integrity']"))
    assert scores() == sorted(scores())  # served lowest score first
    order.select_by_value("path:asc")
    assert paths() == sorted(paths())
    order.select_by_value("score:desc")
    assert scores() == sorted(scores(), reverse=True)


def test_audit_review_bulk_actions(pages: dict[str, Opened], driver: Any) -> None:
    """Issue 22: bulk decisions for a check's pending images of one class and for a
    duplicate group; "Forget unsaved choices" undoes them (so later tests see a fresh
    page). The decisions themselves reach the pipeline in tests/pipeline/test_review.py."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    def click(el: Any) -> None:
        driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", el)
        el.click()

    def state(path: str) -> list[str]:
        return driver.execute_script(
            "return Array.from(document.querySelectorAll('.item'), i => [i, i.querySelector("
            "'.path')]).filter(p => p[1] && p[1].textContent === arguments[0])"
            ".map(p => (p[0].querySelector('.rv-state') || {}).textContent);", path)

    show(driver, pages["audit"])
    try:
        bulk = driver.find_element(By.CSS_SELECTOR, "#gallery-integrity .rv-bulk")
        Select(bulk.find_element(By.CSS_SELECTOR, "select.rv-class")).select_by_value("2")
        click(bulk.find_element(By.CSS_SELECTOR, "button[data-bulk='exclude']"))
        assert set(state("2/corrupt.png")) == {"unsaved: exclude"}
        assert set(state(f"1/{HOSTILE_NAME}")) == {"pending: integrity"}  # class 1: not
        group = driver.find_element(By.CSS_SELECTOR, "#groups-exact_duplicate .grp")
        click(group.find_element(By.CSS_SELECTOR, "button[data-group='keep']"))
        assert set(state("0/d00_copy.png")) == {"unsaved: keep"}
        assert driver.find_element(By.CSS_SELECTOR, ".rv-local-total").text == "2"
        click(driver.find_element(By.ID, "rv-clear"))
        assert set(state("2/corrupt.png")) == {"pending: integrity"}
        assert driver.find_element(By.CSS_SELECTOR, ".rv-local-total").text == "0"
    finally:
        driver.execute_script("localStorage.clear();")


def test_tuning_trials_table_sorts(pages: dict[str, Opened], driver: Any) -> None:
    from selenium.webdriver.common.by import By

    show(driver, pages["tuning"])
    table = driver.find_elements(By.CSS_SELECTOR, "#trials details[open] table.sortable")[-1]
    col = [th.text for th in table.find_elements(By.CSS_SELECTOR, "thead th")].index(
        "val acc")
    def values() -> list[float]:
        return [float(v) for v in driver.execute_script(
            "return Array.from(arguments[0].tBodies[0].rows,"
            " r => r.cells[arguments[1]].textContent);", table, col)]
    before = values()
    table.find_elements(By.CSS_SELECTOR, "thead th")[col].click()
    assert values() == sorted(before)
    table.find_elements(By.CSS_SELECTOR, "thead th")[col].click()
    assert values() == sorted(before, reverse=True)


@pytest.mark.parametrize("kind", KINDS)
def test_user_data_is_text(pages: dict[str, Opened], driver: Any, kind: str) -> None:
    show(driver, pages[kind])
    own = len(re.findall(r"<script\b", (page.TEMPLATES / "page.html.j2").read_text()))
    scripts = driver.execute_script(
        "return Array.from(document.scripts, s => [s.src, s.parentNode.tagName]);")
    assert scripts == [["", "BODY"]] * own  # only the page's own inline script(s)
    assert driver.execute_script("return document.querySelectorAll('[onerror]').length") == 0
    text = driver.execute_script("return document.body.innerText;")
    assert HOSTILE_LABEL in text  # a class name: shown in both reports' class tables
    if kind == "audit":
        assert f"1/{HOSTILE_NAME}" in text
        # labels reach the SVG charts (axis labels, tooltips) as text, never as markup
        svg_text = driver.execute_script(
            "return Array.from(document.querySelectorAll('svg'),"
            " t => t.textContent).join('\\n');")
        assert HOSTILE_LABEL in svg_text
        assert driver.execute_script("return document.querySelectorAll('svg img').length") == 0


def test_missing_chromium_is_a_clear_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    # without the Debian packages the browser tests fail (never skip), saying what to install
    monkeypatch.setattr(browser, "CHROMIUM", "/nonexistent/chromium")
    with pytest.raises(RuntimeError, match=r"/nonexistent/chromium not found.*'chromium' "
                                           r"and 'chromium-driver' \(`make system-deps`"):
        with browser.open_browser():
            pass
