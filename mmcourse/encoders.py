"""One encoder per modality: each maps a batch to feature vectors (B, out_dim).

    ImageCNN(in_channels, out_dim)        images (B, C, H, W) float
    TextRNN(vocab_size, out_dim, cell)    token ids (B, L) long + mask (B, L) bool
    TextTransformer(vocab_size, out_dim)  token ids (B, L) long + mask (B, L) bool
    AudioCNN(n_mfcc, out_dim)             MFCCs (B, n_mfcc, frames) float
    MLPEncoder(in_dim, out_dim)           flat features (B, in_dim) float

Every encoder has an attribute ``.out_dim`` and raises a ValueError naming the argument
when a batch has the wrong rank, shape or dtype, or is empty. Text masks are True for real
tokens; a mask of None means "every id that is not padding_idx is real".

``count_parameters`` and ``estimate_flops`` measure the cost of an encoder.
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence
from torch.utils.flop_counter import FlopCounterMode

from mmcourse._checks import check_dropout
from mmcourse.attention import PositionalEncoding, TransformerBlock
from mmcourse.utils import count_parameters  # noqa: F401  (re-exported)


def _check_float(name: str, x, ndim: int, shape_hint: str) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor {shape_hint}, got {type(x).__name__}")
    if x.ndim != ndim:
        raise ValueError(
            f"{name} must have shape {shape_hint} ({ndim} dimensions), got shape {tuple(x.shape)}"
        )
    if not x.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
    if x.shape[0] == 0:
        raise ValueError(f"{name} is an empty batch (shape {tuple(x.shape)})")


def _check_padding_idx(padding_idx, vocab_size: int) -> None:
    if (
        not isinstance(padding_idx, int)
        or isinstance(padding_idx, bool)
        or not 0 <= padding_idx < vocab_size
    ):
        raise ValueError(f"padding_idx must be an int in [0, vocab_size), got {padding_idx!r}")


def _check_positive_int(name: str, value) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")


def _check_widths(name: str, widths) -> tuple[int, ...]:
    """A non-empty sequence of positive ints (the widths of the blocks or layers)."""
    if isinstance(widths, (str, bytes)) or not isinstance(widths, (tuple, list)):
        raise TypeError(f"{name} must be a tuple of positive ints, got {widths!r}")
    for width in widths:
        if not isinstance(width, int) or isinstance(width, bool) or width < 1:
            raise ValueError(f"{name} must hold positive ints, got {widths!r}")
    return tuple(widths)


def _check_tokens(ids, mask, vocab_size: int, padding_idx: int) -> torch.Tensor:
    """Validate (ids, mask) and return the mask (derived from padding_idx when None)."""
    if not isinstance(ids, torch.Tensor):
        raise TypeError(f"ids must be a torch.Tensor (B, L) of token ids, got {type(ids).__name__}")
    if ids.ndim != 2:
        raise ValueError(f"ids must have shape (B, L), got shape {tuple(ids.shape)}")
    if ids.dtype not in (torch.int64, torch.int32):
        raise ValueError(f"ids must be an integer (long) tensor, got dtype {ids.dtype}")
    if ids.shape[0] == 0 or ids.shape[1] == 0:
        raise ValueError(f"ids is empty (shape {tuple(ids.shape)})")
    if int(ids.min()) < 0 or int(ids.max()) >= vocab_size:
        raise ValueError(
            f"ids must lie in [0, vocab_size={vocab_size}), got values in "
            f"[{int(ids.min())}, {int(ids.max())}]"
        )
    if mask is None:
        mask = ids != padding_idx
    if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool:
        raise ValueError(
            "mask must be a bool tensor (B, L), True for real tokens, got "
            f"{getattr(mask, 'dtype', type(mask).__name__)}"
        )
    if mask.shape != ids.shape:
        raise ValueError(
            f"mask must have the shape of ids {tuple(ids.shape)}, got {tuple(mask.shape)}"
        )
    if not bool(mask.any(dim=1).all()):
        raise ValueError(
            "mask: every sequence needs at least one real token (a row is all padding)"
        )
    return mask


class ImageCNN(nn.Module):
    """A small VGG-style CNN: blocks of [conv3x3 -> BatchNorm -> ReLU -> maxpool 2x2], then
    adaptive average pooling to ``pool_size`` x ``pool_size`` and a linear layer.

    x (B, in_channels, H, W) float -> (B, out_dim). ``feature_maps(x)`` returns the
    activation of every block (before pooling) for visualisation.
    """

    def __init__(
        self,
        in_channels: int,
        out_dim: int,
        channels: tuple[int, ...] = (16, 32),
        pool_size: int = 2,
        dropout: float = 0.0,
    ):
        super().__init__()
        for name, value in (
            ("in_channels", in_channels),
            ("out_dim", out_dim),
            ("pool_size", pool_size),
        ):
            _check_positive_int(name, value)
        if not channels:
            raise ValueError("channels must list at least one block width")
        _check_widths("channels", channels)
        check_dropout(dropout)
        self.in_channels, self.out_dim = in_channels, out_dim
        self.blocks = nn.ModuleList()
        c_in = in_channels
        for c_out in channels:
            self.blocks.append(
                nn.Sequential(
                    nn.Conv2d(c_in, c_out, kernel_size=3, padding=1, bias=False),
                    nn.BatchNorm2d(c_out),
                    nn.ReLU(),
                )
            )
            c_in = c_out
        self.pool = nn.MaxPool2d(2)
        self.head = nn.Sequential(
            nn.AdaptiveAvgPool2d(pool_size),
            nn.Flatten(),
            nn.Dropout(dropout),
            nn.Linear(c_in * pool_size * pool_size, out_dim),
        )

    def _check(self, x) -> None:
        _check_float("x", x, 4, "(B, C, H, W)")
        if x.shape[1] != self.in_channels:
            raise ValueError(
                f"x must have {self.in_channels} channels (B, C, H, W), got shape {tuple(x.shape)}"
            )
        if min(x.shape[2:]) < 2 ** len(self.blocks):
            raise ValueError(
                f"x is too small ({tuple(x.shape[2:])}) for {len(self.blocks)} pooling blocks"
            )

    def feature_maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The output of each conv block, [(B, C_1, H, W), (B, C_2, H/2, W/2), ...]."""
        self._check(x)
        maps = []
        for i, block in enumerate(self.blocks):
            x = block(x if i == 0 else self.pool(x))
            maps.append(x)
        return maps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.feature_maps(x)[-1]))


