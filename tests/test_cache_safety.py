"""Data is never lost (issue 11, item 6): unique backups, a damaged or missing manifest, a
bad MMCOURSE_DATA, and a shipped voice bank that stays authoritative. Every test works in a
temporary MMCOURSE_DATA folder; the repository's data/ is only read."""

import json
import shutil
import warnings

import numpy as np
import pytest

from mmcourse.datasets import av_digits, cache


def _toy():
    return {"x": np.arange(10, dtype=np.float32)}


def _damage(path):
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    return bytes(data)


@pytest.fixture
def data(tmp_path, monkeypatch):
    monkeypatch.setenv("MMCOURSE_DATA", str(tmp_path))
    return tmp_path


def test_two_damages_within_a_second_keep_two_backups(data):
    cache.save_arrays("toy", _toy())
    path = data / "toy" / "x.npy"
    first = _damage(path)
    with pytest.warns(UserWarning, match="corrupt"):
        cache.load_arrays("toy", _toy)
    second = bytearray(path.read_bytes())
    second[-2] ^= 0x0F
    path.write_bytes(bytes(second))
    with pytest.warns(UserWarning, match="corrupt"):
        cache.load_arrays("toy", _toy)
    kept = sorted((data / "toy").glob(".replaced-*/x.npy"))
    assert len(kept) == 2  # the second damage did not overwrite the first backup
    assert {k.read_bytes() for k in kept} == {first, bytes(second)}


def test_backup_folders_are_new_each_time(data):
    folders = {cache._new_backup_folder(data / "toy") for _ in range(50)}
    assert len(folders) == 50 and all(f.is_dir() for f in folders)


def test_read_manifest_names_a_corrupt_file(data):
    cache.save_arrays("toy", _toy())
    (data / "manifest.json").write_text('{"toy/x.npy": {"sha256": ', encoding="utf-8")
    with pytest.raises(cache.CacheError, match=r"manifest\.json is not valid JSON"):
        cache.read_manifest()
    (data / "manifest.json").write_text('["not", "a", "manifest"]', encoding="utf-8")
    with pytest.raises(cache.CacheError, match=r"manifest\.json is not a manifest"):
        cache.read_manifest()


def test_corrupt_manifest_is_kept_and_rebuilt_without_regenerating(data):
    cache.save_arrays("toy", _toy())
    original = (data / "toy" / "x.npy").read_bytes()
    broken = b'{"toy/x.npy": {"sha'
    (data / "manifest.json").write_bytes(broken)

    def must_not_run():
        raise AssertionError("the files on disk are fine: nothing may be regenerated")

    with pytest.warns(UserWarning) as record:
        arrays = cache.load_arrays("toy", must_not_run)
    messages = " | ".join(str(w.message) for w in record)
    assert "damaged" in messages and "kept as they are" in messages
    assert arrays["x"].tolist() == list(range(10))
    kept = list(data.glob("manifest.json.corrupt-*"))
    assert len(kept) == 1 and kept[0].read_bytes() == broken
    assert (data / "toy" / "x.npy").read_bytes() == original
    assert cache.problems("toy") == []


def test_missing_manifest_adopts_files_that_pass_their_checks(data):
    cache.save_arrays("toy", {"x": np.arange(4, dtype=np.int16)})
    (data / "manifest.json").unlink()
    checked = []

    def check(arrays):
        checked.append(sorted(arrays))
        if arrays["x"].dtype != np.int16:
            raise ValueError("x must be int16")

    with pytest.warns(UserWarning, match="kept as they are"):
        arrays = cache.load_arrays("toy", lambda: {"x": np.zeros(4)}, check=check)
    assert checked == [["x"]] and arrays["x"].tolist() == [0, 1, 2, 3]
    assert json.loads((data / "manifest.json").read_text())["toy/x.npy"]["bytes"] > 0


