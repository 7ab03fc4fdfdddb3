"""Every bad input to the public API fails at the call with an error that names the argument
and says what was expected; nothing returns garbage silently (issue 11, item 5).

Grouped by module. A probe of about 2,500 bad calls (wrong types, NaN/inf, empty, wrong
shapes/dtypes, out-of-range ints) found the cases below; each is pinned here.
"""

import math

import numpy as np
import pytest
import torch
from torch import nn

import mmcourse  # noqa: F401  (thread policy)
from mmcourse import attention, audio

NAN = float("nan")


# --------------------------------------------------------------------------- attention
def test_attention_propagates_nan_instead_of_zeroing_the_row():
    q, k, v = torch.randn(2, 3, 4), torch.randn(2, 5, 4), torch.randn(2, 5, 6)
    k[0, 2, 1] = NAN
    out, weights = attention.scaled_dot_product_attention(q, k, v)
    assert torch.isnan(out[0]).all() and torch.isfinite(out[1]).all()
    assert torch.isnan(weights[0]).all()


def test_attention_still_zeroes_a_fully_masked_row():
    q, k, v = torch.randn(1, 2, 4), torch.randn(1, 3, 4), torch.randn(1, 3, 4)
    mask = torch.tensor([[True, True, True], [False, False, False]])
    out, weights = attention.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    assert torch.equal(out[0, 1], torch.zeros(4)) and torch.equal(weights[0, 1], torch.zeros(3))
    float_mask = torch.zeros(2, 3)
    float_mask[1] = float("-inf")
    out2, _ = attention.scaled_dot_product_attention(q, k, v, attn_mask=float_mask)
    torch.testing.assert_close(out2, out)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda q, k, v: attention.scaled_dot_product_attention(q, k[:, :0], v[:, :0]), "k"),
        (lambda q, k, v: attention.scaled_dot_product_attention(q[0], k, v), "leading"),
        (
            lambda q, k, v: attention.scaled_dot_product_attention(q, k, v, dropout_p="x"),
            "dropout_p",
        ),
        (
            lambda q, k, v: attention.scaled_dot_product_attention(q, k, v, is_causal="y"),
            "is_causal",
        ),
    ],
)
def test_attention_bad_arguments(call, match):
    q, k, v = torch.randn(2, 3, 4), torch.randn(2, 5, 4), torch.randn(2, 5, 4)
    with pytest.raises((ValueError, TypeError), match=match):
        call(q, k, v)


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: attention.causal_mask(True), "length"),
        (lambda: attention.MultiHeadAttention(8, True), "num_heads"),
        (lambda: attention.MultiHeadAttention(8, 2, dropout=None), "dropout"),
        (lambda: attention.PositionalEncoding(8, max_len=0), "max_len"),
        (lambda: attention.TransformerBlock(8, 2, d_ff=-1), "d_ff"),
        (lambda: attention.TransformerBlock(2.5, 1), "d_model"),
        (lambda: attention.TransformerBlock(8, 2, dropout="x"), "dropout"),
        (lambda: attention.TransformerBlock(4, 2)(torch.randn(3, 4)), "x"),
    ],
)
def test_attention_modules_name_the_argument(make, match):
    with pytest.raises((ValueError, TypeError), match=match):
        make()


