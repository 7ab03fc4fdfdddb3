"""The course website and slides (website/): staged sources, offline decks, and the browser check.

The browser check needs a built site (`make site`), chromium (`apt install chromium`) and
playwright (the [site] extra); it is skipped, saying which is missing, when one is not there.
"""

import importlib.util
import json
import re
import shutil
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from mmcourse.links import offline_markdown

ROOT = Path(__file__).resolve().parents[1]
WEBSITE = ROOT / "website"
SITE_HTML = ROOT / "build" / "site" / "_build" / "html"
SLIDES = ROOT / "build" / "slides"
NPM = WEBSITE / "node_modules"


def _load(name):
    spec = importlib.util.spec_from_file_location(f"website_{name}", WEBSITE / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


stage = _load("stage")


@pytest.fixture
def fake_npm(tmp_path):
    es5 = tmp_path / "npm" / "mathjax" / "es5"
    (es5 / "output" / "chtml").mkdir(parents=True)
    (es5 / "tex-chtml.js").write_text("// MathJax")
    (es5 / "output" / "chtml" / "fonts.js").write_text("// fonts")
    return tmp_path / "npm"


def test_toc_lists_every_notebook_in_course_order_then_the_guides():
    toc = stage.toc_yaml(["00_a.ipynb", "01_b.ipynb", "10_c.ipynb"])
    files = re.findall(r"- file: (\S+)", toc)
    assert files == [
        "notebooks/00_a",
        "notebooks/01_b",
        "notebooks/10_c",
        "docs/teacher-guide",
        "docs/claim-headroom",
        "docs/glossary",
        "data/README",
    ]
    assert "root: README" in toc


def test_course_notebooks_are_found_by_glob_in_order():
    names = stage.course_notebooks()
    assert names == sorted(p.name for p in (ROOT / "notebooks").glob("[0-9]*.ipynb"))
    assert names[0].startswith("00_")


def test_badges_become_their_link_text_and_other_images_stay():
    text = "[![Binder](https://mybinder.org/badge_logo.svg)](https://x) ![fig](local.png)"
    assert offline_markdown(text) == "[Binder](https://x) ![fig](local.png)"


def test_staging_mirrors_the_repository_so_relative_links_work(tmp_path, fake_npm):
    out = tmp_path / "src"
    stage.stage(ROOT / "notebooks", fake_npm, out)  # unexecuted copies stand in for executed
    assert (out / "_extra" / "mathjax" / "tex-chtml.js").is_file()
    assert (out / "_config.yml").is_file() and (out / "_toc.yml").is_file()
    pages = [out / "README.md"] + [out / p for p in stage.TEACHING_PAGES + stage.REFERENCE_PAGES]
    pages += sorted((out / "notebooks").glob("*.ipynb"))
    broken = []
    for page in pages:
        text = page.read_text(encoding="utf-8")
        if page.suffix == ".ipynb":  # links live in the markdown cells
            cells = json.loads(text)["cells"]
            text = "".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
        for target in re.findall(r"\]\(([^)#\s]+\.(?:md|ipynb))(?:#[^)]*)?\)", text):
            if "://" not in target and not (page.parent / target).resolve().is_file():
                broken.append(f"{page.relative_to(out)} -> {target}")
    assert not broken, f"links to pages the site lacks: {broken}"
    assert "mybinder.org/badge_logo.svg" not in (out / "README.md").read_text(encoding="utf-8")
    for page in sorted((out / "notebooks").glob("*.ipynb")):  # the Open-in-Colab badge image
        assert "colab-badge.svg" not in page.read_text(encoding="utf-8"), page.name


def test_staging_is_incremental_and_removes_stale_files(tmp_path, fake_npm):
    out = tmp_path / "src"
    stage.stage(ROOT / "notebooks", fake_npm, out)
    readme = out / "README.md"
    stamp = readme.stat().st_mtime_ns
    (out / "notebooks" / "99_removed.ipynb").write_text("{}")
    stage.stage(ROOT / "notebooks", fake_npm, out)
    assert readme.stat().st_mtime_ns == stamp, "an unchanged page was rewritten"
    assert not (out / "notebooks" / "99_removed.ipynb").exists()


def test_staging_names_what_is_missing(tmp_path, fake_npm):
    with pytest.raises(FileNotFoundError, match="executed: .*make execute"):
        stage.stage(tmp_path / "nothing", fake_npm, tmp_path / "src")
    with pytest.raises(FileNotFoundError, match="npm: .*npm ci"):
        stage.stage(ROOT / "notebooks", tmp_path / "no_npm", tmp_path / "src")


needs_npm = pytest.mark.skipif(
    not (NPM / "reveal.js").is_dir(), reason="website/node_modules missing: run `make slides`"
)


@needs_npm
def test_a_deck_loads_nothing_from_the_network(tmp_path):
    export_slides = _load("export_slides")
    nb = new_notebook(
        cells=[
            new_markdown_cell("# 99 · A deck\n\nGoals: $x^2$, $(B, \\text{out\\_dim})$"),
            new_markdown_cell("## 1 · A figure"),
            new_code_cell("plt.plot([1, 2])  # SHORTPLOT", outputs=[]),
            new_code_cell("\n".join(["plt.figure()"] + ["plt.plot([0])"] * 12 + ["# LONGPLOT"])),
        ]
    )
    nb.cells[2].outputs = [new_output("display_data", data={"image/png": "iVBORw0KGgo="})]
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}}}
    path = tmp_path / "99_deck.ipynb"
    nbformat.write(nb, path)
    out = tmp_path / "slides"
    [deck] = export_slides.export([path], out, NPM)
    html = deck.read_text(encoding="utf-8")
    loads = re.findall(r'<(?:script|link)[^>]*(?:src|href)="([^"]+)"', html)
    loads += re.findall(r'^\s*"(lib/[^"]+)",?$', html, flags=re.MULTILINE)  # require([...])
    assert len(loads) >= 6
    for url in loads:
        assert "://" not in url, f"{url} is not local"
        local = url.split("?")[0]
        assert (out / (local if local.endswith((".js", ".css")) else local + ".js")).is_file()
    assert "SHORTPLOT" in html and "LONGPLOT" not in html  # only long plotting code hidden
    assert "mermaid" not in html and "embed-amd" not in html  # the CDN-only loaders are gone
    assert "<title>99 · A deck slides</title>" in html
    assert "\\text{out_dim}" in html  # MathJax 2 would print the backslash of \_
    assert '<a href="99_deck.slides.html">99 · A deck</a>' in (out / "index.html").read_text()
    assert json.loads(path.read_text())["cells"][0]["metadata"] == {}  # input untouched


def _browser_missing():
    try:
        import playwright  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install -e '.[site]')"
    chromium = _load("check").CHROMIUM
    if not shutil.which(chromium) and not Path(chromium).is_file():
        return f"no chromium at {chromium} (apt install chromium, or set MMCOURSE_CHROMIUM)"
    if not (SITE_HTML / "index.html").is_file():
        return f"the site is not built ({SITE_HTML}): run `make site`"
    return None


@pytest.mark.skipif(_browser_missing() is not None, reason=str(_browser_missing()))
def test_the_built_site_works_offline_in_a_real_browser(tmp_path):
    check = _load("check")
    slides = SLIDES if any(SLIDES.glob("*.slides.html")) else None
    report = check.check_site(SITE_HTML, tmp_path / "shots", slides)
    assert report["blocked"] == []
    assert report["search_hits"] >= 1
    pages = report["pages"]
    assert len(pages) == len(stage.course_notebooks())
    assert sum(p["figures"] for p in pages.values()) >= len(pages)  # figures on the pages
    assert sum(p["typeset"] for p in pages.values()) > 0
    assert report["file_url"]["typeset"] > 0  # math also from file://, without a server
    assert (tmp_path / "shots" / "search.png").is_file()
