"""Export each notebook as a static reveal.js deck that works offline.

    python website/export_slides.py --out build/slides build/executed/*.ipynb

Each notebook gets the slide metadata of ``mmcourse.slides`` (in memory: the input files are not
changed) and is exported by nbconvert's SlidesExporter to ``<out>/<name>.slides.html``. By
default those pages load reveal.js, jQuery, require.js and MathJax from CDNs; here they load
local copies from the npm packages in website/node_modules, copied to ``<out>/lib/`` so that
the folder can be zipped and opened anywhere. ``<out>/index.html`` lists the decks.
"""

from __future__ import annotations

import argparse
import html
import re
import shutil
from pathlib import Path

import nbformat
from nbconvert import SlidesExporter
from traitlets.config import Config

from mmcourse import slides
from mmcourse.links import offline_markdown

WEBSITE = Path(__file__).resolve().parent

# lib/<name>/ <- node_modules/<package>/<paths>: only what the decks load.
ASSETS = {
    "reveal.js": ("reveal.js", ["dist", "plugin/notes", "LICENSE"]),
    "jquery": ("jquery", ["dist/jquery.min.js", "LICENSE.txt"]),
    "requirejs": ("requirejs", ["require.js"]),
    "mathjax": (
        "mathjax2",
        [
            "MathJax.js",
            "config/TeX-AMS_CHTML-full.js",
            "config/Safe.js",
            "extensions",
            "jax/input/TeX",
            "jax/output/CommonHTML",
            "jax/element",
            "fonts/HTML-CSS/TeX/woff",
            "localization/en",
            "LICENSE",
        ],
    ),
}

# Relative to the decks (they sit next to lib/), so the folder works from file:// or a server.
URLS = {
    "reveal_url_prefix": "lib/reveal.js",
    "jquery_url": "lib/jquery/dist/jquery.min.js",
    "require_js_url": "lib/requirejs/require.js",
    "mathjax_url": "lib/mathjax/MathJax.js?config=TeX-AMS_CHTML-full,Safe",
}


def copy_assets(npm: Path, lib: Path) -> int:
    """Copy the decks' browser libraries from node_modules to lib/; returns bytes copied."""
    total = 0
    for name, (package, paths) in ASSETS.items():
        for rel in paths:
            src, dst = npm / package / rel, lib / name / rel
            if not src.exists():
                raise FileNotFoundError(f"npm: {src} is missing; run `npm ci` in website/")
            if src.is_dir():
                shutil.copytree(src, dst, dirs_exist_ok=True)
                total += sum(f.stat().st_size for f in dst.rglob("*") if f.is_file())
            else:
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, dst)
                total += dst.stat().st_size
    return total


def exporter() -> SlidesExporter:
    """nbconvert's SlidesExporter with local URLs, the offline template and scrolling slides."""
    config = Config()
    config.SlidesExporter.update(URLS)
    config.SlidesExporter.reveal_scroll = True  # long cells scroll instead of overflowing
    config.SlidesExporter.reveal_number = "c/t"
    config.SlidesExporter.reveal_theme = "white"  # "simple" (the default) loads Google Fonts
    config.SlidesExporter.exclude_input_prompt = True
    config.SlidesExporter.exclude_output_prompt = True
    config.SlidesExporter.extra_template_basedirs = [str(WEBSITE / "templates")]
    config.SlidesExporter.template_name = "mmcourse_reveal"
    config.TagRemovePreprocessor.enabled = True
    config.TagRemovePreprocessor.remove_input_tags = {HIDE_INPUT_TAG}
    return SlidesExporter(config=config)


# Set on the copies only (Jupyter Book would read a "hide-input" tag in the notebooks too).
HIDE_INPUT_TAG = "mmcourse-deck-hide-input"

_TEXT_MACRO = re.compile(r"\\text\{([^{}]*)\}")


def mathjax2_text(source: str) -> str:
    """``\\text{out\\_dim}`` as MathJax 2 needs it: ``\\text{out_dim}``.

    JupyterLab's MathJax 3 (with textmacros) reads ``\\_`` inside ``\\text{}``; MathJax 2, which
    nbconvert's decks use, prints the backslash.
    """
    return _TEXT_MACRO.sub(lambda m: "\\text{" + m.group(1).replace("\\_", "_") + "}", source)


def deck_title(nb) -> str:
    """The notebook's first heading, without its #s."""
    for cell in nb.cells:
        if cell.cell_type == "markdown" and slides.heading_level(cell.source):
            return cell.source.lstrip().splitlines()[0].lstrip("#").strip()
    return "untitled"


def index_page(decks: list[tuple[str, str]]) -> str:
    """A plain page listing the decks: (file name, title) pairs. No external resources."""
    items = "\n".join(
        f'  <li><a href="{html.escape(name)}">{html.escape(title)}</a></li>'
        for name, title in decks
    )
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head><meta charset="utf-8">\n'
        "<title>Multimodal Large Models: slides</title>\n"
        "<style>body{font-family:sans-serif;max-width:50em;margin:2em auto;line-height:1.6}"
        "</style>\n</head>\n<body>\n<h1>Multimodal Large Models: Principles and Practice</h1>\n"
        "<p>One reveal.js deck per notebook. Keys: space or arrows to move, "
        "<kbd>Esc</kbd> for the overview, <kbd>S</kbd> for speaker notes.</p>\n"
        f'<ol start="0">\n{items}\n</ol>\n</body>\n</html>\n'
    )


def export(notebooks: list[Path], out: Path, npm: Path) -> list[Path]:
    """Write a deck per notebook, lib/ and index.html into ``out``; returns the decks."""
    if not notebooks:
        raise ValueError("notebooks: nothing to export")
    out.mkdir(parents=True, exist_ok=True)
    copy_assets(npm, out / "lib")
    slides_exporter = exporter()
    decks, listing = [], []
    for path in notebooks:
        nb = nbformat.read(path, as_version=4)
        slides.annotate(nb)
        for cell in nb.cells:
            if cell.cell_type == "markdown":
                cell.source = mathjax2_text(offline_markdown(cell.source))
            elif slides.hides_input_in_static_deck(cell):
                cell.metadata.setdefault("tags", []).append(HIDE_INPUT_TAG)
        nb.metadata["title"] = deck_title(nb)  # the browser tab's title
        body, _ = slides_exporter.from_notebook_node(nb)
        deck = out / f"{path.stem}.slides.html"
        deck.write_text(body, encoding="utf-8")
        decks.append(deck)
        listing.append((deck.name, deck_title(nb)))
    (out / "index.html").write_text(index_page(listing), encoding="utf-8")
    return decks


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, default=Path("build/slides"))
    parser.add_argument("--npm", type=Path, default=WEBSITE / "node_modules")
    args = parser.parse_args(argv)
    decks = export(args.notebooks, args.out, args.npm)
    size = sum(f.stat().st_size for f in args.out.rglob("*") if f.is_file())
    print(f"{len(decks)} decks in {args.out} ({size / 1e6:.1f} MB with lib/)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