# --------------------------------------------------------------------------- audio
@pytest.mark.parametrize("n_fft", [255, 256, 257, 201])
def test_mel_filterbank_matches_librosa_for_odd_and_even_n_fft(n_fft):
    librosa = pytest.importorskip("librosa")
    for sr in (8000, 22050):
        ours = audio.mel_filterbank(sr, n_fft, 20, dtype=torch.float64).numpy()
        ref = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=20, htk=True, norm=None)
        np.testing.assert_allclose(ours, ref, atol=1e-6)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: audio.mel_filterbank(8000, 1, 4), "n_mels"),  # no ZeroDivisionError
        (lambda: audio.mel_filterbank(8000, 256, f_min="x"), "f_min"),
        (lambda: audio.mel_filterbank(8000, 256, f_min=None), "f_min"),
        (lambda: audio.hz_to_mel("x"), "frequency"),
        (lambda: audio.mel_to_hz("x"), "mel"),
        (lambda: audio.power_to_db(-torch.rand(4, 5)), "non-negative"),
        (lambda: audio.power_to_db(torch.rand(4, 0)), "power"),
        (lambda: audio.power_to_db(torch.ones(4, 5, dtype=torch.long)), "power"),
        (lambda: audio.power_to_db(torch.rand(4, 5), ref=NAN), "ref"),
        (lambda: audio.power_to_db(torch.rand(4, 5), amin="x"), "amin"),
        (lambda: audio.power_to_db(torch.rand(4, 5), top_db="x"), "top_db"),
        (lambda: audio.power_spectrogram(torch.randn(800), window_name="kaiser"), "window_name"),
        (lambda: audio.power_spectrogram(torch.randn(800), win_length=2.5), "win_length"),
    ],
)
def test_audio_bad_arguments(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()


# --------------------------------------------------------------------------- contrastive
def _emb(n=6, d=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return nn.functional.normalize(torch.randn(n, d, generator=g), dim=1)


def test_recall_refuses_a_nan_row_instead_of_counting_it_as_a_hit():
    from mmcourse import contrastive as C

    sim = _emb() @ _emb(seed=1).T
    sim[2, 0] = NAN
    with pytest.raises(ValueError, match="similarity contains NaN"):
        C.recall_at_k(sim, 1)
    with pytest.raises(ValueError, match="similarity contains NaN"):
        C.retrieval_ranks(sim)


def test_random_recall_is_fast_and_exact_for_large_galleries():
    import time

    from mmcourse import contrastive as C

    start = time.perf_counter()
    assert C.random_recall_at_k(2_000_000, 100_000) == pytest.approx(0.05, abs=1e-15)
    assert time.perf_counter() - start < 1.0
    for n, k, r in [(10, 3, 1), (50, 5, 4), (30, 2, 29), (7, 7, 3)]:
        exact = 1.0 - math.comb(n - r, k) / math.comb(n, k)
        assert C.random_recall_at_k(n, k, r) == exact


def test_train_clip_stops_on_a_nan_loss():
    from mmcourse import contrastive as C
    from mmcourse.text import Vocab

    vocab = Vocab.build(["a cat", "a dog"])
    ids, mask = vocab.encode(["a cat", "a dog", "a cat", "a dog"])
    model = C.make_tiny_clip(len(vocab), image_channels=(4,), width=8, embed_dim=4)
    images = torch.rand(4, 3, 8, 8)

    def nan_loss(*args):
        return C.clip_loss(*args) * NAN

    with pytest.raises(FloatingPointError, match="loss became nan"):
        C.train_clip(model, images, ids, mask, epochs=1, batch_size=2, loss_fn=nan_loss)
    bad = images.clone()
    bad[0, 0, 0, 0] = NAN
    with pytest.raises(ValueError, match="images contains 1 NaN"):
        C.train_clip(model, bad, ids, mask, epochs=1, batch_size=2)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda C, e: C.multi_positive_clip_loss(e, e, 1.0, torch.eye(6)), "positives"),
        (lambda C, e: C.same_key_mask([[1], [2]]), "keys"),
        (lambda C, e: C.make_tiny_clip(10, width=0), "width"),
        (lambda C, e: C.make_tiny_clip(10, text_layers=0), "text_layers"),
        (lambda C, e: C.make_tiny_clip(10, image_channels="ab"), "image_channels"),
        (lambda C, e: C.embed_images(nn.Linear(2, 2), torch.rand(2, 3, 4, 4), 0), "batch_size"),
        (lambda C, e: C.embed_images("model", torch.rand(2, 3, 4, 4)), "model"),
        (lambda C, e: C.text_embedder(nn.Linear(2, 2), "vocab", 4), "vocab"),
        (lambda C, e: C.text_embedder(nn.Linear(2, 2), None, 0), "max_len"),
        (lambda C, e: C.retrieval_report(e, e, ks=5), "ks"),
        (lambda C, e: C.retrieval_report(e, e, ks=(1, 7)), "ks"),
        (lambda C, e: C.format_prompts([1], ["a {}"]), "class_names"),
        (lambda C, e: C.zero_shot_weights(5, ["cat"], ["a {}"]), "encode_text"),
        (lambda C, e: C.random_recall_at_k(10, 2, True), "n_relevant"),
    ],
)
def test_contrastive_bad_arguments(call, match):
    from mmcourse import contrastive as C

    with pytest.raises((ValueError, TypeError), match=match):
        call(C, _emb())


