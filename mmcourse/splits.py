"""Cleaning, normalising and splitting a dataset without leaking the test set into training.

* cleaning: find corrupt (NaN/inf), empty (constant) and outlying samples, per sample;
* normalising: a :class:`Standardizer` (z-score) and :class:`MinMaxScaler` that are FITTED ON
  THE TRAINING SPLIT ONLY and then applied unchanged to validation and test data;
* splitting: a stratified train/val/test split (every split keeps the class proportions), and
  checks that the splits are disjoint and share no duplicated sample.

Arrays may be NumPy arrays or torch tensors; the first dimension is always the sample.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch

from mmcourse._checks import check_int, check_real
from mmcourse.datasets.common import stratified_split as _dataset_split

__all__ = [
    "MinMaxScaler",
    "Standardizer",
    "SPLIT_NAMES",
    "check_disjoint",
    "class_balance",
    "cross_split_duplicates",
    "find_constant",
    "find_nonfinite",
    "find_outliers",
    "robust_zscore",
    "split_indices",
    "stratified_split",
]

SPLIT_NAMES = ("train", "val", "test")


# ----------------------------------------------------------------------------- helpers
def _as_numpy(x, name: str, min_ndim: int = 1) -> np.ndarray:
    """A float/int NumPy view of ``x`` (N, ...) with at least one sample."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    elif isinstance(x, (list, tuple)):
        x = np.asarray(x)
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{name} must be a numpy array or torch tensor, got {type(x).__name__}")
    if x.ndim < min_ndim:
        raise ValueError(f"{name} must have at least {min_ndim} dimension(s), got shape {x.shape}")
    if x.shape[0] == 0:
        raise ValueError(f"{name} is empty (shape {x.shape}): no samples")
    if not (np.issubdtype(x.dtype, np.number) or x.dtype == bool):
        raise TypeError(f"{name} must be numeric, got dtype {x.dtype}")
    return x


def _per_sample(x: np.ndarray) -> np.ndarray:
    return x.reshape(x.shape[0], -1)


# ----------------------------------------------------------------------------- cleaning
def find_nonfinite(x) -> np.ndarray:
    """Boolean mask (N,): samples with any NaN or infinite value (corrupt or missing)."""
    x = _as_numpy(x, "x")
    if not np.issubdtype(x.dtype, np.floating):
        return np.zeros(x.shape[0], dtype=bool)
    return ~np.isfinite(_per_sample(x)).all(axis=1)


def find_constant(x, tol: float = 1e-8) -> np.ndarray:
    """Boolean mask (N,): samples whose values are all (almost) equal, e.g. a silent clip or a
    blank image: present in the file but carrying no information."""
    x = _per_sample(_as_numpy(x, "x", min_ndim=2))  # no float64 copy: audio sets are large
    check_real(tol, "tol", low=0.0)
    with warnings.catch_warnings():  # an all-NaN sample warns; it counts as constant below
        warnings.simplefilter("ignore", RuntimeWarning)
        spread = np.nanmax(x, axis=1) - np.nanmin(x, axis=1)
    return ~(spread > tol)  # NaN spread (all-NaN sample) counts as constant


def _check_no_nonfinite(v: np.ndarray) -> None:
    # one NaN makes the median and the MAD NaN, and every score 0: it would hide real outliers
    bad = np.flatnonzero(~np.isfinite(v.reshape(v.shape[0], -1)).all(axis=1))
    if bad.size:
        raise ValueError(
            f"values contains NaN/inf for {bad.size} sample(s) (first: index {bad[0]}); "
            "drop them first (find_nonfinite marks them), then look for outliers"
        )


def robust_zscore(values) -> np.ndarray:
    """Robust z-score ``0.6745 (x - median) / MAD`` of a 1-D array (Iglewicz & Hoaglin, 1993).

    The median and the median absolute deviation (MAD) are barely moved by the outliers
    themselves, unlike the mean and standard deviation; 0.6745 makes it comparable to an
    ordinary z-score for Gaussian data. A zero MAD falls back to the mean absolute deviation.
    """
    v = _as_numpy(values, "values").astype(np.float64)
    if v.ndim != 1:
        raise ValueError(f"values must be 1-D (one number per sample), got shape {v.shape}")
    _check_no_nonfinite(v)
    centred = v - np.median(v)
    mad = np.median(np.abs(centred))
    if mad > 0:
        return 0.6745 * centred / mad
    mean_ad = np.mean(np.abs(centred))
    return centred / (1.2533 * mean_ad) if mean_ad > 0 else np.zeros_like(v)


