"""Review decisions end to end (issue 22), in one small git + DVC workspace:

1. in a real browser (headless Chromium, tests/browser.py): open the audit report,
   keep one flagged image, exclude another, relabel a third, reload (the choices are
   still there), download the decisions, ``dataqa review import`` them, ``dvc repro``:
   the gate (pending flags only, the waived ones by whom), the clean and quarantine
   tables and the next report reflect all three, and the page made no network request;
2. the same through ``dataqa review set`` on three other flagged images, with a rename
   of a decided image in between (the decision follows the content).

Of the 48 images, four are flagged by integrity and two by exact_duplicate; the gate
allows 2 pending integrity flags (rate 0.05) and 1 pending copy (0.03): it fails before
the first round of decisions and passes after each. Each ``dvc repro`` names its last
stage (``filter``, or ``subsample``: the data the tuning run trains on), so the tuning
run, not under test here, never runs.
"""

from __future__ import annotations

import io
import json
import shutil
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from PIL import Image, ImageDraw

from tests.pipeline.workspace import make_workspace, read_params, run, stages_run

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

OVERRIDES: dict[str, Any] = {
    "gate": {"max_rates": {"integrity": 0.05, "exact_duplicate": 0.03}},
    "report": {"gallery_size": 12, "thumb_size": 48},
}
NOTE = "=cmd()|' <b>not bold</b>"  # a formula for a spreadsheet, markup for a page


