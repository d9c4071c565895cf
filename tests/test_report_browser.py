"""The report as a person sees it, in headless Chromium: for a classifier store (with calibration
and explanations), a causal-LM store (with forgetting) and a scale-sweep store, at 1300 px and at
390 px (a phone): no console errors, no page that scrolls sideways, no text outside its box, no
plot label outside its plot or too small to read (under 7 px), and a screenshot of each saved
(under $SUPREMUM_TEST_ARTIFACTS when set, else the test's tmp dir). The stores built by training
are slow (minutes on two shared cores); the one from hand-made records is not. Skips, saying why,
where Chromium or Playwright is missing; .ci/run installs both."""

import os
import random
import re
import shutil
from pathlib import Path

import pytest
from conftest import run_cli

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
playwright = pytest.importorskip("playwright.sync_api", reason="playwright is not installed "
                                 "(pip install playwright)")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH (apt-get install chromium)")
WIDTHS = (1300, 390)

#: what a reader would call broken, found in the page: [] when nothing is
LAYOUT = """() => {
  const W = document.documentElement.clientWidth, bad = [];
  const out = (r, b) => r.left < b.left - 1 || r.right > b.right + 1 || r.top < b.top - 1
    || r.bottom > b.bottom + 1;
  const what = el => `${el.tagName.toLowerCase()} "${el.textContent.trim().slice(0, 50)}"`;
  if (document.documentElement.scrollWidth > W + 1)
    bad.push(`the page scrolls sideways: ${document.documentElement.scrollWidth} px wide in ${W}`);
  for (const el of document.querySelectorAll('h1,h2,h3,p,li,dt,dd,figcaption,figure,table,section')) {
    const r = el.getBoundingClientRect();
    if (r.left < -1 || r.right > W + 1) bad.push(`${what(el)} spans ${r.left}..${r.right} of ${W} px`);
    if (!['TABLE', 'FIGURE'].includes(el.tagName) && el.scrollWidth > el.clientWidth + 1)
      bad.push(`${what(el)} overflows its box (${el.scrollWidth} > ${el.clientWidth} px)`);
  }
  for (const svg of document.querySelectorAll('svg')) {
    const b = svg.getBoundingClientRect();
    if (b.width < 300 || b.height < 100) bad.push(`plot ${svg.id} is ${b.width}x${b.height} px`);
    for (const t of svg.querySelectorAll('g[id*="text_"]')) {
      const r = t.getBoundingClientRect();
      if (r.width && out(r, b)) bad.push(`label ${t.id} "${t.textContent.trim()}" leaves its plot`);
      if (r.width && r.height < 7) bad.push(`label ${t.id} is ${r.height.toFixed(1)} px tall: too small to read`);
    }
  }
  return bad;
}"""


