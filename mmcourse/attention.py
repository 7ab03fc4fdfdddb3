"""Attention from scratch: scaled dot-product, multi-head, a Transformer block, positions.

Written to be read next to Vaswani et al. (2017), "Attention Is All You Need":

    Attention(Q, K, V) = softmax(Q K^T / sqrt(d_k) + M) V

where ``M`` is 0 where a query may look at a key and -inf where it may not.

Mask convention used everywhere in mmcourse: a boolean mask is True where attention is
ALLOWED (a real token, a visible position). This is the convention of
``torch.nn.functional.scaled_dot_product_attention`` and of the batch key "text_mask";
``torch.nn.MultiheadAttention`` uses the OPPOSITE one (True = ignore), so pass ``~mask``
to it. Float masks are added to the scores as they are (both torch APIs agree on that).

tests/test_attention.py proves that these functions equal the torch versions with copied
weights, masks included.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from mmcourse._checks import check_dropout, check_int


def _check_tensor(name: str, x, ndim: int | tuple[int, ...], floating: bool = True) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    ndims = (ndim,) if isinstance(ndim, int) else ndim
    if x.ndim not in ndims:
        raise ValueError(
            f"{name} must have {' or '.join(map(str, ndims))} dimensions, got shape "
            f"{tuple(x.shape)}"
        )
    if floating and not x.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
    if x.shape[0] == 0:
        raise ValueError(f"{name} is an empty batch (shape {tuple(x.shape)})")
    if x.ndim >= 3 and x.shape[-2] == 0:
        raise ValueError(f"{name} is a sequence of length 0 (shape {tuple(x.shape)})")


def causal_mask(length: int, device=None) -> torch.Tensor:
    """Boolean (length, length) mask, True on and below the diagonal: position i sees 0..i."""
    check_int(length, "length")
    return torch.ones(length, length, dtype=torch.bool, device=device).tril()


def scaled_dot_product_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    attn_mask: torch.Tensor | None = None,
    key_mask: torch.Tensor | None = None,
    is_causal: bool = False,
    dropout_p: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """softmax(q k^T / sqrt(d_k) + mask) v, written out.

    Shapes: q (..., L_q, d_k), k (..., L_k, d_k), v (..., L_k, d_v) with the same leading
    (batch, head) dimensions. Returns (output (..., L_q, d_v), weights (..., L_q, L_k)).

    attn_mask: bool (True = may attend) or float (added to the scores), broadcastable to
        the scores (..., L_q, L_k): e.g. (L_q, L_k) for every sequence alike, or
        (B, 1, 1, L_k) for padding.
    key_mask: bool (B, L_k), True = real key, False = padding; q must then be (B, ..., L_q, d).
    is_causal: query i sees keys 0..i only (the top-left-aligned causal mask of torch).
    dropout_p: dropout on the attention weights (pass 0 at evaluation time).

    A query that may see no key at all gets an all-zero row of weights and a zero output
    (instead of the NaN a plain softmax of all -inf gives). A NaN in q, k or v is not
    hidden: it reaches the output.
    """
    for name, x in (("q", q), ("k", k), ("v", v)):
        _check_tensor(name, x, tuple(range(2, 7)))
    if not q.ndim == k.ndim == v.ndim or not q.shape[:-2] == k.shape[:-2] == v.shape[:-2]:
        raise ValueError(
            "q, k and v must have the same leading (batch, head) dimensions, got q "
            f"{tuple(q.shape)}, k {tuple(k.shape)} and v {tuple(v.shape)}"
        )
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(
            f"q and k must share their last dimension d_k, got q {tuple(q.shape)} "
            f"and k {tuple(k.shape)}"
        )
    if k.shape[-2] != v.shape[-2]:
        raise ValueError(
            f"k and v must have the same number of keys L_k, got k {tuple(k.shape)}"
            f" and v {tuple(v.shape)}"
        )
    check_dropout(dropout_p, "dropout_p")
    if not isinstance(is_causal, bool):
        raise TypeError(f"is_causal must be True or False, got {is_causal!r}")
    L_q, L_k = q.shape[-2], k.shape[-2]

    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])  # (..., L_q, L_k)
    allowed = torch.ones(L_q, L_k, dtype=torch.bool, device=q.device)
    if is_causal:
        allowed = allowed.tril()
    if attn_mask is not None:
        if not isinstance(attn_mask, torch.Tensor):
            raise TypeError(f"attn_mask must be a torch.Tensor, got {type(attn_mask).__name__}")
        try:  # a mask may broadcast (e.g. (B, 1, 1, L_k) for padding) but not grow the scores
            ok = torch.broadcast_shapes(attn_mask.shape, scores.shape) == scores.shape
        except RuntimeError:
            ok = False
        if not ok:
            raise ValueError(
                f"attn_mask must broadcast to the scores (..., L_q, L_k) = "
                f"{tuple(scores.shape)}, got shape {tuple(attn_mask.shape)}"
            )
        if attn_mask.dtype == torch.bool:
            allowed = allowed & attn_mask
        elif attn_mask.is_floating_point():
            scores = scores + attn_mask
        else:
            raise ValueError(f"attn_mask must be bool or floating point, got {attn_mask.dtype}")
    if key_mask is not None:
        key_mask = _check_key_mask(key_mask, q.shape[0], L_k)
        # (B, L_k) -> (B, 1, ..., 1, L_k) so that it broadcasts over heads and queries
        allowed = allowed & key_mask.view(q.shape[0], *([1] * (q.ndim - 2)), L_k)
    scores = scores.masked_fill(~allowed, float("-inf"))

    weights = torch.softmax(scores, dim=-1)
    # a row with no allowed key is all -inf, and its softmax 0/0 = NaN: zero exactly those
    # rows (a NaN that came from q, k or v is left alone, so that it shows in the output)
    weights = weights.masked_fill(torch.isneginf(scores).all(dim=-1, keepdim=True), 0.0)
    if dropout_p > 0.0:
        weights = F.dropout(weights, p=dropout_p)
    return weights @ v, weights


def _check_key_mask(key_mask, batch: int, length: int) -> torch.Tensor:
    if not isinstance(key_mask, torch.Tensor):
        raise TypeError(f"key_mask must be a torch.Tensor, got {type(key_mask).__name__}")
    if key_mask.dtype != torch.bool:
        raise ValueError(
            f"key_mask must be a bool tensor (True = real token), got {key_mask.dtype}"
        )
    if tuple(key_mask.shape) != (batch, length):
        raise ValueError(
            f"key_mask must have shape (batch, L_k) = ({batch}, {length}), got "
            f"{tuple(key_mask.shape)}"
        )
    return key_mask


class MultiHeadAttention(nn.Module):
    """Multi-head attention: h heads of size d_model / h attend in parallel, then mix.

        head_i = Attention(Q W_i^Q, K W_i^K, V W_i^V),  MHA = concat(head_1..head_h) W^O

    Inputs are batch-first: query (B, L_q, d_model), key and value (B, L_k, d_model);
    key and value default to the query (self-attention). Returns (output (B, L_q, d_model),
    weights (B, h, L_q, L_k)). Masks follow ``scaled_dot_product_attention``.

    The four projections are separate nn.Linear layers (q_proj, k_proj, v_proj, out_proj);
    ``load_torch_weights`` copies them from a ``torch.nn.MultiheadAttention``, whose
    ``in_proj_weight`` stacks W^Q, W^K, W^V on top of each other.
    """

    def __init__(self, d_model: int, num_heads: int, dropout: float = 0.0, bias: bool = True):
        super().__init__()
        check_int(d_model, "d_model")
        check_int(num_heads, "num_heads")
        if d_model % num_heads:
            raise ValueError(
                f"num_heads must be a positive int dividing d_model={d_model}, got {num_heads!r}"
            )
        check_dropout(dropout)
        self.d_model, self.num_heads, self.dropout = d_model, num_heads, dropout
        self.head_dim = d_model // num_heads
        self.q_proj = nn.Linear(d_model, d_model, bias=bias)
        self.k_proj = nn.Linear(d_model, d_model, bias=bias)
        self.v_proj = nn.Linear(d_model, d_model, bias=bias)
        self.out_proj = nn.Linear(d_model, d_model, bias=bias)

    def _split_heads(self, x: torch.Tensor) -> torch.Tensor:
        B, L, _ = x.shape  # (B, L, d_model) -> (B, h, L, d_model / h)
        return x.view(B, L, self.num_heads, self.head_dim).transpose(1, 2)

    def forward(
        self,
        query: torch.Tensor,
        key: torch.Tensor | None = None,
        value: torch.Tensor | None = None,
        key_mask: torch.Tensor | None = None,
        attn_mask: torch.Tensor | None = None,
        is_causal: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        key = query if key is None else key
        value = key if value is None else value
        for name, x in (("query", query), ("key", key), ("value", value)):
            _check_tensor(name, x, 3)
            if x.shape[-1] != self.d_model:
                raise ValueError(
                    f"{name} must end in d_model={self.d_model}, got shape {tuple(x.shape)}"
                )
        if key.shape[:2] != value.shape[:2] or key.shape[0] != query.shape[0]:
            raise ValueError(
                f"query, key and value must share the batch size, and key and value "
                f"the length; got {tuple(query.shape)}, {tuple(key.shape)}, "
                f"{tuple(value.shape)}"
            )
        q = self._split_heads(self.q_proj(query))
        k = self._split_heads(self.k_proj(key))
        v = self._split_heads(self.v_proj(value))
        if attn_mask is not None and attn_mask.ndim == 3:  # (B, L_q, L_k): same for every head
            attn_mask = attn_mask.unsqueeze(1)
        out, weights = scaled_dot_product_attention(
            q,
            k,
            v,
            attn_mask=attn_mask,
            key_mask=key_mask,
            is_causal=is_causal,
            dropout_p=self.dropout if self.training else 0.0,
        )
        B, _, L_q, _ = out.shape  # (B, h, L_q, d_head) -> (B, L_q, d_model): concat the heads
        out = out.transpose(1, 2).reshape(B, L_q, self.d_model)
        return self.out_proj(out), weights

    @torch.no_grad()
    def load_torch_weights(self, mha: nn.MultiheadAttention) -> MultiHeadAttention:
        """Copy the weights of a ``torch.nn.MultiheadAttention`` of the same size into self."""
        if not isinstance(mha, nn.MultiheadAttention):
            raise TypeError(f"mha must be a torch.nn.MultiheadAttention, got {type(mha).__name__}")
        if mha.embed_dim != self.d_model or mha.num_heads != self.num_heads:
            raise ValueError(
                f"mha has embed_dim={mha.embed_dim}, num_heads={mha.num_heads}; "
                f"expected {self.d_model}, {self.num_heads}"
            )
        if mha.in_proj_weight is None:
            raise ValueError("mha must use one in_proj_weight (kdim = vdim = embed_dim)")
        if (mha.in_proj_bias is None) != (self.q_proj.bias is None):
            raise ValueError("mha and self must agree on bias=True/False")
        w_q, w_k, w_v = mha.in_proj_weight.chunk(3, dim=0)
        for proj, w in ((self.q_proj, w_q), (self.k_proj, w_k), (self.v_proj, w_v)):
            proj.weight.copy_(w)
        self.out_proj.weight.copy_(mha.out_proj.weight)
        if mha.in_proj_bias is not None:
            b_q, b_k, b_v = mha.in_proj_bias.chunk(3)
            for proj, b in ((self.q_proj, b_q), (self.k_proj, b_k), (self.v_proj, b_v)):
                proj.bias.copy_(b)
            self.out_proj.bias.copy_(mha.out_proj.bias)
        return self


def sinusoidal_positional_encoding(length: int, d_model: int) -> torch.Tensor:
    """The fixed positional encoding of Vaswani et al. (2017), shape (length, d_model).

        PE[pos, 2i] = sin(pos / 10000^(2i / d_model)),  PE[pos, 2i+1] = cos(same angle)

    Each pair of dimensions is a clock at its own frequency, from one turn every 2*pi
    positions down to one every 10000 * 2*pi; nearby positions get similar codes.
    """
    check_int(length, "length")
    if not isinstance(d_model, int) or isinstance(d_model, bool) or d_model < 2 or d_model % 2:
        raise ValueError(f"d_model must be a positive even int, got {d_model!r}")
    position = torch.arange(length, dtype=torch.float32).unsqueeze(1)  # (length, 1)
    inv_freq = torch.exp(-math.log(10000.0) * torch.arange(0, d_model, 2) / d_model)
    angle = position * inv_freq  # (length, d_model / 2)
    pe = torch.zeros(length, d_model)
    pe[:, 0::2] = torch.sin(angle)
    pe[:, 1::2] = torch.cos(angle)
    return pe


class PositionalEncoding(nn.Module):
    """Adds the sinusoidal encoding to a batch of embeddings x (B, L, d_model), L <= max_len."""

    def __init__(self, d_model: int, max_len: int = 512):
        super().__init__()
        check_int(max_len, "max_len")
        if not isinstance(d_model, int) or isinstance(d_model, bool) or d_model < 2 or d_model % 2:
            raise ValueError(f"d_model must be a positive even int, got {d_model!r}")
        self.d_model, self.max_len = d_model, max_len
        self.register_buffer(
            "pe", sinusoidal_positional_encoding(max_len, d_model), persistent=False
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_tensor("x", x, 3)
        if x.shape[-1] != self.d_model:
            raise ValueError(f"x must end in d_model={self.d_model}, got shape {tuple(x.shape)}")
        if x.shape[1] > self.max_len:
            raise ValueError(
                f"x has length {x.shape[1]} > max_len={self.max_len}; build the "
                "PositionalEncoding with a larger max_len"
            )
        return x + self.pe[: x.shape[1]]


class TransformerBlock(nn.Module):
    """One pre-norm Transformer encoder block (as in GPT-2 / minGPT):

        x = x + Dropout(MHA(LayerNorm(x)))
        x = x + Dropout(FFN(LayerNorm(x))),  FFN(z) = W_2 act(W_1 z + b_1) + b_2

    x (B, L, d_model) -> (B, L, d_model). Equal to ``torch.nn.TransformerEncoderLayer(
    d_model, num_heads, d_ff, activation, batch_first=True, norm_first=True)`` with the
    same weights (tests/test_attention.py). Positions a mask hides still get an output; the
    caller ignores them (mean-pooling over real tokens does).
    """

    def __init__(
        self,
        d_model: int,
        num_heads: int,
        d_ff: int | None = None,
        dropout: float = 0.0,
        activation: str = "gelu",
    ):
        super().__init__()
        if activation not in ("relu", "gelu"):
            raise ValueError(f"activation must be 'relu' or 'gelu', got {activation!r}")
        check_int(d_model, "d_model")
        check_dropout(dropout)
        d_ff = 4 * d_model if d_ff is None else check_int(d_ff, "d_ff")
        self.norm1 = nn.LayerNorm(d_model)
        self.attn = MultiHeadAttention(d_model, num_heads, dropout=dropout)
        self.norm2 = nn.LayerNorm(d_model)
        self.ffn = nn.Sequential(
            nn.Linear(d_model, d_ff),
            nn.ReLU() if activation == "relu" else nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(d_ff, d_model),
        )
        self.drop = nn.Dropout(dropout)

    def forward(
        self,
        x: torch.Tensor,
        key_mask: torch.Tensor | None = None,
        attn_mask: torch.Tensor | None = None,
        is_causal: bool = False,
    ) -> torch.Tensor:
        _check_tensor("x", x, 3)
        h, _ = self.attn(self.norm1(x), key_mask=key_mask, attn_mask=attn_mask, is_causal=is_causal)
        x = x + self.drop(h)
        return x + self.drop(self.ffn(self.norm2(x)))

    @torch.no_grad()
    def load_torch_weights(self, layer: nn.TransformerEncoderLayer) -> TransformerBlock:
        """Copy the weights of a ``torch.nn.TransformerEncoderLayer`` of the same size."""
        if not isinstance(layer, nn.TransformerEncoderLayer):
            raise TypeError(
                f"layer must be a torch.nn.TransformerEncoderLayer, got {type(layer).__name__}"
            )
        self.attn.load_torch_weights(layer.self_attn)
        pairs = (
            (self.norm1, layer.norm1),
            (self.norm2, layer.norm2),
            (self.ffn[0], layer.linear1),
            (self.ffn[3], layer.linear2),
        )
        for mine, theirs in pairs:
            mine.load_state_dict(theirs.state_dict())
        return self