class TextRNN(nn.Module):
    """Embeddings followed by a recurrent network (Elman RNN, LSTM or GRU).

    ids (B, L) long, mask (B, L) bool (True = real token, padding at the END of each row)
    -> (B, out_dim). The sequences are packed (``pack_padded_sequence``), so the RNN stops at
    each sequence's last real token: padding cannot change the output. The feature is the
    final hidden state (both directions concatenated when bidirectional), projected to
    out_dim when its size differs.
    """

    CELLS = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}

    def __init__(
        self,
        vocab_size: int,
        out_dim: int,
        cell: str = "lstm",
        embed_dim: int = 32,
        hidden_dim: int | None = None,
        num_layers: int = 1,
        bidirectional: bool = False,
        padding_idx: int = 0,
        dropout: float = 0.0,
    ):
        super().__init__()
        for name, value in (
            ("vocab_size", vocab_size),
            ("out_dim", out_dim),
            ("embed_dim", embed_dim),
            ("num_layers", num_layers),
        ):
            _check_positive_int(name, value)
        if cell not in self.CELLS:
            raise ValueError(f"cell must be one of {sorted(self.CELLS)}, got {cell!r}")
        _check_padding_idx(padding_idx, vocab_size)
        check_dropout(dropout)
        hidden_dim = out_dim if hidden_dim is None else hidden_dim
        _check_positive_int("hidden_dim", hidden_dim)
        self.vocab_size, self.out_dim, self.cell, self.padding_idx = (
            vocab_size,
            out_dim,
            cell,
            padding_idx,
        )
        self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=padding_idx)
        self.rnn = self.CELLS[cell](
            embed_dim,
            hidden_dim,
            num_layers=num_layers,
            batch_first=True,
            bidirectional=bidirectional,
            dropout=dropout if num_layers > 1 else 0.0,
        )
        state_dim = hidden_dim * (2 if bidirectional else 1)
        self.proj = nn.Identity() if state_dim == out_dim else nn.Linear(state_dim, out_dim)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        mask = _check_tokens(ids, mask, self.vocab_size, self.padding_idx)
        lengths = mask.sum(dim=1)
        # packing needs right padding: a real token after a pad would be silently dropped
        positions = torch.arange(ids.shape[1], device=ids.device)
        if not torch.equal(mask, positions < lengths.unsqueeze(1)):
            raise ValueError("mask must be True for a prefix of each row (padding at the end)")
        packed = pack_padded_sequence(
            self.embedding(ids), lengths.cpu(), batch_first=True, enforce_sorted=False
        )
        _, state = self.rnn(packed)
        h_n = state[0] if self.cell == "lstm" else state  # LSTM returns (h_n, c_n)
        # h_n: (num_layers * directions, B, hidden); keep the last layer's directions
        last = h_n[-2:] if self.rnn.bidirectional else h_n[-1:]
        return self.proj(torch.cat(list(last), dim=-1))


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of x (B, L, D) over the positions where mask (B, L) is True -> (B, D)."""
    _check_float("x", x, 3, "(B, L, D)")
    if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool:
        got = mask.dtype if isinstance(mask, torch.Tensor) else type(mask).__name__
        raise TypeError(f"mask must be a bool tensor (B, L), True at real positions, got {got}")
    if mask.shape != x.shape[:2]:
        raise ValueError(
            f"mask must have shape (B, L) = {tuple(x.shape[:2])} like x, got {tuple(mask.shape)}"
        )
    if not bool(mask.any(dim=1).all()):
        raise ValueError("mask: every row needs at least one real position (a row is all padding)")
    weights = mask.unsqueeze(-1).to(x.dtype)
    return (x * weights).sum(dim=1) / weights.sum(dim=1).clamp_min(1.0)


class TextTransformer(nn.Module):
    """A small Transformer encoder for text (mmcourse.attention, written from scratch).

        h_0 = Embedding(ids) * sqrt(d_model) + PE,  h_l = Block_l(h_{l-1}, key_mask=mask)
        feature = Linear(mean of LayerNorm(h_L) over the real tokens)

    ids (B, L) long, mask (B, L) bool (True = real token; padding anywhere) -> (B, out_dim).
    Padding is hidden from every attention and from the mean, so it cannot change the output.
    """

    def __init__(
        self,
        vocab_size: int,
        out_dim: int,
        d_model: int = 64,
        num_heads: int = 4,
        num_layers: int = 2,
        d_ff: int | None = None,
        max_len: int = 256,
        dropout: float = 0.1,
        padding_idx: int = 0,
    ):
        super().__init__()
        for name, value in (
            ("vocab_size", vocab_size),
            ("out_dim", out_dim),
            ("d_model", d_model),
            ("num_layers", num_layers),
            ("max_len", max_len),
        ):
            _check_positive_int(name, value)
        _check_padding_idx(padding_idx, vocab_size)
        check_dropout(dropout)
        self.vocab_size, self.out_dim, self.d_model, self.padding_idx = (
            vocab_size,
            out_dim,
            d_model,
            padding_idx,
        )
        self.embedding = nn.Embedding(vocab_size, d_model, padding_idx=padding_idx)
        self.positions = PositionalEncoding(d_model, max_len)
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(
            TransformerBlock(d_model, num_heads, d_ff, dropout) for _ in range(num_layers)
        )
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, out_dim)

    def _run(self, ids, mask, attention: list | None = None):
        mask = _check_tokens(ids, mask, self.vocab_size, self.padding_idx)
        if ids.shape[1] > self.positions.max_len:
            raise ValueError(f"ids has length {ids.shape[1]} > max_len={self.positions.max_len}")
        # scale the embeddings so that they are not drowned by the unit-size positions
        h = self.drop(self.positions(self.embedding(ids) * self.d_model**0.5))
        for block in self.blocks:
            if attention is not None:  # recomputed for inspection only
                attention.append(block.attn(block.norm1(h), key_mask=mask)[1])
            h = block(h, key_mask=mask)
        return self.norm(h), mask

    def token_features(self, ids: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Contextual features of every position, (B, L, d_model); padded positions are junk
        (mask them out, e.g. as keys of a cross-attention fusion)."""
        return self._run(ids, mask)[0]

    def attention_maps(self, ids: torch.Tensor, mask: torch.Tensor | None = None):
        """The attention weights of every block, a list of (B, num_heads, L, L) tensors."""
        maps: list[torch.Tensor] = []
        self._run(ids, mask, attention=maps)
        return maps

    def forward(self, ids: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        h, mask = self._run(ids, mask)
        return self.head(masked_mean(h, mask))


class AudioCNN(nn.Module):
    """A 1-D CNN over time on MFCCs: each coefficient is an input channel.

    x (B, n_mfcc, frames) float -> (B, out_dim). A BatchNorm on the input first brings each
    coefficient to a common scale (raw c_0 is tens of times larger than c_12), then blocks of
    [conv1d -> BatchNorm -> ReLU -> maxpool 2], then the mean and the max over time.
    """

    def __init__(
        self,
        n_mfcc: int,
        out_dim: int,
        channels: tuple[int, ...] = (32, 64),
        kernel_size: int = 5,
        dropout: float = 0.0,
    ):
        super().__init__()
        for name, value in (("n_mfcc", n_mfcc), ("out_dim", out_dim), ("kernel_size", kernel_size)):
            _check_positive_int(name, value)
        if not channels:
            raise ValueError("channels must list at least one block width")
        _check_widths("channels", channels)
        check_dropout(dropout)
        self.n_mfcc, self.out_dim = n_mfcc, out_dim
        layers: list[nn.Module] = [nn.BatchNorm1d(n_mfcc)]
        c_in = n_mfcc
        for c_out in channels:
            layers += [
                nn.Conv1d(c_in, c_out, kernel_size, padding=kernel_size // 2, bias=False),
                nn.BatchNorm1d(c_out),
                nn.ReLU(),
                nn.MaxPool1d(2, ceil_mode=True),
            ]
            c_in = c_out
        self.body = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(2 * c_in, out_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_float("x", x, 3, "(B, n_mfcc, frames)")
        if x.shape[1] != self.n_mfcc:
            raise ValueError(
                f"x must have n_mfcc={self.n_mfcc} rows (B, n_mfcc, frames), got "
                f"shape {tuple(x.shape)}"
            )
        if x.shape[2] == 0:
            raise ValueError("x has no frames")
        h = self.body(x)  # (B, C, frames / 2^blocks)
        return self.head(torch.cat([h.mean(dim=2), h.amax(dim=2)], dim=1))


class MLPEncoder(nn.Module):
    """A multilayer perceptron for flat features: x (B, in_dim) -> (B, out_dim)."""

    def __init__(
        self, in_dim: int, out_dim: int, hidden: tuple[int, ...] = (64,), dropout: float = 0.0
    ):
        super().__init__()
        _check_positive_int("in_dim", in_dim)
        _check_positive_int("out_dim", out_dim)
        if isinstance(hidden, (str, bytes)) or not isinstance(hidden, (tuple, list)):
            raise TypeError(
                f"hidden must be a tuple of positive ints (may be empty), got {hidden!r}"
            )
        check_dropout(dropout)
        self.in_dim, self.out_dim = in_dim, out_dim
        layers: list[nn.Module] = []
        d = in_dim
        for width in hidden:
            _check_positive_int("hidden", width)
            layers += [nn.Linear(d, width), nn.ReLU(), nn.Dropout(dropout)]
            d = width
        layers.append(nn.Linear(d, out_dim))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_float("x", x, 2, "(B, in_dim)")
        if x.shape[1] != self.in_dim:
            raise ValueError(
                f"x must have in_dim={self.in_dim} features, got shape {tuple(x.shape)}"
            )
        return self.net(x)


def estimate_flops(module: nn.Module, *inputs: torch.Tensor) -> int:
    """Floating-point operations of one forward pass on ``inputs`` (the whole batch).

    Counted by ``torch.utils.flop_counter.FlopCounterMode``: matrix products and
    convolutions, 2 FLOPs per multiply-add; elementwise work (activations, norms, softmax)
    is not counted, so this is a lower bound dominated by the right terms. Runs on a CPU
    copy of the module in eval mode (CUDA's fused RNN kernels are not counted), under no_grad.
    Divide by the batch size for a per-example figure.
    """
    if not isinstance(module, nn.Module):
        raise TypeError(f"module must be a torch.nn.Module, got {type(module).__name__}")
    if not inputs:
        raise ValueError("inputs: give at least one example batch to run the module on")
    model = copy.deepcopy(module).cpu().eval()
    cpu_inputs = [x.detach().cpu() if isinstance(x, torch.Tensor) else x for x in inputs]
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(*cpu_inputs)
    return int(counter.get_total_flops())
