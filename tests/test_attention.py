"""mmcourse.attention equals the torch implementations (with copied weights, masks included)."""

import math

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from mmcourse.attention import (
    MultiHeadAttention,
    PositionalEncoding,
    TransformerBlock,
    causal_mask,
    scaled_dot_product_attention,
    sinusoidal_positional_encoding,
)

B, H, LQ, LK, D = 3, 4, 5, 7, 8


@pytest.fixture
def qkv():
    g = torch.Generator().manual_seed(0)
    q = torch.randn(B, H, LQ, D, generator=g, dtype=torch.float64)
    k = torch.randn(B, H, LK, D, generator=g, dtype=torch.float64)
    v = torch.randn(B, H, LK, 6, generator=g, dtype=torch.float64)
    return q, k, v


def _key_mask(lengths, length):
    return torch.arange(length) < torch.tensor(lengths).unsqueeze(1)


def test_sdpa_equals_torch_without_mask(qkv):
    out, weights = scaled_dot_product_attention(*qkv)
    torch.testing.assert_close(out, F.scaled_dot_product_attention(*qkv))
    torch.testing.assert_close(weights.sum(-1), torch.ones(B, H, LQ, dtype=torch.float64))


def test_sdpa_equals_torch_with_bool_and_float_masks(qkv):
    g = torch.Generator().manual_seed(1)
    bool_mask = torch.rand(LQ, LK, generator=g) > 0.3
    bool_mask[:, 0] = True  # every query sees at least one key
    out, _ = scaled_dot_product_attention(*qkv, attn_mask=bool_mask)
    torch.testing.assert_close(out, F.scaled_dot_product_attention(*qkv, attn_mask=bool_mask))
    float_mask = torch.randn(B, 1, LQ, LK, generator=g, dtype=torch.float64)
    out, _ = scaled_dot_product_attention(*qkv, attn_mask=float_mask)
    torch.testing.assert_close(out, F.scaled_dot_product_attention(*qkv, attn_mask=float_mask))


def test_sdpa_equals_torch_causal(qkv):
    q, k, v = qkv
    out, weights = scaled_dot_product_attention(q, k, v, is_causal=True)
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v, is_causal=True))
    assert torch.all(weights[..., 0, 1:] == 0)  # the first query sees only the first key
    # the causal flag and the explicit mask agree
    k2, v2 = k[..., :LQ, :], v[..., :LQ, :]
    a, _ = scaled_dot_product_attention(q, k2, v2, is_causal=True)
    b, _ = scaled_dot_product_attention(q, k2, v2, attn_mask=causal_mask(LQ))
    torch.testing.assert_close(a, b)


def test_sdpa_key_mask_equals_torch_and_ignores_padded_values(qkv):
    q, k, v = qkv
    key_mask = _key_mask([7, 4, 1], LK)
    out, weights = scaled_dot_product_attention(q, k, v, key_mask=key_mask)
    expected = F.scaled_dot_product_attention(q, k, v, attn_mask=key_mask[:, None, None, :])
    torch.testing.assert_close(out, expected)
    assert torch.all(weights[1, ..., 4:] == 0)
    # the same padding given as a broadcastable attn_mask (B, 1, 1, L_k)
    out_b, _ = scaled_dot_product_attention(q, k, v, attn_mask=key_mask[:, None, None, :])
    torch.testing.assert_close(out_b, out)
    v_changed = v.clone()
    v_changed[1, :, 4:] = 1e6  # padded values cannot leak into the output
    out2, _ = scaled_dot_product_attention(q, k, v_changed, key_mask=key_mask)
    torch.testing.assert_close(out, out2)


def test_sdpa_fully_masked_query_gives_zeros_not_nan(qkv):
    mask = torch.ones(LQ, LK, dtype=torch.bool)
    mask[2] = False
    out, weights = scaled_dot_product_attention(*qkv, attn_mask=mask)
    assert not torch.isnan(out).any()
    assert torch.all(out[..., 2, :] == 0) and torch.all(weights[..., 2, :] == 0)


def _pair(d_model=16, num_heads=4, bias=True):
    torch.manual_seed(0)
    theirs = nn.MultiheadAttention(d_model, num_heads, batch_first=True, bias=bias).double()
    mine = MultiHeadAttention(d_model, num_heads, bias=bias).double().load_torch_weights(theirs)
    return mine, theirs


@pytest.mark.parametrize("bias", [True, False])
def test_mha_equals_torch_self_attention(bias):
    mine, theirs = _pair(bias=bias)
    x = torch.randn(B, LK, 16, dtype=torch.float64)
    out, weights = mine(x)
    expected, expected_w = theirs(x, x, x, average_attn_weights=False)
    torch.testing.assert_close(out, expected)
    torch.testing.assert_close(weights, expected_w)


def test_mha_equals_torch_with_key_padding_and_attn_mask():
    mine, theirs = _pair()
    g = torch.Generator().manual_seed(2)
    query = torch.randn(B, LQ, 16, generator=g, dtype=torch.float64)
    memory = torch.randn(B, LK, 16, generator=g, dtype=torch.float64)
    key_mask = _key_mask([7, 3, 5], LK)
    attn_mask = torch.rand(LQ, LK, generator=g) > 0.4
    attn_mask[:, 0] = True
    out, weights = mine(query, memory, memory, key_mask=key_mask, attn_mask=attn_mask)
    # torch.nn.MultiheadAttention: True = NOT allowed, the opposite of our convention
    expected, expected_w = theirs(
        query,
        memory,
        memory,
        key_padding_mask=~key_mask,
        attn_mask=~attn_mask,
        average_attn_weights=False,
    )
    torch.testing.assert_close(out, expected)
    torch.testing.assert_close(weights, expected_w)


