"""The slide-metadata rules (mmcourse.slides): each notebook presents as a sensible deck."""

import json
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from mmcourse import slides

NOTEBOOKS = sorted((Path(__file__).parents[1] / "notebooks").glob("*.ipynb"))


def types_of(*cells):
    return slides.slide_types(list(cells))


def md(text):
    return new_markdown_cell(text)


def code(text):
    return new_code_cell(text)


def test_headings_make_slides_and_subslides():
    got = types_of(md("# 03 · Fusion\n\nGoals"), md("## 1 · Section"), md("### Exercise 1 · x"))
    assert got == ["slide", "slide", "subslide"]


def test_setup_section_env_report_and_import_cells_are_skipped():
    got = types_of(
        md("# Title"),
        md("## 0 · Setup\n\nVersions."),
        code("mmcourse.env_report()"),
        code("x = 1"),  # still inside the Setup section
        md("## 1 · Data"),
        code("import numpy as np\nfrom torch import nn  # layers"),
        code("import numpy as np\nx = np.ones(3)"),  # imports *and* work: shown
        code("import mmcourse\n\nmmcourse.env_report()"),
    )
    assert got == ["slide", "skip", "skip", "skip", "slide", "skip", "-", "skip"]


def test_figures_get_their_own_subslide_and_claims_come_as_fragments():
    got = types_of(
        md("## 2 · Results"),
        code("fig, ax = plt.subplots()\nax.plot(x)"),
        code("table.plot.bar(rot=0)"),
        code("demo.plot_fusion_levels()"),
        code("gain = a - b\nclaim_greater(gain, 0.0, 'fusion beats the best modality')"),
        code("check.claim(ok, 'holds')"),
        code("claim(ok, 'x')\nprint(gain)"),  # the claim is not the cell's last word
        code("# plt.show() is only mentioned in a comment\ny = 2"),
    )
    assert got == ["slide", "subslide", "subslide", "subslide", "fragment", "fragment", "-", "-"]


def test_exercise_and_worked_solution_are_vertical_slides():
    got = types_of(
        md("## 6 · Retrieval"),
        md("### Exercise 1 · recall@K\n\nWrite it."),
        code("def my_recall(s, k):\n    raise NotImplementedError\n\ncheck('06.r', my_recall)"),
        md("**Worked solution.** Count the higher scores."),
        code('show_solution("06.recall_at_k")'),
    )
    assert got == ["slide", "subslide", "-", "subslide", "-"]


def test_a_full_slide_continues_on_a_new_vertical_slide():
    long_text = "\n".join(f"line {i}" for i in range(slides.LINE_BUDGET - 2))
    got = types_of(md("## 1 · Long"), md(long_text), md("one\nmore\nparagraph"), code("x = 1"))
    assert got == ["slide", "-", "subslide", "-"]


def test_a_deck_opens_with_a_slide_and_magics_do_not_break_the_rules():
    assert types_of(md("No heading here"), code("%pip install mmcourse"))[0] == "slide"
    assert types_of(code("x = 1"))[0] == "slide"
    assert slides.slide_types([]) == []


def test_outputs_do_not_change_the_deck():
    """Executed and cleared copies of a notebook must present the same deck."""
    bare = [md("## 1"), code("plt.plot([1, 2])"), code("claim(True, 'x')")]
    executed = [md("## 1"), code("plt.plot([1, 2])"), code("claim(True, 'x')")]
    executed[1].outputs = [new_output("display_data", data={"image/png": "iVBOR"})]
    executed[2].outputs = [new_output("stream", text="✓ x\n")]
    assert slides.slide_types(bare) == slides.slide_types(executed)


def test_plain_dict_cells_with_list_sources_are_accepted():
    cells = [{"cell_type": "markdown", "source": ["## A\n", "text"]}]
    assert slides.slide_types(cells) == ["slide"]


