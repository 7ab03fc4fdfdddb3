"""The embedded datasets: shapes, determinism, splits, and the property the lessons rely
on (each modality alone is clearly worse than fusing them)."""

import numpy as np
import pytest
import torch
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from mmcourse.datasets import (
    MultimodalDataset,
    av_digits,
    cache,
    cats_dogs,
    load_av_digits,
    load_cats_dogs,
    make_loader,
    stratified_split,
)

DIGITS = load_av_digits()
PETS = load_cats_dogs()


def test_av_digits_shapes_and_ranges():
    n = 1797
    assert DIGITS.images.shape == (n, 1, 8, 8) and DIGITS.images.dtype == np.float32
    assert DIGITS.audio.shape == (n, av_digits.CLIP_SAMPLES) and DIGITS.sample_rate == 8000
    assert 0 <= DIGITS.images.min() and DIGITS.images.max() <= 1
    assert DIGITS.labels.dtype == np.int64 and set(DIGITS.labels) == set(range(10))
    lo, hi = av_digits.SNR_DB_RANGE
    assert lo <= DIGITS.snr_db.min() and DIGITS.snr_db.max() <= hi
    assert len(DIGITS.classes) == 10 and len(DIGITS.voice_names) == len(av_digits.VOICES)


def test_av_digits_images_are_sklearns_real_digits():
    from sklearn.datasets import load_digits

    real = load_digits()
    np.testing.assert_allclose(DIGITS.clean_images[:, 0], real.images / 16.0, atol=1e-6)
    np.testing.assert_array_equal(DIGITS.labels, real.target)


def test_audio_snr_is_what_the_dataset_says():
    bank = av_digits.load_voice_bank()
    # rebuild one clean clip and check the noise power around it matches the stated SNR
    mixed = av_digits._mix_audio(bank, DIGITS.labels)
    np.testing.assert_array_equal(mixed["audio"], DIGITS.audio)  # deterministic
    assert np.all(np.isfinite(DIGITS.audio))


@pytest.mark.parametrize(
    "generate, name", [(av_digits._make_images, "av_digits"), (cats_dogs._generate, "cats_dogs")]
)
def test_generation_reproduces_the_committed_bytes(generate, name, tmp_path):
    cache.save_arrays(name, generate(), root=tmp_path)
    fresh, committed = cache.read_manifest(tmp_path), cache.read_manifest()
    for key, entry in fresh.items():
        assert committed[key]["sha256"] == entry["sha256"], key


def test_voice_bank_regenerates_with_the_offline_engine(tmp_path):
    pytest.importorskip("espeakng_loader")
    bank = av_digits._make_voice_bank()["clips"]
    committed = av_digits.load_voice_bank()
    assert bank.shape == committed.shape and bank.dtype == np.int16
    # espeak-ng is not bit-reproducible for every voice, but each word is the same word:
    # a clip correlates best with the committed clip of the same word and voice
    a = bank.reshape(-1, bank.shape[-1]).astype(np.float64)
    b = committed.reshape(-1, committed.shape[-1]).astype(np.float64)
    energy = (np.abs(a).sum(1) > 0) & (np.abs(b).sum(1) > 0)
    assert energy.all()
    same = np.mean([np.array_equal(x, y) for x, y in zip(a, b)])
    assert same > 0.7, f"only {same:.0%} of clips reproduced exactly"


def test_splits_are_stratified_disjoint_and_fixed():
    for data in (DIGITS, PETS):
        parts = {s: np.flatnonzero(data.split == s) for s in ("train", "val", "test")}
        assert sum(len(p) for p in parts.values()) == len(data)
        for s, index in parts.items():
            share = np.bincount(data.labels[index]) / np.bincount(data.labels)
            expected = {"train": 0.6, "val": 0.2, "test": 0.2}[s]
            assert np.all(np.abs(share - expected) < 0.02), (s, share)
    again = stratified_split(PETS.labels, seed=cats_dogs.SEED)
    np.testing.assert_array_equal(again, PETS.split)
    with pytest.raises(ValueError, match="fractions"):
        stratified_split(PETS.labels, fractions=(0.5, 0.5, 0.5))


def test_subset_keeps_every_field_aligned():
    test = PETS.subset("test")
    index = np.flatnonzero(PETS.split == "test")
    assert len(test) == len(index) == len(test.captions) == len(test.attributes)
    assert test.captions[5] == PETS.captions[index[5]]
    assert test.attributes.iloc[5].species == PETS.classes[PETS.labels[index[5]]]
    np.testing.assert_array_equal(test.images[5], PETS.images[index[5]])
    assert len(DIGITS.subset(DIGITS.labels == 3)) == int((DIGITS.labels == 3).sum())
    with pytest.raises(ValueError, match="which"):
        PETS.subset("training")