def find_outliers(values, threshold: float = 3.5, method: str = "robust") -> np.ndarray:
    """Boolean mask (N,): samples whose score ``|z|`` exceeds ``threshold``.

    ``values`` is one number per sample (N,) such as a clip's loudness, or a feature matrix
    (N, D), where a sample is an outlier if any feature is. ``method="robust"`` uses
    :func:`robust_zscore` (recommended threshold 3.5); ``"zscore"`` the mean/std z-score,
    which a large outlier can hide by inflating the standard deviation (masking).
    """
    v = _as_numpy(values, "values").astype(np.float64)
    if v.ndim > 2:
        raise ValueError(f"values must be (N,) or (N, D), got shape {v.shape}")
    check_real(threshold, "threshold", low=0.0, low_open=True)
    _check_no_nonfinite(v)
    if method not in ("robust", "zscore"):
        raise ValueError(f"method must be 'robust' or 'zscore', got {method!r}")
    columns = v.reshape(v.shape[0], -1).T
    if method == "robust":
        scores = np.stack([robust_zscore(c) for c in columns])
    else:
        std = columns.std(axis=1, keepdims=True)
        scores = (columns - columns.mean(axis=1, keepdims=True)) / np.where(std > 0, std, 1.0)
    return (np.abs(scores) > threshold).any(axis=0)


