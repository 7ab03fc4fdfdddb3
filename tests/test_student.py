"""The student edition (`make student`): solutions removed, show_solution switched off,
feedback kept, and the copies still run top to bottom."""

import os
import re
from pathlib import Path

import nbclient
import nbformat
import pytest

from mmcourse import exercises, links, student
from mmcourse.links import COLAB_BADGE

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
# Executing every copy takes minutes: by default one; MMCOURSE_TEST_STUDENT=all runs them all
# (`make student-check` does the same with nbval).
EXECUTED = NOTEBOOKS if os.environ.get("MMCOURSE_TEST_STUDENT") == "all" else NOTEBOOKS[:1]


def _exercise_checks(nb) -> int:
    return sum(
        len(re.findall(r"\bcheck\(\s*[\"']", c.source)) for c in nb.cells if c.cell_type == "code"
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_the_student_copy_has_no_solutions_but_every_check(path):
    nb = nbformat.read(path, as_version=4)
    copy = student.student_notebook(nb)
    nbformat.validate(copy)
    text = "\n".join(c.source for c in copy.cells)
    assert "show_solution(" not in text.replace("import check, show_solution", "")
    assert not any(student._WORKED.match(c.source) for c in copy.cells)
    assert COLAB_BADGE not in text  # the badge would open the full edition
    assert _exercise_checks(copy) == _exercise_checks(nb) >= 2
    assert copy.cells[1].source == student.EDITION_SOURCE
    assert len(copy.cells) == len(nb.cells) + 1 - len(student.solution_cells(nb))
    assert nb.cells == nbformat.read(path, as_version=4).cells  # the original is untouched


def test_a_hand_tagged_cell_is_removed_and_tagging_is_idempotent(tmp_path):
    path = tmp_path / NOTEBOOKS[0].name
    nb = nbformat.read(NOTEBOOKS[0], as_version=4)
    for cell in nb.cells:  # start untagged, whether or not the repository's copy is tagged
        tags = [t for t in cell.metadata.get("tags", []) if t != "solution"]
        cell.metadata.pop("tags", None)
        if tags:
            cell.metadata["tags"] = tags
    nbformat.write(nb, path)
    found = student.solution_cells(nb)
    assert found and all(
        "show_solution(" in nb.cells[i].source or student._WORKED.match(nb.cells[i].source)
        for i in found
    )
    assert student.tag_solutions(path) is True
    assert student.tag_solutions(path) is False  # a second run changes nothing
    tagged = nbformat.read(path, as_version=4)
    assert [i for i, c in enumerate(tagged.cells) if "solution" in c.metadata.get("tags", [])] == (
        found
    )
    tagged.cells[2].metadata["tags"] = ["solution"]  # a teacher hides one more cell
    assert student.solution_cells(tagged) == sorted({2, *found})
    assert tagged.cells[2].source not in [c.source for c in student.student_notebook(tagged).cells]


def test_show_solution_gives_a_hint_in_the_student_edition(monkeypatch, capsys):
    key = "00.count"
    exercises.show_solution(key)
    assert "def " in capsys.readouterr().out  # the full edition prints the source
    monkeypatch.setenv("MMCOURSE_EDITION", "student")
    assert exercises.solutions_hidden()
    exercises.show_solution(key)
    out = capsys.readouterr().out
    assert "hidden in the student edition" in out and exercises.get(key).hint in out
    assert exercises.solution_source(key) not in out
    assert exercises.check(key, None, quiet=True) is False  # checks still work


def test_build_copies_the_link_targets_and_refuses_nothing_to_do(tmp_path):
    written = student.build(NOTEBOOKS[:1], tmp_path)
    assert written == [tmp_path / "notebooks" / NOTEBOOKS[0].name]
    assert (tmp_path / "docs" / "glossary.md").read_text() == (
        ROOT / "docs" / "glossary.md"
    ).read_text()
    with pytest.raises(ValueError, match="notebooks is empty"):
        student.build([], tmp_path)


@pytest.mark.parametrize("path", EXECUTED, ids=lambda p: p.name)
def test_the_student_copy_runs_and_still_gives_feedback(path, tmp_path, monkeypatch):
    monkeypatch.delenv("MMCOURSE_EDITION", raising=False)  # the copy switches itself
    (target,) = student.build([path], tmp_path)
    nb = nbformat.read(target, as_version=4)
    nbclient.NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(target.parent)}}
    ).execute()
    printed = "".join(
        out.get("text", "") for c in nb.cells if c.cell_type == "code" for out in c.outputs
    )
    assert "Worked solution for exercise" not in printed
    assert "Exercise" in printed  # the checks' feedback (✓, ✗ or "not attempted yet")


def test_the_student_copy_of_a_linked_notebook_keeps_the_install_cell_not_the_badge():
    nb = links.update_notebook(nbformat.read(NOTEBOOKS[0], as_version=4), NOTEBOOKS[0].name)
    assert COLAB_BADGE in nb.cells[0].source
    copy = student.student_notebook(nb)
    assert COLAB_BADGE not in copy.cells[0].source and "\n\n\n" not in copy.cells[0].source
    assert copy.cells[0].source.startswith("# ")
    assert [c.metadata["tags"] for c in copy.cells[1:3]] == [
        [student.EDITION_TAG],
        [links.INSTALL_TAG],
    ]
