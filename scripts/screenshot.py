"""Screenshot an HTML report in headless Chromium (the README's report picture).

    python scripts/screenshot.py REPORT.html OUT.png [--width 1280] [--height 1000] [--full]
        [--element CSS] [--before JS]

Uses the browser test's Chromium set-up (``tests/browser.py``: Debian's ``chromium`` and
``chromium-driver``, offline flags). Without ``--full`` the picture is the top of the
page, ``--width`` x ``--height`` CSS pixels; with it, the whole page; with ``--element``,
the box of the first element matching the CSS selector (at most ``--height`` tall).
``--before`` runs a script in the page first (e.g. clicking a review control). Exits 1 when the page
logs a console error or requests anything but ``file:``/``data:`` URLs, 2 when Chromium
is missing.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # the Chromium helper shared with the tests

import browser  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("report", type=Path, help="HTML file to open")
    ap.add_argument("out", type=Path, help="PNG file to write")
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--height", type=int, default=1000, help="pixels of the top view")
    ap.add_argument("--full", action="store_true", help="the whole page, not its top")
    ap.add_argument("--element", help="CSS selector: picture that element only")
    ap.add_argument("--before", help="JavaScript to run in the page before the picture")
    args = ap.parse_args(argv)
    if not args.report.is_file():
        print(f"screenshot: {args.report}: not found", file=sys.stderr)
        return 2
    try:
        with browser.open_browser(width=args.width, height=args.height) as driver:
            loaded = browser.load(driver, args.report)
            if args.before:
                driver.execute_script(args.before)
            if args.element:
                browser.screenshot_element(driver, args.element, args.out,
                                           height=args.height)
            else:
                browser.screenshot(driver, args.out,
                                   height=None if args.full else args.height)
    except RuntimeError as exc:  # Chromium or chromedriver missing
        print(f"screenshot: {exc}", file=sys.stderr)
        return 2
    outside = [u for u in loaded.requests if not u.startswith(("file:", "data:"))]
    for problem in loaded.errors + loaded.failures + [f"external request: {u}"
                                                      for u in outside]:
        print(f"screenshot: {args.report}: {problem}", file=sys.stderr)
    print(f"screenshot: {args.out}")
    return 1 if loaded.errors or loaded.failures or outside else 0


if __name__ == "__main__":
    raise SystemExit(main())
