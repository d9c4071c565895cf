"""The report renders in headless Chromium: no console errors, the plots present and visible,
and a screenshot saved (under $SUPREMUM_TEST_ARTIFACTS when set, else the test's tmp dir).
Skips, saying why, where Chromium or Playwright is missing; .ci/run installs both."""

import os
import shutil
from pathlib import Path

import pytest
from conftest import evaluated_pair, run_cli

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
playwright = pytest.importorskip("playwright.sync_api", reason="playwright is not installed "
                                 "(pip install playwright)")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH (apt-get install chromium)")


def test_report_renders_in_headless_chromium(csv_data, tmp_path):
    evaluated_pair(csv_data, tmp_path, "int8-dynamic")
    page_path = tmp_path / "report.html"
    run_cli("report", "--output", str(page_path), check=True)
    shots = Path(os.environ.get("SUPREMUM_TEST_ARTIFACTS", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    errors = []
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(page_path.as_uri())
        svgs = page.locator("svg")
        assert svgs.count() == 4
        for i in range(svgs.count()):
            box = svgs.nth(i).bounding_box()
            assert svgs.nth(i).is_visible() and box["width"] > 200 and box["height"] > 100
        assert page.locator("table").count() >= 1 and "full>int8-dynamic" in page.inner_text("body")
        page.screenshot(path=str(shots / "report.png"), full_page=True)
        browser.close()
    assert errors == []
    assert (shots / "report.png").stat().st_size > 10_000
