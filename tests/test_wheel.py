"""`pip install` works outside the clone: a wheel built from this repository carries the data,
installs into a fresh virtual environment, and runs a notebook from a folder that has nothing to
do with the repository, with the network off."""

import json
import shutil
import subprocess
import sys
import sysconfig
import time
import zipfile
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
OFFLINE = ROOT / "tests" / "offline"
NOTEBOOK = ROOT / "notebooks" / "00_welcome.ipynb"

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs git to list the sources")


def _source_copy(target: Path) -> Path:
    """The repository's files as a fresh clone plus uncommitted work has them (no .venv,
    build/ or egg-info), so that building never writes into the working tree."""
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for rel in filter(None, listed.split("\0")):
        if (ROOT / rel).is_file():
            (target / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, target / rel)
    return target


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    """Build the wheel as `pip wheel --no-deps` does, offline (this environment's setuptools)."""
    work = tmp_path_factory.mktemp("wheel")
    source = _source_copy(work / "src")
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index"]
        + ["--quiet", "-w", str(work / "dist"), str(source)],
        check=True,
    )
    seconds = time.perf_counter() - start
    (path,) = (work / "dist").glob("mmcourse-*.whl")
    print(f"\nwheel {path.name}: {path.stat().st_size / 1e6:.1f} MB, built in {seconds:.1f} s")
    return path


def test_the_wheel_carries_the_package_and_every_shipped_data_file(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    manifest = json.loads((ROOT / "data" / "manifest.json").read_text())
    missing = [rel for rel in manifest if f"mmcourse/_data/{rel}" not in names]
    assert missing == []
    assert {"mmcourse/_data/manifest.json", "mmcourse/_data/README.md"} <= names
    assert "mmcourse/exercises/__init__.py" in names and "mmcourse/datasets/cache.py" in names
    assert not any(".replaced-" in n or n.endswith(".tmp.npy") for n in names)
    assert not any(n.startswith(("tests/", "notebooks/", "data/")) for n in names)


@pytest.fixture(scope="module")
def venv(wheel, tmp_path_factory):
    """A fresh environment with the wheel installed (--no-deps). The heavy dependencies
    (torch, jupyter …) are borrowed from this test's environment by a path-only .pth line:
    no .pth file of that environment runs there, so its editable mmcourse stays invisible."""
    env = tmp_path_factory.mktemp("venv") / "env"
    subprocess.run([sys.executable, "-m", "venv", str(env)], check=True)
    python = env / "bin" / "python"
    subprocess.run(
        [python, "-m", "pip", "install", "--no-deps", "--no-index", "--quiet", str(wheel)],
        check=True,
    )
    purelib = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    (Path(purelib) / "course_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return env


def test_a_notebook_runs_from_the_installed_wheel_outside_the_repository(venv, tmp_path):
    outside = tmp_path / "somewhere_else"
    outside.mkdir()
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nb.cells.append(
        nbformat.v4.new_code_cell(
            "import sys, mmcourse\nfrom mmcourse.datasets.cache import data_dir\n"
            "print(sys.prefix, mmcourse.__file__, data_dir(), sep='\\n')"
        )
    )
    nbformat.write(nb, outside / NOTEBOOK.name)
    run = (
        "import sys, nbclient, nbformat\n"
        "nb = nbformat.read(sys.argv[1], as_version=4)\n"
        "nbclient.NotebookClient(nb, timeout=600, kernel_name='python3').execute()\n"
        "print(nb.cells[-1].outputs[0]['text'])\n"
    )
    env = {
        "PATH": f"{venv / 'bin'}:/usr/bin:/bin",
        "HOME": str(tmp_path / "home"),
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
        "PYTHONPATH": str(OFFLINE),  # the offline guard, and not the repository
        "MPLBACKEND": "agg",
        "TQDM_DISABLE": "1",
    }
    result = subprocess.run(
        [venv / "bin" / "python", "-c", run, NOTEBOOK.name],
        cwd=outside,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout[-1000:] + result.stderr[-4000:]
    prefix, package, data = result.stdout.split()[-3:]
    assert Path(prefix) == venv
    assert Path(package).is_relative_to(venv) and not Path(package).is_relative_to(ROOT)
    assert Path(data).is_relative_to(venv) and Path(data).name == "_data"