# --------------------------------------------------------------------------- encoders, fusion
@pytest.mark.parametrize(
    "call, match",
    [
        (lambda E: E.ImageCNN(3, 8, dropout=1.5), "dropout"),
        (lambda E: E.ImageCNN(3, 8, channels="ab"), "channels"),
        (lambda E: E.ImageCNN(3, 8, channels=(0,)), "channels"),
        (lambda E: E.TextRNN(10, 8, dropout="x"), "dropout"),
        (lambda E: E.TextRNN(10, 8, padding_idx="0"), "padding_idx"),
        (lambda E: E.TextTransformer(10, 8, d_model=8, num_heads=2, dropout=-0.1), "dropout"),
        (lambda E: E.AudioCNN(13, 8, dropout=None), "dropout"),
        (lambda E: E.MLPEncoder(4, 2, hidden=5), "hidden"),
        (
            lambda E: E.masked_mean(torch.randn(2, 3, 4), torch.zeros(2, 3, dtype=torch.bool)),
            "all padding",
        ),  # fmt: skip
        (lambda E: E.masked_mean(torch.randn(2, 3, 4), torch.ones(2, 2, dtype=torch.bool)), "mask"),
        (lambda E: E.masked_mean(torch.randn(2, 3, 4), torch.ones(2, 3)), "mask"),
    ],
)
def test_encoders_bad_arguments(call, match):
    from mmcourse import encoders

    with pytest.raises((ValueError, TypeError), match=match):
        call(encoders)


def test_cross_attention_fusion_refuses_zero_length_sequences():
    from mmcourse.fusion import ConcatFusion, CrossAttentionFusion

    fusion = CrossAttentionFusion([5, 3], dim=4)
    with pytest.raises(ValueError, match=r"features\[0\] is a sequence of length 0"):
        fusion([torch.randn(2, 0, 5), torch.randn(2, 4, 3)])
    with pytest.raises(ValueError, match=r"features\[1\] is a sequence of length 0"):
        fusion([torch.randn(2, 3, 5), torch.randn(2, 0, 3)])
    with pytest.raises(ValueError, match="empty batch"):
        ConcatFusion([5, 3], 4)([torch.randn(0, 5), torch.randn(0, 3)])
    with pytest.raises(ValueError, match="features: expected 2"):
        ConcatFusion([5, 3], 4)([torch.randn(2, 5)])


def test_nan_features_reach_the_fusion_output():
    from mmcourse.fusion import CrossAttentionFusion

    fusion = CrossAttentionFusion([5, 3], dim=4)
    a, b = torch.randn(2, 6, 5), torch.randn(2, 7, 3)
    b[0, 1, 0] = NAN
    out = fusion([a, b])
    assert torch.isnan(out[0]).any() and torch.isfinite(out[1]).all()


# --------------------------------------------------------------------------- image, metrics
@pytest.mark.parametrize(
    "call, match",
    [
        (
            lambda I: I.normalize(
                (torch.rand(3, 4, 4) * 255).to(torch.uint8), [0.5] * 3, [0.2] * 3
            ),
            "images must be floating point",
        ),  # fmt: skip
        (lambda I: I.denormalize(torch.rand(3, 4, 4).long(), [0.5] * 3, [0.2] * 3), "images"),
        (lambda I: I.normalize(torch.rand(3, 4, 4), "x", [0.2] * 3), "mean"),
        (lambda I: I.normalize(torch.rand(3, 4, 4), [0.5] * 3, [NAN] * 3), "std"),
        (lambda I: I.normalize(torch.rand(0, 3, 4, 4), [0.5] * 3, [0.2] * 3), "images"),
        (lambda I: I.resize(torch.rand(3, 8, 8).long(), 4), "images"),
        (lambda I: I.resize(torch.rand(3, 8, 8), True), "size"),
        (lambda I: I.resize(torch.rand(3, 8, 8), 2.5), "size"),
        (lambda I: I.train_augmentation(size=0), "size"),
        (lambda I: I.train_augmentation(rotation=NAN), "rotation"),
        (lambda I: I.train_augmentation(translate="x"), "translate"),
        (lambda I: I.train_augmentation(crop_scale="x"), "crop_scale"),
        (lambda I: I.eval_transform(size="4"), "size"),
        (lambda I: I.channel_stats(torch.full((2, 3, 4, 4), NAN)), "images"),
    ],
)
def test_image_bad_arguments(call, match):
    from mmcourse import image

    with pytest.raises((ValueError, TypeError), match=match):
        call(image)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda M: M.accuracy([0, 1], np.array([[0.2], [0.9]])), "y_pred"),
        (lambda M: M.confusion_matrix([0, 1], [0, 1], num_classes=2.5), "num_classes"),
        (lambda M: M.calibration_bins(np.zeros((0, 2)), []), "probs"),
        (lambda M: M.calibration_bins(np.array([["a", "b"]]), [0]), "probs"),
        (lambda M: M.calibration_bins(np.array([[0.5, 0.5]]), [0], n_bins=True), "n_bins"),
        (lambda M: M.bootstrap_ci([0, 1], [0, 1], level="x"), "level"),
        (lambda M: M.bootstrap_ci([0, 1], [0, 1], seed=-1), "seed"),
    ],
)
def test_metrics_bad_arguments(call, match):
    from mmcourse import metrics

    with pytest.raises((ValueError, TypeError), match=match):
        call(metrics)


