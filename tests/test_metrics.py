"""mmcourse.metrics against scikit-learn, a hand-computed ECE, and the bootstrap's behaviour."""

import matplotlib

matplotlib.use("agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
import sklearn.metrics as skm
import torch

from mmcourse import metrics as M


def _random_case(seed, n=200, k=5):
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, k, n)
    # mostly right, sometimes a random class: like a real classifier
    y_pred = np.where(rng.random(n) < 0.6, y_true, rng.integers(0, k, n))
    return y_true, y_pred


@pytest.mark.parametrize("seed", range(5))
def test_accuracy_f1_confusion_match_sklearn(seed):
    y_true, y_pred = _random_case(seed, n=50 + 30 * seed, k=2 + seed)
    assert M.accuracy(y_true, y_pred) == pytest.approx(skm.accuracy_score(y_true, y_pred))
    assert M.macro_f1(y_true, y_pred) == pytest.approx(
        skm.f1_score(y_true, y_pred, average="macro")
    )
    k = 2 + seed
    np.testing.assert_array_equal(
        M.confusion_matrix(y_true, y_pred, num_classes=k),
        skm.confusion_matrix(y_true, y_pred, labels=range(k)),
    )
    for norm in ("true", "pred", "all"):
        np.testing.assert_allclose(
            M.confusion_matrix(y_true, y_pred, num_classes=k, normalize=norm),
            skm.confusion_matrix(y_true, y_pred, labels=range(k), normalize=norm),
        )


def test_macro_f1_with_absent_classes_matches_sklearn():
    y_true = np.array([0, 0, 1, 1, 3, 3])  # class 2 never occurs, class 4 only predicted
    y_pred = np.array([0, 1, 1, 1, 4, 3])
    assert M.macro_f1(y_true, y_pred) == pytest.approx(
        skm.f1_score(y_true, y_pred, average="macro", zero_division=0)
    )
    assert M.macro_f1(y_true, y_pred, num_classes=6) == pytest.approx(
        skm.f1_score(y_true, y_pred, average="macro", labels=range(6), zero_division=0)
    )


def test_metrics_accept_tensors_and_scores():
    y_true = torch.tensor([0, 1, 2, 1])
    scores = torch.tensor([[2.0, 0, 0], [0, 3, 0], [0, 5, 1], [0, 1, 0]])  # argmax 0,1,1,1
    assert M.accuracy(y_true, scores) == pytest.approx(0.75)
    assert M.accuracy(y_true.tolist(), [0, 1, 1, 1]) == pytest.approx(0.75)


def test_ece_hand_computed():
    # 4 samples, 2 bins (0, .5], (.5, 1]: confidences .9 .8 .6 (bin 2), .5 (bin 1)
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.5, 0.5]])
    y_true = np.array([0, 0, 0, 1])  # right, wrong, right, wrong (argmax of a tie is 0)
    # bin 2: conf (.9+.8+.6)/3 = .7667, acc 2/3 -> gap .1; bin 1: conf .5, acc 0 -> gap .5
    expected = 3 / 4 * abs(2 / 3 - 2.3 / 3) + 1 / 4 * 0.5
    assert M.expected_calibration_error(probs, y_true, n_bins=2) == pytest.approx(expected)
    bins = M.calibration_bins(probs, y_true, n_bins=2)
    np.testing.assert_array_equal(bins["count"], [1, 3])


def test_ece_zero_for_a_perfectly_calibrated_case_and_high_for_overconfidence():
    # confidence 0.75 and right 3 times out of 4: perfectly calibrated
    probs = np.tile([0.75, 0.25], (4, 1))
    assert M.expected_calibration_error(probs, [0, 0, 0, 1]) == pytest.approx(0.0)
    sure = np.tile([0.99, 0.01], (4, 1))
    assert M.expected_calibration_error(sure, [0, 1, 1, 1]) == pytest.approx(0.74)


def test_reliability_diagram_draws_bars_and_reports_ece():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(300, 3)) * 3
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    y = rng.integers(0, 3, 300)
    fig, ax = plt.subplots()
    out = M.reliability_diagram(ax, probs, y, n_bins=10, label="model")
    assert out is ax and len(ax.patches) > 0
    ece = M.expected_calibration_error(probs, y, n_bins=10)
    assert any(f"{ece:.3f}" in t.get_text() for t in ax.get_legend().get_texts())
    plt.close(fig)


