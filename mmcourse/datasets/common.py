"""Pieces shared by the course datasets: the fixed stratified split and subsetting."""

from __future__ import annotations

import dataclasses

import numpy as np

SPLITS = ("train", "val", "test")


def stratified_split(labels: np.ndarray, fractions=(0.6, 0.2, 0.2), seed: int = 0) -> np.ndarray:
    """Assign every sample to "train", "val" or "test", class by class, in the given fractions.

    Stratifying keeps each class's share equal across splits; the fixed seed makes the split
    the same on every machine, so results in different notebooks are comparable.
    """
    labels = np.asarray(labels)
    if labels.ndim != 1 or labels.size == 0:
        raise ValueError(f"labels must be a non-empty 1-D array, got shape {labels.shape}")
    if labels.dtype.kind == "f" and np.isnan(labels).any():
        raise ValueError("labels contains NaN: every sample needs a class to be stratified by")
    if len(fractions) != 3 or abs(sum(fractions) - 1) > 1e-9 or min(fractions) <= 0:
        raise ValueError(f"fractions must be three positive numbers summing to 1, got {fractions}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    rng = np.random.default_rng(seed)
    split = np.empty(labels.shape, dtype="<U5")
    for value in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == value))
        n_train = round(fractions[0] * members.size)
        n_val = round(fractions[1] * members.size)
        split[members[:n_train]] = "train"
        split[members[n_train : n_train + n_val]] = "val"
        split[members[n_train + n_val :]] = "test"
    return split


class SubsetMixin:
    """``subset(which)`` for dataclasses whose per-sample fields share the first axis."""

    def _per_sample_fields(self) -> list[str]:
        n = len(self.labels)
        return [
            f.name
            for f in dataclasses.fields(self)
            if hasattr(getattr(self, f.name), "__len__")
            and not isinstance(getattr(self, f.name), str)
            and len(getattr(self, f.name)) == n
            and f.name not in ("classes",)
        ]

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, which):
        """A copy restricted to a split name ("train", "val", "test"), a boolean mask or indices."""
        if isinstance(which, str):
            if which not in SPLITS:
                raise ValueError(f"which must be one of {SPLITS}, a mask or indices; got {which!r}")
            index = np.flatnonzero(self.split == which)
        else:
            index = np.asarray(which)
            if index.dtype == bool:
                if index.shape != (len(self),):
                    raise ValueError(
                        f"boolean mask must have shape ({len(self)},), got {index.shape}"
                    )
                index = np.flatnonzero(index)
        changes = {}
        for name in self._per_sample_fields():
            value = getattr(self, name)
            if hasattr(value, "iloc"):  # pandas DataFrame
                changes[name] = value.iloc[index].reset_index(drop=True)
            elif isinstance(value, list):
                changes[name] = [value[i] for i in index]
            else:
                changes[name] = value[index]
        return dataclasses.replace(self, **changes)