# --------------------------------------------------------------------------- splits
def test_outlier_scores_refuse_nan_instead_of_hiding_outliers():
    from mmcourse import splits

    values = np.r_[np.random.default_rng(0).normal(size=50), 40.0]
    assert splits.find_outliers(values)[-1]  # the outlier is found...
    values[3] = np.nan  # ...and one NaN used to turn every score into 0
    with pytest.raises(ValueError, match="values contains NaN"):
        splits.robust_zscore(values)
    for method in ("robust", "zscore"):
        with pytest.raises(ValueError, match="values contains NaN"):
            splits.find_outliers(values, method=method)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda S: S.find_constant(np.ones((3, 2)), tol="x"), "tol"),
        (lambda S: S.find_outliers(np.ones(5), threshold=None), "threshold"),
        (lambda S: S.Standardizer(eps=NAN), "eps"),
        (lambda S: S.Standardizer(dims="x"), "dims"),
        (lambda S: S.MinMaxScaler(eps=-1.0), "eps"),
        (lambda S: S.Standardizer().fit(np.ones((3, 2))).transform("x"), "x"),
        (lambda S: S.stratified_split(np.full(20, np.nan)), "labels"),
        (lambda S: S.stratified_split(np.repeat([0, 1], 10), fractions="x"), "fractions"),
        (lambda S: S.stratified_split(np.repeat([0, 1], 10), seed=-1), "seed"),
        (lambda S: S.check_disjoint(a=np.array([0.5]), b=np.array([1])), "a"),
        (lambda S: S.check_disjoint(a="x", b=np.array([1])), "a"),
        (
            lambda S: S.cross_split_duplicates(np.ones((3, 2)), ["train"] * 3, decimals=1.5),
            "decimals",
        ),  # fmt: skip
    ],
)
def test_splits_bad_arguments(call, match):
    from mmcourse import splits

    with pytest.raises((ValueError, TypeError), match=match):
        call(splits)


# --------------------------------------------------------------------------- text
def test_tokenize_is_unicode_aware_and_english_is_unchanged():
    from mmcourse.text import tokenize

    assert tokenize("一只猫在草地上") == ["一", "只", "猫", "在", "草", "地", "上"]
    assert tokenize("café naïve") == ["café", "naïve"]
    assert tokenize("Cafe\u0301") == ["cafe\u0301"]  # a combining accent stays in the word
    assert tokenize("Привет, мир") == ["привет", "мир"]
    assert tokenize("images/cat/cat_0042.png") == ["images", "cat", "cat", "0042", "png"]
    assert tokenize("A ginger cat, purring!! 3x4") == [
        "a",
        "ginger",
        "cat",
        "purring",
        "3",
        "x",
        "4",
    ]


def test_english_tokens_equal_the_ascii_rule():
    import random
    import re
    import string

    from mmcourse.text import tokenize

    ascii_rule = re.compile(r"[a-z]+|[0-9]+")
    rng = random.Random(0)
    for _ in range(2000):
        text = "".join(rng.choice(string.printable) for _ in range(rng.randint(0, 30)))
        assert tokenize(text) == ascii_rule.findall(text.lower())


def test_vocab_refuses_texts_without_tokens_and_bad_ids():
    from mmcourse.text import Vocab

    vocab = Vocab.build(["a cat", "一只猫"])
    ids, mask = vocab.encode(["一只猫"])
    assert mask.all() and (ids > 1).all()  # Chinese is encoded, not all padding
    with pytest.raises(ValueError, match=r"texts\[1\] = '!!!' has no token"):
        vocab.encode(["a cat", "!!!"])
    for bad in ([-1], [len(vocab)], [1.5], [True]):
        with pytest.raises(ValueError, match="ids must be token ids"):
            vocab.decode(bad)
    with pytest.raises(ValueError, match="ids"):
        vocab.decode(torch.ones(2, 2, dtype=torch.long))
    assert vocab.decode(torch.tensor([2, 0])) == vocab.tokens[2]


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda T, v: T.Vocab(None), "tokens"),
        (lambda T, v: T.Vocab(["<pad>", "<unk>", 3]), "tokens"),
        (lambda T, v: T.Vocab.build(["a"], min_freq=1.5), "min_freq"),
        (lambda T, v: T.Vocab.build(["a"], max_size=0), "max_size"),
        (lambda T, v: v.ids(3), "text"),
        (lambda T, v: T.unknown_rate("vocab", ["a"]), "vocab"),
        (lambda T, v: T.bag_of_words(["a"], ["a"]), "vocab"),
    ],
)
def test_text_bad_arguments(call, match):
    from mmcourse import text

    with pytest.raises((ValueError, TypeError), match=match):
        call(text, text.Vocab.build(["a cat"]))


