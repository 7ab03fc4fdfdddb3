"""Where the datasets are found: a clone's data/, an installed wheel's mmcourse/_data, or a
writable copy of it in the user cache when the installed package folder is read-only."""

import json
import os

import numpy as np
import pytest

from mmcourse.datasets import cache


def _shipped(package):
    """A fake installed package folder with one shipped, verified dataset."""
    data = package / "_data"
    cache.save_arrays("toy", {"x": np.arange(4)}, data)
    return data


@pytest.fixture
def user_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setattr(cache.sys, "platform", "linux")
    monkeypatch.setattr(cache.os, "name", "posix")
    return tmp_path / "xdg" / "mmcourse"


def test_this_checkout_uses_the_repository_data(monkeypatch):
    monkeypatch.delenv("MMCOURSE_DATA", raising=False)
    root = cache.data_dir()
    assert root.name == "data" and (root.parent / "pyproject.toml").is_file()


def test_a_clone_wins_over_shipped_data(tmp_path):
    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / "data").mkdir()
    _shipped(tmp_path / "mmcourse")
    assert cache._default_root(tmp_path / "mmcourse") == tmp_path / "data"


def test_an_installed_wheel_uses_its_shipped_data(tmp_path, user_cache):
    package = tmp_path / "site-packages" / "mmcourse"
    data = _shipped(package)
    assert cache._default_root(package) == data
    assert not user_cache.exists()


def test_a_read_only_install_copies_its_data_once_to_the_user_cache(
    monkeypatch, tmp_path, user_cache
):
    package = tmp_path / "site-packages" / "mmcourse"
    data = _shipped(package)
    for path in (*data.rglob("*"), data):  # read-only as after a system-wide install
        path.chmod(0o555 if path.is_dir() else 0o444)
    # root may write anywhere, so os.access is what says "read-only" here
    monkeypatch.setattr(cache.os, "access", lambda path, mode: str(data) not in str(path))
    try:
        root = cache._default_root(package)
        assert root.parent == user_cache and root.name.startswith("data-")
        assert json.loads((root / cache.MANIFEST).read_text()) == cache.read_manifest(data)
        # the copy is writable (a damaged dataset can be repaired in place) and verifies
        assert os.stat(root / "toy").st_mode & 0o200
        np.testing.assert_array_equal(cache.load_arrays("toy", None, root)["x"], np.arange(4))
        (root / "toy" / "x.npy").write_bytes(b"damaged")
        assert cache._default_root(package) == root  # made once: the copy is reused
        assert cache.problems("toy", root) == [
            "toy/x.npy: corrupt (sha256 does not match the manifest)"
        ]
    finally:
        for path in (data, *data.rglob("*")):
            path.chmod(0o755 if path.is_dir() else 0o644)


def test_no_shipped_data_falls_back_to_the_user_cache(tmp_path, user_cache):
    assert cache._default_root(tmp_path / "mmcourse") == user_cache / "data"
