"""The application cases of notebook 08: one training recipe, and the figures each domain needs.

Every case (medicine, driving, human-computer interaction, moderation) trains the same kind of
model, a ``MultimodalClassifier`` on a dict of encoders, and compares it with unimodal ones on
the same split with the same budget. This module holds that recipe and the measurements the
domains ask for beyond accuracy:

    split_data, full_batch, train_classifier, test_proba    the shared recipe
    seed_hits                                               per-example hit rate over seeds
    miss_rate, false_positive_rate                          the two errors of a detector
    positive_predictive_value                               a positive result at a prevalence
    selective_prediction                                    "refer to a human when unsure"

Confidence intervals come from ``mmcourse.metrics.bootstrap_ci`` (one model) and
``mmcourse.metrics.paired_bootstrap_ci`` (a difference between two models on the same
examples).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from mmcourse._checks import check_int, check_real, check_seed
from mmcourse.datasets import MultimodalDataset, make_loader
from mmcourse.fusion import ConcatFusion
from mmcourse.models import MultimodalClassifier
from mmcourse.train import fit, predict_proba
from mmcourse.utils import seed_everything

PARTS = ("train", "val", "test")


# --------------------------------------------------------------------------- the recipe
def split_data(modalities: Mapping[str, np.ndarray], labels, split) -> dict:
    """{"train": (inputs, labels), "val": ..., "test": ...}: each modality's rows of that part
    as a tensor (inputs is a dict by modality name), and the labels as a tensor."""
    labels, split = np.asarray(labels), np.asarray(split)
    if not isinstance(modalities, Mapping) or not modalities:
        raise TypeError("modalities must be a non-empty dict {name: array (N, ...)}")
    if labels.ndim != 1 or split.shape != labels.shape:
        raise ValueError(
            f"labels and split must be 1-D and of the same length, got {labels.shape} and "
            f"{split.shape}"
        )
    for name, values in modalities.items():
        if len(values) != len(labels):
            raise ValueError(f"modalities[{name!r}] has {len(values)} rows, labels {len(labels)}")
    missing = [p for p in PARTS if not (split == p).any()]
    if missing:
        raise ValueError(f"split has no rows for {missing}")
    return {
        part: (
            {k: torch.as_tensor(np.asarray(v)[split == part]) for k, v in modalities.items()},
            torch.as_tensor(labels[split == part]),
        )
        for part in PARTS
    }


def full_batch(data: Mapping, part: str, names: Sequence[str], device="cpu") -> dict:
    """One batch with every example of ``part``: the inputs named by ``names`` and "label"."""
    if part not in data:
        raise KeyError(f"part must be one of {sorted(data)}, got {part!r}")
    inputs, labels = data[part]
    unknown = [n for n in names if n not in inputs]
    if unknown:
        raise KeyError(f"names: the data has no modality {unknown[0]!r}; it has {sorted(inputs)}")
    return {**{k: inputs[k].to(device) for k in names}, "label": labels.to(device)}


def train_classifier(
    make_encoders: Callable[[], dict[str, nn.Module]],
    data: Mapping,
    num_classes: int = 2,
    make_fusion: Callable[[list[int]], nn.Module] | None = None,
    epochs: int = 20,
    wrap: Callable[[nn.Module], nn.Module] | None = None,
    seed: int = 0,
    device="cpu",
) -> nn.Module:
    """A ``MultimodalClassifier`` on the encoders ``make_encoders()`` builds, trained on
    ``data["train"]`` (AdamW, cosine schedule, batches of 64), keeping the epoch with the best
    validation accuracy.

    The encoders are built by a function, *after* seeding with ``seed`` (plus the robustness
    run's offset), so that two seeds give two different initialisations and one seed always the
    same. ``make_fusion(feature sizes)`` builds the fusion (default: concatenation); ``wrap``
    wraps the model for training (e.g. ``ModalityDropout``).
    """
    if not callable(make_encoders):
        raise TypeError(
            "make_encoders must be a function returning {name: encoder}, e.g. "
            "lambda: {'image': ImageCNN(3, 16)}, so that every seed builds fresh weights"
        )
    check_int(num_classes, "num_classes", minimum=2)
    check_int(epochs, "epochs")
    check_seed(seed)
    seed_everything(seed)
    encoders = make_encoders()
    if not isinstance(encoders, dict) or not encoders:
        raise TypeError("make_encoders() must return a non-empty dict {name: encoder}")
    names = list(encoders)
    dims = [e.out_dim for e in encoders.values()]
    fusion = make_fusion(dims) if make_fusion else ConcatFusion(dims)
    model = MultimodalClassifier(encoders, fusion, num_classes)
    model = wrap(model) if wrap else model
    inputs, labels = data["train"]
    loader = make_loader(
        MultimodalDataset({k: inputs[k] for k in names}, labels),
        batch_size=64,
        shuffle=True,
        seed=seed,
    )
    fit(
        model.to(device),
        loader,
        [full_batch(data, "val", names, device)],
        epochs=epochs,
        lr=3e-3,
        scheduler="cosine",
        monitor="val_accuracy",
        seed=seed,
        progress=False,
    )
    return model


def modality_names(model: nn.Module) -> list[str]:
    """The modalities a (possibly wrapped) ``MultimodalClassifier`` reads."""
    inner = getattr(model, "model", model)  # ModalityDropout keeps the classifier in .model
    if not hasattr(inner, "encoders"):
        raise TypeError(f"model must be a MultimodalClassifier, got {type(model).__name__}")
    return list(inner.encoders)


def test_proba(model: nn.Module, data: Mapping, batch: Mapping | None = None, device="cpu"):
    """Class probabilities (N, K) on the test split, or on a modified test ``batch``."""
    batch = batch or full_batch(data, "test", modality_names(model), device)
    return predict_proba(model, [batch])


test_proba.__test__ = False  # a helper named test_*, not a test for pytest to collect


def seed_hits(predictions: Sequence[np.ndarray], y_true) -> np.ndarray:
    """Per example, the share of the seeds' models that classify it correctly: the score whose
    mean is the seed-averaged accuracy and which a paired bootstrap resamples."""
    y_true = np.asarray(y_true)
    if not len(predictions):
        raise ValueError("predictions is empty: give one array of predicted classes per seed")
    for k, p in enumerate(predictions):
        if np.shape(p) != y_true.shape:
            raise ValueError(f"predictions[{k}] has shape {np.shape(p)}, y_true {y_true.shape}")
    return np.mean([np.asarray(p) == y_true for p in predictions], axis=0)


# --------------------------------------------------------------------------- the two errors
def _binary(y_true, y_pred) -> tuple[np.ndarray, np.ndarray]:
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_true.shape != y_pred.shape or y_true.ndim != 1:
        raise ValueError(
            f"y_true and y_pred must be 1-D and of the same length, got {y_true.shape} and "
            f"{y_pred.shape}"
        )
    for name, y in (("y_true", y_true), ("y_pred", y_pred)):
        if not np.isin(y, (0, 1)).all():
            raise ValueError(f"{name} must hold 0 (negative) and 1 (positive) only")
    return y_true, y_pred


def miss_rate(y_true, y_pred) -> float:
    """The false negative rate FN / (FN + TP): the share of real positives (an obstacle, a
    disease) that the detector misses. NaN when there is no positive."""
    y_true, y_pred = _binary(y_true, y_pred)
    positives = y_true == 1
    return float((y_pred[positives] == 0).mean()) if positives.any() else float("nan")


def false_positive_rate(y_true, y_pred) -> float:
    """FP / (FP + TN): the share of real negatives flagged as positive. NaN without negatives."""
    y_true, y_pred = _binary(y_true, y_pred)
    negatives = y_true == 0
    return float((y_pred[negatives] == 1).mean()) if negatives.any() else float("nan")


def positive_predictive_value(sensitivity: float, specificity: float, prevalence: float) -> float:
    """P(disease | positive test) by Bayes' rule:

        PPV = sens * prev / (sens * prev + (1 - spec) * (1 - prev)).

    The same test means something else in a clinic where half the patients are ill and in a
    screening programme where one in a hundred is: at low prevalence most positives are false.
    """
    for name, value in (("sensitivity", sensitivity), ("specificity", specificity)):
        check_real(value, name, low=0.0, high=1.0)
    check_real(prevalence, "prevalence", low=0.0, high=1.0, low_open=True)
    true_pos = sensitivity * prevalence
    false_pos = (1 - specificity) * (1 - prevalence)
    if true_pos + false_pos == 0:
        return float("nan")  # the test never says positive
    return float(true_pos / (true_pos + false_pos))


# --------------------------------------------------------------------------- refer when unsure
@dataclass(frozen=True)
class Selective:
    """What :func:`selective_prediction` returns."""

    coverage: float  # share of the cases the model decides
    threshold: float  # it decides when its top probability is at least this
    accuracy: float  # accuracy on the cases it decides
    referred_accuracy: float  # its accuracy on the cases it refers (what the humans receive)
    decided: np.ndarray  # bool (N,), True = decided by the model


def selective_prediction(probs, y_true, coverage: float) -> Selective:
    """Selective prediction (Geifman & El-Yaniv, 2017): the model decides only its most
    confident ``coverage`` share of the cases and refers the rest to a human.

    probs: (N, K) class probabilities; confidence = the top probability. Ties at the threshold
    are decided, so the realised coverage can exceed ``coverage`` slightly.
    """
    probs, y_true = np.asarray(probs, dtype=float), np.asarray(y_true)
    if probs.ndim != 2 or probs.shape[0] != y_true.shape[0] or y_true.ndim != 1:
        raise ValueError(
            f"probs must be (N, K) and y_true (N,), got {probs.shape} and {y_true.shape}"
        )
    check_real(coverage, "coverage", low=0.0, high=1.0, low_open=True)
    confidence = probs.max(axis=1)
    keep = max(1, int(round(coverage * len(confidence))))
    threshold = float(np.sort(confidence)[::-1][keep - 1])
    decided = confidence >= threshold
    correct = probs.argmax(axis=1) == y_true
    return Selective(
        coverage=float(decided.mean()),
        threshold=threshold,
        accuracy=float(correct[decided].mean()),
        referred_accuracy=float(correct[~decided].mean()) if (~decided).any() else float("nan"),
        decided=decided,
    )