def test_bootstrap_ci_contains_estimate_and_narrows_with_n():
    widths = []
    for n in (100, 1600):
        y_true, y_pred = _random_case(1, n=n)
        for metric in ("accuracy", "macro_f1"):
            ci = M.bootstrap_ci(y_true, y_pred, metric=metric, n_boot=300, seed=0)
            assert ci.low <= ci.estimate <= ci.high
            assert ci.estimate == pytest.approx(M.get_metric(metric)(y_true, y_pred))
        widths.append(ci.high - ci.low)
    assert widths[1] < widths[0] / 2  # width ~ 1/sqrt(n): 16x the data, ~4x narrower


def test_bootstrap_ci_is_seeded_and_accepts_a_function():
    y_true, y_pred = _random_case(2)
    a = M.bootstrap_ci(y_true, y_pred, metric=M.accuracy, seed=3)
    b = M.bootstrap_ci(y_true, y_pred, metric="accuracy", seed=3)
    assert a == b
    assert "[" in str(a)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: M.accuracy([0, 1], [0, 1, 1]), "same length"),
        (lambda: M.accuracy(np.zeros((2, 2, 2)), [0, 1]), "1-D"),
        (lambda: M.accuracy([], []), "empty"),
        (lambda: M.accuracy([0.5, 1], [0, 1]), "integer class labels"),
        (lambda: M.accuracy([-1, 1], [0, 1]), "non-negative"),
        (lambda: M.confusion_matrix([0, 3], [0, 1], num_classes=2), "num_classes"),
        (lambda: M.confusion_matrix([0, 1], [0, 1], normalize="rows"), "normalize"),
        (lambda: M.expected_calibration_error(np.array([[2.0, -1.0]]), [0]), "softmax"),
        (lambda: M.expected_calibration_error(np.ones(3) / 3, [0]), r"\(N, K\)"),
        (lambda: M.expected_calibration_error(np.full((2, 2), 0.5), [0]), "rows"),
        (lambda: M.expected_calibration_error(np.full((1, 2), 0.5), [2]), "columns"),
        (lambda: M.calibration_bins(np.full((1, 2), 0.5), [0], n_bins=0), "n_bins"),
        (lambda: M.bootstrap_ci([0, 1], [0, 1], metric="auc"), "unknown metric"),
        (lambda: M.bootstrap_ci([0, 1], [0, 1], n_boot=2), "n_boot"),
        (lambda: M.bootstrap_ci([0, 1], [0, 1], level=95), "level"),
    ],
)
def test_bad_input_raises_clear_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_exercise_ece_solution_passes_and_wrong_answers_fail():
    from mmcourse.exercises import get

    exercise = get("04.ece")
    exercise.check(exercise.solution())

    def unweighted(probs, labels, n_bins=10):  # forgets to weight bins by their size
        bins = M.calibration_bins(probs, labels, n_bins)
        filled = bins["count"] > 0
        return float(np.mean(np.abs(bins["accuracy"] - bins["confidence"])[filled]))

    def overall_gap(probs, labels, n_bins=10):  # |accuracy - mean confidence|, no bins
        return abs(M.accuracy(labels, probs) - probs.max(1).mean())

    for wrong in (unweighted, overall_gap):
        with pytest.raises(AssertionError, match="ECE"):
            exercise.check(wrong)


def test_paired_bootstrap_ci():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 2, 400).astype(float)
    assert M.paired_bootstrap_ci(a, a) == (0.0, 0.0)  # pairing cancels shared difficulty
    assert M.paired_bootstrap_ci(a + 0.1, a) == pytest.approx((0.1, 0.1))
    b = rng.integers(0, 2, 400).astype(float)
    low, high = M.paired_bootstrap_ci(a, b, n_boot=4000)
    d = a - b
    half = 1.96 * d.std() / np.sqrt(d.size)  # the normal approximation of the same interval
    assert low == pytest.approx(d.mean() - half, abs=0.01)
    assert high == pytest.approx(d.mean() + half, abs=0.01)
    assert M.paired_bootstrap_ci(a, b, seed=3) == M.paired_bootstrap_ci(a, b, seed=3)
    with pytest.raises(ValueError, match="same length"):
        M.paired_bootstrap_ci(a, b[:-1])
    with pytest.raises(ValueError, match="level"):
        M.paired_bootstrap_ci(a, b, level=1.0)
    with pytest.raises(ValueError, match="seed"):
        M.paired_bootstrap_ci(a, b, seed=-1)