# ----------------------------------------------------------------------------- normalising
class _AffineScaler:
    """x' = (x - offset) / scale with offset and scale fitted on training data only.

    ``dims`` are the dimensions reduced over when fitting (0 = samples). For images
    (N, C, H, W) use ``dims=(0, 2, 3)``: one statistic per channel. Works on NumPy arrays and
    torch tensors (the output has the type, dtype and device of the input).
    """

    def __init__(self, dims: Sequence[int] = (0,), eps: float = 1e-8):
        if isinstance(dims, (str, bytes)) or not isinstance(dims, Sequence):
            raise TypeError(f"dims must be a tuple of ints, e.g. (0,) or (0, 2, 3), got {dims!r}")
        for d in dims:
            check_int(d, "dims", minimum=0)
        self.dims = tuple(int(d) for d in dims)
        if 0 not in self.dims:
            raise ValueError(f"dims must include 0 (the sample dimension), got {dims}")
        self.eps = check_real(eps, "eps", low=0.0)
        self.offset: np.ndarray | None = None
        self.scale: np.ndarray | None = None

    def _statistics(self, arr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def fit(self, x):
        arr = _as_numpy(x, "x").astype(np.float64)
        if any(d >= arr.ndim or d < 0 for d in self.dims):
            raise ValueError(f"dims {self.dims} do not fit x of shape {arr.shape}")
        if not np.isfinite(arr).all():
            raise ValueError("x contains NaN/inf: clean it (find_nonfinite) before fitting")
        self.offset, self.scale = self._statistics(arr)
        return self

    def _params(self, x):
        if self.offset is None:
            raise RuntimeError("call fit(train_data) before transform")
        if not isinstance(x, (np.ndarray, torch.Tensor)):
            raise TypeError(f"x must be a numpy array or torch tensor, got {type(x).__name__}")
        shape = tuple(x.shape)
        kept = [n for i, n in enumerate(self.offset.shape) if i not in self.dims]
        got = [n for i, n in enumerate(shape) if i not in self.dims]
        if len(shape) != self.offset.ndim or kept != got:
            raise ValueError(
                f"x has shape {shape}, but the statistics were fitted on data of shape "
                f"(N, ...) with per-feature shape {tuple(self.offset.shape)}"
            )
        if isinstance(x, torch.Tensor):
            if not x.is_floating_point():
                raise TypeError(f"x must be a floating-point tensor, got {x.dtype}")
            to = dict(dtype=x.dtype, device=x.device)
            return torch.as_tensor(self.offset, **to), torch.as_tensor(self.scale + self.eps, **to)
        if not isinstance(x, np.ndarray):
            raise TypeError(f"x must be a numpy array or torch tensor, got {type(x).__name__}")
        dtype = x.dtype if x.dtype.kind == "f" else np.float64
        return self.offset.astype(dtype), (self.scale + self.eps).astype(dtype)

    def transform(self, x):
        offset, scale = self._params(x)
        return (x - offset) / scale

    def inverse_transform(self, z):
        offset, scale = self._params(z)
        return z * scale + offset

    def fit_transform(self, x):
        return self.fit(x).transform(x)


class Standardizer(_AffineScaler):
    """z = (x - mean) / std with mean and std from the TRAINING split: the training data then
    has mean 0 and standard deviation 1 along ``dims``; validation and test data only about.
    Equals sklearn's StandardScaler for ``dims=(0,)``."""

    def _statistics(self, arr):
        return arr.mean(axis=self.dims, keepdims=True), arr.std(axis=self.dims, keepdims=True)

    @property
    def mean(self):
        return self.offset

    @property
    def std(self):
        return self.scale


class MinMaxScaler(_AffineScaler):
    """x' = (x - min) / (max - min) with min and max from the training split: maps the training
    data to [0, 1]. Unseen data can fall outside; ``clip=True`` clamps it to [0, 1]."""

    def __init__(self, dims: Sequence[int] = (0,), clip: bool = False, eps: float = 1e-8):
        super().__init__(dims, eps)
        self.clip = clip

    def _statistics(self, arr):
        low = arr.min(axis=self.dims, keepdims=True)
        return low, arr.max(axis=self.dims, keepdims=True) - low

    def transform(self, x):
        out = super().transform(x)
        if self.clip:
            out = out.clamp(0, 1) if isinstance(out, torch.Tensor) else np.clip(out, 0, 1)
        return out


# ----------------------------------------------------------------------------- splitting
def stratified_split(
    labels, fractions: Sequence[float] = (0.6, 0.2, 0.2), seed: int = 0
) -> np.ndarray:
    """Assign every sample to "train", "val" or "test" with the class proportions preserved.

    Returns a str array (N,) like the datasets' ``split`` attribute (it is the very function
    that made them, :func:`mmcourse.datasets.common.stratified_split`), after checking that
    every class is large enough to appear in all three parts. Use :func:`split_indices` to
    get index arrays.
    """
    y = _as_numpy(labels, "labels")
    if y.ndim != 1:
        raise ValueError(f"labels must be 1-D (N,), got shape {y.shape}")
    if y.dtype.kind == "f" and np.isnan(y).any():
        raise ValueError(f"labels contains {int(np.isnan(y).sum())} NaN value(s)")
    try:
        fr = np.asarray(fractions, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"fractions must be 3 positive numbers summing to 1, got {fractions!r}"
        ) from exc
    if fr.shape != (3,) or not (fr > 0).all() or not np.isclose(fr.sum(), 1.0):
        raise ValueError(f"fractions must be 3 positive numbers summing to 1, got {fractions}")
    classes, counts = np.unique(y, return_counts=True)
    n_needed = int(np.ceil(1.0 / fr.min()))
    if counts.min() < n_needed:
        rare = classes[counts.argmin()].item()
        raise ValueError(
            f"class {rare!r} has only {counts.min()} samples; a stratified split with fractions "
            f"{tuple(fractions)} needs at least {n_needed} per class"
        )
    return _dataset_split(y, tuple(fr), seed)


def split_indices(split) -> dict[str, np.ndarray]:
    """{"train": indices, "val": ..., "test": ...} from a str split array (N,)."""
    s = np.asarray(split)
    if s.ndim != 1 or s.size == 0:
        raise ValueError(f"split must be a non-empty 1-D array of split names, got shape {s.shape}")
    unknown = set(np.unique(s)) - set(SPLIT_NAMES)
    if unknown:
        raise ValueError(f"split has unknown names {sorted(unknown)}; expected {SPLIT_NAMES}")
    return {name: np.flatnonzero(s == name) for name in SPLIT_NAMES}


def check_disjoint(**index_sets) -> None:
    """Raise ValueError when two index sets share a sample, e.g.
    ``check_disjoint(train=idx_tr, val=idx_va, test=idx_te)``."""
    if len(index_sets) < 2:
        raise ValueError("give at least two named index sets, e.g. train=..., test=...")
    for name, values in index_sets.items():
        if isinstance(values, (str, bytes)) or np.asarray(values).dtype.kind in "fcO":
            raise TypeError(
                f"{name} must be an array of sample indices (or ids), got {values!r:.60}"
            )
    sets = {k: set(np.asarray(v).ravel().tolist()) for k, v in index_sets.items()}
    names = list(sets)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            shared = sets[a] & sets[b]
            if shared:
                example = sorted(shared)[:5]
                raise ValueError(
                    f"splits {a!r} and {b!r} share {len(shared)} samples (e.g. {example}): leakage"
                )


def class_balance(labels, split) -> pd.DataFrame:
    """Fraction of each class (rows) within each split (columns); equal columns = stratified."""
    y = _as_numpy(labels, "labels")
    idx = split_indices(split)
    if len(np.asarray(split)) != len(y):
        raise ValueError(f"labels ({len(y)}) and split ({len(np.asarray(split))}) differ in length")
    table = {name: pd.Series(y[i]).value_counts(normalize=True) for name, i in idx.items()}
    return pd.DataFrame(table).fillna(0.0).sort_index()


def cross_split_duplicates(x, split, decimals: int | None = 6) -> pd.DataFrame:
    """Samples whose content (rounded to ``decimals``) appears in more than one split.

    Disjoint indices are not enough: the same image saved twice, once in train and once in
    test, leaks too. Each sample is hashed; returns one row per duplicated content with the
    splits and indices involved (empty when there is no leakage).
    """
    arr = _per_sample(_as_numpy(x, "x"))
    if decimals is not None:
        check_int(decimals, "decimals", minimum=0)
    s = np.asarray(split)
    if len(s) != len(arr):
        raise ValueError(f"x ({len(arr)} samples) and split ({len(s)}) differ in length")
    if decimals is not None and np.issubdtype(arr.dtype, np.floating):
        arr = np.round(arr.astype(np.float64), decimals) + 0.0  # + 0.0 turns -0.0 into 0.0
    digests = [hashlib.sha1(np.ascontiguousarray(row).tobytes()).hexdigest() for row in arr]
    frame = pd.DataFrame({"hash": digests, "split": s, "index": np.arange(len(s))})
    rows = []
    for digest, group in frame.groupby("hash", sort=False):
        if group["split"].nunique() > 1:
            rows.append({"hash": digest[:12], "splits": sorted(set(group["split"])),
                         "indices": group["index"].tolist()})  # fmt: skip
    return pd.DataFrame(rows, columns=["hash", "splits", "indices"])
