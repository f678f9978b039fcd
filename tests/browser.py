"""Headless Chromium for the report tests and ``scripts/screenshot.py``.

Debian's ``chromium`` driven through Debian's ``chromium-driver`` by Selenium, never a
downloaded browser: :func:`open_browser` names both binaries explicitly, so Selenium
Manager has nothing to fetch. The browser logs every console message (``browser`` log)
and every DevTools network event (``performance`` log), which is how the tests see
console errors and every URL a page requests.
"""

from __future__ import annotations

import base64
import json
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dataqa.io import write_bytes

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
MISSING_HELP = ("headless Chromium is needed to test the HTML reports in a browser: install "
                "the Debian packages 'chromium' and 'chromium-driver' (`make system-deps`, "
                "as root, or `apt-get install chromium chromium-driver`)")

# Flags for a root user in a container: no sandbox (needs user namespaces), no GPU, /tmp
# instead of a small /dev/shm, and nothing that phones home (QUIC, component updates,
# sync, background networking), so any network request seen comes from the page.
FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
         "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--hide-scrollbars",
         "--force-device-scale-factor=1")


def missing_binaries() -> list[str]:
    """Paths of the Chromium binaries that are not installed (empty when both are)."""
    return [p for p in (CHROMIUM, CHROMEDRIVER) if shutil.which(p) is None]


@contextmanager
def open_browser(*, width: int = 1280, height: int = 900,
                 downloads: Path | None = None) -> Iterator[Any]:
    """A Selenium ``webdriver.Chrome`` on a fresh profile, closed (and its profile
    removed) on exit; files a page downloads go to ``downloads`` (when given). Raises
    RuntimeError naming the Debian packages when missing."""
    missing = missing_binaries()
    if missing:
        raise RuntimeError(f"{', '.join(missing)} not found; {MISSING_HELP}")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="dataqa-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    if downloads is not None:
        options.add_experimental_option("prefs", {
            "download.default_directory": str(downloads),
            "download.prompt_for_download": False})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    try:
        driver.set_page_load_timeout(60)
        driver.execute_cdp_cmd("Network.enable", {})
        if downloads is not None:
            driver.execute_cdp_cmd("Browser.setDownloadBehavior", {
                "behavior": "allow", "downloadPath": str(downloads)})
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@dataclass
class PageLoad:
    """What loading one page produced: console messages and network requests."""

    console: list[dict[str, Any]]  # Selenium 'browser' log entries: level, message
    requests: list[str]  # every URL the page asked for (Network.requestWillBeSent)
    failures: list[str]  # 'URL: error' per request that failed (Network.loadingFailed)

    @property
    def errors(self) -> list[str]:
        return [e["message"] for e in self.console if e.get("level") == "SEVERE"]


def load(driver: Any, path: Path) -> PageLoad:
    """Open ``path`` (a local HTML file), wait until it has loaded, and collect the
    console messages and the network requests it made (logs are drained first, so
    only this page's entries count)."""
    driver.get_log("browser")
    driver.get_log("performance")
    driver.get(path.resolve().as_uri())
    driver.execute_async_script(  # wait for images too (readyState 'complete')
        "var done = arguments[0];"
        "if (document.readyState === 'complete') { done(); }"
        "else { window.addEventListener('load', function () { done(); }); }")
    requests: list[str] = []
    failed: dict[str, str] = {}
    urls: dict[str, str] = {}
    for entry in driver.get_log("performance"):
        msg = json.loads(entry["message"])["message"]
        params = msg.get("params", {})
        if msg.get("method") == "Network.requestWillBeSent":
            url = params["request"]["url"]
            urls[params["requestId"]] = url
            requests.append(url)
        elif msg.get("method") == "Network.loadingFailed":
            failed[params["requestId"]] = params.get("errorText", "failed")
    failures = [f"{urls.get(rid, rid)[:200]}: {err}" for rid, err in failed.items()]
    return PageLoad(driver.get_log("browser"), requests, failures)


def requests_since(driver: Any) -> list[str]:
    """Every URL requested since the performance log was last read (e.g. while a test
    clicked through a page), draining the log."""
    out = []
    for entry in driver.get_log("performance"):
        msg = json.loads(entry["message"])["message"]
        if msg.get("method") == "Network.requestWillBeSent":
            out.append(msg["params"]["request"]["url"])
    return out


def screenshot(driver: Any, out: Path, *, height: int | None = None) -> Path:
    """PNG of the whole page (``height`` None) or of its top ``height`` CSS pixels, at
    the page's full width (``captureBeyondViewport``: not limited to the window)."""
    w, h = driver.execute_script(
        "var e = document.documentElement;"
        "return [Math.max(e.scrollWidth, e.clientWidth), e.scrollHeight];")
    clip = {"x": 0, "y": 0, "width": w, "height": h if height is None else min(h, height),
            "scale": 1}
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {
        "format": "png", "captureBeyondViewport": True, "clip": clip})
    write_bytes(out, base64.b64decode(shot["data"]))
    return out


def screenshot_element(driver: Any, selector: str, out: Path, *,
                       height: int | None = None) -> Path:
    """PNG of the box of the first element matching ``selector`` (its top ``height``
    CSS pixels when given); RuntimeError when nothing matches."""
    box = driver.execute_script(
        "var e = document.querySelector(arguments[0]); if (!e) { return null; }"
        "var r = e.getBoundingClientRect();"
        "return [r.left + window.scrollX, r.top + window.scrollY, r.width, r.height];",
        selector)
    if box is None:
        raise RuntimeError(f"no element matches {selector!r}")
    x, y, w, h = box
    clip = {"x": x, "y": y, "width": w, "height": h if height is None else min(h, height),
            "scale": 1}
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {
        "format": "png", "captureBeyondViewport": True, "clip": clip})
    write_bytes(out, base64.b64decode(shot["data"]))
    return out
