"""Encoders: shapes, padding invariance, gradients, costs, and clear errors on bad input."""

import pytest
import torch
from torch import nn

from mmcourse.encoders import (
    AudioCNN,
    ImageCNN,
    MLPEncoder,
    TextRNN,
    TextTransformer,
    count_parameters,
    estimate_flops,
    masked_mean,
)

VOCAB = 30


def _tokens(lengths, length=9, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, VOCAB, (len(lengths), length), generator=g)
    mask = torch.arange(length) < torch.tensor(lengths).unsqueeze(1)
    return ids.masked_fill(~mask, 0), mask


TEXT_ENCODERS = {
    "rnn": lambda: TextRNN(VOCAB, 12, cell="rnn"),
    "lstm": lambda: TextRNN(VOCAB, 12, cell="lstm"),
    "gru": lambda: TextRNN(VOCAB, 12, cell="gru", hidden_dim=10, num_layers=2),
    "bilstm": lambda: TextRNN(VOCAB, 12, cell="lstm", bidirectional=True),
    "transformer": lambda: TextTransformer(VOCAB, 12, d_model=16, num_heads=2, num_layers=2),
}


def _example(kind):
    """(encoder, inputs) for every kind of encoder."""
    torch.manual_seed(0)
    if kind == "image":
        return ImageCNN(3, 12), (torch.rand(4, 3, 16, 16),)
    if kind == "image_digits":
        return ImageCNN(1, 12), (torch.rand(4, 1, 8, 8),)
    if kind == "audio":
        return AudioCNN(13, 12), (torch.randn(4, 13, 51),)
    if kind == "mlp":
        return MLPEncoder(20, 12), (torch.randn(4, 20),)
    return TEXT_ENCODERS[kind](), _tokens([9, 4, 1, 6])


ALL_KINDS = ["image", "image_digits", "audio", "mlp", *TEXT_ENCODERS]


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_output_shape_and_out_dim(kind):
    enc, inputs = _example(kind)
    out = enc(*inputs)
    assert enc.out_dim == 12
    assert out.shape == (4, 12) and out.dtype == torch.float32
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_gradients_reach_every_parameter(kind):
    enc, inputs = _example(kind)
    enc.train()
    (enc(*inputs) * torch.randn(4, 12)).sum().backward()
    for name, p in enc.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, f"no gradient reaches {name}"


@pytest.mark.parametrize("kind", list(TEXT_ENCODERS))
def test_padding_does_not_change_the_output(kind):
    enc, (ids, mask) = _example(kind)
    enc.eval()
    with torch.no_grad():
        out = enc(ids, mask)
        changed = ids.clone()
        changed[~mask] = torch.randint(1, VOCAB, (int((~mask).sum()),))  # junk where padding is
        torch.testing.assert_close(enc(changed, mask), out)
        # more padding columns change nothing either
        longer_ids = torch.cat([ids, torch.zeros(4, 5, dtype=torch.long)], dim=1)
        longer_mask = torch.cat([mask, torch.zeros(4, 5, dtype=torch.bool)], dim=1)
        torch.testing.assert_close(enc(longer_ids, longer_mask), out)
        # each row alone, without any padding, gives the same feature
        for i, n in enumerate(mask.sum(1).tolist()):
            alone = enc(ids[i : i + 1, :n], torch.ones(1, n, dtype=torch.bool))
            torch.testing.assert_close(alone[0], out[i], atol=1e-5, rtol=1e-4)
        # mask=None means "ids != padding_idx"
        torch.testing.assert_close(enc(ids), out)


@pytest.mark.parametrize("kind", ["lstm", "transformer"])
def test_real_tokens_do_change_the_output(kind):
    enc, (ids, mask) = _example(kind)
    enc.eval()
    changed = ids.clone()
    changed[0, 0] = (ids[0, 0] % (VOCAB - 1)) + 1 if ids[0, 0] != VOCAB - 1 else 1
    with torch.no_grad():
        out, out2 = enc(ids, mask), enc(changed, mask)
    assert not torch.allclose(out[0], out2[0])
    torch.testing.assert_close(out[1:], out2[1:])  # examples do not leak into each other