# --------------------------------------------------------------------------- train
class _Net(nn.Module):
    def __init__(self, classes=3):
        super().__init__()
        self.lin = nn.Linear(5, classes)

    def forward(self, batch):
        return self.lin(batch["x"])


def _loader(labels):
    from mmcourse.train import InMemoryLoader

    return InMemoryLoader({"x": torch.randn(len(labels), 5), "label": labels})


LABELS = torch.tensor([0, 1, 2, 1])
BAD_LABELS = [
    (LABELS.float() + 0.5, "integer class ids"),
    (LABELS.float(), "integer class ids"),  # exact but float: say so, do not cast
    (torch.tensor([0, 1, 3, 1]), r"in \[0, 3\)"),
    (torch.tensor([0, -1, 2, 1]), r"in \[0, 3\)"),
    (LABELS[:, None], r"shape \(B,\)"),
    (nn.functional.one_hot(LABELS, 3).float(), r"shape \(B,\)"),
]


@pytest.mark.parametrize("labels, match", BAD_LABELS)
def test_fit_and_evaluate_validate_labels(labels, match):
    from mmcourse import train

    with pytest.raises((ValueError, TypeError), match=f"train_loader.*{match}"):
        train.fit(_Net(), _loader(labels), epochs=1, progress=False)
    with pytest.raises((ValueError, TypeError), match=f"loader.*{match}"):
        train.evaluate(_Net(), _loader(labels))
    with pytest.raises((ValueError, TypeError), match=f"val_loader.*{match}"):
        train.fit(_Net(), _loader(LABELS), _loader(labels), epochs=1, progress=False)


def test_fit_refuses_an_optimizer_of_another_model():
    from mmcourse import train

    other = nn.Linear(2, 2)
    optimizer = torch.optim.SGD(other.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="optimizer holds none of model's"):
        train.fit(_Net(), _loader(LABELS), epochs=1, optimizer=optimizer, progress=False)
    frozen = _Net().requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable parameters"):
        train.fit(frozen, _loader(LABELS), epochs=1, progress=False)


def test_in_memory_loader_never_yields_when_it_has_no_batch():
    from mmcourse.train import InMemoryLoader

    with pytest.raises(ValueError, match="drop_last"):
        InMemoryLoader({"x": torch.zeros(4, 2)}, batch_size=8, drop_last=True)
    loader = InMemoryLoader({"x": torch.zeros(4, 2)}, batch_size=3, drop_last=True)
    assert len(loader) == len(list(loader)) == 1


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"epochs": True}, "epochs"),
        ({"lr": NAN}, "lr"),
        ({"lr": "x"}, "lr"),
        ({"weight_decay": -1.0}, "weight_decay"),
        ({"min_delta": None}, "min_delta"),
        ({"grad_clip": "x"}, "grad_clip"),
        ({"patience": True}, "patience"),
        ({"loss_fn": 5}, "loss_fn"),
        ({"metrics": 5}, "metrics"),
        ({"optimizer": "adam"}, "optimizer"),
        ({"device": "bogus"}, "device"),
        ({"val_loader": 5}, "val_loader"),
        ({"train_loader": 5}, "train_loader"),
        ({"train_loader": [1]}, "train_loader"),
    ],
)
def test_fit_names_the_bad_argument(kwargs, match):
    from mmcourse import train

    args = {"train_loader": _loader(LABELS), "epochs": 1, "progress": False, **kwargs}
    with pytest.raises((ValueError, TypeError), match=match):
        train.fit(_Net(), **args)


def test_checkpoints_name_the_problem(tmp_path):
    from mmcourse import train

    garbage = tmp_path / "not_a_checkpoint.pt"
    garbage.write_text("hello")
    with pytest.raises(ValueError, match="not a checkpoint"):
        train.load_checkpoint(_Net(), garbage)
    train.save_checkpoint(_Net(), tmp_path / "ok.pt")
    with pytest.raises(ValueError, match="model does not match the checkpoint"):
        train.load_checkpoint(nn.Linear(2, 2), tmp_path / "ok.pt")
    with pytest.raises(TypeError, match="path"):
        train.save_checkpoint(_Net(), 5)
    with pytest.raises(IsADirectoryError, match="path"):
        train.save_checkpoint(_Net(), tmp_path)
    with pytest.raises(TypeError, match="model"):
        train.evaluate("model", _loader(LABELS))
    with pytest.raises(TypeError, match="values"):
        train.mean_std("ab")


