"""Tests of mmcourse.applications: the recipe of notebook 08 and the figures its domains need."""

import numpy as np
import pytest
import torch

from mmcourse import applications as app
from mmcourse.encoders import MLPEncoder
from mmcourse.fusion import TensorFusion
from mmcourse.robustness import MissingAware, ModalityDropout


def toy_data(n=120, seed=0):
    """Two 3-feature modalities; the label is the sign of a + b (needs both)."""
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=(n, 3)).astype(np.float32), rng.normal(size=(n, 3)).astype(np.float32)
    labels = (a[:, 0] + b[:, 0] > 0).astype(np.int64)
    split = np.array(["train", "val", "test"])[np.arange(n) % 3]
    return app.split_data({"a": a, "b": b}, labels, split), labels, split


def encoders():
    return {"a": MLPEncoder(3, 8), "b": MLPEncoder(3, 8)}


def test_split_data_and_full_batch():
    data, labels, split = toy_data()
    assert set(data) == {"train", "val", "test"}
    inputs, y = data["test"]
    assert inputs["a"].shape == (40, 3) and torch.equal(y, torch.as_tensor(labels[split == "test"]))
    batch = app.full_batch(data, "val", ["b"])
    assert set(batch) == {"b", "label"}
    with pytest.raises(KeyError, match="names"):
        app.full_batch(data, "val", ["c"])
    with pytest.raises(ValueError, match="rows"):
        app.split_data({"a": np.zeros((3, 1))}, labels, split)
    with pytest.raises(ValueError, match="split has no rows"):
        app.split_data({"a": np.zeros((4, 1))}, np.zeros(4), np.array(["train"] * 4))


def test_train_classifier_is_seeded_learns_and_accepts_fusion_and_wrap():
    data, _, _ = toy_data()
    one = app.train_classifier(encoders, data, epochs=15, seed=0)
    again = app.train_classifier(encoders, data, epochs=15, seed=0)
    other = app.train_classifier(encoders, data, epochs=15, seed=1)
    p1, p2, p3 = (app.test_proba(m, data) for m in (one, again, other))
    np.testing.assert_allclose(p1, p2)  # one seed, one model
    assert not np.allclose(p1, p3)  # the encoders are built after seeding
    y = data["test"][1].numpy()
    assert (p1.argmax(1) == y).mean() >= 0.75  # chance is 0.5
    tensor = app.train_classifier(encoders, data, make_fusion=TensorFusion, epochs=2)
    assert app.test_proba(tensor, data).shape == (40, 2)

    def missing_aware():
        return {k: MissingAware(e) for k, e in encoders().items()}

    wrapped = app.train_classifier(
        missing_aware, data, epochs=2, wrap=lambda m: ModalityDropout(m, ["a", "b"])
    )
    assert app.modality_names(wrapped) == ["a", "b"]
    with pytest.raises(TypeError, match="make_encoders"):
        app.train_classifier(encoders(), data)
    with pytest.raises(TypeError, match="MultimodalClassifier"):
        app.modality_names(torch.nn.Linear(2, 2))


def test_seed_hits_average_the_seeds():
    y = np.array([0, 1, 1, 0])
    hits = app.seed_hits([np.array([0, 1, 0, 0]), np.array([1, 1, 0, 0])], y)
    np.testing.assert_allclose(hits, [0.5, 1.0, 0.0, 1.0])
    with pytest.raises(ValueError, match="predictions\\[1\\]"):
        app.seed_hits([y, y[:2]], y)


def test_miss_rate_and_false_positive_rate_by_hand():
    y_true = np.array([1, 1, 1, 1, 0, 0, 0])
    y_pred = np.array([1, 0, 0, 1, 1, 0, 0])
    assert app.miss_rate(y_true, y_pred) == pytest.approx(0.5)  # 2 of 4 obstacles missed
    assert app.false_positive_rate(y_true, y_pred) == pytest.approx(1 / 3)
    assert np.isnan(app.miss_rate(np.zeros(3, int), np.zeros(3, int)))
    with pytest.raises(ValueError, match="y_pred"):
        app.miss_rate(y_true, y_pred * 2)
    with pytest.raises(ValueError, match="same length"):
        app.false_positive_rate(y_true, y_pred[:3])


def test_positive_predictive_value_by_bayes():
    # sensitivity 0.9, specificity 0.9: at 50% prevalence PPV 0.9; at 1% it is 1/12
    assert app.positive_predictive_value(0.9, 0.9, 0.5) == pytest.approx(0.9)
    assert app.positive_predictive_value(0.9, 0.9, 0.01) == pytest.approx(0.009 / (0.009 + 0.099))
    assert app.positive_predictive_value(1.0, 1.0, 0.2) == 1.0
    assert np.isnan(app.positive_predictive_value(0.0, 1.0, 0.2))
    with pytest.raises(ValueError, match="prevalence"):
        app.positive_predictive_value(0.9, 0.9, 0.0)
    with pytest.raises(ValueError, match="sensitivity"):
        app.positive_predictive_value(1.5, 0.9, 0.1)


def test_selective_prediction_keeps_the_confident_cases():
    probs = np.array([[0.95, 0.05], [0.6, 0.4], [0.2, 0.8], [0.45, 0.55], [0.99, 0.01]])
    y = np.array([0, 1, 1, 0, 0])  # the two least confident cases are the errors
    full = app.selective_prediction(probs, y, 1.0)
    assert full.coverage == 1.0 and full.accuracy == pytest.approx(0.6)
    half = app.selective_prediction(probs, y, 0.6)
    assert half.coverage == pytest.approx(0.6) and half.accuracy == 1.0
    assert half.referred_accuracy == 0.0 and half.threshold == pytest.approx(0.8)
    np.testing.assert_array_equal(half.decided, [True, False, True, False, True])
    with pytest.raises(ValueError, match="coverage"):
        app.selective_prediction(probs, y, 0.0)
    with pytest.raises(ValueError, match="probs"):
        app.selective_prediction(probs[:, 0], y, 0.5)