def test_transformer_accepts_padding_anywhere_but_rnn_needs_it_at_the_end():
    ids, mask = _tokens([5, 5])
    mask2 = mask.clone()
    mask2[0, 0], mask2[0, 5] = False, True
    TextTransformer(VOCAB, 8, d_model=16, num_heads=2)(ids, mask2)
    with pytest.raises(ValueError, match="mask must be True for a prefix"):
        TextRNN(VOCAB, 8)(ids, mask2)


def test_image_feature_maps():
    enc = ImageCNN(3, 12, channels=(8, 16, 32))
    maps = enc.feature_maps(torch.rand(2, 3, 32, 32))
    assert [tuple(m.shape) for m in maps] == [(2, 8, 32, 32), (2, 16, 16, 16), (2, 32, 8, 8)]
    assert all((m >= 0).all() for m in maps)  # after ReLU


def test_masked_mean():
    x = torch.tensor([[[1.0], [3.0], [100.0]]])
    torch.testing.assert_close(
        masked_mean(x, torch.tensor([[True, True, False]])), torch.tensor([[2.0]])
    )


def test_count_parameters_by_hand():
    enc = MLPEncoder(10, 5, hidden=(64,))
    assert count_parameters(enc) == 10 * 64 + 64 + 64 * 5 + 5
    enc.net[0].weight.requires_grad_(False)
    assert count_parameters(enc) == 64 + 64 * 5 + 5
    assert count_parameters(enc, trainable_only=False) == 10 * 64 + 64 + 64 * 5 + 5
    assert count_parameters(TextRNN(VOCAB, 8, cell="gru", embed_dim=4)) == (
        VOCAB * 4 + 3 * (4 * 8 + 8 * 8 + 2 * 8)
    )


def test_estimate_flops_by_hand_and_for_packed_rnns():
    enc = MLPEncoder(10, 5, hidden=(64,))
    # 2 FLOPs per multiply-add in each matrix product; biases and ReLU are not counted
    assert estimate_flops(enc, torch.randn(4, 10)) == 2 * 4 * (10 * 64 + 64 * 5)
    conv = ImageCNN(1, 4, channels=(8,), pool_size=1)
    # conv 3x3, 1 -> 8 channels on 8x8 pixels, then a linear 8 -> 4
    assert estimate_flops(conv, torch.rand(1, 1, 8, 8)) == 2 * (8 * 8 * 8 * 9) + 2 * 8 * 4
    rnn = TextRNN(VOCAB, 8, cell="lstm", embed_dim=4)
    ids, mask = _tokens([3, 2], length=4)
    per_token = 2 * 4 * 8 * (4 + 8)  # 4 gates, input and hidden products
    assert estimate_flops(rnn, ids, mask) == 5 * per_token  # packing skips the padding
    assert estimate_flops(TextTransformer(VOCAB, 8, d_model=16, num_heads=2), ids, mask) > 0


@pytest.mark.parametrize(
    ("make", "bad", "match"),
    [
        (lambda: ImageCNN(3, 8), torch.rand(3, 16, 16), r"x must have shape \(B, C, H, W\)"),
        (lambda: ImageCNN(3, 8), torch.rand(2, 1, 16, 16), "x must have 3 channels"),
        (lambda: ImageCNN(3, 8), torch.randint(0, 255, (2, 3, 16, 16)), "floating-point"),
        (lambda: ImageCNN(3, 8), torch.rand(0, 3, 16, 16), "empty batch"),
        (lambda: ImageCNN(3, 8), torch.rand(2, 3, 2, 2), "too small"),
        (lambda: AudioCNN(13, 8), torch.randn(2, 20, 40), "n_mfcc=13"),
        (lambda: AudioCNN(13, 8), torch.randn(13, 40), r"\(B, n_mfcc, frames\)"),
        (lambda: AudioCNN(13, 8), torch.randn(0, 13, 40), "empty batch"),
        (lambda: MLPEncoder(5, 8), torch.randn(2, 6), "in_dim=5"),
        (lambda: MLPEncoder(5, 8), torch.ones(2, 5, dtype=torch.long), "floating-point"),
    ],
)
def test_bad_dense_inputs(make, bad, match):
    with pytest.raises(ValueError, match=match):
        make()(bad)


