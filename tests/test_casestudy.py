"""Tests of mmcourse.casestudy on tiny random data (no dataset needed, fast)."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mmcourse import casestudy as cs
from mmcourse.text import Vocab

CAPTIONS = [
    "a ginger pet sitting on a sofa, purring",
    "a brown animal lying down on the grass, barking",
    "a grey furry friend standing in the snow",
    "a black pet sitting on the beach, wagging its tail",
]


def tiny_data(n=16, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 2
    return SimpleNamespace(
        images=rng.random((n, 3, 32, 32), dtype=np.float32),
        captions=[CAPTIONS[i % 4] for i in range(n)],
        labels=labels.astype(np.int64),
    )


@pytest.fixture(scope="module")
def vocab():
    return Vocab.build(CAPTIONS)


def tiny_net(vocab, modalities=cs.MODALITIES, fusion="seed", seed=0):
    torch.manual_seed(seed)
    return cs.CatsDogsNet(
        vocab, modalities, fusion, feature_dim=8, hidden=8, image_channels=(4, 8)
    ).eval()


@pytest.fixture(scope="module")
def batch(vocab):
    return cs.make_batch(tiny_data(), vocab)


# --------------------------------------------------------------------------- the model
def test_two_logits_give_exactly_the_seed_sigmoid_and_bce(vocab, batch):
    net = tiny_net(vocab)
    logits = net(batch)
    z = net.logit(batch)
    assert logits.shape == (16, 2) and torch.equal(logits[:, 0], torch.zeros(16))
    torch.testing.assert_close(torch.softmax(logits, 1)[:, 1], torch.sigmoid(z))
    torch.testing.assert_close(net.proba(batch), torch.sigmoid(z))
    ce = F.cross_entropy(logits, batch["label"])
    bce = F.binary_cross_entropy_with_logits(z, batch["label"].float())
    torch.testing.assert_close(ce, bce)


@pytest.mark.parametrize("fusion", sorted(cs.FUSIONS))
def test_every_fusion_builds_and_runs(vocab, batch, fusion):
    net = tiny_net(vocab, fusion=fusion)
    assert net(batch).shape == (16, 2)
    assert set(net.net.encoders) == {"image", "text"}


def test_unimodal_models_ignore_the_other_modality(vocab, batch):
    image_net = tiny_net(vocab, ("image",))
    other = dict(batch, text=torch.ones_like(batch["text"]))
    torch.testing.assert_close(image_net(batch), image_net(other))
    text_net = tiny_net(vocab, "text")
    assert text_net.modalities == ("text",) and "image" not in text_net.net.encoders
    assert text_net(cs.only(batch, ["text"])).shape == (16, 2)


def test_bad_constructor_arguments(vocab):
    with pytest.raises(ValueError, match="modalities"):
        cs.CatsDogsNet(vocab, ("image", "audio"))
    with pytest.raises(ValueError, match="modalities"):
        cs.CatsDogsNet(vocab, ())
    with pytest.raises(ValueError, match="fusion"):
        cs.CatsDogsNet(vocab, fusion="magic")
    with pytest.raises(TypeError, match="vocab"):
        cs.CatsDogsNet("a b c")
    with pytest.raises(ValueError, match="max_len"):
        cs.CatsDogsNet(vocab, max_len=0)


def test_missing_modality_uses_the_mean_feature(vocab, batch):
    net = tiny_net(vocab)
    net.fit_absent(batch)
    with torch.no_grad():
        mean_text = net.net.encoders["text"](batch["text"], batch["text_mask"]).mean(0)
    torch.testing.assert_close(net.absent_text, mean_text)
    no_text = {k: v for k, v in batch.items() if not k.startswith("text")}
    flagged = dict(batch, text_present=torch.zeros(16, dtype=torch.bool))
    torch.testing.assert_close(net(no_text), net(flagged))
    # per-row flags: only the flagged rows change
    rows = torch.arange(16) % 2 == 0
    mixed = net(dict(batch, text_present=rows))
    torch.testing.assert_close(mixed[rows], net(batch)[rows])
    torch.testing.assert_close(mixed[~rows], net(no_text)[~rows])
    with pytest.raises(ValueError, match="text_present"):
        net(dict(batch, text_present=torch.ones(3, dtype=torch.bool)))
    with pytest.raises(ValueError, match="none of the modalities"):
        net({"label": batch["label"]})


def test_contributions_add_up(vocab, batch):
    net = tiny_net(vocab)
    net.fit_absent(batch)
    c = cs.contributions(net, batch)
    torch.testing.assert_close(c["image"] + c["text"], c["full"] - c["none"])
    torch.testing.assert_close(c["full"], net.proba(batch).detach())
    loo = cs.contributions(net, batch, method="leave_one_out")
    torch.testing.assert_close(loo["text"], c["full"] - net.proba(cs.remove(batch, "text")))
    with pytest.raises(ValueError, match="name"):
        cs.remove(batch, "audio")


# --------------------------------------------------------------------------- data + training
def test_make_batch_and_minibatches(vocab):
    data = tiny_data(10)
    b = cs.make_batch(data, vocab, captions=[""] + data.captions[1:])
    assert b["image"].shape == (10, 3, 32, 32) and b["text"].shape == (10, 16)
    assert b["text_mask"].sum(1).min() >= 1  # the empty caption became one <unk>
    assert b["text"][0, 0] == 1
    loader = cs.minibatches(b, batch_size=4, seed=0)
    assert len(loader) == 3
    seen = torch.cat([m["label"] for m in loader])
    assert sorted(seen.tolist()) == sorted(b["label"].tolist())
    first = [m["label"] for m in cs.minibatches(b, 4, seed=1)]
    again = [m["label"] for m in cs.minibatches(b, 4, seed=1)]
    assert all(torch.equal(a, c) for a, c in zip(first, again, strict=True))
    with pytest.raises(ValueError, match="captions"):
        cs.make_batch(data, vocab, captions=["x"])
    with pytest.raises(TypeError, match="vocab"):
        cs.make_batch(data, {"a": 1})
    with pytest.raises(ValueError, match="batch_size"):
        cs.minibatches(b, 0)


def test_train_model_learns_a_trivial_text_task():
    # the caption states the label: a text model must learn it (the leakage lesson in small)
    data = tiny_data(64)
    data.captions = [f"this is a {'dog' if y else 'cat'}" for y in data.labels]
    vocab = Vocab.build(data.captions)
    batch = cs.make_batch(data, vocab)
    net, history = cs.train_model(
        batch,
        batch,
        vocab,
        ("text",),
        seed=0,
        epochs=15,
        lr=1e-2,
        batch_size=16,
        feature_dim=8,
        hidden=8,
    )
    assert history.best_score == 1.0
    assert not net.training
    assert (net.proba(batch).round() == batch["label"]).all()


# --------------------------------------------------------------------------- predict
def test_predict_accepts_common_picture_formats(vocab):
    net = tiny_net(vocab)
    image = torch.rand(3, 32, 32)
    p = cs.predict(net, image, "a ginger pet purring")
    assert p.label in cs.CLASSES and 0 <= p.p_dog <= 1
    assert p.label == ("dog" if p.p_dog >= 0.5 else "cat")
    assert p.confidence >= 0.5
    assert p.contributions["image"] + p.contributions["text"] == pytest.approx(
        p.p_dog - p.baseline, abs=1e-5
    )
    hwc_uint8 = (image.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    q = cs.predict(net, hwc_uint8, "a ginger pet purring")
    assert q.p_dog == pytest.approx(p.p_dog, abs=1e-2)
    assert str(p).startswith(p.label)


def test_predict_handles_unknown_words_and_missing_modalities(vocab):
    net = tiny_net(vocab)
    image = torch.rand(3, 32, 32)
    p = cs.predict(net, image, "a zebra pet purring loudly")
    assert p.unknown_words == ["zebra", "loudly"]
    assert p.tokens == ["a", "zebra", "pet", "purring", "loudly"]
    no_caption = cs.predict(net, image, None)
    assert no_caption.contributions["text"] == 0.0
    no_image = cs.predict(net, None, "a ginger pet purring")
    assert no_image.contributions["image"] == 0.0
    text_only = tiny_net(vocab, ("text",))
    assert cs.predict(text_only, image, "purring").contributions.keys() == {"text"}


@pytest.mark.parametrize(
    ("image", "caption", "error", "match"),
    [
        (torch.rand(3, 64, 64), "a pet", ValueError, "32x32"),
        (torch.rand(1, 32, 32), "a pet", ValueError, "3 colour channels"),
        (torch.rand(32, 32, 4), "a pet", ValueError, "3 colour channels"),
        (torch.rand(32, 32), "a pet", ValueError, "shape"),
        (torch.rand(3, 32, 32) * 255, "a pet", ValueError, r"\[0, 1\]"),
        (torch.full((3, 32, 32), float("nan")), "a pet", ValueError, "NaN"),
        ([[0.0]], "a pet", TypeError, "image"),
        (torch.rand(3, 32, 32), "", ValueError, "no words"),
        (torch.rand(3, 32, 32), " ,.!", ValueError, "no words"),
        (torch.rand(3, 32, 32), 42, TypeError, "caption"),
        (None, None, ValueError, "image, a caption"),
    ],
)
def test_predict_rejects_bad_inputs_clearly(vocab, image, caption, error, match):
    with pytest.raises(error, match=match):
        cs.predict(tiny_net(vocab), image, caption)


def test_predict_rejects_a_model_of_the_wrong_kind():
    with pytest.raises(TypeError, match="CatsDogsNet"):
        cs.predict(torch.nn.Linear(2, 2), torch.rand(3, 32, 32), "a pet")


# --------------------------------------------------------------------------- save / load
def test_save_and_load_round_trip(tmp_path, vocab, batch):
    net = tiny_net(vocab, fusion="gmu")
    net.fit_absent(batch)
    path = cs.save(net, tmp_path / "sub" / "model.pt")
    loaded = cs.load(path)
    assert loaded.vocab.tokens == vocab.tokens and loaded.config == net.config
    torch.testing.assert_close(loaded(batch), net(batch))
    torch.testing.assert_close(loaded.absent_text, net.absent_text)
    raw = torch.load(path, weights_only=True)  # plain data only: safe to load
    assert raw["format"] == cs.FORMAT


def test_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        cs.load(tmp_path / "missing.pt")
    torch.save({"something": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a model"):
        cs.load(tmp_path / "other.pt")
    with pytest.raises(TypeError, match="CatsDogsNet"):
        cs.save(torch.nn.Linear(1, 1), tmp_path / "x.pt")


# --------------------------------------------------------------------------- demo
def test_demo_view_and_widget(vocab):
    net = tiny_net(vocab)
    data = tiny_data(4)
    prediction, text = cs.demo_view(net, data.images, 1, data.captions[1])
    assert prediction.label.upper() in text and "image" in text and "text" in text
    _, blank = cs.demo_view(net, data.images, 1, "   ")
    assert "no caption" in blank
    _, unknown = cs.demo_view(net, data.images, 1, "a zebra")
    assert "zebra" in unknown
    with pytest.raises(ValueError, match="index"):
        cs.demo_view(net, data.images, 4, "a pet")
    box = cs.make_demo(net, data.images, data.captions)
    box.slider.value = 2
    assert box.text.value == data.captions[2]


# --------------------------------------------------------------------------- two-stage training
def test_adopted_encoders_are_copied_frozen_and_precomputed(vocab, batch):
    image_net, text_net = tiny_net(vocab, ("image",), seed=1), tiny_net(vocab, ("text",), seed=2)
    image_net.set_image_stats(batch["image"])
    image_net.fit_absent(batch)
    fused = tiny_net(vocab, fusion="gmu", seed=3)
    fused.adopt_encoders(image_net, text_net)
    assert fused.frozen == {"image", "text"}
    assert not any(p.requires_grad for p in fused.net.encoders.parameters())
    torch.testing.assert_close(fused.image_mean, image_net.image_mean)
    torch.testing.assert_close(fused.absent_image, image_net.absent_image)
    fused.train()
    assert not fused.net.encoders["image"].training  # BatchNorm statistics stay fixed
    fused.eval()
    feats = fused.encode(batch)
    assert "image" not in feats and feats["image_feature"].shape == (16, 8)
    torch.testing.assert_close(fused(feats), fused(batch))
    with torch.no_grad():
        torch.testing.assert_close(
            feats["image_feature"],
            image_net.net.encoders["image"](
                (batch["image"] - image_net.image_mean) / image_net.image_std
            ),
        )
    with pytest.raises(TypeError, match="CatsDogsNet"):
        fused.adopt_encoders(torch.nn.Linear(1, 1))
    with pytest.raises(ValueError, match="feature_dim"):
        fused.adopt_encoders(cs.CatsDogsNet(vocab, ("image",), feature_dim=4))


def test_set_image_stats_standardises_and_rejects_bad_input(vocab, batch):
    net = tiny_net(vocab, ("image",))
    net.set_image_stats(batch["image"])
    z = (batch["image"] - net.image_mean) / net.image_std
    torch.testing.assert_close(z.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="images"):
        net.set_image_stats(torch.rand(4, 1, 8, 8))


def test_mislead_and_corrupt():
    captions = ["a grey pet sitting on a sofa, purring", "a brown pet lying down in the snow"]
    out = cs.mislead(captions, [0, 1])
    assert out[0].startswith("a grey pet sitting on a sofa, ")
    from mmcourse.datasets.cats_dogs import STRONG

    assert out[0].split(", ")[1] in STRONG["dog"] and out[1].split(", ")[1] in STRONG["cat"]
    with pytest.raises(ValueError, match="length"):
        cs.mislead(captions, [0])
    images = torch.rand(3, 3, 8, 8)
    noisy = cs.corrupt(images, 0.3, seed=0)
    assert noisy.min() >= 0 and noisy.max() <= 1 and not torch.equal(noisy, images)
    torch.testing.assert_close(noisy, cs.corrupt(images, 0.3, seed=0))
    torch.testing.assert_close(cs.corrupt(images, 0.0), images)
    with pytest.raises(ValueError, match="noise_std"):
        cs.corrupt(images, -1.0)
    with pytest.raises(ValueError, match="images"):
        cs.corrupt(images[0], 0.1)


# --------------------------------------------------------------------------- exercises
def test_exercise_checks_reject_plausible_wrong_answers():
    from mmcourse.exercises import get

    def audit_without_min_count(captions, labels, min_count=3):
        labels_of = {}
        for caption, label in zip(captions, labels, strict=True):
            for word in caption.split():
                labels_of.setdefault(word, set()).add(label)
        return {w for w, s in labels_of.items() if len(s) == 1}

    def leave_one_out(v_none, v_image, v_text, v_both):
        return v_both - v_text, v_both - v_image

    def flipped_occlusion(score_fn, image, patch):
        return -get("05.occlusion").solution()(score_fn, image, patch)

    for key, wrong in (
        ("05.leak_audit", audit_without_min_count),
        ("05.shapley", leave_one_out),
        ("05.occlusion", flipped_occlusion),
    ):
        exercise = get(key)
        exercise.check(exercise.solution())
        with pytest.raises(AssertionError):
            exercise.check(wrong)


# --------------------------------------------------------------------------- second edition
def test_contributions_against_a_background_sample_by_hand(vocab, batch):
    net = tiny_net(vocab)
    net.fit_absent(batch)
    background = {k: v[:4] for k, v in batch.items()}
    c = cs.contributions(net, batch, background=background)
    torch.testing.assert_close(c["image"] + c["text"], c["full"] - c["none"])
    f = net.encode(cs.only(batch, net.modalities), names=net.modalities)
    r = net.encode(cs.only(background, net.modalities), names=net.modalities)

    def v(image_from_batch, text_from_batch):  # v(S) averaged over the 4 background pairs
        total = 0
        for k in range(4):
            img = f["image_feature"] if image_from_batch else r["image_feature"][k].expand(16, -1)
            txt = f["text_feature"] if text_from_batch else r["text_feature"][k].expand(16, -1)
            total = total + net.proba({"image_feature": img, "text_feature": txt})
        return total / 4

    with torch.no_grad():
        phi_image = 0.5 * ((v(1, 0) - v(0, 0)) + (v(1, 1) - v(0, 1)))
        torch.testing.assert_close(c["image"], phi_image)
        torch.testing.assert_close(c["none"], v(0, 0))
    assert torch.allclose(c["none"], c["none"][0].expand(16))  # one reference for every example
    with pytest.raises(KeyError, match="background"):
        cs.contributions(net, batch, background={"image": batch["image"]})


def test_train_comparison_scores_every_model_and_chooses_on_validation(vocab):
    data = tiny_data(32)
    b = cs.make_batch(data, vocab)
    results, models = cs.train_comparison(
        {"train": b, "val": b, "test": b},
        vocab,
        seeds=(0, 1),
        fusions=("seed",),
        epochs={"image": 1, "text": 1, "fused": 1},
        progress=False,
    )
    assert len(results) == 6 and set(results["seed"]) == {0, 1}
    assert set(models) == {
        (m, s) for m in ("image only", "text only", "fused: seed equation") for s in (0, 1)
    }
    net = models["text only", 1]
    expected = ((net.proba(b) >= 0.5).long() == b["label"]).float().mean().item()
    row = results[(results.model == "text only") & (results.seed == 1)].iloc[0]
    assert row.test_accuracy == pytest.approx(expected) and row.val_accuracy == pytest.approx(
        expected
    )
    with pytest.raises(ValueError, match="fusions"):
        cs.train_comparison({"train": b, "val": b, "test": b}, vocab, fusions=("lstm",))
    with pytest.raises(KeyError, match="splits"):
        cs.train_comparison({"train": b}, vocab)


def test_choose_on_validation_ignores_the_test_split():
    import pandas as pd

    results = pd.DataFrame(
        {
            "model": ["a", "a", "b", "b"],
            "seed": [0, 1, 0, 1],
            "val_accuracy": [0.80, 0.82, 0.78, 0.79],
            "test_accuracy": [0.70, 0.71, 0.90, 0.91],  # b would win on test
        }
    )
    assert cs.choose_on_validation(results, ["a", "b"]) == "a"
    with pytest.raises(ValueError, match="candidates"):
        cs.choose_on_validation(results, ["a", "c"])


def test_pick_examples_shows_both_classes_and_the_errors():
    y_true = np.array([0, 0, 0, 0, 1, 1, 1, 1])  # sorted by class, like the test split
    y_pred = np.array([0, 1, 0, 0, 1, 1, 0, 1])
    assert cs.pick_examples(y_true, y_pred, per_group=2) == [0, 2, 4, 5, 1, 6]
    with pytest.raises(ValueError, match="per_group"):
        cs.pick_examples(y_true, y_pred, per_group=0)
    with pytest.raises(ValueError, match="same length"):
        cs.pick_examples(y_true, y_pred[:3])


def test_image_score_reads_the_pictures_with_one_caption(vocab, batch):
    net = tiny_net(vocab)
    score = cs.image_score(net, batch, 3)
    images = batch["image"][:5]
    expected = net.logit(
        {
            "image": images,
            "text": batch["text"][3:4].expand(5, -1),
            "text_mask": batch["text_mask"][3:4].expand(5, -1),
        }
    )
    torch.testing.assert_close(score(images), expected)


def test_cue_regions_find_the_ears_and_muzzle_of_the_drawn_pictures():
    from mmcourse.datasets import load_cats_dogs

    data = load_cats_dogs()
    occluded = data.attributes["occluded"].to_numpy()
    index = [int(np.flatnonzero(~occluded)[0]), int(np.flatnonzero(occluded)[0]), 1500]
    regions = cs.cue_regions(index)
    assert set(regions) == {"ears", "muzzle", "cue", "occluder"}
    assert all(m.shape == (3, 32, 32) and m.dtype == bool for m in regions.values())
    np.testing.assert_array_equal(regions["cue"], regions["ears"] | regions["muzzle"])
    assert not regions["occluder"][0].any() and regions["occluder"][1].any()
    assert not (regions["cue"][1] & regions["occluder"][1]).any()  # hidden parts are no cue
    for k in range(3):  # small but real regions, near the head in the upper half
        assert 0.01 < regions["cue"][k].mean() < 0.2
        rows = np.flatnonzero(regions["cue"][k].any(axis=1))
        assert rows.mean() < 24
    # on a clear picture the cue pixels differ from the background colour
    image = data.images[index[0]]
    corner = image[:, :3, :3].reshape(3, -1).mean(1)
    cue_colour = image[:, regions["cue"][0]].mean(1)
    assert np.abs(cue_colour - corner).max() > 0.1
    with pytest.raises(ValueError, match="indices"):
        cs.cue_regions([2000])
    with pytest.raises(ValueError, match="indices"):
        cs.cue_regions([])


def test_caption_and_ids_scores_read_one_picture_with_many_captions(vocab, batch):
    net = tiny_net(vocab)
    image = batch["image"][2:3]
    captions = [CAPTIONS[0].replace(",", "").split(), CAPTIONS[1].replace(",", "").split()]
    ids, mask = net.encode_captions([" ".join(c) for c in captions])
    expected = net.logit({"image": image.expand(2, -1, -1, -1), "text": ids, "text_mask": mask})
    torch.testing.assert_close(cs.caption_score(net, image)(captions), expected)
    torch.testing.assert_close(cs.ids_score(net, image)(ids, mask), expected)
