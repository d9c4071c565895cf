"""The docs: README.md is the front door (short, every link resolves) and docs/ builds with
`mkdocs build --strict`, so a broken link, a broken anchor or a page missing from nav fails."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README_MAX_LINES = 250
# [text](target) and ![alt](target), not inside code; the target up to a space, ')' or '#'.
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s#>]*)(#[^)\s>]*)?>?(?:\s+\"[^\"]*\")?\s*\)")
FENCE = re.compile(r"^(```|~~~).*?^\1", re.S | re.M)
CODE_SPAN = re.compile(r"`[^`\n]*`")


def relative_links(text: str) -> list[str]:
    """Link targets in markdown `text` that point into the repository (no scheme, no bare
    anchor), outside fenced code blocks and code spans."""
    text = CODE_SPAN.sub("", FENCE.sub("", text))
    targets = [m.group(1) for m in LINK.finditer(text)]
    return [t for t in targets if t and not re.match(r"^[a-z][a-z0-9+.-]*:", t, re.I)]


def broken_links(path: Path) -> list[str]:
    return [t for t in relative_links(path.read_text(encoding="utf-8"))
            if not (path.parent / t).exists()]


def docs_pages() -> list[Path]:
    return sorted((ROOT / "docs").rglob("*.md"))


def test_relative_links_finds_links_and_skips_code_and_urls():
    text = ("see [a](docs/a.md) and [b](docs/b.md#part), ![img](pic.png) and [site](https://x.org/y)\n"
            "`[not](code.md)` and [top](#anchor)\n```\n[fenced](fenced.md)\n```\n")
    assert relative_links(text) == ["docs/a.md", "docs/b.md", "pic.png"]


def test_broken_links_reports_a_missing_target(tmp_path):
    (tmp_path / "there.md").write_text("x")
    page = tmp_path / "page.md"
    page.write_text("[ok](there.md) [gone](missing.md#x)")
    assert broken_links(page) == ["missing.md"]


def test_readme_is_the_front_door():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) < README_MAX_LINES, f"README.md has {len(lines)} lines; move reference text to docs/"


def test_every_relative_link_in_readme_and_docs_resolves():
    pages = [ROOT / "README.md", *docs_pages()]
    assert len(pages) > 20  # the docs exist (a glob that found nothing would pass vacuously)
    broken = {str(p.relative_to(ROOT)): b for p in pages if (b := broken_links(p))}
    assert broken == {}


def test_readme_links_into_docs():
    targets = relative_links((ROOT / "README.md").read_text(encoding="utf-8"))
    for page in ("docs/design.md", "docs/commands/index.md", "docs/benchmarks/index.md", "docs/errors.md"):
        assert page in targets, f"README.md does not link to {page}"


needs_mkdocs = pytest.mark.skipif(
    importlib.util.find_spec("mkdocs") is None or importlib.util.find_spec("material") is None,
    reason="mkdocs / mkdocs-material not installed (they are in the dev extra: pip install -e '.[dev]')")


def mkdocs_build(root: Path, site: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site),
                           "--config-file", str(root / "mkdocs.yml")],
                          cwd=root, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})


@needs_mkdocs
def test_mkdocs_build_strict(tmp_path):
    res = mkdocs_build(ROOT, tmp_path / "site")
    assert res.returncode == 0, res.stderr[-3000:]
    for page in ("index.html", "design/index.html", "commands/finetune/index.html", "errors/index.html"):
        assert (tmp_path / "site" / page).is_file(), page


@needs_mkdocs
def test_mkdocs_strict_fails_on_a_broken_link_anchor_or_unlisted_page(tmp_path):
    # Each kind of fault must fail the build, or the passing build above proves nothing; strict
    # mode reports every warning before it aborts, so one build checks all three.
    shutil.copytree(ROOT / "docs", tmp_path / "docs")
    shutil.copy(ROOT / "mkdocs.yml", tmp_path / "mkdocs.yml")
    (tmp_path / "docs" / "orphan.md").write_text("# not in nav\n")
    with (tmp_path / "docs" / "index.md").open("a") as f:
        f.write("\n[broken](missing.md) and [broken anchor](design.md#no-such-heading)\n")
    res = mkdocs_build(tmp_path, tmp_path / "site")
    assert res.returncode != 0
    for fault in ("missing.md", "no-such-heading", "orphan.md"):
        assert fault in res.stderr, fault
