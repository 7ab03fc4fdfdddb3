"""A tiny verified cache: datasets as .npy files under data/, checked against a sha256 manifest.

Each dataset is a folder ``data/<name>/`` of ``<array>.npy`` files; ``data/manifest.json``
records the sha256 and size of every file. ``load_arrays`` verifies each file on load; a
missing or corrupt file makes it regenerate the whole dataset from its deterministic
generator. ``.npy`` is used rather than ``.npz`` because ``np.save`` writes the same bytes
every time, so hashes are reproducible.

Nothing is ever lost:

* a file that is replaced (corrupt, stale, or regenerated with other bytes) is first moved
  into ``data/<name>/.replaced-<time>-<nanoseconds>-<n>/``, a new folder each time, never
  one that exists already;
* a ``manifest.json`` that is not valid JSON is moved aside to
  ``manifest.json.corrupt-<time>-<nanoseconds>-<n>`` and rebuilt (see below);
* when the manifest is missing (or lacks a dataset), the files on disk stay authoritative:
  if every ``data/<name>/*.npy`` loads and passes the dataset's own ``check``, their hashes
  are recorded as they are, and nothing is regenerated. A dataset whose generator is not
  bit-reproducible (the espeak-ng voice bank) is loaded with ``regenerate=False``:
  regenerating it is an explicit act (``mmcourse.datasets.av_digits.regenerate_voice_bank``).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import shutil
import stat
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

MANIFEST = "manifest.json"
_unique = itertools.count()  # distinguishes two backups made in the same nanosecond


class CacheError(RuntimeError):
    """The data cache cannot be used as it is; the message names the file and the fix."""


def data_dir() -> Path:
    """Where datasets live, in this order:

    1. ``$MMCOURSE_DATA`` when it is set;
    2. the repository's ``data/`` when mmcourse runs from a clone (or an editable install);
    3. the data shipped inside an installed wheel (``mmcourse/_data``) when that folder is
       writable (a virtual environment, Colab, a user install);
    4. when it is read-only (a system-wide install), a copy of it in the user cache folder,
       made once, because a damaged dataset is repaired in place;
    5. else the user cache folder, where the datasets are generated on first use.
    """
    override = os.environ.get("MMCOURSE_DATA")
    if override:
        path = Path(override).expanduser()
        if path.exists() and not path.is_dir():
            raise NotADirectoryError(
                f"MMCOURSE_DATA={override!r} is a file, not a folder; point it at a folder "
                "for the course's datasets (it is created if missing), or unset it to use the "
                "repository's data/"
            )
        return path
    return _default_root(Path(__file__).resolve().parents[1])


def _default_root(package: Path) -> Path:
    """Steps 2-5 of :func:`data_dir` for the package folder ``package``."""
    clone = package.parent
    if (clone / "pyproject.toml").is_file() and (clone / "data").is_dir():
        return clone / "data"
    shipped = package / "_data"
    if (shipped / MANIFEST).is_file():
        return shipped if os.access(shipped, os.W_OK) else _writable_copy(shipped)
    return user_cache_dir() / "data"


def user_cache_dir() -> Path:
    """The per-user cache folder of mmcourse (created on demand by whoever writes to it)."""
    if os.name == "nt":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Caches"
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "mmcourse"


def _writable_copy(shipped: Path) -> Path:
    """A copy of the read-only shipped data in the user cache, named by the shipped manifest's
    hash so that another version of the course never reuses a copy of other data."""
    target = user_cache_dir() / f"data-{sha256(shipped / MANIFEST)[:12]}"
    if (target / MANIFEST).is_file():
        return target
    staging = target.with_name(f"{target.name}.{os.getpid()}.tmp")
    shutil.copytree(shipped, staging, copy_function=shutil.copyfile, dirs_exist_ok=True)
    for folder in (staging, *staging.rglob("*")):  # copytree copied the read-only modes
        if folder.is_dir():
            folder.chmod(folder.stat().st_mode | stat.S_IWUSR)
    try:
        os.replace(staging, target)  # atomic: a kernel never sees a half-made copy
    except OSError:  # another process made the copy first; keep that one
        shutil.rmtree(staging, ignore_errors=True)
    return target


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _stamp() -> str:
    """A name part no other backup of this process or of an earlier second shares."""
    now = time.time_ns()
    seconds = time.strftime("%Y%m%d-%H%M%S", time.localtime(now // 1_000_000_000))
    return f"{seconds}-{now % 1_000_000_000:09d}-{os.getpid()}-{next(_unique)}"


def _new_backup_folder(folder: Path) -> Path:
    """A fresh ``.replaced-*`` folder inside ``folder``: created here, never reused."""
    while True:
        backup = folder / f".replaced-{_stamp()}"
        try:
            backup.mkdir(parents=True)
            return backup
        except FileExistsError:  # practically impossible (the counter); try the next name
            continue


def _move_aside(path: Path, suffix: str) -> Path:
    """Rename ``path`` to ``<path><suffix><stamp>`` (never over an existing file)."""
    while True:
        target = path.with_name(f"{path.name}{suffix}{_stamp()}")
        if not target.exists():
            os.replace(path, target)
            return target


def read_manifest(root: Path | None = None) -> dict[str, dict]:
    """The manifest ``{relative path: {"sha256", "bytes"}}``; empty when there is none.

    Raises :class:`CacheError` naming the file when it is not a valid manifest (loading a
    dataset repairs that by itself: see :func:`load_arrays`).
    """
    path = (root or data_dir()) / MANIFEST
    if not path.exists():
        return {}
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CacheError(
            f"{path} is not valid JSON ({exc}). It records the sha256 of every dataset file. "
            "Restore it (git checkout -- data/manifest.json), or just load a dataset again: "
            "mmcourse moves the damaged file aside and rebuilds the manifest from the data "
            "files that pass their checks."
        ) from exc
    if not isinstance(manifest, dict) or not all(
        isinstance(v, dict) and {"sha256", "bytes"} <= set(v) for v in manifest.values()
    ):
        raise CacheError(
            f"{path} is not a manifest written by mmcourse (expected "
            '{"name/array.npy": {"sha256": ..., "bytes": ...}}); restore it with '
            "git checkout -- data/manifest.json, or load a dataset to rebuild it"
        )
    return manifest


def _read_or_repair_manifest(root: Path) -> dict[str, dict]:
    """``read_manifest``, but a damaged manifest is moved aside (kept) and treated as absent."""
    try:
        return read_manifest(root)
    except CacheError as exc:
        kept = _move_aside(root / MANIFEST, ".corrupt-")
        warnings.warn(
            f"{root / MANIFEST} was damaged ({str(exc).split(' (')[0]}); it was kept as "
            f"{kept.name} and the manifest is rebuilt from the data files that pass their "
            "checks",
            stacklevel=3,
        )
        return {}


def _write_manifest(manifest: dict, root: Path) -> None:
    tmp = root / f"{MANIFEST}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, root / MANIFEST)


def problems(name: str, root: Path | None = None) -> list[str]:
    """What is wrong with dataset ``name`` on disk: an empty list when every file verifies."""
    root = root or data_dir()
    entries = {k: v for k, v in read_manifest(root).items() if k.startswith(name + "/")}
    if not entries:
        return [f"{name}: not in {root / MANIFEST}"]
    found = []
    for rel, meta in sorted(entries.items()):
        path = root / rel
        if not path.exists():
            found.append(f"{rel}: missing")
        elif path.stat().st_size != meta["bytes"] or sha256(path) != meta["sha256"]:
            found.append(f"{rel}: corrupt (sha256 does not match the manifest)")
    return found


def _files_on_disk(name: str, root: Path) -> list[Path]:
    folder = root / name
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob("*.npy") if ".tmp" not in p.name)


def _adopt(
    name: str, root: Path, manifest: dict, check: Callable[[dict], None] | None
) -> dict[str, np.ndarray] | None:
    """Files of ``name`` that the manifest does not list: if each loads (no pickles, not
    truncated) and ``check`` accepts them, record their hashes and return the arrays."""
    files = _files_on_disk(name, root)
    if not files:
        return None
    try:
        arrays = {p.stem: np.load(p, allow_pickle=False) for p in files}
        if check is not None:
            check(arrays)
    except (ValueError, OSError, EOFError) as exc:
        warnings.warn(
            f"dataset {name!r}: the files in {root / name} are not in the manifest and fail "
            f"their checks ({exc}); they are moved aside and the dataset is regenerated",
            stacklevel=3,
        )
        return None
    for path in files:
        manifest[f"{name}/{path.name}"] = {"sha256": sha256(path), "bytes": path.stat().st_size}
    _write_manifest(manifest, root)
    warnings.warn(
        f"dataset {name!r} was not in {root / MANIFEST}: its files pass their checks, so they "
        "were kept as they are and their hashes recorded (nothing regenerated). With the "
        "repository, git checkout -- data/manifest.json restores the recorded hashes.",
        stacklevel=3,
    )
    return arrays


def load_arrays(
    name: str,
    generate: Callable[[], dict[str, np.ndarray]],
    root: Path | None = None,
    check: Callable[[dict[str, np.ndarray]], None] | None = None,
    regenerate: bool = True,
) -> dict[str, np.ndarray]:
    """Load dataset ``name``, regenerating it first if any file is missing or corrupt.

    ``check(arrays)`` raises ValueError when arrays are not a valid ``name`` (shapes,
    dtypes); it decides whether files on disk that the manifest does not list are adopted
    as they are. With ``regenerate=False`` a missing or corrupt dataset raises
    :class:`CacheError` instead of being regenerated (for data whose generator does not
    give the same bytes twice).
    """
    root = root or data_dir()
    manifest = _read_or_repair_manifest(root)
    if not any(k.startswith(name + "/") for k in manifest):
        adopted = _adopt(name, root, manifest, check)
        if adopted is not None:
            return adopted
    issues = problems(name, root)
    if issues:
        if not regenerate:
            raise CacheError(
                f"dataset {name!r} cannot be verified: {'; '.join(issues)}. It is not "
                "regenerated automatically because regeneration does not reproduce the "
                "shipped bytes. Restore it (git checkout -- data/ in a clone, or reinstall "
                "mmcourse), or regenerate it "
                "explicitly (see the dataset's regenerate_* function)."
            )
        warnings.warn(f"dataset {name!r} needs regenerating: {'; '.join(issues)}", stacklevel=2)
        save_arrays(name, generate(), root)
    manifest = read_manifest(root)
    files = sorted(k for k in manifest if k.startswith(name + "/"))
    return {Path(k).stem: np.load(root / k, allow_pickle=False) for k in files}


def save_arrays(name: str, arrays: dict[str, np.ndarray], root: Path | None = None) -> None:
    """Write ``arrays`` as ``data/<name>/*.npy`` and record their hashes in the manifest.

    Files already there that differ (or that ``arrays`` no longer has) are moved into a new
    ``data/<name>/.replaced-<time>-<nanoseconds>-<n>/`` folder: never overwritten.
    """
    root = root or data_dir()
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    manifest = _read_or_repair_manifest(root)
    old = {k: v for k, v in manifest.items() if k.startswith(name + "/")}
    backup: Path | None = None

    def keep(path: Path) -> None:  # move a file into this call's backup folder
        nonlocal backup
        if backup is None:
            backup = _new_backup_folder(folder)
        os.replace(path, backup / path.name)

    for key in old:  # move stale or corrupt files aside so nothing is lost
        path = root / key
        if path.exists() and Path(key).stem not in arrays:
            keep(path)
        manifest.pop(key)
    changed = []
    for array_name, array in arrays.items():
        array = np.asarray(array)
        if array.dtype == object:
            raise TypeError(f"array {array_name!r} has dtype object; use a fixed dtype")
        rel = f"{name}/{array_name}.npy"
        path = root / rel
        tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npy")  # unique per process
        np.save(tmp, array, allow_pickle=False)
        digest = sha256(tmp)
        if path.exists() and sha256(path) != digest:
            keep(path)
        os.replace(tmp, path)
        if old.get(rel, {}).get("sha256", digest) != digest:
            changed.append(rel)
        manifest[rel] = {"sha256": digest, "bytes": path.stat().st_size}
    _write_manifest(manifest, root)
    if changed:
        warnings.warn(
            f"regenerated {name!r} differs from the recorded manifest ({', '.join(changed)}); "
            "this happens with other library versions. The manifest was updated here.",
            stacklevel=2,
        )
