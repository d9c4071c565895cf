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


def test_explanation_page_renders_and_runs_no_injected_code(tmp_path):
    """Words coloured per method, the faithfulness table, and text that would run code if it
    were not escaped (an <img onerror> and a <script>) shown as text."""
    from supremum.explain.page import render

    words = ["<img src=x onerror=\"console.error('xss')\">", "<script>console.error('xss')</script>", "fine"]
    res = {"artifact": "a1", "lineage": "full", "methods": ["occlusion"],
           "skipped": {"integrated-gradients": "no"},
           "settings": {"aopc_percents": [1, 5, 10, 20, 50], "seeds": [0, 1]},
           "faithfulness": {"occlusion": {"comprehensiveness": 0.3, "sufficiency": 0.1,
                                          "comprehensiveness_vs_random": 2.0},
                            "random": {"comprehensiveness": {"mean": 0.15, "sd": 0.01},
                                       "sufficiency": {"mean": 0.2, "sd": 0.02}}},
           "examples": [{"words": words, "scores": {"occlusion": [0.2, -0.1, 0.4]}, "predicted": "pos",
                         "label": "neg", "probability": 0.8, "truncated_words": 0}]}
    page_path = tmp_path / "explanations.html"
    page_path.write_text(render(res), encoding="utf-8")
    errors = []
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page()
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(page_path.as_uri())
        body = page.inner_text("body")
        assert words[0] in body and words[1] in body and "(wrong)" in body and "2.00x" in body
        assert page.locator("img").count() == 0 and page.locator("script").count() == 0
        assert page.locator("span.w").count() == 3
        browser.close()
    assert errors == []
