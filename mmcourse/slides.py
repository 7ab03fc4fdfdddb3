"""Slide metadata for the course notebooks: every notebook presents as a sensible deck.

RISE (JupyterLab) and ``jupyter nbconvert --to slides`` read one field per cell,
``metadata.slideshow.slide_type``. Writing it by hand in a dozen notebooks that keep changing
is a chore, so it is assigned here by rules from the cells' *source* (never their outputs,
so a notebook with and without outputs gets the same deck):

==========================================================  ============
cell                                                        slide_type
==========================================================  ============
markdown opening with a ``#`` or ``##`` heading             ``slide``
a section headed "Setup", the ``env_report()`` cell, and
code cells holding nothing but imports                      ``skip``
markdown opening with a ``###`` (or deeper) heading,
e.g. an exercise                                            ``subslide``
markdown opening with "**Worked solution"                   ``subslide``
code that draws a figure (``plt.``, ``.plot``, ``plot_*``,
``imshow``)                                                 ``subslide``
code whose last statement is a claim (``claim*(...)``)      ``fragment``
anything else                                               ``-`` (same slide), or
                                                            ``subslide`` once the slide
                                                            would exceed ``LINE_BUDGET``
==========================================================  ============

So a deck reads: the title slide (title, goals, time, prerequisites), one horizontal slide
per ``##`` section, vertical slides below it for its figures, exercises and worked
solutions, and each claim appearing as a fragment after the result it checks.

The rules are a pure function of the cell sources: applying them twice changes nothing.
A static export (website/export_slides.py, ``make slides``) also shows only the figure of a
long plotting cell (``hides_input_in_static_deck``); RISE, being live, shows the code.

    python -m mmcourse.slides --in-place notebooks/*.ipynb    # write the metadata (RISE)
    python -m mmcourse.slides --out-dir build/x notebooks/*.ipynb  # annotated copies
"""

from __future__ import annotations

import argparse
import ast
import re
from pathlib import Path

import nbformat

SLIDE, SUBSLIDE, FRAGMENT, SKIP, CONTINUE = "slide", "subslide", "fragment", "skip", "-"
SLIDE_TYPES = (SLIDE, SUBSLIDE, FRAGMENT, SKIP, CONTINUE, "notes")

# Lines of source that fit on one 1280x720 slide at reveal.js' default font size: past it
# the next cell starts a new vertical slide. A figure counts as this many lines.
LINE_BUDGET = 24
FIGURE_LINES = 14

# A static deck shows only the output of plotting code longer than this: the figure, not
# the matplotlib boilerplate above it (RISE shows the code: the notebook is live there).
PLOT_CODE_LINES = 12

# RISE options stored in the notebook's metadata: long cells scroll instead of overflowing.
RISE_OPTIONS = {"scroll": True}

_HEADING = re.compile(r"^(#{1,6})\s+\S")
_SETUP_HEADING = re.compile(r"\bset-?\s?up\b", re.IGNORECASE)
_FIGURE = re.compile(
    r"\bplt\.|\.plot\b|\bplot_\w*\(|\.imshow\(|\.subplots\(|\bsavefig\(|\bdisplay\(\s*fig"
)
_WORKED_SOLUTION = re.compile(r"^\*\*worked solution", re.IGNORECASE)


def heading_level(source: str) -> int:
    """The level of the heading a markdown cell opens with (1 for ``#``), or 0 for none."""
    for line in source.splitlines():
        if line.strip():
            match = _HEADING.match(line.strip())
            return len(match.group(1)) if match else 0
    return 0


def _first_line(source: str) -> str:
    return next((line.strip() for line in source.splitlines() if line.strip()), "")


def _called_name(node: ast.AST) -> str:
    """'claim_less' for ``claim_less(...)`` and ``check.claim_less(...)``; '' otherwise."""
    if isinstance(node, ast.Expr):
        node = node.value
    if not isinstance(node, ast.Call):
        return ""
    func = node.func
    if isinstance(func, ast.Attribute):
        return func.attr
    return func.id if isinstance(func, ast.Name) else ""


def _parse(source: str) -> list[ast.stmt] | None:
    # IPython magics (%pip, !ls) are not Python: such a cell is classified by text alone.
    try:
        return ast.parse(source).body
    except SyntaxError:
        return None


def is_setup_code(source: str) -> bool:
    """True for the ``env_report()`` cell and for cells of imports only: not worth a slide."""
    if "env_report(" in source:
        return True
    body = _parse(source)
    return bool(body) and all(isinstance(s, (ast.Import, ast.ImportFrom)) for s in body)


def draws_figure(source: str) -> bool:
    """True for code that draws a plot (by its source: outputs are not needed)."""
    code = "\n".join(line.split("#", 1)[0] for line in source.splitlines())
    return bool(_FIGURE.search(code))