def digit_png(d: int, *, fmt: str = "PNG", seed: int = 7) -> bytes:
    img = Image.new("L", (28, 28), 0)  # seed: where the digit sits (distinct bytes)
    ImageDraw.Draw(img).text((9 + seed % 3, 6 + seed // 3), str(d), fill=230)
    buf = io.BytesIO()
    img.save(buf, fmt)
    return buf.getvalue()


def plant(source: Path, files: dict[str, bytes | str]) -> None:
    """rel path -> bytes, or the rel path of an existing file to copy (an exact copy)."""
    for rel, data in files.items():
        (source / rel).parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, str):
            shutil.copy2(source / data, source / rel)
        else:
            (source / rel).write_bytes(data)


# JPEG bytes named .png are flagged by integrity, a copy by exact_duplicate (the copy
# sorts after its original: the first by path is kept). Round 1 is decided in the
# report, round 2 in a terminal.
ROUND1 = {"0/d000_copy.png": "0/d000.png", "1/jpeg_a.png": digit_png(1, fmt="JPEG"),
          "0/jpeg_two.png": digit_png(2, fmt="JPEG")}
ROUND2 = {"2/d000_copy.png": "2/d000.png", "1/jpeg_b.png": digit_png(1, fmt="JPEG", seed=4),
          "0/jpeg_one.png": digit_png(1, fmt="JPEG", seed=5)}


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = make_workspace(tmp_path_factory.mktemp("review") / "ws", overrides=OVERRIDES)
    plant(root / "data" / "sample", {**ROUND1, **ROUND2})
    proc = run(["dvc", "repro", "filter"], root, check=False)
    assert proc.returncode != 0, "the gate should fail on the pending integrity flags"
    gate = json.loads((root / "reports" / "gate.json").read_text())
    assert gate["rules"]["max_rates.integrity"]["value"] == 4 / 48
    assert gate["rules"]["max_rates.exact_duplicate"]["passed"] is False
    assert gate["review"]["pending"] >= 6 and gate["review"]["waived"] == 0
    return root


def tables(root: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    p = read_params(root)["paths"]
    return (pd.read_parquet(root / p["clean"]).set_index("path"),
            pd.read_parquet(root / p["quarantine"]).set_index("path"))


def card(driver: Any, section: str, path: str) -> Any:
    """The review controls of ``path`` in the gallery of ``section``."""
    from selenium.webdriver.common.by import By

    for item in driver.find_elements(By.CSS_SELECTOR, f"#{section} .item"):
        if item.find_element(By.CSS_SELECTOR, ".path").text == path:
            return item.find_element(By.CSS_SELECTOR, ".rv")
    raise AssertionError(f"{path} not in #{section}")


def click(driver: Any, element: Any) -> None:
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", element)
    element.click()


def states(driver: Any) -> dict[str, str]:
    return driver.execute_script(
        "var out = {}; document.querySelectorAll('.item').forEach(function (i) {"
        " var p = i.querySelector('.path'), s = i.querySelector('.rv-state');"
        " if (p && s) { out[p.textContent] = s.textContent; } }); return out;")


def test_decide_in_the_browser_import_and_repro(ws: Path, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    from tests import browser

    if browser.missing_binaries():  # a failure, not a skip: `make test` installs them
        pytest.fail(browser.MISSING_HELP, pytrace=False)
    report = ws / "reports" / "audit.html"
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    with browser.open_browser(downloads=downloads) as driver:
        loaded = browser.load(driver, report)
        assert loaded.errors == [] and loaded.failures == []
        who = driver.find_element(By.ID, "rv-by")
        click(driver, who)
        who.send_keys("alice")
        driver.execute_script("arguments[0].dispatchEvent(new Event('change', {bubbles: true}))",
                              who)
        click(driver, card(driver, "gallery-exact_duplicate", "0/d000_copy.png")
              .find_element(By.CSS_SELECTOR, "button[data-act='keep']"))
        excl = card(driver, "gallery-integrity", "1/jpeg_a.png")
        note = excl.find_element(By.CSS_SELECTOR, ".rv-note")
        click(driver, note)
        note.send_keys(NOTE)
        click(driver, excl.find_element(By.CSS_SELECTOR, "button[data-act='exclude']"))
        rel = card(driver, "gallery-integrity", "0/jpeg_two.png")
        Select(rel.find_element(By.CSS_SELECTOR, "select[data-act='relabel']")) \
            .select_by_value("2")
        expected = {"0/d000_copy.png": "unsaved: keep",
                    "1/jpeg_a.png": f"unsaved: exclude \u2014 {NOTE}",
                    "0/jpeg_two.png": "unsaved: relabel to '2'"}
        assert {p: states(driver)[p] for p in expected} == expected
        # decided images move apart from the pending ones of their check
        decided = driver.execute_script(
            "return Array.from(document.querySelectorAll("
            "'#gallery-integrity [data-part=decided] .path'), e => e.textContent);")
        assert sorted(decided) == ["0/jpeg_two.png", "1/jpeg_a.png"]

        driver.refresh()  # the choices survive a reload (localStorage)
        assert {p: states(driver)[p] for p in expected} == expected
        counts = driver.execute_script(
            "return [document.querySelector('#review-table tr[data-check=integrity] "
            ".rv-pending').textContent, document.querySelector('.rv-local-total')"
            ".textContent];")
        assert counts == ["2", "3"]  # round 2 still pending; 3 unsaved choices

        click(driver, driver.find_element(By.ID, "rv-download"))
        for _ in range(50):
            got = list(downloads.glob("reviews-*.csv"))
            if got:
                break
            time.sleep(0.1)
        assert len(got) == 1, list(downloads.iterdir())
        seen = browser.requests_since(driver)
        assert [u[:80] for u in seen if not u.startswith(("file:", "data:", "blob:"))] == []
    downloaded = got[0]
    text = downloaded.read_text(encoding="utf-8")
    assert "'=cmd()" in text  # neutralised for spreadsheets

    proc = run(["dataqa", "review", "import", str(downloaded)], ws)
    assert "3 added" in proc.stdout
    saved = (ws / "reviews.csv").read_text(encoding="utf-8")
    assert saved.count("\n") == 4 and "alice" in saved and "'=cmd()" in saved

    # up to the training subsets (what tune trains on); the tuning run itself is not
    # under test here
    proc = run(["dvc", "repro", "subsample"], ws)
    ran = stages_run(proc.stdout + proc.stderr)
    assert {"audit", "report", "gate", "filter", "augment", "subsample"} <= set(ran)
    assert "crossval" not in ran and "scan" not in ran  # a decision retrains nothing
    gate = json.loads((ws / "reports" / "gate.json").read_text())
    assert gate["passed"] is True
    assert gate["review"]["waived_by"] == {"alice": 3}
    integrity = gate["rules"]["max_rates.integrity"]
    assert integrity["value"] == 2 / 48  # round 2's flags are still pending
    assert integrity["message"].endswith("(2 waived by review: alice 2)")
    clean, quarantine = tables(ws)
    assert clean.at["0/d000_copy.png", "decision"] == "keep"
    assert (clean.at["0/jpeg_two.png", "label"], clean.at["0/jpeg_two.png", "label_original"],
            bool(clean.at["0/jpeg_two.png", "relabelled"])) == ("2", "0", True)
    reason = quarantine.at["1/jpeg_a.png", "reason"]
    assert reason.startswith("review: excluded by review (alice")
    assert "1/jpeg_a.png" not in clean.index
    subsets = pd.concat([pd.read_parquet(f) for f in
                         (ws / read_params(ws)["paths"]["subsets_dir"]).glob("*.parquet")])
    assert set(subsets.loc[subsets["path"] == "0/jpeg_two.png", "label"]) == {"2"}
    assert "1/jpeg_a.png" not in set(subsets["path"])
    metrics = json.loads((ws / "reports" / "metrics.json").read_text())
    # images with a decision: the kept copy's original shares its bytes, so its decision
    assert metrics["review_decided"] == 4

    with browser.open_browser() as driver:  # the next report: decided, nothing unsaved
        loaded = browser.load(driver, report)
        assert loaded.errors == []
        now = states(driver)
        assert now["0/d000_copy.png"] == "decided: keep by alice"
        assert now["1/jpeg_a.png"] == f"decided: exclude by alice \u2014 {NOTE}"
        assert now["0/jpeg_two.png"] == "decided: relabel to '2' by alice"
        assert driver.execute_script("return document.querySelectorAll('.rv b').length") == 0
        assert driver.execute_script(
            "return document.querySelector('.rv-local-total').textContent") == "0"
        assert [u for u in loaded.requests if not u.startswith(("file:", "data:"))] == []


def test_decide_in_a_terminal_with_a_rename(ws: Path) -> None:
    source = ws / "data" / "sample"
    listed = run(["dataqa", "review", "list", "--pending"], ws).stdout.split()
    assert {"2/d000_copy.png", "1/jpeg_b.png", "0/jpeg_one.png"} <= set(listed)
    assert not {"0/d000_copy.png", "1/jpeg_a.png", "0/jpeg_two.png"} & set(listed)
    run(["dataqa", "review", "set", "2/d000_copy.png", "--keep", "--by", "bob"], ws)
    # the file's own path works as well as the report's
    run(["dataqa", "review", "set", str(source / "1" / "jpeg_b.png"), "--exclude",
         "--note", "blurry scan", "--by", "bob"], ws)
    run(["dataqa", "review", "set", "0/jpeg_one.png", "--relabel", "1", "--by", "bob"], ws)
    bad = run(["dataqa", "review", "set", "0/jpeg_one.png", "--relabel", "nine"], ws,
              check=False)
    assert bad.returncode == 2 and "not a class" in bad.stderr and "Traceback" not in bad.stderr
    # a decided image renamed before the pipeline sees the decisions
    (source / "1" / "jpeg_b.png").rename(source / "1" / "renamed.png")
    proc = run(["dvc", "repro", "filter"], ws)
    assert "scan" in stages_run(proc.stdout + proc.stderr)  # the source changed
    gate = json.loads((ws / "reports" / "gate.json").read_text())
    assert gate["passed"] is True
    assert gate["review"]["waived_by"] == {"alice": 3, "bob": 3}
    assert gate["rules"]["max_rates.integrity"]["value"] == 0
    clean, quarantine = tables(ws)
    # the person's reason first; the policy's own reasons follow
    assert quarantine.at["1/renamed.png", "reason"].startswith(
        "review: excluded by review (bob, 'blurry scan')")
    assert (clean.at["0/jpeg_one.png", "label"], clean.at["0/jpeg_one.png", "label_original"]) \
        == ("1", "0")
    assert clean.at["2/d000_copy.png", "decision"] == "keep"
    out = run(["dataqa", "review", "list"], ws).stdout
    assert "decided: 8" in out  # 6 decisions; two copies share their original's
    html = (ws / "reports" / "audit.html").read_text(encoding="utf-8")
    assert "decided: exclude by bob" in html and "1/renamed.png" in html