@pytest.mark.parametrize("kind", list(TEXT_ENCODERS))
def test_bad_text_inputs(kind):
    enc, (ids, mask) = _example(kind)
    with pytest.raises(ValueError, match=r"ids must have shape \(B, L\)"):
        enc(ids[0], mask[0])
    with pytest.raises(ValueError, match="ids must be an integer"):
        enc(ids.float(), mask)
    with pytest.raises(ValueError, match="ids is empty"):
        enc(ids[:0], mask[:0])
    with pytest.raises(ValueError, match="ids must lie in"):
        enc(ids + VOCAB, mask)
    with pytest.raises(ValueError, match="mask must be a bool"):
        enc(ids, mask.long())
    with pytest.raises(ValueError, match="mask must have the shape of ids"):
        enc(ids, mask[:, :3])
    empty_row = mask.clone()
    empty_row[1] = False
    with pytest.raises(ValueError, match="at least one real token"):
        enc(ids, empty_row)


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match="cell must be one of"):
        TextRNN(VOCAB, 8, cell="transformer")
    with pytest.raises(ValueError, match="out_dim must be a positive int"):
        ImageCNN(3, 0)
    with pytest.raises(ValueError, match="padding_idx"):
        TextTransformer(VOCAB, 8, padding_idx=VOCAB)
    with pytest.raises(ValueError, match="n_mfcc must be a positive int"):
        AudioCNN(13.0, 8)
    with pytest.raises(TypeError, match="module must be"):
        count_parameters("model")
    with pytest.raises(ValueError, match="inputs"):
        estimate_flops(nn.Linear(2, 2))


# --------------------------------------------------------------------------- notebook 02 exercises


def _wrong_answers():
    import math

    def unscaled(q, k, v, mask=None):
        return torch.softmax(q @ k.transpose(-2, -1), dim=-1) @ v

    def mask_ignored(q, k, v, mask=None):
        return torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]), dim=-1) @ v

    def plain_mean(x, mask):
        return x.mean(dim=1)

    def divides_by_length(x, mask):
        return (x * mask.unsqueeze(-1)).sum(1) / x.shape[1]

    def one_bias(d, h):
        return 4 * h * (d + h + 1)

    def one_gate(d, h):
        return h * (d + h + 2)

    return [
        ("02.attention", unscaled, "sqrt"),
        ("02.attention", mask_ignored, "mask is ignored"),
        ("02.masked_mean", plain_mean, "plain mean"),
        ("02.masked_mean", divides_by_length, "number of real tokens"),
        ("02.lstm_params", one_bias, "two bias"),
        ("02.lstm_params", one_gate, "four gate"),
    ]


@pytest.mark.parametrize(("key", "answer", "feedback"), _wrong_answers())
def test_exercise_feedback_on_wrong_answers(key, answer, feedback, capsys):
    from mmcourse.exercises import check, get

    with pytest.raises(AssertionError, match=feedback):
        get(key).check(answer)
    assert check(key, answer) is False
    assert "not quite" in capsys.readouterr().out


@pytest.mark.parametrize("key", ["02.attention", "02.masked_mean", "02.lstm_params"])
def test_exercise_solutions_pass(key):
    from mmcourse.exercises import check, get

    assert check(key, get(key).solution(), quiet=True)


def test_transformer_token_features_and_attention_maps():
    enc, (ids, mask) = _example("transformer")
    enc.eval()
    with torch.no_grad():
        tokens = enc.token_features(ids, mask)
        maps = enc.attention_maps(ids, mask)
        torch.testing.assert_close(enc.head(masked_mean(tokens, mask)), enc(ids, mask))
    assert tokens.shape == (4, 9, 16)
    assert len(maps) == 2 and maps[0].shape == (4, 2, 9, 9)
    torch.testing.assert_close(maps[1].sum(-1), torch.ones(4, 2, 9))  # rows are distributions
    assert torch.all(maps[0][2, :, :, 1:] == 0)  # example 2 has one real token: keys 1.. hidden