# --------------------------------------------------------------------------- vlm
def _tiny_vlm():
    from mmcourse import vlm

    vocab = vlm.build_vocab(["describe the picture a black cat", "what colour is the pet?"])
    model = vlm.TinyVLM(len(vocab), max_text_len=12, image_size=16, patch_size=8,
                        vision_dim=8, d_model=8)  # fmt: skip
    return vlm, vocab, model


def test_sample_next_token_refuses_nan_logits():
    from mmcourse import vlm

    logits = torch.randn(3, 7)
    logits[1, 2] = NAN
    for temperature in (0.0, 1.0):
        with pytest.raises(ValueError, match="logits contain NaN"):
            vlm.sample_next_token(logits, temperature)
    masked = torch.randn(3, 7)
    masked[:, 0] = float("-inf")  # -inf means "never this token": allowed
    assert (vlm.sample_next_token(masked) != 0).all()


def test_fit_vlm_stops_on_a_nan_loss():
    vlm, vocab, model = _tiny_vlm()
    images = torch.rand(4, 3, 16, 16)
    ids, target = vlm.encode_pairs(vocab, ["describe the picture"] * 4, ["a black cat"] * 4, 12)
    with torch.no_grad():
        model.lm.head.weight.fill_(NAN)
    with pytest.raises(FloatingPointError, match="loss became nan"):
        vlm.fit_vlm(model, images, ids, target, epochs=1, batch_size=2)
    bad = images.clone()
    bad[1, 0, 0, 0] = NAN
    with pytest.raises(ValueError, match="images contains 1 NaN"):
        vlm.fit_vlm(model, bad, ids, target, epochs=1, batch_size=2)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda V, vocab, m: V.TinyVLM(10, d_model=0), "d_model"),
        (lambda V, vocab, m: V.TinyVLM(10, vision_dim=2.5), "vision_dim"),
        (lambda V, vocab, m: V.Block(8, 2, mlp_ratio=0), "mlp_ratio"),
        (lambda V, vocab, m: V.Block(8, 2, dropout=1.0), "dropout"),
        (lambda V, vocab, m: V.GatedCrossAttentionBlock(8, 8, 2, mlp_ratio=-1), "mlp_ratio"),
        (
            lambda V, vocab, m: V.next_token_loss(torch.randn(2, 3, 5), torch.full((2, 3), 7)),
            "ids",
        ),  # fmt: skip
        (lambda V, vocab, m: V.next_token_loss(torch.randn(2, 3, 5), torch.ones(2, 3)), "ids"),
        (
            lambda V, vocab, m: V.next_token_loss(
                torch.ones(2, 3, 5).long(), torch.ones(2, 3).long()
            ),
            "logits",
        ),  # fmt: skip
        (lambda V, vocab, m: V.sample_next_token(torch.randn(2, 3), generator=3), "generator"),
        (
            lambda V, vocab, m: V.generate(m, torch.rand(0, 3, 16, 16), torch.tensor([2, 3]), 2, 4),
            "images",
        ),  # fmt: skip
        (
            lambda V, vocab, m: V.generate(
                m, torch.rand(1, 3, 16, 16), torch.tensor([2, 3]), 2, True
            ),
            "eos_id",
        ),  # fmt: skip
        (
            lambda V, vocab, m: V.fit_vlm(
                m, torch.rand(2, 3, 16, 16), torch.ones(2, 3).long(), weight_decay=-1.0
            ),
            "weight_decay",
        ),  # fmt: skip
        (
            lambda V, vocab, m: V.fit_vlm(
                m,
                torch.rand(2, 3, 16, 16),
                torch.ones(2, 3).long(),
                torch.zeros(2, 3, dtype=torch.bool),
            ),
            "target_mask",
        ),  # fmt: skip
        (lambda V, vocab, m: V.encode_prompt("vocab", "hi"), "vocab"),
        (lambda V, vocab, m: V.encode_prompt(vocab, "!!!"), "prompt"),
        (lambda V, vocab, m: V.encode_pairs(vocab, ["describe"], [3], 8), "answers"),
        (lambda V, vocab, m: V.decode_answers(vocab, torch.ones(2, 3).long(), 5), "prompt_len"),
        (lambda V, vocab, m: V.decode_answers(vocab, torch.ones(2, 3), 1), "ids"),
        (lambda V, vocab, m: V.mentioned_value("a black cat", "black"), "values"),
        (lambda V, vocab, m: V.attribute_accuracy("abc", ["a", "b", "c"]), "texts"),
        (lambda V, vocab, m: V.nearest_neighbours(torch.rand(3, 2), torch.rand(1, 2), 0), "chunk"),
        (
            lambda V, vocab, m: V.nearest_neighbours(torch.full((3, 2), NAN), torch.rand(1, 2)),
            "train",
        ),  # fmt: skip
    ],
)
def test_vlm_bad_arguments(call, match):
    vlm, vocab, model = _tiny_vlm()
    with pytest.raises((ValueError, TypeError), match=match):
        call(vlm, vocab, model)


