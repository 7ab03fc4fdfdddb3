"""`make lab` works for root too, and JupyterLab opens without the "get notified about Jupyter
news" prompt, in the clone (`make lab`) as on Binder (postBuild)."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from jupyterlab.commands import get_app_dir
from jupyterlab_server.settings_utils import _get_overrides, get_settings

ROOT = Path(__file__).resolve().parents[1]
NOTIFICATION = "@jupyterlab/apputils-extension:notification"

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs make")


def _dry_run(*args: str) -> list[str]:
    """The commands `make -n lab` would run (nothing is run)."""
    result = subprocess.run(
        ["make", "-n", "lab", *args], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return result.stdout.splitlines()


@pytest.mark.parametrize(("uid", "flag"), [("0", True), ("1000", False)])
def test_make_lab_allows_root_only_for_root(uid, flag):
    (lab,) = [line for line in _dry_run(f"LAB_USER_ID={uid}") if "jupyter lab" in line]
    assert lab.endswith("notebooks/00_welcome.ipynb")
    assert ("--allow-root" in lab.split()) is flag


def test_make_lab_asks_the_current_user_id():
    (lab,) = [line for line in _dry_run() if "jupyter lab" in line]
    assert ("--allow-root" in lab.split()) is (os.getuid() == 0)


def _news_default(settings_dir: Path) -> str:
    """What JupyterLab's own settings code makes of the overrides in ``settings_dir``."""
    overrides, error = _get_overrides(str(settings_dir))
    assert error == ""
    found, _ = get_settings(
        str(settings_dir),
        str(Path(get_app_dir()) / "schemas"),
        str(settings_dir / "user"),
        schema_name=NOTIFICATION,
        overrides=overrides,
        labextensions_path=[],
    )
    return found["schema"]["properties"]["fetchNews"]["default"]


def test_make_lab_installs_settings_that_switch_the_news_prompt_off(tmp_path):
    (install,) = [line for line in _dry_run() if "overrides.json" in line]
    # run the install line as `make lab` would, into a stand-in JupyterLab app folder
    env = {**os.environ, "JUPYTERLAB_DIR": str(tmp_path / "app")}
    subprocess.run(install, shell=True, cwd=ROOT, env=env, check=True)
    settings = tmp_path / "app" / "settings"
    assert (settings / "overrides.json").is_file()
    assert _news_default(settings) == "false"
    assert _news_default(tmp_path / "no-overrides") == "none"  # JupyterLab's default: ask


def test_binder_installs_the_same_settings():
    post_build = (ROOT / "postBuild").read_text()
    subprocess.run(["bash", "-n", ROOT / "postBuild"], check=True)
    assert "jupyterlab-settings/overrides.json" in post_build
    assert "get_app_dir()" in post_build and 'settings/overrides.json"' in post_build
    assert not (ROOT / "binder").exists(), "a binder/ folder makes repo2docker ignore postBuild"
