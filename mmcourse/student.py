"""Student edition of the notebooks, for graded work: the worked solutions removed, and
``show_solution`` answering with a hint instead; ``check`` gives its feedback as before.

    python -m mmcourse.student --out build/student notebooks/*.ipynb   # what `make student` runs
    python -m mmcourse.student --tag notebooks/*.ipynb                 # tag the solution cells

A solution cell is a cell tagged ``solution`` (tag more by hand: a teacher's choice wins), a
code cell that calls ``show_solution(``, or the markdown cell just before such a code cell
when it begins "Worked solution" (it explains the answer) or is a one-line lead-in to it
("Try the exercise before you look:"). ``--tag`` writes those tags into the
notebooks themselves, so that the choice is visible in JupyterLab's property inspector; it is
idempotent. The copies keep their relative links working: the files they link to (the
glossary, the data card) are copied beside them.
"""

from __future__ import annotations

import argparse
import copy
import re
import shutil
import sys
from pathlib import Path

import nbformat

from mmcourse.links import COLAB_BADGE

SOLUTION_TAG = "solution"
EDITION_TAG = "student-edition"
EDITION_SOURCE = (
    "# Student edition: the worked solutions are hidden; check(...) still gives feedback.\n"
    "import os\n"
    "\n"
    'os.environ["MMCOURSE_EDITION"] = "student"'
)
_WORKED = re.compile(r"^[\s#*_>]*worked solution", re.IGNORECASE)
_RELATIVE_LINK = re.compile(r"\]\((\.\./[^)#\s]+)")


def _tags(cell) -> list[str]:
    return cell.get("metadata", {}).get("tags", [])


def _is_lead_in(text: str) -> bool:
    """One line that ends with a colon ("Try the exercise before you look:") introduces the
    cell after it, and means nothing without it."""
    text = text.strip()
    return "\n" not in text and text.endswith(":")


def solution_cells(nb: nbformat.NotebookNode) -> list[int]:
    """Indices of the cells that give a solution away."""
    found = set()
    for i, cell in enumerate(nb.cells):
        if SOLUTION_TAG in _tags(cell):
            found.add(i)
        elif cell.cell_type == "markdown" and _WORKED.match(cell.source):
            found.add(i)  # a worked solution in prose, before or after its show_solution cell
        elif cell.cell_type == "code" and "show_solution(" in cell.source:
            found.add(i)
            before = nb.cells[i - 1] if i else None
            if before is not None and before.cell_type == "markdown":
                if _WORKED.match(before.source) or _is_lead_in(before.source):
                    found.add(i - 1)
    return sorted(found)


def student_notebook(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A copy of ``nb`` without its solutions, that switches ``show_solution`` off."""
    nb = copy.deepcopy(nb)
    drop = set(solution_cells(nb))
    nb.cells = [cell for i, cell in enumerate(nb.cells) if i not in drop]
    title = nb.cells[0]
    if title.cell_type == "markdown":  # the Colab badge opens the full edition
        lines = [line for line in title.source.split("\n") if COLAB_BADGE not in line]
        title.source = re.sub(r"\n{3,}", "\n\n", "\n".join(lines))
    flag = nbformat.v4.new_code_cell(EDITION_SOURCE)
    flag.id = EDITION_TAG
    flag.metadata = {"tags": [EDITION_TAG], "slideshow": {"slide_type": "skip"}}
    nb.cells.insert(1, flag)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    return nb


def tag_solutions(path: Path) -> bool:
    """Tag the solution cells of the notebook at ``path``; True when the file changed."""
    nb = nbformat.read(path, as_version=4)
    changed = False
    for i in solution_cells(nb):
        cell = nb.cells[i]
        if SOLUTION_TAG not in _tags(cell):
            cell.metadata.setdefault("tags", []).append(SOLUTION_TAG)
            changed = True
    if changed:
        nbformat.write(nb, path)
    return changed


def build(notebooks: list[Path], out: Path) -> list[Path]:
    """Write the student edition of ``notebooks`` to ``out/notebooks/``; return the paths."""
    if not notebooks:
        raise ValueError("notebooks is empty: pass the notebooks to copy (notebooks/*.ipynb)")
    written = []
    (out / "notebooks").mkdir(parents=True, exist_ok=True)
    for path in notebooks:
        nb = student_notebook(nbformat.read(path, as_version=4))
        target = out / "notebooks" / path.name
        nbformat.write(nb, target)
        written.append(target)
        for cell in nb.cells:  # keep ../docs/glossary.md and ../data/README.md working
            if cell.cell_type != "markdown":
                continue
            for link in _RELATIVE_LINK.findall(cell.source):
                source = (path.parent / link).resolve()
                copied = (target.parent / link).resolve()
                if source.is_file() and copied.is_relative_to(out.resolve()):
                    copied.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(source, copied)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, default=Path("build/student"))
    parser.add_argument("--tag", action="store_true", help="tag the solution cells in place")
    args = parser.parse_args(argv)
    if args.tag:
        for path in args.notebooks:
            print(f"{'tagged' if tag_solutions(path) else 'up to date'}: {path}")
        return 0
    for target in build(args.notebooks, args.out):
        print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
