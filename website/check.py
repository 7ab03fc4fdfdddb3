"""Open the built website (and slides) in a real headless browser with the network blocked.

    python website/check.py build/site/_build/html --screenshots build/site/screenshots
    python website/check.py build/site/_build/html --slides build/slides

The site is served from 127.0.0.1 by a throwaway HTTP server (as a teacher would with
``python -m http.server``) and every notebook page is also opened straight from disk
(``file://``, as a learner double-clicking index.html would). Any request for another host is
aborted *and* fails the check: an offline site must not even try the network. Checked:

* every notebook page: its figures loaded (``img.naturalWidth > 0``), its math typeset by
  MathJax (``mjx-container`` elements, no ``mjx-merror``), and no external request;
* the navigation lists every notebook in course order, then the teachers' and reference pages;
* search: searching "contrastive" finds the contrastive-pretraining notebook;
* the slides (optional): each deck starts reveal.js, typesets its math and loads its figures.

Uses Debian's chromium (``apt install chromium``) through playwright: no browser download.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import os
import threading
from contextlib import contextmanager
from pathlib import Path

CHROMIUM = os.environ.get("MMCOURSE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--no-sandbox",  # CI runs as root
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SEARCH_TERM, SEARCH_HIT = "contrastive", "06_contrastive_pretraining"
TIMEOUT_MS = 30_000


class SiteCheckError(AssertionError):
    """A check of the built site failed; the message says which page and what."""


@contextmanager
def serve(directory: Path):
    """Serve ``directory`` on 127.0.0.1 at a free port; yields the base URL."""
    handler = functools.partial(_QuietHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # no line per request
        pass


def _is_local(url: str) -> bool:
    return url.startswith(("file://", "data:", "blob:", "about:", "http://127.0.0.1"))


@contextmanager
def offline_browser():
    """A headless chromium page whose requests to any other host are aborted and recorded."""
    from playwright.sync_api import sync_playwright

    blocked: list[str] = []

    def route(request_route):
        url = request_route.request.url
        if _is_local(url):
            request_route.continue_()
        else:
            blocked.append(url)
            request_route.abort()

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        context.route("**/*", route)
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        try:
            yield page, blocked
        finally:
            browser.close()


_FIGURES_JS = """() => Array.from(document.querySelectorAll('main img, .slides img')).map(
    img => ({src: img.getAttribute('src').slice(0, 80),
             ok: img.complete && img.naturalWidth > 0}))"""


def _wait_for_mathjax3(page) -> None:
    page.wait_for_function("() => window.MathJax && MathJax.startup && MathJax.startup.promise")
    page.evaluate("() => MathJax.startup.promise")


def check_notebook_page(page, url: str, screenshot: Path | None = None) -> dict:
    """Figures loaded and math typeset on one notebook page; returns what was counted."""
    page.goto(url, wait_until="load")
    _wait_for_mathjax3(page)
    figures = page.evaluate(_FIGURES_JS)
    counts = page.evaluate(
        """() => ({math: document.querySelectorAll('.math').length,
                  typeset: document.querySelectorAll('mjx-container').length,
                  errors: Array.from(document.querySelectorAll('mjx-merror'))
                               .map(e => e.textContent.slice(0, 80)),
                  title: document.title})"""
    )
    broken = [f["src"] for f in figures if not f["ok"]]
    if broken:
        raise SiteCheckError(f"{url}: {len(broken)} figures did not load: {broken[:3]}")
    if counts["math"] and counts["typeset"] < counts["math"]:
        raise SiteCheckError(f"{url}: {counts['typeset']} of {counts['math']} formulas typeset")
    if counts["errors"]:
        raise SiteCheckError(f"{url}: MathJax could not typeset {counts['errors'][:3]}")
    if screenshot is not None:
        first_figure = page.locator("main img").first
        if first_figure.count():
            first_figure.scroll_into_view_if_needed()
        page.screenshot(path=str(screenshot))
    return {"figures": len(figures), **counts}


def check_navigation(page, base: str, notebooks: list[str]) -> list[str]:
    """The sidebar lists the notebooks in course order, then the teachers' and data pages."""
    page.goto(f"{base}/README.html", wait_until="load")
    links = page.evaluate(
        """() => Array.from(document.querySelectorAll('nav.bd-docs-nav a.reference'))
                     .map(a => a.getAttribute('href'))"""
    )
    pages = [link.split("#")[0].removesuffix(".html") for link in links]
    expected = [f"notebooks/{n}" for n in notebooks]
    course = [p for p in pages if p.startswith("notebooks/")]
    if course != expected:
        raise SiteCheckError(f"navigation: notebooks {course} differ from {expected}")
    for extra in ("docs/teacher-guide", "docs/claim-headroom", "docs/glossary", "data/README"):
        if extra not in pages:
            raise SiteCheckError(f"navigation: no link to {extra} in {pages}")
    return pages


def check_search(page, base: str, screenshot: Path | None = None) -> int:
    """Searching SEARCH_TERM lists the page SEARCH_HIT; returns the number of results."""
    page.goto(f"{base}/search.html?q={SEARCH_TERM}", wait_until="load")
    page.wait_for_selector("#search-results ul.search li")
    hits = page.evaluate(
        "() => Array.from(document.querySelectorAll('#search-results ul.search li a'))"
        ".map(a => a.getAttribute('href'))"
    )
    if not any(SEARCH_HIT in h for h in hits):
        raise SiteCheckError(f"search: '{SEARCH_TERM}' did not find {SEARCH_HIT}: {hits[:5]}")
    if screenshot is not None:
        page.screenshot(path=str(screenshot))
    return len(hits)