def test_cats_dogs_captions_hide_the_label_but_leaky_ones_state_it():
    assert PETS.images.shape == (2000, 3, 32, 32) and PETS.images.dtype == np.float32
    assert np.bincount(PETS.labels).tolist() == [1000, 1000]
    for caption in PETS.captions:
        assert "cat" not in caption.split() and "dog" not in caption.split()
    for caption, path, label in zip(PETS.leaky_captions, PETS.paths, PETS.labels):
        assert PETS.classes[label] in caption and f"/{PETS.classes[label]}/" in path
    assert load_cats_dogs("leaky").captions == PETS.leaky_captions
    assert set(PETS.attributes.cue) == set(cats_dogs.CUES)
    with pytest.raises(ValueError, match="variant"):
        load_cats_dogs("noisy")


def _scores(features, labels, train, c):
    scaler = StandardScaler().fit(features[train])
    model = LogisticRegression(max_iter=3000, C=c).fit(
        scaler.transform(features[train]), labels[train]
    )
    return model.decision_function(scaler.transform(features))


def _fusion_gain(features_a, features_b, labels, split, c_a=1.0, c_b=1.0):
    """Test accuracy of a linear model on each modality, and of a stacked late fusion of
    the two (a logistic regression on their scores, fitted on the validation split)."""
    train, val, test = (split == s for s in ("train", "val", "test"))
    a, b = _scores(features_a, labels, train, c_a), _scores(features_b, labels, train, c_b)
    stacked = np.hstack([a.reshape(len(labels), -1), b.reshape(len(labels), -1)])
    fused = LogisticRegression(max_iter=3000).fit(stacked[val], labels[val])

    def accuracy(scores):
        predicted = scores.argmax(1) if scores.ndim == 2 else (scores > 0).astype(int)
        return (predicted[test] == labels[test]).mean()

    return accuracy(a), accuracy(b), fused.score(stacked[test], labels[test])


def test_av_digits_each_modality_alone_is_clearly_worse_than_fusion():
    spectra = np.abs(np.fft.rfft(DIGITS.audio.reshape(len(DIGITS), 40, 100), axis=-1))
    audio_features = np.log1p(spectra[..., :50]).reshape(len(DIGITS), -1)  # coarse spectrogram
    image, audio, fused = _fusion_gain(
        DIGITS.images.reshape(len(DIGITS), -1),
        audio_features,
        DIGITS.labels,
        DIGITS.split,
        0.1,
        0.01,
    )
    assert 0.4 < image < 0.85 and 0.4 < audio < 0.85, (image, audio)
    assert fused > max(image, audio) + 0.08, (image, audio, fused)


def test_cats_dogs_each_modality_alone_is_clearly_worse_than_fusion():
    train = PETS.split == "train"
    words = CountVectorizer(ngram_range=(1, 2)).fit(np.array(PETS.captions)[train])
    text = words.transform(PETS.captions).toarray()
    pixels = PETS.images.reshape(len(PETS), -1)
    image, caption, fused = _fusion_gain(pixels, text, PETS.labels, PETS.split, 0.01, 1.0)
    assert 0.6 < image < 0.9 and 0.6 < caption < 0.8, (image, caption)
    assert fused > max(image, caption) + 0.03, (image, caption, fused)


def test_multimodal_dataset_yields_dicts_and_drops_or_corrupts():
    ds = MultimodalDataset({"image": DIGITS.images, "audio": DIGITS.audio}, DIGITS.labels)
    item = ds[0]
    assert set(item) == {"image", "audio", "label", "present"}
    assert item["image"].shape == (1, 8, 8) and item["label"].dtype == torch.long
    dropped = MultimodalDataset(
        {"image": DIGITS.images, "audio": DIGITS.audio},
        DIGITS.labels,
        drop=("audio",),
        corrupt={"image": lambda x, i: x * 0 + i},
    )
    item = dropped[7]
    assert torch.all(item["audio"] == 0) and item["present"].tolist() == [True, False]
    assert torch.all(item["image"] == 7)
    batch = next(iter(make_loader(dropped, batch_size=5)))
    assert batch["image"].shape == (5, 1, 8, 8) and batch["present"].shape == (5, 2)


def test_loader_order_is_seeded():
    ds = MultimodalDataset({"x": np.arange(20, dtype=np.float32)[:, None]}, np.arange(20))

    def order(seed):
        return torch.cat([b["label"] for b in make_loader(ds, 4, shuffle=True, seed=seed)])

    assert torch.equal(order(1), order(1)) and not torch.equal(order(1), order(2))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"modalities": {}}, "non-empty"),
        ({"modalities": {"x": np.zeros((3, 2))}, "labels": np.zeros(4)}, "samples"),
        ({"modalities": {"x": np.zeros((4, 2))}, "drop": ("y",)}, "unknown modality"),
        ({"modalities": {"label": np.zeros((4, 2))}}, "reserved"),
        ({"modalities": {"x": np.array(["a"] * 4)}}, "numeric"),
    ],
)
def test_multimodal_dataset_bad_input(kwargs, match):
    kwargs.setdefault("labels", np.zeros(4))
    with pytest.raises((ValueError, TypeError), match=match):
        MultimodalDataset(**kwargs)
    with pytest.raises(ValueError, match="batch_size"):
        make_loader(MultimodalDataset({"x": np.zeros((4, 1))}, np.zeros(4)), batch_size=0)
