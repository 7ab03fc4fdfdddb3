"""The Colab and Binder links and the install cell all come from mmcourse.links.REPOSITORY:
a fork changes one line and reruns `python -m mmcourse.links`."""

import shutil
from pathlib import Path

import nbformat
import pytest
from IPython.core.inputtransformer2 import TransformerManager

from mmcourse import links

ROOT = Path(__file__).resolve().parents[1]
FORK = "https://github.com/a-teacher/mmcourse-fork"


@pytest.fixture
def copy(tmp_path):
    shutil.copytree(ROOT / "notebooks", tmp_path / "notebooks")
    shutil.copy(ROOT / "README.md", tmp_path / "README.md")
    return tmp_path


def test_every_link_comes_from_the_one_repository_url(monkeypatch):
    monkeypatch.setattr(links, "REPOSITORY", FORK)
    assert links.colab_url("03_fusion.ipynb") == (
        "https://colab.research.google.com/github/a-teacher/mmcourse-fork/blob/main/"
        "notebooks/03_fusion.ipynb"
    )
    assert links.binder_url().startswith("https://mybinder.org/v2/gh/a-teacher/mmcourse-fork/main?")
    assert links.pip_requirement() == f"mmcourse @ git+{FORK}@main"
    monkeypatch.setattr(links, "REPOSITORY", "https://gitlab.com/x/y")
    with pytest.raises(ValueError, match="REPOSITORY must be https://github.com"):
        links.colab_url("00_welcome.ipynb")


def test_writing_the_links_is_complete_and_idempotent(copy, monkeypatch):
    monkeypatch.setattr(links, "REPOSITORY", FORK)
    assert links.sync(copy, write=True)  # a fork: every file changes
    assert links.sync(copy, write=False) == []
    assert links.sync(copy, write=True) == []  # twice changes nothing
    for path in sorted((copy / "notebooks").glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
        assert nb.cells[0].source.startswith("# ")
        assert nb.cells[0].source.count(links.COLAB_BADGE) == 1
        assert links.colab_badge(path.name) in nb.cells[0].source
        installs = [c for c in nb.cells if links.INSTALL_TAG in c.metadata.get("tags", [])]
        assert installs == [nb.cells[1]] and f"git+{FORK}@main" in nb.cells[1].source
        assert "mmcourse/mmcourse" not in nb.cells[0].source + nb.cells[1].source
    readme = (copy / "README.md").read_text()
    assert links.binder_badge() in readme and "gh/mmcourse/mmcourse" not in readme


def _run_install_cell(monkeypatch, installed: bool) -> list:
    """Execute the install cell as IPython would; return the magics it ran."""
    ran = []

    class FakeShell:
        def run_line_magic(self, name, line):
            ran.append((name, line))

    if not installed:
        monkeypatch.setitem(__import__("sys").modules, "mmcourse", None)  # import fails
    code = TransformerManager().transform_cell(links.install_source())
    exec(code, {"get_ipython": FakeShell})
    return ran


def test_the_install_cell_installs_only_where_the_course_is_missing(monkeypatch):
    assert _run_install_cell(monkeypatch, installed=True) == []
    assert _run_install_cell(monkeypatch, installed=False) == [
        ("pip", f'install --quiet "{links.pip_requirement()}"')
    ]


def test_the_repository_carries_the_links():
    stale = links.sync(ROOT, write=False)
    assert stale == [], f"run `python -m mmcourse.links` (out of date: {', '.join(stale)})"