def check_deck(page, url: str, screenshot: Path | None = None) -> dict:
    """A slide deck: reveal.js started, MathJax 2 typeset, figures loaded."""
    page.goto(url, wait_until="load")
    page.wait_for_selector(".reveal.ready")
    page.wait_for_function(
        "() => window.MathJax && MathJax.Hub && MathJax.Hub.queue.pending === 0 "
        "&& MathJax.Hub.queue.running === 0"
    )
    figures = page.evaluate(_FIGURES_JS)
    counts = page.evaluate(
        """() => ({slides: document.querySelectorAll('.slides section').length,
                  typeset: document.querySelectorAll('.MathJax_CHTML').length,
                  errors: document.querySelectorAll('.MathJax_CHTML .mjx-merror, .MathJax_Error')
                                  .length})"""
    )
    broken = [f["src"] for f in figures if not f["ok"]]
    if broken:
        raise SiteCheckError(f"{url}: {len(broken)} figures did not load")
    if counts["errors"]:
        raise SiteCheckError(f"{url}: {counts['errors']} formulas failed to typeset")
    if screenshot is not None:
        page.screenshot(path=str(screenshot))
        # and the first slide with a figure, reached through reveal.js' #/h/v URLs
        where = page.evaluate(_FIRST_FIGURE_SLIDE_JS)
        if where:
            page.goto(f"{url}#/{where[0]}/{where[1]}", wait_until="load")
            page.wait_for_timeout(1500)  # the slide transition
            page.screenshot(path=str(screenshot.with_name(screenshot.stem + "_figure.png")))
    return {"figures": len(figures), **counts}


_FIRST_FIGURE_SLIDE_JS = """() => {
    const stacks = Array.from(document.querySelectorAll('.slides > section'));
    for (let h = 0; h < stacks.length; h++) {
        const inner = Array.from(stacks[h].querySelectorAll(':scope > section'));
        const parts = inner.length ? inner : [stacks[h]];
        for (let v = 0; v < parts.length; v++) {
            if (parts[v].querySelector('img')) return [h, v];
        }
    }
    return null;
}"""


def check_site(html: Path, screenshots: Path | None = None, slides: Path | None = None) -> dict:
    """Run every check; raises SiteCheckError on the first failure, else returns a report."""
    html = Path(html).resolve()
    notebooks = sorted(p.stem for p in (html / "notebooks").glob("*.html"))
    if not notebooks:
        raise SiteCheckError(f"html: no notebook pages in {html / 'notebooks'}")
    if screenshots is not None:
        screenshots.mkdir(parents=True, exist_ok=True)

    def shot(name):
        return None if screenshots is None else screenshots / name

    report: dict = {"pages": {}, "decks": {}}
    with offline_browser() as (page, blocked), serve(html) as base:
        page.goto(f"{base}/index.html", wait_until="load")  # redirects to README.html
        page.wait_for_url("**/README.html")
        if screenshots:
            page.screenshot(path=str(shot("home.png")))
        report["navigation"] = check_navigation(page, base, notebooks)
        for i, name in enumerate(notebooks):
            url = f"{base}/notebooks/{name}.html"
            report["pages"][name] = check_notebook_page(page, url, shot(f"page_{name}.png"))
            if i == 0:  # from disk too, as a learner opening the files directly
                report["file_url"] = check_notebook_page(
                    page, (html / "notebooks" / f"{name}.html").as_uri()
                )
        report["search_hits"] = check_search(page, base, shot("search.png"))
        page.goto(f"{base}/docs/glossary.html", wait_until="load")
        if screenshots:
            page.screenshot(path=str(shot("glossary.png")))
        if slides is not None:
            for deck in sorted(Path(slides).resolve().glob("*.slides.html")):
                name = deck.name.removesuffix(".slides.html")
                report["decks"][name] = check_deck(page, deck.as_uri(), shot(f"deck_{name}.png"))
        report["blocked"] = list(blocked)
    if report["blocked"]:
        raise SiteCheckError(f"the pages tried the network: {report['blocked'][:5]}")
    without_figures = [n for n, r in report["pages"].items() if not r["figures"]]
    without_math = [n for n, r in report["pages"].items() if not r["typeset"]]
    if len(without_figures) == len(notebooks) or len(without_math) == len(notebooks):
        raise SiteCheckError("no notebook page shows figures and math: were they executed?")
    report["without_figures"], report["without_math"] = without_figures, without_math
    return report


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("html", type=Path, help="the built site (build/site/_build/html)")
    parser.add_argument("--screenshots", type=Path, help="write PNG screenshots here")
    parser.add_argument("--slides", type=Path, help="also check the decks in this folder")
    args = parser.parse_args(argv)
    report = check_site(args.html, args.screenshots, args.slides)
    for kind in ("pages", "decks"):
        for name, counts in report[kind].items():
            print(
                f"  {kind[:-1]} {name}: {counts['figures']} figures, "
                f"{counts['typeset']} formulas typeset"
            )
    print(
        f"navigation: {len(report['navigation'])} pages; search '{SEARCH_TERM}': "
        f"{report['search_hits']} results; requests to other hosts: none"
    )
    if args.screenshots:
        print(f"screenshots in {args.screenshots}")
    print("site check passed: figures, math and search work with the network blocked")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