def test_mha_causal_equals_torch():
    mine, theirs = _pair()
    x = torch.randn(B, 6, 16, dtype=torch.float64)
    out, _ = mine(x, is_causal=True)
    expected, _ = theirs(x, x, x, attn_mask=~causal_mask(6))
    torch.testing.assert_close(out, expected)


def test_mha_per_example_mask_and_float_mask():
    mine, theirs = _pair()
    x = torch.randn(2, 5, 16, dtype=torch.float64)
    float_mask = torch.randn(5, 5, dtype=torch.float64)
    out, _ = mine(x, attn_mask=float_mask)
    torch.testing.assert_close(out, theirs(x, x, x, attn_mask=float_mask)[0])
    per_example = torch.ones(2, 5, 5, dtype=torch.bool)
    per_example[1] = causal_mask(5)
    out, _ = mine(x, attn_mask=per_example)
    torch.testing.assert_close(out[0], mine(x[:1])[0][0])
    torch.testing.assert_close(out[1], mine(x[1:], is_causal=True)[0][0])


def test_mha_gradients_reach_every_parameter_and_dropout_only_in_training():
    mha = MultiHeadAttention(16, 4, dropout=0.5)
    x = torch.randn(2, 5, 16, requires_grad=True)
    out, _ = mha(x)
    out.pow(2).sum().backward()
    for name, p in mha.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert x.grad.abs().sum() > 0
    mha.eval()
    a, _ = mha(x)
    b, _ = mha(x)
    torch.testing.assert_close(a, b)


@pytest.mark.parametrize("activation", ["relu", "gelu"])
def test_transformer_block_equals_torch_layer(activation):
    torch.manual_seed(0)
    theirs = nn.TransformerEncoderLayer(
        16, 4, 32, dropout=0.0, activation=activation, batch_first=True, norm_first=True
    ).double()
    mine = TransformerBlock(16, 4, 32, activation=activation).double().load_torch_weights(theirs)
    x = torch.randn(B, LK, 16, dtype=torch.float64)
    key_mask = _key_mask([7, 2, 5], LK)
    # with gradients on, torch takes its ordinary (not the nested-tensor fast) path
    expected = theirs(x, src_key_padding_mask=~key_mask)
    torch.testing.assert_close(mine(x, key_mask=key_mask), expected)


def test_positional_encoding_values():
    pe = sinusoidal_positional_encoding(50, 16)
    assert pe.shape == (50, 16)
    torch.testing.assert_close(pe[0], torch.tensor([0.0, 1.0] * 8))
    pos, i = 7, 3
    angle = pos / 10000 ** (2 * i / 16)
    assert math.isclose(pe[pos, 2 * i], math.sin(angle), rel_tol=1e-5)
    assert math.isclose(pe[pos, 2 * i + 1], math.cos(angle), rel_tol=1e-5)
    # each (sin, cos) pair has unit length, so every row has norm sqrt(d/2)
    torch.testing.assert_close(pe.norm(dim=1), torch.full((50,), math.sqrt(8.0)))
    x = torch.zeros(2, 10, 16)
    torch.testing.assert_close(PositionalEncoding(16, max_len=20)(x), pe[:10].expand(2, 10, 16))


def test_bad_inputs_raise_clear_errors(qkv):
    q, k, v = qkv
    with pytest.raises(ValueError, match="q must have"):
        scaled_dot_product_attention(q[0, 0, 0], k, v)
    with pytest.raises(ValueError, match="q and k must share"):
        scaled_dot_product_attention(q[..., :4], k, v)
    with pytest.raises(ValueError, match="k and v must have the same number"):
        scaled_dot_product_attention(q, k, v[..., :3, :])
    with pytest.raises(ValueError, match="q must be a floating-point"):
        scaled_dot_product_attention(q.long(), k, v)
    with pytest.raises(ValueError, match="key_mask must be a bool"):
        scaled_dot_product_attention(q, k, v, key_mask=torch.ones(B, LK))
    with pytest.raises(ValueError, match="key_mask must have shape"):
        scaled_dot_product_attention(q, k, v, key_mask=torch.ones(B, LK + 1, dtype=torch.bool))
    with pytest.raises(ValueError, match="attn_mask must broadcast"):
        scaled_dot_product_attention(q, k, v, attn_mask=torch.ones(LK, LQ, dtype=torch.bool))
    with pytest.raises(ValueError, match="q is an empty batch"):
        scaled_dot_product_attention(q[:0], k[:0], v[:0])
    with pytest.raises(ValueError, match="num_heads"):
        MultiHeadAttention(16, 5)
    mha = MultiHeadAttention(16, 4)
    with pytest.raises(ValueError, match="query must end in d_model=16"):
        mha(torch.randn(2, 5, 8))
    with pytest.raises(ValueError, match="query must have 3"):
        mha(torch.randn(5, 16))
    with pytest.raises(TypeError, match="mha must be"):
        mha.load_torch_weights(nn.Linear(16, 16))
    with pytest.raises(ValueError, match="d_model must be a positive even"):
        sinusoidal_positional_encoding(10, 7)
    with pytest.raises(ValueError, match="max_len"):
        PositionalEncoding(16, max_len=4)(torch.zeros(1, 5, 16))
    with pytest.raises(ValueError, match="length must be"):
        causal_mask(0)
