"""Classification metrics, calibration and bootstrap confidence intervals.

Each function takes NumPy arrays, lists or torch tensors; labels are integers 0..K-1.
``accuracy``, ``macro_f1`` and ``confusion_matrix`` agree with scikit-learn (the tests check
it); they are written out here because each is a few lines that a learner should be able to
read. Calibration follows Guo et al. (2017), "On Calibration of Modern Neural Networks", ICML.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from mmcourse._checks import check_int, check_real, check_seed

# ----------------------------------------------------------------------------- input checks


def _as_numpy(x, name: str) -> np.ndarray:
    if hasattr(x, "detach"):  # a torch tensor
        x = x.detach().cpu().numpy()
    try:
        return np.asarray(x)
    except Exception as exc:
        raise TypeError(f"{name} must be array-like, got {type(x).__name__}") from exc


def _labels(y, name: str) -> np.ndarray:
    y = _as_numpy(y, name)
    if y.ndim != 1:
        raise ValueError(f"{name} must be 1-D class labels (N,), got shape {y.shape}")
    if y.size == 0:
        raise ValueError(f"{name} is empty")
    if y.dtype.kind == "f" and np.all(np.mod(y, 1) == 0):
        y = y.astype(np.int64)
    if y.dtype.kind not in "iu" or y.min() < 0:
        raise ValueError(
            f"{name} must hold non-negative integer class labels, got dtype "
            f"{y.dtype} with min {y.min()}"
        )
    return y.astype(np.int64)


def _pair(y_true, y_pred) -> tuple[np.ndarray, np.ndarray]:
    """Labels and predictions; 2-D ``y_pred`` (scores or probabilities) is argmax-ed."""
    y_pred = _as_numpy(y_pred, "y_pred")
    if y_pred.ndim == 2:
        if y_pred.shape[1] < 2:
            raise ValueError(
                f"y_pred as scores must have shape (N, K) with K >= 2 classes, got shape "
                f"{y_pred.shape}; pass labels (N,) instead"
            )
        y_pred = y_pred.argmax(axis=1)
    y_true, y_pred = _labels(y_true, "y_true"), _labels(y_pred, "y_pred")
    if y_true.shape != y_pred.shape:
        raise ValueError(
            f"y_true and y_pred must have the same length, got {y_true.shape[0]} "
            f"and {y_pred.shape[0]}"
        )
    return y_true, y_pred


def _probs(probs, y_true) -> tuple[np.ndarray, np.ndarray]:
    probs = _as_numpy(probs, "probs")
    if probs.dtype.kind not in "biuf":
        raise TypeError(f"probs must be numbers (class probabilities), got dtype {probs.dtype}")
    probs = probs.astype(np.float64)
    if probs.ndim != 2 or probs.shape[1] < 2 or probs.shape[0] == 0:
        raise ValueError(
            f"probs must be class probabilities of shape (N, K) with K >= 2, "
            f"got shape {probs.shape}"
        )
    if probs.min() < 0 or probs.max() > 1 or not np.allclose(probs.sum(1), 1, atol=1e-3):
        raise ValueError(
            "probs rows must be probabilities that sum to 1 "
            "(did you pass logits? apply softmax first)"
        )
    y_true = _labels(y_true, "y_true")
    if y_true.shape[0] != probs.shape[0]:
        raise ValueError(f"probs has {probs.shape[0]} rows but y_true has {y_true.shape[0]} labels")
    if y_true.max() >= probs.shape[1]:
        raise ValueError(
            f"y_true has label {y_true.max()} but probs has only {probs.shape[1]} columns"
        )
    return probs, y_true


# ----------------------------------------------------------------------------- metrics


def accuracy(y_true, y_pred) -> float:
    """Fraction of correct predictions. ``y_pred`` may be labels (N,) or scores (N, K)."""
    y_true, y_pred = _pair(y_true, y_pred)
    return float(np.mean(y_true == y_pred))


def confusion_matrix(
    y_true, y_pred, num_classes: int | None = None, normalize: str | None = None
) -> np.ndarray:
    """Counts ``C[i, j]`` of samples of true class i predicted as class j (K, K).

    ``num_classes`` defaults to the largest label + 1. ``normalize="true"`` divides each row
    by its total (per-class recall on the diagonal), ``"pred"`` each column, ``"all"`` the total.
    """
    y_true, y_pred = _pair(y_true, y_pred)
    k = int(max(y_true.max(), y_pred.max())) + 1
    if num_classes is not None:
        check_int(num_classes, "num_classes")
        if num_classes < k:
            raise ValueError(f"num_classes={num_classes} but the labels go up to {k - 1}")
        k = num_classes
    cm = np.bincount(y_true * k + y_pred, minlength=k * k).reshape(k, k)
    if normalize is None:
        return cm
    axis = {"true": 1, "pred": 0, "all": None}
    if normalize not in axis:
        raise ValueError(f"normalize must be None, 'true', 'pred' or 'all', got {normalize!r}")
    total = cm.sum(axis=axis[normalize], keepdims=normalize != "all")
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.nan_to_num(cm / total)


def macro_f1(y_true, y_pred, num_classes: int | None = None) -> float:
    r"""Unweighted mean over classes of :math:`F_1 = 2TP / (2TP + FP + FN)`.

    Like scikit-learn, the classes are those present in ``y_true`` or ``y_pred`` unless
    ``num_classes`` is given; a class with no true and no predicted sample scores 0.
    """
    y_true, y_pred = _pair(y_true, y_pred)
    cm = confusion_matrix(y_true, y_pred, num_classes)
    tp = np.diag(cm).astype(float)
    fp, fn = cm.sum(0) - tp, cm.sum(1) - tp
    denom = 2 * tp + fp + fn
    f1 = np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)
    if num_classes is None:  # only the classes that occur, as sklearn does
        f1 = f1[np.union1d(y_true, y_pred)]
    return float(f1.mean())


METRICS: dict[str, Callable] = {"accuracy": accuracy, "macro_f1": macro_f1}


def get_metric(name: str | Callable) -> Callable:
    """A metric function ``f(y_true, y_pred) -> float`` by name ("accuracy", "macro_f1")."""
    if callable(name):
        return name
    if name not in METRICS:
        raise ValueError(
            f"unknown metric {name!r}; choose from {sorted(METRICS)} "
            "or pass a function f(y_true, y_pred)"
        )
    return METRICS[name]


# ----------------------------------------------------------------------------- calibration


def calibration_bins(probs, y_true, n_bins: int = 10) -> dict[str, np.ndarray]:
    """Group predictions by confidence into ``n_bins`` equal-width bins (lo, hi].

    Confidence is the top class probability. Returns ``edges`` (n_bins+1,), and per bin
    ``count``, ``confidence`` (mean) and ``accuracy`` (NaN for empty bins).
    """
    probs, y_true = _probs(probs, y_true)
    check_int(n_bins, "n_bins")
    confidence = probs.max(1)
    correct = (probs.argmax(1) == y_true).astype(float)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    # searchsorted on the inner edges puts a confidence equal to an edge in the lower bin
    which = np.searchsorted(edges[1:-1], confidence, side="left")
    count = np.bincount(which, minlength=n_bins)
    with np.errstate(invalid="ignore"):
        conf = np.bincount(which, confidence, minlength=n_bins) / count
        acc = np.bincount(which, correct, minlength=n_bins) / count
    return {"edges": edges, "count": count, "confidence": conf, "accuracy": acc}


def expected_calibration_error(probs, y_true, n_bins: int = 10) -> float:
    r"""ECE :math:`= \sum_b \frac{|B_b|}{N} \, |\mathrm{acc}(B_b) - \mathrm{conf}(B_b)|`.

    The gap between how often the model is right and how sure it says it is, averaged over
    confidence bins weighted by their size (Naeini et al. 2015; Guo et al. 2017).
    """
    bins = calibration_bins(probs, y_true, n_bins)
    filled = bins["count"] > 0
    gaps = np.abs(bins["accuracy"][filled] - bins["confidence"][filled])
    return float(np.sum(bins["count"][filled] * gaps) / bins["count"].sum())


def reliability_diagram(
    ax, probs, y_true, n_bins: int = 10, label: str | None = None, color: str = "C0"
):
    """Draw a reliability diagram on ``ax``: accuracy per confidence bin vs the diagonal.

    Bars below the diagonal mean over-confidence; the number above each bar is how many
    predictions fell in that bin. The ECE is written in the legend. Returns ``ax``.
    """
    bins = calibration_bins(probs, y_true, n_bins)
    ece = expected_calibration_error(probs, y_true, n_bins)
    edges = bins["edges"]
    centers, width = (edges[:-1] + edges[1:]) / 2, np.diff(edges)
    filled = bins["count"] > 0
    name = f"{label}, " if label else ""
    bars = ax.bar(
        centers[filled],
        bins["accuracy"][filled],
        width=width[filled] * 0.9,
        color=color,
        alpha=0.7,
        edgecolor="k",
        label=f"{name}ECE = {ece:.3f}",
    )
    # how many predictions each bar rests on: a bar of 3 samples says little
    ax.bar_label(bars, labels=[str(c) for c in bins["count"][filled]], fontsize=7, padding=1)
    ax.plot([0, 1], [0, 1], "k--", lw=1, label="perfect calibration")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("confidence (top probability)")
    ax.set_ylabel("accuracy in bin")
    ax.legend(loc="upper left")
    return ax


# ----------------------------------------------------------------------------- uncertainty


class CI(NamedTuple):
    """A point estimate and its confidence interval [low, high]."""

    estimate: float
    low: float
    high: float

    def __str__(self) -> str:
        return f"{self.estimate:.3f} [{self.low:.3f}, {self.high:.3f}]"


def bootstrap_ci(
    y_true,
    y_pred,
    metric: str | Callable = "accuracy",
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> CI:
    """Percentile bootstrap confidence interval of ``metric`` on a test set.

    Resamples the N test examples with replacement ``n_boot`` times and takes the
    ``(1-level)/2`` and ``(1+level)/2`` quantiles of the metric (Efron & Tibshirani 1993).
    It measures the uncertainty due to the finite test set only, not to training seeds.
    """
    metric_fn = get_metric(metric)
    y_pred = _as_numpy(y_pred, "y_pred")
    if y_pred.ndim == 2:
        y_pred = y_pred.argmax(1)
    y_true, y_pred = _pair(y_true, y_pred)
    check_int(n_boot, "n_boot", minimum=10)
    check_real(level, "level", 0.0, 1.0, low_open=True, high_open=True)
    check_seed(seed)
    rng = np.random.default_rng(seed)
    n = y_true.shape[0]
    if metric_fn is accuracy:  # vectorised fast path: mean of the resampled hits
        hits = (y_true == y_pred).astype(float)
        stats = hits[rng.integers(0, n, size=(n_boot, n))].mean(1)
    else:
        stats = np.empty(n_boot)
        for b in range(n_boot):
            idx = rng.integers(0, n, size=n)
            stats[b] = metric_fn(y_true[idx], y_pred[idx])
    low, high = np.quantile(stats, [(1 - level) / 2, (1 + level) / 2])
    return CI(float(metric_fn(y_true, y_pred)), float(low), float(high))


def paired_bootstrap_ci(a, b, n_boot: int = 2000, level: float = 0.95, seed: int = 0):
    """Percentile bootstrap interval of ``mean(a - b)`` with both resampled on the SAME
    examples (a paired bootstrap; Efron & Tibshirani, 1993): per-example scores ``a`` and
    ``b`` (e.g. 1 = correct) of two models on one test set. Returns (low, high)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.ndim != 1 or a.shape != b.shape or a.size < 2:
        raise ValueError(
            f"a and b must be 1-D per-example scores of the same length >= 2, "
            f"got shapes {a.shape} and {b.shape}"
        )
    check_int(n_boot, "n_boot")
    check_real(level, "level", low=0.0, high=1.0, low_open=True, high_open=True)
    check_seed(seed)
    rng = np.random.default_rng(seed)
    resampled = rng.integers(0, a.size, size=(n_boot, a.size))
    tail = (1 - level) / 2
    low, high = np.quantile((a - b)[resampled].mean(1), [tail, 1 - tail])
    return float(low), float(high)