def ends_with_claim(source: str) -> bool:
    """True for code whose last statement is a claim: the check a slide reveals last."""
    body = _parse(source)
    return bool(body) and _called_name(body[-1]).startswith("claim")


def hides_input_in_static_deck(cell) -> bool:
    """True for a long plotting cell: a static deck shows its figure without its code."""
    source = cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])
    long_code = len(source.splitlines()) > PLOT_CODE_LINES
    return cell["cell_type"] == "code" and long_code and draws_figure(source)


def _cell_lines(kind: str, source: str) -> int:
    """How much of a slide a cell fills, in source lines; a figure counts as FIGURE_LINES."""
    figure = FIGURE_LINES if kind == "code" and draws_figure(source) else 0
    return len(source.splitlines()) + figure


# Cells written by mmcourse.links (install the course where it is missing) and mmcourse.student.
HIDDEN_TAGS = frozenset({"install-course", "student-edition"})


def slide_types(cells) -> list[str]:
    """The slide_type of each cell (nbformat cells, or dicts with 'cell_type' and 'source')."""
    types = []
    in_setup = False  # inside a section headed "Setup": skipped until the next ## heading
    used = 0  # lines already on the current (sub)slide
    for cell in cells:
        kind, source = cell["cell_type"], cell["source"]
        source = source if isinstance(source, str) else "".join(source)
        level = heading_level(source) if kind == "markdown" else 0
        tags = set(cell.get("metadata", {}).get("tags", []))
        if tags & HIDDEN_TAGS:
            types.append(SKIP)  # plumbing (the Colab install cell, the student flag): never shown
            continue
        if 1 <= level <= 2:
            in_setup = bool(_SETUP_HEADING.search(_first_line(source)))
            slide_type = SKIP if in_setup else SLIDE
        elif in_setup or kind == "raw":
            slide_type = SKIP
        elif kind == "markdown":
            starts_part = level >= 3 or _WORKED_SOLUTION.match(_first_line(source))
            slide_type = SUBSLIDE if starts_part else CONTINUE
        elif is_setup_code(source):
            slide_type = SKIP
        elif draws_figure(source):
            slide_type = SUBSLIDE
        elif ends_with_claim(source):
            slide_type = FRAGMENT
        else:
            slide_type = CONTINUE
        lines = _cell_lines(kind, source)
        if slide_type in (CONTINUE, FRAGMENT) and used and used + lines > LINE_BUDGET:
            slide_type = SUBSLIDE
        if slide_type in (SLIDE, SUBSLIDE):
            used = lines
        elif slide_type != SKIP:
            used += lines
        types.append(slide_type)
    if types and types[0] in (CONTINUE, FRAGMENT):
        types[0] = SLIDE  # a deck opens with a slide, whatever the first cell is
    return types


def annotate(nb) -> bool:
    """Write the slide metadata into a notebook node; True if anything changed."""
    changed = False
    for cell, slide_type in zip(nb.cells, slide_types(nb.cells), strict=True):
        slideshow = cell.metadata.setdefault("slideshow", {})
        if slideshow.get("slide_type") != slide_type:
            slideshow["slide_type"] = slide_type
            changed = True
    rise = nb.metadata.setdefault("rise", {})
    for key, value in RISE_OPTIONS.items():
        if rise.get(key) != value:
            rise[key] = value
            changed = True
    return changed


def annotate_file(path: Path, out: Path | None = None) -> bool:
    """Annotate the notebook at ``path``, writing to ``out`` (default: in place)."""
    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    changed = annotate(nb)
    target = Path(out) if out is not None else path
    if changed or target != path:
        target.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, target)
    return changed


def deck_outline(nb) -> list[str]:
    """One line per slide: its type and first line. For reviewing a deck without a browser."""
    outline = []
    for cell in nb.cells:
        slide_type = cell.metadata.get("slideshow", {}).get("slide_type", CONTINUE)
        if slide_type in (SLIDE, SUBSLIDE):
            indent = "" if slide_type == SLIDE else "    "
            outline.append(f"{indent}{_first_line(cell.source)[:80]}")
    return outline


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mmcourse.slides", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("notebooks", nargs="+", type=Path)
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--in-place", action="store_true", help="rewrite the notebooks")
    where.add_argument("--out-dir", type=Path, help="write annotated copies here")
    parser.add_argument("--outline", action="store_true", help="print each deck's slides")
    args = parser.parse_args(argv)
    for path in args.notebooks:
        if path.suffix != ".ipynb":
            parser.error(f"notebooks: {path} is not an .ipynb file")
        out = None if args.in_place else args.out_dir / path.name
        changed = annotate_file(path, out)
        print(f"{path} -> {out or path}" + ("" if changed else " (unchanged)"))
        if args.outline:
            nb = nbformat.read(out or path, as_version=4)
            print("\n".join("  " + line for line in deck_outline(nb)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
