"""The four application scenarios of notebook 08: deterministic, well-formed, cached, and
built so that the lesson of each holds for simple models (logistic regression)."""

import warnings

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from mmcourse.datasets import scenarios as S
from mmcourse.exercises import check, get

MAKERS = {
    "medicine": S._make_medicine,
    "driving": S._make_driving,
    "hci": S._make_hci,
    "moderation": S._make_moderation,
}
LOADERS = {
    "medicine": S.load_medicine,
    "driving": S.load_driving,
    "hci": S.load_hci,
    "moderation": S.load_moderation,
}


@pytest.fixture(scope="module")
def made():
    return {name: make() for name, make in MAKERS.items()}


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    mp = pytest.MonkeyPatch()
    mp.setenv("MMCOURSE_DATA", str(root))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "needs regenerating": expected in an empty folder
        data = {name: load() for name, load in LOADERS.items()}
    yield root, data
    mp.undo()


def _acc(X, y, split, C=1.0):
    train, test = split != "test", split == "test"
    model = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=3000))
    return model.fit(X[train], y[train]).score(X[test], y[test])


@pytest.mark.parametrize("name", list(MAKERS))
def test_generators_are_deterministic(name, made):
    again = MAKERS[name]()
    assert again.keys() == made[name].keys()
    for key, value in made[name].items():
        np.testing.assert_array_equal(again[key], value, err_msg=f"{name}/{key}")


def test_shapes_dtypes_and_ranges(loaded):
    _, d = loaded
    med, drv, hci, mod = d["medicine"], d["driving"], d["hci"], d["moderation"]
    assert med.images.shape == (1000, 1, 20, 20) and med.records.shape == (1000, 4)
    assert drv.images.shape == (960, 3, 16, 16) and drv.depth.shape == (960, 1, 16, 16)
    assert hci.faces.shape == (800, 1, 16, 16) and hci.audio.shape == (800, 4000)
    assert mod.images.shape == (960, 3, 16, 16) and len(mod.texts) == 960
    for images in (med.images, drv.images, drv.depth, hci.faces, mod.images):
        assert images.dtype == np.float32 and images.min() >= 0 and images.max() <= 1
    for ds in d.values():
        assert ds.labels.dtype == np.int64
        assert set(np.unique(ds.split)) == {"train", "val", "test"}
        assert ds.labels.max() == len(ds.classes) - 1
    assert hci.audio.dtype == np.float32 and np.isfinite(hci.audio).all()
    assert np.isnan(drv.distance[drv.labels == 0]).all()
    assert np.isfinite(drv.distance[drv.labels == 1]).all()


def test_labels_balanced_and_splits_stratified(loaded):
    _, d = loaded
    for name, ds in d.items():
        counts = np.bincount(ds.labels)
        assert counts.min() == counts.max(), name  # exactly balanced
        for part, share in (("train", 0.6), ("val", 0.2), ("test", 0.2)):
            frac = np.bincount(ds.labels[ds.split == part]) / counts
            assert np.allclose(frac, share, atol=0.02), (name, part, frac)
    drv = d["driving"]
    for cond in S.CONDITIONS:  # each (condition, label) cell has the same share of every split
        rows = drv.condition == cond
        assert (rows & (drv.split == "test") & (drv.labels == 1)).sum() == 32


def test_subset_and_cache_regeneration(loaded):
    root, d = loaded
    test = d["driving"].subset("test")
    assert len(test) == 192 and set(test.split) == {"test"}
    assert test.images.shape[0] == test.depth.shape[0] == len(test.labels)
    texts = d["moderation"].subset(np.arange(5)).texts
    assert texts == d["moderation"].texts[:5]
    # a deleted file is regenerated with the same content
    (root / "scenarios_medicine" / "records.npy").unlink()
    with pytest.warns(UserWarning, match="regenerating"):
        again = S.load_medicine()
    np.testing.assert_array_equal(again.records, d["medicine"].records)
    # a corrupted file too
    path = root / "scenarios_moderation" / "labels.npy"
    path.write_bytes(path.read_bytes()[:-8] + b"garbage!")
    with pytest.warns(UserWarning, match="regenerating"):
        again = S.load_moderation()
    np.testing.assert_array_equal(again.labels, d["moderation"].labels)


def test_disk_budget(loaded):
    root, _ = loaded
    total = sum(p.stat().st_size for p in root.rglob("scenarios_*/*.npy"))
    assert total < 3.0e6, f"the four scenario sets take {total / 1e6:.2f} MB"


def _spot_features(img):
    """Local contrast inside the organ: a matched filter + max pooling, what a CNN learns."""

    def blur(x, passes):
        for _ in range(passes):
            x = sum(np.roll(np.roll(x, a, -2), b, -1) for a in (-1, 0, 1) for b in (-1, 0, 1)) / 9
        return x

    r = np.where(blur(img, 4) > 0.3, blur(img, 1) - blur(img, 3), 0).reshape(len(img), -1)
    top = np.sort(r, axis=1)
    return np.stack([top[:, -1], top[:, -5:].mean(1), r.std(1)], axis=1)


def test_medicine_fusion_beats_each_modality(made):
    a = made["medicine"]
    y, split = a["labels"], a["split"]
    image = _spot_features(a["images"][:, 0] / 255.0)
    record = a["records"].copy()
    record[:, 1:3] = np.log(record[:, 1:3])  # lab values are log-normal
    acc_image, acc_record = _acc(image, y, split), _acc(record, y, split)
    acc_fused = _acc(np.hstack([image, record]), y, split)
    assert 0.6 < acc_image < 0.85 and 0.6 < acc_record < 0.85, (acc_image, acc_record)
    assert acc_fused > max(acc_image, acc_record) + 0.03, (acc_fused, acc_image, acc_record)