def look(page_path: Path, name: str, tmp_path: Path) -> dict[int, str]:
    """Render at each width; assert nothing is broken; save the screenshots. Returns the page text."""
    shots = Path(os.environ.get("SUPREMUM_TEST_ARTIFACTS", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    texts = {}
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        for width in WIDTHS:
            errors = []
            page = browser.new_page(viewport={"width": width, "height": 900})
            page.on("console", lambda m, errors=errors: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e, errors=errors: errors.append(str(e)))
            page.goto(page_path.as_uri())
            assert page.evaluate(LAYOUT) == [], f"{name} at {width} px"
            shot = shots / f"report-{name}-{width}px.png"
            page.screenshot(path=str(shot), full_page=True)
            assert errors == [] and shot.stat().st_size > 10_000
            texts[width] = page.inner_text("body")
            page.close()
        browser.close()
    return texts


def classifier_store(data: Path, tmp_path: Path) -> None:
    """A tiny fine-tune, its int8 compression, both evaluated with speed; the fine-tune calibrated and
    evaluated; the compression's explanations against its parent."""
    from supremum import api

    ft = api.finetune({"model": {"name": "tiny-bert"}, "data": {"path": str(data)}, "output": str(tmp_path / "ft"),
                       "train": {"max_steps": 10, "lr": 3e-3}})
    q = api.compress(ft.artifact, "int8-dynamic", output=tmp_path / "q")
    for a in (ft.artifact, q):
        api.evaluate(a, config={"repeats": 3})
    cal = api.calibrate(ft.artifact, output=tmp_path / "cal")
    for a in (ft.artifact, cal):  # dev is what T was fitted on; test is held out
        api.evaluate(a, config={"speed": False, "split": "test"})
    api.evaluate(cal, config={"speed": False})
    run_cli("explain", str(q.path), "--data", str(data), "--limit", "4", "--methods", "occlusion",
            "--seeds", "0,1", "--against", str(ft.artifact.path), check=True)


def lm_store(tmp_path: Path) -> None:
    """A tiny causal LM fine-tuned on a few lines, its int8 compression, both scored on reference text."""
    from supremum import api

    rng = random.Random(0)
    words = "the king shall speak of love and war to thee my lord".split()
    corpus, ref = tmp_path / "corpus.txt", tmp_path / "reference.txt"
    corpus.write_text("\n".join(" ".join(rng.choice(words) for _ in range(6)) + "." for _ in range(200)) + "\n")
    ref.write_text("\n".join(" ".join(rng.choice(words[::-1]) for _ in range(9)) for _ in range(40)) + "\n")
    ft = api.finetune({"model": {"name": "tiny-llama"}, "data": {"path": str(corpus), "max_length": 32},
                       "output": str(tmp_path / "ft"), "train": {"max_steps": 8, "batch_size": 8, "lr": 3e-3}})
    q = api.compress(ft.artifact, "int8-dynamic", output=tmp_path / "q")
    for a in (ft.artifact, q):
        api.evaluate(a, config={"split": "test", "new_tokens": 8, "gen_repeats": 1, "reference_data": str(ref),
                                "reference_tokens": 256})


TINY_SWEEP = ["scale", "--source", "markov:order=1,vocab=6,seed=2", "--sizes", "d8L1,d16L1,d16L2",
              "--tokens", "4096,8192,16384", "--ctx", "16", "--batch-tokens", "128", "--eval-tokens", "2048",
              "--bootstrap", "20", "--jobs", "2", "--name", "tiny", "--plateau", "0"]


def test_every_section_fits_a_desktop_and_a_phone(tmp_path):
    """Without training: a demo pipeline's evaluations (three frontier plots, the variants table),
    a calibration, explanations and a long unbroken data path, at both widths."""
    from test_report import DEMO, record
    from test_report_sections import calibrated_store, explain_run

    from supremum.frontier.report import write_report

    store = calibrated_store()
    long = "/data/" + "a_very_long_directory_name_without_spaces_" * 3 + "/sst2.csv"  # no place to break
    for row in DEMO:
        record(store, *row, extra={"data": long})
    explain_run(store, "ex1", "full-int8-demo-art")
    page_path = write_report(tmp_path / "report.html", store=store)
    texts = look(page_path, "sections", tmp_path)
    assert "Temperature scaling of full (T = 1.83) cut test ECE on sst2.csv from 4.1% to 0.9%" in texts[390]
    assert "On full-int8, occlusion is the most faithful of 2 methods" in texts[390]


@pytest.mark.slow
def test_classifier_report_as_a_person_sees_it(csv_data, tmp_path):
    classifier_store(csv_data, tmp_path)
    page_path = tmp_path / "report.html"
    run_cli("report", "--output", str(page_path), check=True)
    texts = look(page_path, "classifier", tmp_path)
    for text in texts.values():
        assert "Which variant to ship" in text and "Temperature scaling of full (T = " in text
        # the data set is named since the calibration sentence says where ECE was measured
        assert re.search(r" test ECE on \S+ from ", text) and "full fine-tune → PyTorch int8 (dynamic)" in text
        assert "On full>int8-dynamic, " in text


@pytest.mark.slow
def test_causal_lm_report_as_a_person_sees_it(tmp_path):
    lm_store(tmp_path)
    page_path = tmp_path / "report.html"
    run_cli("report", "--output", str(page_path), check=True)
    texts = look(page_path, "causal-lm", tmp_path)
    ref = tmp_path / "reference.txt"
    assert "decode ms/token" in texts[390] and "Forgetting: perplexity on general text" in texts[390]
    assert "Most forgetting: full" in texts[390] or f"No variant got worse on {ref}" in texts[390]


@pytest.mark.slow
def test_scale_report_as_a_person_sees_it(tmp_path):
    run_cli(*TINY_SWEEP, check=True)
    page_path = tmp_path / "report.html"
    run_cli("report", "--output", str(page_path), check=True)
    texts = look(page_path, "scale", tmp_path)
    assert "Is there a limit? markov source" in texts[390] and "The loss approaches E = " in texts[390]


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
