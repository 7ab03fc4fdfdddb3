"""Exercises of notebook 02 (feature extraction): attention, masked pooling, LSTM size."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from mmcourse.exercises import register


def _as_tensor(value, name: str) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        raise AssertionError(f"{name} should return a torch.Tensor, got {type(value).__name__}")
    return value


# --------------------------------------------------------------------------- 02.attention


def _check_attention(attention) -> None:
    g = torch.Generator().manual_seed(0)
    q = torch.randn(2, 3, 5, 8, generator=g, dtype=torch.float64)
    k = torch.randn(2, 3, 6, 8, generator=g, dtype=torch.float64)
    v = torch.randn(2, 3, 6, 4, generator=g, dtype=torch.float64)
    out = _as_tensor(attention(q, k, v), "attention(q, k, v)")
    if out.shape != (2, 3, 5, 4):
        raise AssertionError(
            f"the output should have shape (B, h, L_q, d_v) = (2, 3, 5, 4), got {tuple(out.shape)}"
        )
    expected = F.scaled_dot_product_attention(q, k, v)
    if not torch.allclose(out, expected, atol=1e-6):
        unscaled = torch.softmax(q @ k.transpose(-2, -1), dim=-1) @ v
        wrong_dim = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(8), dim=-2) @ v
        if torch.allclose(out, unscaled, atol=1e-6):
            raise AssertionError("close: divide the scores by sqrt(d_k) before the softmax")
        if torch.allclose(out, wrong_dim, atol=1e-6):
            raise AssertionError("the softmax must normalise over the keys (the last dimension)")
        raise AssertionError(
            "without a mask the output differs from F.scaled_dot_product_attention(q, k, v)"
        )
    mask = torch.rand(5, 6, generator=g) > 0.5
    mask[:, 0] = True  # every query keeps at least one key
    out = _as_tensor(attention(q, k, v, mask), "attention(q, k, v, mask)")
    if not torch.allclose(out, F.scaled_dot_product_attention(q, k, v, attn_mask=mask), atol=1e-6):
        if torch.allclose(out, expected, atol=1e-6):
            raise AssertionError("the mask is ignored: set the scores where mask is False to -inf")
        raise AssertionError(
            "with a mask the output differs; True in the mask means 'may "
            "attend', False positions get a score of -inf before the softmax"
        )


def _solution_attention():
    def attention(q, k, v, mask=None):
        """softmax(q k^T / sqrt(d_k)) v; mask (L_q, L_k) bool, True = may attend."""
        scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
        if mask is not None:
            scores = scores.masked_fill(~mask, float("-inf"))
        return torch.softmax(scores, dim=-1) @ v

    return attention


register(
    "02.attention",
    check=_check_attention,
    solution=_solution_attention,
    hint="scores = q @ k.transpose(-2, -1) / sqrt(d_k); masked_fill(~mask, -inf); softmax over "
    "the last dimension; multiply by v.",
)


# --------------------------------------------------------------------------- 02.masked_mean


def _check_masked_mean(masked_mean) -> None:
    x = torch.tensor([[[1.0, 10.0], [3.0, 30.0], [99.0, 99.0]],
                      [[2.0, 4.0], [-5.0, 7.0], [8.0, 1.0]]])  # fmt: skip
    mask = torch.tensor([[True, True, False], [True, True, True]])
    out = _as_tensor(masked_mean(x, mask), "masked_mean(x, mask)")
    expected = torch.tensor([[2.0, 20.0], [5.0 / 3, 4.0]])
    if out.shape != (2, 2):
        raise AssertionError(
            f"the result should have shape (B, D) = (2, 2), got {tuple(out.shape)}"
        )
    if torch.allclose(out, x.mean(dim=1)):
        raise AssertionError("this is the plain mean: the padded position (99) is included")
    if torch.allclose(out, (x * mask.unsqueeze(-1)).sum(1) / x.shape[1]):
        raise AssertionError(
            "the padding is zeroed, but you still divide by the full length L; "
            "divide by the number of real tokens"
        )
    if not torch.allclose(out, expected):
        raise AssertionError(f"expected {expected.tolist()}, got {out.tolist()}")


def _solution_masked_mean():
    def masked_mean(x, mask):
        """Mean of x (B, L, D) over the real positions (mask (B, L) True) -> (B, D)."""
        weights = mask.unsqueeze(-1).to(x.dtype)  # (B, L, 1): 1 at real tokens, 0 at padding
        return (x * weights).sum(dim=1) / weights.sum(dim=1)

    return masked_mean


register(
    "02.masked_mean",
    check=_check_masked_mean,
    solution=_solution_masked_mean,
    hint="Turn the mask into 0/1 weights of shape (B, L, 1), sum x * weights over L, and divide "
    "by the number of real tokens.",
)


# --------------------------------------------------------------------------- 02.lstm_params


def _check_lstm_params(lstm_parameters) -> None:
    for input_size, hidden_size in ((1, 1), (32, 64), (100, 7)):
        expected = sum(p.numel() for p in nn.LSTM(input_size, hidden_size).parameters())
        got = lstm_parameters(input_size, hidden_size)
        if not isinstance(got, int):
            raise AssertionError(f"return an int, got {type(got).__name__}")
        if got == expected:
            continue
        d, h = input_size, hidden_size
        if got == 4 * h * (d + h + 1):
            raise AssertionError("almost: PyTorch keeps two bias vectors per gate, b_ih and b_hh")
        if got in (h * (d + h + 2), h * (d + h + 1), h * (d + h)):
            raise AssertionError(
                "an LSTM has four gate blocks (input, forget, cell, output), "
                "each with its own weights"
            )
        raise AssertionError(
            f"for input_size={d}, hidden_size={h} nn.LSTM has {expected} parameters, you said {got}"
        )


def _solution_lstm_parameters():
    def lstm_parameters(input_size, hidden_size):
        """4 gates, each with W_ih (h x d), W_hh (h x h), b_ih (h) and b_hh (h)."""
        d, h = input_size, hidden_size
        return 4 * (h * d + h * h + 2 * h)

    return lstm_parameters


register(
    "02.lstm_params",
    check=_check_lstm_params,
    solution=_solution_lstm_parameters,
    hint="Each of the 4 gates has an input weight (hidden x input), a recurrent weight "
    "(hidden x hidden) and, in PyTorch, two biases.",
)
