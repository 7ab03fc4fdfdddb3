"""A tiny verified cache: datasets as .npy files under data/, checked against a sha256 manifest.

Each dataset is a folder ``data/<name>/`` of ``<array>.npy`` files; ``data/manifest.json``
records the sha256 and size of every file. ``load_arrays`` verifies each file on load; a
missing or corrupt file makes it regenerate the whole dataset from its deterministic
generator (a corrupt file is moved aside first, never deleted). ``.npy`` is used rather than
``.npz`` because ``np.save`` writes the same bytes every time, so hashes are reproducible.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

MANIFEST = "manifest.json"


def data_dir() -> Path:
    """Where datasets live: ``$MMCOURSE_DATA`` if set, else the repository's ``data/``."""
    override = os.environ.get("MMCOURSE_DATA")
    if override:
        return Path(override)
    repo_data = Path(__file__).resolve().parents[2] / "data"
    if repo_data.is_dir():
        return repo_data
    return Path.home() / ".cache" / "mmcourse" / "data"


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_manifest(root: Path | None = None) -> dict[str, dict]:
    path = (root or data_dir()) / MANIFEST
    if not path.exists():
        return {}
    return json.loads(path.read_text(encoding="utf-8"))


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


def load_arrays(
    name: str, generate: Callable[[], dict[str, np.ndarray]], root: Path | None = None
) -> dict[str, np.ndarray]:
    """Load dataset ``name``, regenerating it first if any file is missing or corrupt."""
    root = root or data_dir()
    issues = problems(name, root)
    if issues:
        warnings.warn(f"dataset {name!r} needs regenerating: {'; '.join(issues)}", stacklevel=2)
        save_arrays(name, generate(), root)
    manifest = read_manifest(root)
    files = sorted(k for k in manifest if k.startswith(name + "/"))
    return {Path(k).stem: np.load(root / k, allow_pickle=False) for k in files}


def save_arrays(name: str, arrays: dict[str, np.ndarray], root: Path | None = None) -> None:
    """Write ``arrays`` as ``data/<name>/*.npy`` and record their hashes in the manifest.

    Files already there that differ are moved into ``data/<name>/.replaced-<time>/``.
    """
    root = root or data_dir()
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    manifest = read_manifest(root)
    old = {k: v for k, v in manifest.items() if k.startswith(name + "/")}
    backup = folder / f".replaced-{time.strftime('%Y%m%d-%H%M%S')}"
    for key in old:  # move stale or corrupt files aside so nothing is lost
        path = root / key
        if path.exists() and Path(key).stem not in arrays:
            backup.mkdir(exist_ok=True)
            os.replace(path, backup / path.name)
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
            backup.mkdir(exist_ok=True)
            os.replace(path, backup / path.name)
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
