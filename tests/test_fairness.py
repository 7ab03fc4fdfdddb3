"""Tests of mmcourse.fairness: per-group rates against fairlearn, the voice scenario's gap."""

import numpy as np
import pytest
from fairlearn.metrics import MetricFrame, false_negative_rate, false_positive_rate, selection_rate
from sklearn.metrics import accuracy_score, precision_score

from mmcourse import fairness


def test_group_metrics_by_hand():
    y_true = [1, 1, 0, 0, 1, 0, 0, 0]
    y_pred = [1, 0, 1, 0, 1, 1, 1, 0]
    group = [0, 0, 0, 0, 1, 1, 1, 1]
    m = fairness.group_metrics(y_true, y_pred, group, names=("a", "b"))
    assert m.loc["a", "FPR"] == 0.5 and m.loc["a", "FNR"] == 0.5
    assert m.loc["b", "FPR"] == pytest.approx(2 / 3) and m.loc["b", "FNR"] == 0.0
    assert m.loc["b", "precision"] == pytest.approx(1 / 3)
    assert m.loc["a", "base rate"] == 0.5 and m.loc["b", "n"] == 4


def test_group_metrics_equal_fairlearn_metricframe():
    rng = np.random.default_rng(0)
    y_true, y_pred, group = (
        rng.integers(0, 2, 500),
        rng.integers(0, 2, 500),
        rng.integers(0, 3, 500),
    )
    ours = fairness.group_metrics(y_true, y_pred, group)
    frame = MetricFrame(
        metrics={
            "accuracy": accuracy_score,
            "FPR": false_positive_rate,
            "FNR": false_negative_rate,
            "selection rate": selection_rate,
            "precision": precision_score,
        },
        y_true=y_true,
        y_pred=y_pred,
        sensitive_features=group,
    )
    theirs = frame.by_group
    for column in theirs.columns:
        np.testing.assert_allclose(ours[column].to_numpy(float), theirs[column].to_numpy(float))


@pytest.fixture(scope="module")
def calls():
    return fairness.load_voice_fairness()


def test_voice_scenario_base_rates_differ_and_can_be_equal(calls):
    rates = fairness.group_metrics(calls.labels, calls.labels, calls.group)["base rate"]
    assert rates[0] - rates[1] > 0.05
    equal = fairness.load_voice_fairness(drop_share=0.0)
    assert len(equal.labels) > len(calls.labels)
    rates = fairness.group_metrics(equal.labels, equal.labels, equal.group)["base rate"]
    assert abs(rates[0] - rates[1]) < 0.05


def test_the_gap_comes_through_the_hertz_scale(calls):
    def fpr_gap(modalities, mitigation=None):
        pred = fairness.cross_predict(
            calls.features(modalities), calls.labels, calls.group, mitigation=mitigation
        )
        m = fairness.group_metrics(calls.labels, pred, calls.group)
        return m.loc[1, "FPR"] - m.loc[0, "FPR"]

    assert fpr_gap(("face", "voice_hz")) > 0.07
    assert abs(fpr_gap(("face",))) < 0.07
    assert abs(fpr_gap(("face", "voice_semitones"))) < 0.07
    assert abs(fpr_gap(("face", "voice_hz"), "equalized_odds")) < 0.07


def test_cross_predict_predicts_every_example_once(calls):
    pred = fairness.cross_predict(calls.voice_hz, calls.labels, calls.group, folds=3)
    assert pred.shape == calls.labels.shape and set(np.unique(pred)) <= {0, 1}
    assert (pred == calls.labels).mean() > 0.7


@pytest.mark.parametrize(
    "call, name",
    [
        (lambda c: fairness.group_metrics([0, 2], [0, 1], [0, 0]), "y_true"),
        (lambda c: fairness.group_metrics([0, 1], [0, 1], [0]), "group"),
        (lambda c: fairness.cross_predict(c.face, c.labels, c.group, "parity"), "mitigation"),
        (lambda c: c.features(("face", "smell")), "modalities"),
        (lambda c: fairness.load_voice_fairness(drop_share=1.0), "drop_share"),
    ],
)
def test_bad_inputs_name_the_argument(calls, call, name):
    with pytest.raises(ValueError, match=name):
        call(calls)
