"""mmcourse.splits: cleaning masks, train-only scalers (vs sklearn), stratified splits."""

import numpy as np
import pytest
import torch
from sklearn.preprocessing import MinMaxScaler as SkMinMax
from sklearn.preprocessing import StandardScaler

from mmcourse import splits


def test_find_nonfinite_and_constant():
    x = np.random.default_rng(0).normal(size=(6, 2, 5)).astype(np.float32)
    x[1, 0, 3] = np.nan
    x[4, 1, 1] = np.inf
    x[2] = 0.7  # a blank sample
    assert splits.find_nonfinite(x).tolist() == [False, True, False, False, True, False]
    assert splits.find_nonfinite(torch.from_numpy(x)).sum() == 2
    assert splits.find_nonfinite(np.arange(4)).sum() == 0  # ints cannot be NaN
    assert splits.find_constant(x).tolist() == [False, False, True, False, False, False]
    allnan = np.full((2, 3), np.nan)
    assert splits.find_constant(allnan).all()


def test_outliers_robust_beats_plain_zscore_masking():
    rng = np.random.default_rng(1)
    values = rng.normal(0, 1, 50)
    values[:3] = [40.0, 45.0, 50.0]  # three big outliers inflate the std
    robust = splits.find_outliers(values, threshold=3.5)
    plain = splits.find_outliers(values, threshold=3.5, method="zscore")
    assert robust[:3].all() and robust[3:].sum() == 0
    assert plain[:3].sum() < 3  # masking: the plain z-score misses some
    # feature matrix: a sample is an outlier if any column is
    feats = rng.normal(size=(40, 3))
    feats[7, 2] = 30.0
    assert np.flatnonzero(splits.find_outliers(feats)).tolist() == [7]
    # a zero MAD (many identical values) still works
    assert splits.find_outliers(np.r_[np.zeros(20), 1.0]).tolist() == [False] * 20 + [True]


def test_robust_zscore_matches_definition():
    v = np.array([1.0, 2.0, 3.0, 4.0, 100.0])
    med, mad = 3.0, 1.0
    np.testing.assert_allclose(splits.robust_zscore(v), 0.6745 * (v - med) / mad)


def test_standardizer_matches_sklearn_and_is_fit_on_train_only():
    rng = np.random.default_rng(2)
    train = rng.normal(5, 3, size=(200, 4))
    test = rng.normal(6, 2, size=(50, 4))
    ours = splits.Standardizer().fit(train)
    ref = StandardScaler().fit(train)
    np.testing.assert_allclose(ours.transform(test), ref.transform(test), rtol=1e-6)
    z = ours.transform(train)
    np.testing.assert_allclose(z.mean(0), 0, atol=1e-9)
    np.testing.assert_allclose(z.std(0), 1, atol=1e-6)
    assert np.abs(ours.transform(test).mean(0)).max() > 0.1  # test data is NOT exactly centred
    np.testing.assert_allclose(ours.inverse_transform(ours.transform(test)), test)
    # torch in -> torch out, same dtype; per-channel images
    imgs = (
        torch.rand(10, 3, 4, 4, dtype=torch.float32) * torch.tensor([1.0, 2.0, 3.0])[:, None, None]
    )
    sc = splits.Standardizer(dims=(0, 2, 3)).fit(imgs)
    out = sc.transform(imgs)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float32
    torch.testing.assert_close(out.mean((0, 2, 3)), torch.zeros(3), atol=1e-5, rtol=0)
    assert sc.mean.shape == (1, 3, 1, 1)


def test_minmax_matches_sklearn_and_clips():
    rng = np.random.default_rng(3)
    train, test = rng.uniform(-2, 7, (100, 3)), rng.uniform(-4, 9, (30, 3))
    ours = splits.MinMaxScaler().fit(train)
    np.testing.assert_allclose(
        ours.transform(test), SkMinMax().fit(train).transform(test), rtol=1e-6, atol=1e-7
    )
    clipped = splits.MinMaxScaler(clip=True).fit(train).transform(test)
    assert clipped.min() >= 0 and clipped.max() <= 1