def test_missing_manifest_regenerates_files_that_fail_their_checks(data):
    cache.save_arrays("toy", {"x": np.arange(4, dtype=np.float64)})
    (data / "manifest.json").unlink()
    old = (data / "toy" / "x.npy").read_bytes()

    def check(arrays):
        if arrays["x"].dtype != np.int16:
            raise ValueError("x must be int16")

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        arrays = cache.load_arrays("toy", lambda: {"x": np.arange(4, dtype=np.int16)}, check=check)
    assert any("fail their checks" in str(w.message) for w in caught)
    assert arrays["x"].dtype == np.int16
    kept = list((data / "toy").glob(".replaced-*/x.npy"))
    assert len(kept) == 1 and kept[0].read_bytes() == old  # the failing file is kept


def test_truncated_unlisted_file_is_not_adopted(data):
    cache.save_arrays("toy", _toy())
    (data / "manifest.json").unlink()
    path = data / "toy" / "x.npy"
    path.write_bytes(path.read_bytes()[:-8])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        arrays = cache.load_arrays("toy", _toy)
    assert arrays["x"].tolist() == list(range(10))


def test_mmcourse_data_pointing_at_a_file_is_a_clear_error(tmp_path, monkeypatch):
    not_a_folder = tmp_path / "data.txt"
    not_a_folder.write_text("oops")
    monkeypatch.setenv("MMCOURSE_DATA", str(not_a_folder))
    with pytest.raises(NotADirectoryError, match="MMCOURSE_DATA.*is a file, not a folder"):
        cache.data_dir()


def test_regenerate_false_refuses_instead_of_regenerating(data):
    with pytest.raises(cache.CacheError, match="not regenerated automatically"):
        cache.load_arrays("toy", _toy, regenerate=False)
    assert not (data / "toy").exists()


def _ship_voice_bank(data):
    """Copy the repository's shipped voice bank (and only it) into the temporary data dir."""
    repo = cache.Path(av_digits.__file__).resolve().parents[2] / "data"
    shutil.copytree(repo / "voice_bank", data / "voice_bank")
    entry = json.loads((repo / "manifest.json").read_text())["voice_bank/clips.npy"]
    (data / "manifest.json").write_text(json.dumps({"voice_bank/clips.npy": entry}))
    return (repo / "voice_bank" / "clips.npy").read_bytes()


def test_missing_manifest_keeps_the_shipped_voice_bank(data, monkeypatch):
    shipped = _ship_voice_bank(data)
    (data / "manifest.json").unlink()
    monkeypatch.setattr(av_digits, "_make_voice_bank", _no_espeak)
    with pytest.warns(UserWarning, match="kept as they are"):
        clips = av_digits.load_voice_bank()
    assert clips.tobytes() == np.load(data / "voice_bank" / "clips.npy").tobytes()
    assert (data / "voice_bank" / "clips.npy").read_bytes() == shipped
    assert cache.problems("voice_bank") == []


def _no_espeak():
    raise AssertionError("the shipped voice bank must not be regenerated implicitly")


def test_corrupt_voice_bank_is_an_error_not_a_silent_regeneration(data, monkeypatch):
    _ship_voice_bank(data)
    damaged = _damage(data / "voice_bank" / "clips.npy")
    monkeypatch.setattr(av_digits, "_make_voice_bank", _no_espeak)
    with pytest.raises(cache.CacheError, match=r"voice_bank.*regenerate"):
        av_digits.load_voice_bank()
    assert (data / "voice_bank" / "clips.npy").read_bytes() == damaged  # untouched


def test_explicit_regeneration_keeps_the_old_bank(data, monkeypatch):
    shipped = _ship_voice_bank(data)
    fake = np.ones((10, 12, 4000), dtype=np.int16)
    monkeypatch.setattr(av_digits, "_make_voice_bank", lambda: {"clips": fake})
    with pytest.warns(UserWarning, match="differs"):
        clips = av_digits.regenerate_voice_bank()
    assert np.array_equal(clips, fake) and cache.problems("voice_bank") == []
    kept = list((data / "voice_bank").glob(".replaced-*/clips.npy"))
    assert len(kept) == 1 and kept[0].read_bytes() == shipped
    with pytest.raises(TypeError, match="regenerate"):
        av_digits.load_voice_bank(regenerate="yes")
