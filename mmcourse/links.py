"""Where the course lives online. A fork changes REPOSITORY (and BRANCH) here, then runs

    python -m mmcourse.links          # rewrite the launch links and install cells
    python -m mmcourse.links --check  # exit 1 and say what is out of date

which puts into every notebook an "Open in Colab" badge (under the title) and a first code
cell that installs the course only where it is missing (Colab, Kaggle, a bare Jupyter): in a
clone, on Binder and in CI ``import mmcourse`` succeeds and the cell does nothing, offline.
It also points README's Binder badge at the same repository. Running it twice changes nothing.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import nbformat

REPOSITORY = "https://github.com/mmcourse/mmcourse"
BRANCH = "main"

COLAB_BADGE = "https://colab.research.google.com/assets/colab-badge.svg"
BINDER_BADGE = "https://mybinder.org/badge_logo.svg"
INSTALL_TAG = "install-course"
_BINDER_LINE = re.compile(r"\[!\[Binder\]\(" + re.escape(BINDER_BADGE) + r"\)\]\([^)]*\)")


def _slug() -> str:
    """``owner/name`` of the GitHub repository."""
    match = re.fullmatch(r"https://github\.com/([\w.-]+/[\w.-]+?)(?:\.git)?/?", REPOSITORY)
    if match is None:
        raise ValueError(f"REPOSITORY must be https://github.com/<owner>/<name>, got {REPOSITORY}")
    return match.group(1)


def colab_url(notebook: str) -> str:
    return f"https://colab.research.google.com/github/{_slug()}/blob/{BRANCH}/notebooks/{notebook}"


def binder_url(notebook: str = "00_welcome.ipynb") -> str:
    return f"https://mybinder.org/v2/gh/{_slug()}/{BRANCH}?urlpath=lab/tree/notebooks/{notebook}"


def pip_requirement() -> str:
    return f"mmcourse @ git+{REPOSITORY}@{BRANCH}"


def colab_badge(notebook: str) -> str:
    return f"[![Open In Colab]({COLAB_BADGE})]({colab_url(notebook)})"


def binder_badge() -> str:
    return f"[![Binder]({BINDER_BADGE})]({binder_url()})"


def install_source() -> str:
    return (
        "# On Colab, Kaggle or a Jupyter without the course, install it (about 2 minutes);\n"
        "# where the course is installed (a clone, Binder) this cell does nothing.\n"
        "try:\n"
        "    import mmcourse\n"
        "except ImportError:\n"
        f'    %pip install --quiet "{pip_requirement()}"'
    )


def _with_badge(title: str, badge: str) -> str:
    """The title cell with ``badge`` on its own line under the heading (old badges removed)."""
    heading, *rest = title.split("\n")
    rest = [line for line in rest if COLAB_BADGE not in line]
    while rest and not rest[0].strip():
        rest.pop(0)
    return "\n".join([heading, "", badge, *([""] + rest if rest else [])])


def update_notebook(nb: nbformat.NotebookNode, name: str) -> nbformat.NotebookNode:
    """Badge and install cell for notebook file ``name``; an up-to-date notebook is unchanged."""
    title = nb.cells[0]
    if title.cell_type != "markdown" or not title.source.startswith("#"):
        raise ValueError(f"{name}: the first cell must be the markdown title ('# ...')")
    title.source = _with_badge(title.source, colab_badge(name))
    installs = [c for c in nb.cells if INSTALL_TAG in c.get("metadata", {}).get("tags", [])]
    for extra in installs[1:]:
        nb.cells.remove(extra)
    if installs:
        cell = installs[0]
        if nb.cells.index(cell) != 1:
            nb.cells.remove(cell)
            nb.cells.insert(1, cell)
    else:
        cell = nbformat.v4.new_code_cell()
        cell.id = INSTALL_TAG
        nb.cells.insert(1, cell)
    cell.source = install_source()
    cell.metadata = {"tags": [INSTALL_TAG], "slideshow": {"slide_type": "skip"}}
    cell.outputs, cell.execution_count = [], None
    return nb


def update_readme(text: str) -> str:
    if not _BINDER_LINE.search(text):
        raise ValueError("README.md has no Binder badge ([![Binder](...badge_logo.svg)](...))")
    return _BINDER_LINE.sub(lambda _: binder_badge(), text)


def sync(root: Path, write: bool) -> list[str]:
    """The files under ``root`` whose links differ from REPOSITORY; rewrite them if ``write``."""
    stale = []
    for path in sorted((root / "notebooks").glob("*.ipynb")):
        before = path.read_text(encoding="utf-8")
        nb = update_notebook(nbformat.reads(before, as_version=4), path.name)
        after = nbformat.writes(nb) + "\n"
        if json.loads(after) != json.loads(before):  # content, not formatting
            stale.append(str(path.relative_to(root)))
            if write:
                path.write_text(after, encoding="utf-8")
    readme = root / "README.md"
    before = readme.read_text(encoding="utf-8")
    after = update_readme(before)
    if after != before:
        stale.append("README.md")
        if write:
            readme.write_text(after, encoding="utf-8")
    return stale


# A badge is an image from a web service: offline (the website, the decks) it is a broken image.
_REMOTE_IMAGE = re.compile(r"!\[([^\]]*)\]\(https?://[^)]*\)")


def offline_markdown(text: str) -> str:
    """Markdown without images fetched from the web (badges): their link text stays."""
    return _REMOTE_IMAGE.sub(r"\1", text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only report what is out of date")
    parser.add_argument("--root", type=Path, default=Path.cwd(), help="the repository's root")
    args = parser.parse_args(argv)
    stale = sync(args.root, write=not args.check)
    verb = "out of date" if args.check else "updated"
    for rel in stale:
        print(f"{verb}: {rel}")
    return 1 if stale and args.check else 0


if __name__ == "__main__":
    sys.exit(main())