def _write_notebook(path):
    nb = new_notebook(cells=[md("# T\n\nGoals"), code("import os"), code("plt.plot([1])")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
    nbformat.write(nb, path)
    return path


def test_in_place_mode_is_idempotent_and_sets_rise_scrolling(tmp_path):
    path = _write_notebook(tmp_path / "00_x.ipynb")
    assert slides.annotate_file(path) is True
    first = path.read_bytes()
    assert slides.annotate_file(path) is False  # second run: nothing to change
    assert path.read_bytes() == first
    nb = json.loads(first)
    assert [c["metadata"]["slideshow"]["slide_type"] for c in nb["cells"]] == [
        "slide",
        "skip",
        "subslide",
    ]
    assert nb["metadata"]["rise"] == {"scroll": True}
    assert nb["metadata"]["kernelspec"]["name"] == "python3"  # other metadata kept


def test_out_dir_mode_leaves_the_source_untouched(tmp_path, capsys):
    path = _write_notebook(tmp_path / "00_x.ipynb")
    before = path.read_bytes()
    assert slides.main([str(path), "--out-dir", str(tmp_path / "out"), "--outline"]) == 0
    assert path.read_bytes() == before
    copy = nbformat.read(tmp_path / "out" / "00_x.ipynb", as_version=4)
    assert copy.cells[2].metadata.slideshow.slide_type == "subslide"
    assert "# T" in capsys.readouterr().out


def test_cli_rejects_a_non_notebook_naming_the_argument(tmp_path, capsys):
    with pytest.raises(SystemExit):
        slides.main([str(tmp_path / "notes.md"), "--in-place"])
    assert "notebooks:" in capsys.readouterr().err


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_course_notebook_makes_a_sensible_deck(path):
    nb = nbformat.read(path, as_version=4)
    types = slides.slide_types(nb.cells)
    slides.annotate(nb)
    assert slides.annotate(nb) is False, "a second run changes nothing"
    assert types[0] == "slide" and slides.heading_level(nb.cells[0].source) == 1, "title slide"
    assert types.count("slide") >= 3, "a deck of at least three sections"
    assert set(types) <= set(slides.SLIDE_TYPES)
    for cell, slide_type in zip(nb.cells, types):
        first = cell.source.lstrip()
        if cell.cell_type == "markdown" and first.startswith("### Exercise"):
            assert slide_type == "subslide", "each exercise starts a slide of its own"
    # no teaching prose is dropped from a deck: only a Setup section's markdown is skipped
    section = ""
    for cell, slide_type in zip(nb.cells, types):
        if cell.cell_type == "markdown" and 1 <= slides.heading_level(cell.source) <= 2:
            section = cell.source.lstrip().splitlines()[0]
        if cell.cell_type == "markdown" and slide_type == "skip":
            assert "setup" in section.lower(), f"prose skipped outside Setup: {cell.source[:60]}"


def test_only_long_plotting_code_is_hidden_in_a_static_deck():
    long_plot = "\n".join(["fig, ax = plt.subplots()"] + [f"ax.plot([{i}])" for i in range(12)])
    long_work = "\n".join(f"x{i} = {i}" for i in range(20))
    assert slides.hides_input_in_static_deck(code(long_plot))
    assert not slides.hides_input_in_static_deck(code("plt.plot([1])"))  # short: code shown
    assert not slides.hides_input_in_static_deck(code(long_work))  # no figure: code shown
    assert not slides.hides_input_in_static_deck(md(long_plot))


def test_install_and_student_cells_are_never_shown():
    cells = [
        {"cell_type": "markdown", "source": "# Title", "metadata": {}},
        {
            "cell_type": "code",
            "source": "x = 1\nprint(x)",
            "metadata": {"tags": ["install-course"]},
        },
        {
            "cell_type": "code",
            "source": "y = 2\nprint(y)",
            "metadata": {"tags": ["student-edition"]},
        },
        {"cell_type": "code", "source": "z = 3\nprint(z)", "metadata": {}},
    ]
    assert slides.slide_types(cells) == [slides.SLIDE, slides.SKIP, slides.SKIP, slides.CONTINUE]