def test_driving_camera_fails_at_night_range_does_not(made):
    a = made["driving"]
    y, split, cond = a["labels"], a["split"], a["condition"]
    camera = a["images"].reshape(len(y), -1) / 255.0
    depth = a["depth"].reshape(len(y), -1) / 255.0
    acc = {}
    for c in ("day", "night"):
        rows = cond == c
        acc["cam", c] = _acc(camera[rows], y[rows], split[rows], C=0.1)
        acc["range", c] = _acc(depth[rows], y[rows], split[rows], C=0.1)
    assert acc["cam", "night"] < 0.62 and acc["cam", "night"] < acc["cam", "day"] - 0.05, acc
    assert acc["range", "night"] > 0.8 and acc["range", "night"] > acc["cam", "night"] + 0.2, acc
    # the range sensor misses some obstacles (dark paint, thin far pedestrians) that a camera sees
    missed = (a["returns"] == 0) & (y == 1)
    assert 0.05 < missed.sum() / (y == 1).sum() < 0.3
    assert np.isin(a["paint"][missed], S.DARK_PAINTS).mean() > 0.3


def test_hci_voice_carries_arousal_face_carries_valence(made):
    from mmcourse.audio import mfcc

    a = made["hci"]
    y, split = a["labels"], a["split"]
    coeffs = mfcc(S.synthesize_prosody(a["voice_params"]), S.HCI_SAMPLE_RATE).numpy()
    voice = np.concatenate([coeffs.mean(2), coeffs.std(2)], axis=1)
    face = a["faces"].reshape(len(y), -1) / 255.0
    arousal, valence = S.AROUSAL[y], S.VALENCE[y]
    assert _acc(voice, arousal, split, 0.1) > 0.85 and _acc(voice, valence, split, 0.1) < 0.65
    assert _acc(face, valence, split, 0.1) > 0.75 and _acc(face, arousal, split, 0.1) < 0.75
    acc_voice, acc_face = _acc(voice, y, split, 0.1), _acc(face, y, split, 0.1)
    acc_fused = _acc(np.hstack([voice, face]), y, split, 0.1)
    assert acc_fused > max(acc_voice, acc_face) + 0.08, (acc_fused, acc_voice, acc_face)


def test_synthesize_prosody_rebuilds_one_clip_and_rejects_bad_input():
    params = S._make_hci()["voice_params"]
    full = S.synthesize_prosody(params[:3])
    np.testing.assert_allclose(S.synthesize_prosody(params[:1]), full[:1], atol=1e-6)
    np.testing.assert_allclose(S.synthesize_prosody(params[2:3], first=2), full[2:], atol=1e-6)
    chunked = S.synthesize_prosody(params[:300])  # made in chunks of 128 clips internally
    np.testing.assert_allclose(chunked[:3], full, atol=1e-6)
    with pytest.raises(ValueError, match="params must have shape"):
        S.synthesize_prosody(params[:, :5])
    with pytest.raises(ValueError, match="sample_rate"):
        S.synthesize_prosody(params[:2], sample_rate=100)
    with pytest.raises(ValueError, match="n_samples"):
        S.synthesize_prosody(params[:2], n_samples=0)
    bad = params[:2].copy()
    bad[0, 0] = -1
    with pytest.raises(ValueError, match="positive"):
        S.synthesize_prosody(bad)


def test_moderation_each_modality_alone_is_uninformative(made):
    a = made["moderation"]
    y, split = a["labels"], a["split"]
    # the label is exactly "the tones disagree", and every (topic, tone, tone) cell is equally
    # frequent, so P(mocking | picture) = P(mocking | caption) = 1/2 exactly
    np.testing.assert_array_equal(y, (a["image_polarity"] != a["text_polarity"]).astype(int))
    for key in ("image_polarity", "text_polarity", "topic"):
        for value in np.unique(a[key]):
            assert y[a[key] == value].mean() == 0.5, key
    texts = np.array([t.rsplit(" team ", 1)[0] for t in a["texts"]])
    for phrase in np.unique(texts):
        assert abs(y[texts == phrase].mean() - 0.5) < 0.2, phrase
    # ... yet each tone is easy to read off its own modality, so the combination is learnable
    pixels = a["images"].reshape(len(y), -1) / 255.0
    assert _acc(pixels, a["image_polarity"], split, 0.1) > 0.95
    assert _acc(pixels, y, split, 0.1) < 0.62
    # the community tag is biased in train / val only
    g, test = a["community"], split == "test"
    assert y[~test & (g == 1)].mean() > 0.65 and abs(y[test & (g == 1)].mean() - 0.5) < 0.12


def test_subset_rejects_bad_split(loaded):
    _, d = loaded
    with pytest.raises(ValueError, match="which must be one of"):
        d["hci"].subset("training")


def test_exercise_wrong_answers_fail():
    assert check("08.false_positive_rate", get("08.false_positive_rate").solution(), quiet=True)
    assert not check("08.false_positive_rate", lambda t, p: float(np.mean(p == 1)), quiet=True)
    assert not check(  # 1 - precision is the false discovery rate, not the FPR
        "08.false_positive_rate",
        lambda t, p: float(np.mean(np.asarray(t)[np.asarray(p) == 1] == 0)),
        quiet=True,
    )
    assert check("08.fuse_independent", get("08.fuse_independent").solution(), quiet=True)
    assert not check("08.fuse_independent", lambda a, b, prior: (a + b) / 2, quiet=True)
    assert not check(  # forgetting to remove the prior counted twice
        "08.fuse_independent",
        lambda a, b, prior: 1 / (1 + np.exp(-(np.log(a / (1 - a)) + np.log(b / (1 - b))))),
        quiet=True,
    )