# --------------------------------------------------------------------------- the rest
@pytest.mark.parametrize(
    "call, match",
    [
        (lambda R: R.modality_dropout_mask(True, 2, 0.5), "batch_size"),
        (lambda R: R.ModalityDropout("model", ["a", "b"]), "model"),
        (lambda R: R.encode(nn.Linear(2, 2), torch.rand(3, 2), batch_size=0), "batch_size"),
        (lambda R: R.encode("encoder", torch.rand(3, 2)), "encoder"),
        (
            lambda R: R.linear_probe(
                nn.Linear(2, 2), torch.rand(4, 2), [0, 1, 0, 1], torch.rand(2, 2), [0, 1], C=0.0
            ),
            "C",
        ),  # fmt: skip
        (
            lambda R: R.linear_probe(
                nn.Linear(2, 2), torch.full((4, 2), NAN), [0, 1, 0, 1], torch.rand(2, 2), [0, 1]
            ),
            "x_train",
        ),  # fmt: skip
        (
            lambda R: R.linear_probe(
                nn.Linear(2, 2), torch.rand(4, 2), [0.5, 1, 0, 1], torch.rand(2, 2), [0, 1]
            ),
            "y_train",
        ),  # fmt: skip
        (
            lambda R: R.linear_probe(
                nn.Linear(2, 2), torch.rand(4, 2), [2, 2, 2, 2], torch.rand(2, 2), [0, 1]
            ),
            "y_train",
        ),  # fmt: skip
        (lambda R: R.add_noise_snr(torch.zeros(0), 5.0), "waveform"),
        (lambda R: R.add_noise_snr(None, 5.0), "waveform"),
        (lambda R: R.add_noise_snr(torch.rand(8), None), "snr_db"),
        (lambda R: R.occlude(torch.rand(0, 1, 4, 4), 2), "images"),
        (lambda R: R.occlude(torch.rand(1, 1, 4, 4), True), "size"),
        (lambda R: R.occlude(torch.rand(1, 1, 4, 4), 2, value="x"), "value"),
        (lambda R: R.MissingAware(nn.Linear(2, 2), out_dim=True), "out_dim"),
    ],
)
def test_robustness_bad_arguments(call, match):
    from mmcourse import robustness

    with pytest.raises((ValueError, TypeError), match=match):
        call(robustness)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda X: X.occlusion_saliency(5, torch.rand(3, 8, 8)), "score_fn"),
        (
            lambda X: X.occlusion_saliency(
                lambda x: x.sum((1, 2, 3)), torch.rand(3, 8, 8), batch_size=0
            ),
            "batch_size",
        ),  # fmt: skip
        (lambda X: X.occlusion_saliency(lambda x: x.sum((1, 2, 3)), torch.rand(0, 8, 8)), "image"),
        (
            lambda X: X.occlusion_saliency(
                lambda x: x.sum((1, 2, 3)), torch.rand(3, 8, 8), baseline="x"
            ),
            "baseline",
        ),  # fmt: skip
        (lambda X: X.integrated_gradients(5, torch.rand(4)), "fn"),
        (
            lambda X: X.embedding_integrated_gradients(
                lambda i, m: i.sum(1).float(),
                nn.Embedding(5, 2),
                torch.tensor([1, 9]),
                torch.ones(2, dtype=torch.bool),
            ),
            "ids",
        ),  # fmt: skip
        (
            lambda X: X.embedding_integrated_gradients(
                lambda i, m: i.sum(1).float(),
                nn.Embedding(5, 2),
                torch.tensor([1, 2]),
                torch.ones(2, dtype=torch.bool),
                baseline_id=7,
            ),
            "baseline_id",
        ),  # fmt: skip
        (
            lambda X: X.leave_one_word_out(lambda t: torch.zeros(len(t)), ["a"], replace_with=3),
            "replace_with",
        ),  # fmt: skip
        (lambda X: X.remove_modality({"a": torch.zeros(2)}, "a", fill="x"), "fill"),
        (
            lambda X: X.modality_contributions(
                lambda b: b["a"].sum(1), {"a": torch.zeros(2, 2)}, ["a", "audio"]
            ),
            "ablations",
        ),  # fmt: skip
    ],
)
def test_explain_bad_arguments(call, match):
    from mmcourse import explain

    with pytest.raises((ValueError, TypeError, KeyError), match=match):
        call(explain)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda S, v: S.CatsDogsNet(v, feature_dim=0), "feature_dim"),
        (lambda S, v: S.CatsDogsNet(v, hidden=None), "hidden"),
        (lambda S, v: S.CatsDogsNet(v, image_pool=0), "image_pool"),
        (lambda S, v: S.CatsDogsNet(v, image_channels=()), "image_channels"),
        (lambda S, v: S.CatsDogsNet(v, image_channels=(0,)), "image_channels"),
        (lambda S, v: S.make_fusion("seed", [4, 4], hidden=0), "hidden"),
        (lambda S, v: S.make_fusion("seed", 4), "in_dims"),
        (lambda S, v: S.corrupt(torch.rand(2, 3, 4, 4), noise_std="x"), "noise_std"),
        (lambda S, v: S.corrupt(torch.full((2, 3, 4, 4), float("inf"))), "images"),
        (lambda S, v: S.mislead(["a cat", "a dog"], [0, 5]), "labels"),
        (lambda S, v: S.mislead(["a cat", "a dog"], [0.5, 1.0]), "labels"),
        (lambda S, v: S.only({"label": torch.zeros(2)}, ["audio"]), "modalities"),
        (lambda S, v: S.only({"label": torch.zeros(2)}, "image"), "modalities"),
        (lambda S, v: S.minibatches({"label": torch.zeros(2)}, batch_size=None), "batch_size"),
        (lambda S, v: S.check_caption("a cat", "vocab"), "vocab"),
        (lambda S, v: S.load(5), "path"),
    ],
)
def test_casestudy_bad_arguments(call, match):
    from mmcourse import casestudy
    from mmcourse.text import Vocab

    with pytest.raises((ValueError, TypeError), match=match):
        call(casestudy, Vocab.build(["a cat purring", "a dog barking"]))


