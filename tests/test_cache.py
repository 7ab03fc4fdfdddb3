"""The verified data cache: missing or corrupt files are detected and regenerated."""

import json

import numpy as np
import pytest

from mmcourse.datasets import cache


def _generator(calls):
    def generate():
        calls.append(1)
        return {"x": np.arange(10, dtype=np.float32), "names": np.array(["a", "b"])}

    return generate


def test_first_load_generates_then_loads_from_disk(tmp_path):
    calls = []
    with pytest.warns(UserWarning, match="regenerating"):
        first = cache.load_arrays("toy", _generator(calls), root=tmp_path)
    second = cache.load_arrays("toy", _generator(calls), root=tmp_path)
    assert len(calls) == 1
    np.testing.assert_array_equal(first["x"], second["x"])
    assert second["names"].tolist() == ["a", "b"]
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert set(manifest) == {"toy/x.npy", "toy/names.npy"}
    assert manifest["toy/x.npy"]["sha256"] == cache.sha256(tmp_path / "toy" / "x.npy")


def test_missing_file_is_regenerated(tmp_path):
    calls = []
    cache.save_arrays("toy", _generator(calls)(), root=tmp_path)
    (tmp_path / "toy" / "x.npy").unlink()
    assert cache.problems("toy", tmp_path) == ["toy/x.npy: missing"]
    with pytest.warns(UserWarning, match="missing"):
        arrays = cache.load_arrays("toy", _generator(calls), root=tmp_path)
    assert arrays["x"].tolist() == list(range(10))
    assert cache.problems("toy", tmp_path) == []


def test_corrupt_file_is_moved_aside_and_regenerated(tmp_path):
    calls = []
    cache.save_arrays("toy", _generator(calls)(), root=tmp_path)
    path = tmp_path / "toy" / "x.npy"
    damaged = bytearray(path.read_bytes())
    damaged[-1] ^= 0xFF
    path.write_bytes(bytes(damaged))
    assert "corrupt" in cache.problems("toy", tmp_path)[0]
    with pytest.warns(UserWarning, match="corrupt"):
        arrays = cache.load_arrays("toy", _generator(calls), root=tmp_path)
    assert arrays["x"].tolist() == list(range(10))
    kept = list((tmp_path / "toy").glob(".replaced-*/x.npy"))
    assert len(kept) == 1 and kept[0].read_bytes() == bytes(damaged)  # nothing is lost


def test_same_arrays_give_the_same_bytes(tmp_path):
    arrays = _generator([])()
    cache.save_arrays("a", arrays, root=tmp_path)
    cache.save_arrays("b", arrays, root=tmp_path)
    manifest = cache.read_manifest(tmp_path)
    assert manifest["a/x.npy"]["sha256"] == manifest["b/x.npy"]["sha256"]


def test_object_arrays_are_refused(tmp_path):
    with pytest.raises(TypeError, match="object"):
        cache.save_arrays("bad", {"x": np.array([{"a": 1}], dtype=object)}, root=tmp_path)


def test_data_dir_can_be_overridden(monkeypatch, tmp_path):
    monkeypatch.setenv("MMCOURSE_DATA", str(tmp_path))
    assert cache.data_dir() == tmp_path


def test_committed_data_verifies_and_stays_small():
    root = cache.data_dir()
    manifest = cache.read_manifest(root)
    for name in {key.split("/")[0] for key in manifest}:
        assert cache.problems(name, root) == [], name
    total = sum(entry["bytes"] for entry in manifest.values())
    assert total <= 20 * 2**20, f"committed data is {total / 2**20:.1f} MB, budget 20 MB"