@pytest.mark.parametrize("n_per_class", [[50] * 10, [200, 30, 80]])
def test_stratified_split_is_disjoint_complete_and_balanced(n_per_class):
    labels = np.repeat(np.arange(len(n_per_class)), n_per_class)
    np.random.default_rng(0).shuffle(labels)
    split = splits.stratified_split(labels, (0.6, 0.2, 0.2), seed=0)
    idx = splits.split_indices(split)
    splits.check_disjoint(**idx)
    assert sum(len(v) for v in idx.values()) == len(labels)
    assert sorted(np.concatenate(list(idx.values()))) == list(range(len(labels)))
    for name, frac in zip(splits.SPLIT_NAMES, (0.6, 0.2, 0.2), strict=True):
        assert abs(len(idx[name]) - frac * len(labels)) <= len(n_per_class)
        counts = np.bincount(labels[idx[name]], minlength=len(n_per_class))
        # each class gets its share of each split, within one sample per class (rounding)
        np.testing.assert_allclose(counts, frac * np.array(n_per_class), atol=1.01)
    table = splits.class_balance(labels, split)
    assert (table.max(axis=1) - table.min(axis=1)).max() < 0.02
    # deterministic for a seed, different for another
    assert (splits.stratified_split(labels, seed=0) == split).all()
    assert (splits.stratified_split(labels, seed=1) != split).any()


def test_leaks_are_detected():
    with pytest.raises(ValueError, match="'train' and 'test' share 2 samples"):
        splits.check_disjoint(train=[0, 1, 2, 3], val=[4], test=[3, 2, 9])
    x = np.random.default_rng(4).random((6, 3))
    x[5] = x[0]  # the same sample saved twice
    split = np.array(["train", "train", "val", "val", "test", "test"])
    dup = splits.cross_split_duplicates(x, split)
    assert len(dup) == 1 and dup.loc[0, "indices"] == [0, 5]
    assert dup.loc[0, "splits"] == ["test", "train"]
    split[5] = "train"  # both copies in train: no leak
    assert splits.cross_split_duplicates(x, split).empty


@pytest.mark.parametrize(
    "call,error,match",
    [
        (lambda: splits.find_nonfinite("abc"), TypeError, "x must be a numpy array"),
        (lambda: splits.find_nonfinite(np.zeros((0, 3))), ValueError, "empty"),
        (lambda: splits.find_constant(np.zeros(5)), ValueError, "at least 2"),
        (lambda: splits.find_outliers(np.zeros((2, 2, 2))), ValueError, "values must be"),
        (lambda: splits.find_outliers(np.zeros(5), threshold=0), ValueError, "threshold"),
        (lambda: splits.find_outliers(np.zeros(5), method="iqr"), ValueError, "method"),
        (lambda: splits.robust_zscore(np.zeros((3, 2))), ValueError, "1-D"),
        (lambda: splits.Standardizer(dims=(1,)), ValueError, "dims must include 0"),
        (lambda: splits.Standardizer().transform(np.zeros((3, 2))), RuntimeError, "fit"),
        (lambda: splits.Standardizer().fit([[1.0, np.nan]]), ValueError, "NaN"),
        (lambda: splits.Standardizer((0, 5)).fit(np.zeros((3, 2))), ValueError, "dims"),
        (
            lambda: splits.Standardizer().fit(np.ones((4, 3))).transform(np.ones((4, 2))),
            ValueError,
            "per-feature shape",
        ),
        (
            lambda: splits.Standardizer().fit(np.ones((4, 3))).transform(torch.ones(4, 3).long()),
            TypeError,
            "floating-point",
        ),
        (lambda: splits.stratified_split(np.zeros((4, 2))), ValueError, "1-D"),
        (lambda: splits.stratified_split(np.arange(30) % 3, (0.5, 0.5)), ValueError, "fractions"),
        (
            lambda: splits.stratified_split(np.r_[np.zeros(20), [1, 1]]),
            ValueError,
            "class 1.0 has only 2",
        ),
        (lambda: splits.split_indices(["train", "dev"]), ValueError, "unknown names"),
        (lambda: splits.check_disjoint(train=[1]), ValueError, "at least two"),
        (lambda: splits.class_balance([0, 1], ["train"]), ValueError, "differ in length"),
        (lambda: splits.cross_split_duplicates(np.zeros((3, 2)), ["train"]), ValueError, "length"),
    ],
)
def test_clear_errors(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_exercise_standardize_accepts_solution_and_rejects_test_statistics():
    from mmcourse.exercises import check, get

    exercise = get("01.standardize")
    exercise.check(exercise.solution())

    def own_stats(train, test):  # the classic leak: each split with its own statistics
        return (train - train.mean(0)) / train.std(0), (test - test.mean(0)) / test.std(0)

    with pytest.raises(AssertionError, match="its OWN statistics"):
        exercise.check(own_stats)
    with pytest.raises(AssertionError, match="axis=0"):
        exercise.check(lambda tr, te: ((tr - tr.mean()) / tr.std(), (te - tr.mean()) / tr.std()))
    assert check("01.standardize", None) is False