@pytest.mark.parametrize("labels", [[0.5, 1.7, 0, 1], [np.nan, 1, 0, 1], [0, -1, 1, 1]])
def test_multimodal_dataset_refuses_labels_a_cast_would_change(labels):
    from mmcourse.datasets import MultimodalDataset

    with pytest.raises(ValueError, match="labels"):
        MultimodalDataset({"x": np.zeros((4, 2), np.float32)}, np.asarray(labels))


def test_multimodal_dataset_bad_arguments_and_exact_float_labels():
    from mmcourse.datasets import MultimodalDataset, make_loader

    ds = MultimodalDataset({"x": np.zeros((3, 2), np.float32)}, np.array([0.0, 1.0, 2.0]))
    assert ds.labels.tolist() == [0, 1, 2]
    with pytest.raises(TypeError, match=r"corrupt\['x'\]"):
        MultimodalDataset({"x": np.zeros((3, 2))}, [0, 1, 2], corrupt={"x": 5})
    with pytest.raises(TypeError, match="drop"):
        MultimodalDataset({"x": np.zeros((3, 2))}, [0, 1, 2], drop="x")
    with pytest.raises(TypeError, match="dataset"):
        make_loader([1, 2, 3])
    with pytest.raises(ValueError, match="batch_size"):
        make_loader(ds, batch_size=True)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda D: D.make_xor_modalities(noise="x"), "noise"),
        (lambda D: D.make_xor_modalities(seed=-1), "seed"),
        (lambda D: D.fusion_zoo([0, 2], 2), "in_dims"),
        (lambda D: D.fusion_zoo([2, 2], None), "num_classes"),
        (lambda D: D.two_noisy_views(sigma_a=float("inf")), "sigma_a"),
        (lambda D: D.two_noisy_views(seed=None), "seed"),
        (lambda D: D.gate_accuracy(np.ones(4), np.ones(4), np.array([0, 1, 2, 0]), 0.5), "y"),
        (lambda D: D.optimal_gate(float("inf"), 1.0), "sigma_a"),
        (lambda D: D.boundary_line(0.5, span=-1.0), "span"),
        (lambda D: D.gate_sweep(np.ones(4), np.ones(4), np.array([0, 1, 1, 0]), []), "gates"),
        (lambda D: D.interaction_strength(np.full((3, 3), np.nan)), "response"),
    ],
)
def test_fusion_demo_bad_arguments(call, match):
    from mmcourse import fusion_demo

    with pytest.raises((ValueError, TypeError), match=match):
        call(fusion_demo)


def test_dataset_split_refuses_nan_labels_and_bad_seeds():
    from mmcourse.datasets import stratified_split

    with pytest.raises(ValueError, match="labels contains NaN"):
        stratified_split(np.array([0.0, 1.0, np.nan] * 10))
    with pytest.raises(ValueError, match="seed"):
        stratified_split(np.repeat([0, 1], 10), seed=-1)
