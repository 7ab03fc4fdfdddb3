"""Fusion operators: one interface from the seed's equation to the whole fusion zoo.

Every operator is an ``nn.Module`` built from the feature sizes of its modalities,
``in_dims = [d_1, ..., d_M]``, and called on a list of batch-first tensors:

    fusion = TensorFusion([16, 8], out_dim=32)
    z = fusion([x_image, x_audio])     # x_image (B, 16), x_audio (B, 8)  ->  z (B, 32)
    fusion.out_dim                     # 32: what the classifier head receives

so that a notebook swaps one operator for another in one line. Inputs are checked: a wrong
number of modalities, a wrong feature size or mismatched batch sizes raise a ValueError that
names the argument and what was expected. ``CrossAttentionFusion`` also takes sequences
(B, L_i, d_i) with optional masks (see its docstring); ``LateFusion`` returns class scores
(``produces_logits = True``) that a classifier uses as they are.

    operator              fused vector                                   reference
    ConcatFusion          act(W [x_1; ...; x_M] + b)   (the seed)        Ngiam et al. 2011
    WeightedFusion        sum_i alpha_i P_i x_i, alpha = softmax(w)      -
    LateFusion            combine per-modality predictions               Hinton 2002; Wolpert 1992
    AttentionFusion       sum_i alpha_i(x) h_i (additive attention)      Bahdanau et al. 2015
    GatedFusion (GMU)     z * tanh(W_1 x_1) + (1 - z) * tanh(W_2 x_2)    Arevalo et al. 2017
    TensorFusion (TFN)    vec([x_1; 1] (x) [x_2; 1] (x) ...)             Zadeh et al. 2017
    LowRankFusion (LMF)   sum_r lambda_r prod_i (W_i^(r) [x_i; 1])       Liu et al. 2018
    FiLMFusion            gamma(c) * (W x_t + b) + beta(c)               Perez et al. 2018
    CrossAttentionFusion  pooled softmax(Q_i K_j^T / sqrt(d)) V_j        Tsai et al. 2019 (MulT)

Each class docstring gives the formula, the shapes and the parameter count; ``formula`` is
the same formula in LaTeX, for tables in the notebooks.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from mmcourse.attention import MultiHeadAttention
from mmcourse.utils import count_parameters

__all__ = [
    "Fusion",
    "ConcatFusion",
    "WeightedFusion",
    "LateFusion",
    "AttentionFusion",
    "GatedFusion",
    "TensorFusion",
    "LowRankFusion",
    "FiLMFusion",
    "CrossAttentionFusion",
    "FUSIONS",
    "count_parameters",
]

_ACTIVATIONS = {
    None: nn.Identity,
    "identity": nn.Identity,
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "relu": nn.ReLU,
}


def _positive_int(value, name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value


def _check_in_dims(in_dims, owner: str, min_modalities: int, max_modalities: int | None):
    if isinstance(in_dims, (int, str)) or not isinstance(in_dims, Sequence):
        raise TypeError(
            f"{owner}: in_dims must be a list of feature sizes, one per modality, "
            f"e.g. [64, 26]; got {in_dims!r}"
        )
    dims = [_positive_int(d, f"{owner}: in_dims[{i}]") for i, d in enumerate(in_dims)]
    if len(dims) < min_modalities:
        raise ValueError(f"{owner} needs at least {min_modalities} modalities, got in_dims={dims}")
    if max_modalities is not None and len(dims) > max_modalities:
        raise ValueError(f"{owner} takes at most {max_modalities} modalities, got in_dims={dims}")
    return dims


def _activation(name) -> nn.Module:
    if name not in _ACTIVATIONS:
        raise ValueError(
            f"activation must be one of {sorted(k for k in _ACTIVATIONS if k)} or "
            f"None, got {name!r}"
        )
    return _ACTIVATIONS[name]()


class Fusion(nn.Module):
    """Base class: stores ``in_dims``, checks the inputs; subclasses set ``out_dim``.

    Class attributes: ``formula`` (LaTeX), ``min_modalities`` / ``max_modalities``,
    ``produces_logits`` (True when the output already is class scores, as in late fusion),
    ``accepts_sequences`` (True when inputs may be (B, L_i, d_i)).
    """

    formula = ""
    min_modalities = 2
    max_modalities: int | None = None
    produces_logits = False
    accepts_sequences = False

    def __init__(self, in_dims: Sequence[int]):
        super().__init__()
        name = type(self).__name__
        self.in_dims = _check_in_dims(in_dims, name, self.min_modalities, self.max_modalities)
        self.num_modalities = len(self.in_dims)
        self.out_dim: int = 0

    def check_features(self, features) -> int:
        """Validate a list of (B, d_i) tensors (or (B, L_i, d_i) where sequences are
        accepted); return the batch size."""
        name = type(self).__name__
        if isinstance(features, torch.Tensor) or not isinstance(features, (list, tuple)):
            raise TypeError(
                f"{name}: features must be a list of tensors, one per modality "
                f"(shapes (B, d_i)); got {type(features).__name__}"
            )
        if len(features) != self.num_modalities:
            raise ValueError(
                f"{name}: features: expected {self.num_modalities} modality tensors "
                f"(in_dims={self.in_dims}), got {len(features)}"
            )
        ndims = (2, 3) if self.accepts_sequences else (2,)
        batch = None
        for i, (x, d) in enumerate(zip(features, self.in_dims, strict=True)):
            if not isinstance(x, torch.Tensor):
                raise TypeError(
                    f"{name}: features[{i}] must be a torch.Tensor, got {type(x).__name__}"
                )
            shape = "(B, d) or (B, L, d)" if self.accepts_sequences else "(B, d)"
            if x.ndim not in ndims:
                raise ValueError(
                    f"{name}: features[{i}] must have shape {shape} with d={d}, "
                    f"got shape {tuple(x.shape)}"
                )
            if not x.is_floating_point():
                raise ValueError(f"{name}: features[{i}] must be floating point, got {x.dtype}")
            if x.shape[-1] != d:
                raise ValueError(
                    f"{name}: features[{i}] has {x.shape[-1]} features but "
                    f"in_dims[{i}] is {d} (shape {tuple(x.shape)})"
                )
            if x.shape[0] == 0:
                raise ValueError(
                    f"{name}: features[{i}] is an empty batch (shape {tuple(x.shape)})"
                )
            if x.ndim == 3 and x.shape[1] == 0:
                raise ValueError(
                    f"{name}: features[{i}] is a sequence of length 0 (shape {tuple(x.shape)}); "
                    "every example needs at least one position"
                )
            if batch is None:
                batch = x.shape[0]
            elif x.shape[0] != batch:
                raise ValueError(
                    f"{name}: features[{i}] has batch size {x.shape[0]} but "
                    f"features[0] has {batch}; all modalities must describe the "
                    "same examples"
                )
        return batch

    def extra_repr(self) -> str:
        return f"in_dims={self.in_dims}, out_dim={self.out_dim}"


def _append_one(x: torch.Tensor) -> torch.Tensor:
    """[x; 1]: the constant 1 keeps lower-order (unimodal) terms inside products."""
    return torch.cat([x, x.new_ones(x.shape[0], 1)], dim=1)


class ConcatFusion(Fusion):
    """Early (feature-level) fusion: concatenate, optionally then one linear layer.

        z = [x_1; ...; x_M]                       (out_dim=None: out_dim = sum_i d_i)
        z = act(W [x_1; ...; x_M] + b)            (out_dim given)

    With two modalities and ``activation="sigmoid"`` this IS the seed's fusion equation
    X' = sigma(W_1 I' + W_2 T' + b): W = [W_1 W_2] is the two weight matrices side by side,
    because W [I'; T'] = W_1 I' + W_2 T'. Note that z is linear (affine) in every modality:
    no term multiplies one modality by another.

    Shapes: features[i] (B, d_i) -> (B, out_dim).
    Parameters: 0 without out_dim, else (sum_i d_i + 1) * out_dim.
    One modality is allowed (a unimodal baseline with the same head).
    """

    formula = r"\sigma\!\left(W\,[x_1;\dots;x_M] + b\right)"
    min_modalities = 1

    def __init__(
        self, in_dims: Sequence[int], out_dim: int | None = None, activation: str | None = None
    ):
        super().__init__(in_dims)
        total = sum(self.in_dims)
        if out_dim is None:
            if activation not in (None, "identity"):
                raise ValueError(
                    "activation needs out_dim: plain concatenation has no layer to activate"
                )
            self.linear = None
            self.out_dim = total
        else:
            self.out_dim = _positive_int(out_dim, "out_dim")
            self.linear = nn.Linear(total, self.out_dim)
        self.activation = _activation(activation)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        self.check_features(features)
        z = torch.cat(list(features), dim=1)
        if self.linear is not None:
            z = self.activation(self.linear(z))
        return z


class WeightedFusion(Fusion):
    """Weighted sum of (projected) modality vectors with learned, input-independent weights.

        alpha = softmax(w),  w in R^M learned
        z = sum_i alpha_i P_i x_i,   P_i x_i = W_i x_i + b_i  (or x_i itself without out_dim)

    The weights say how much each modality counts on average; they do not depend on the
    example (compare ``AttentionFusion``). Like concatenation, z is additive in the modalities.

    Shapes: features[i] (B, d_i) -> (B, out_dim).
    Parameters: M without out_dim (all d_i must then be equal), else
    sum_i (d_i + 1) * out_dim + M.
    """

    formula = r"\sum_i \alpha_i (W_i x_i + b_i),\ \alpha=\mathrm{softmax}(w)"

    def __init__(self, in_dims: Sequence[int], out_dim: int | None = None):
        super().__init__(in_dims)
        if out_dim is None:
            if len(set(self.in_dims)) != 1:
                raise ValueError(
                    f"WeightedFusion without out_dim needs equal in_dims, got "
                    f"{self.in_dims}; pass out_dim to project them to one size"
                )
            self.out_dim = self.in_dims[0]
            self.projections = nn.ModuleList(nn.Identity() for _ in self.in_dims)
        else:
            self.out_dim = _positive_int(out_dim, "out_dim")
            self.projections = nn.ModuleList(nn.Linear(d, self.out_dim) for d in self.in_dims)
        self.logits = nn.Parameter(torch.zeros(self.num_modalities))

    @property
    def weights(self) -> torch.Tensor:
        """alpha, the current modality weights (M,), summing to 1."""
        return torch.softmax(self.logits.detach(), dim=0)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        self.check_features(features)
        alpha = torch.softmax(self.logits, dim=0)
        return sum(a * p(x) for a, p, x in zip(alpha, self.projections, features, strict=True))


class LateFusion(Fusion):
    """Decision-level (late) fusion: one classifier per modality, then combine predictions.

        l_i = W_i x_i + b_i                                  per-modality logits (B, C)
        mode="mean":    log( (1/M) sum_i softmax(l_i) )      average of probabilities
        mode="product": sum_i log_softmax(l_i)               product of experts
        mode="stack":   V [l_1; ...; l_M] + c                stacking (a learned combiner)

    The output is class scores for a softmax/cross-entropy (``produces_logits = True``):
    ``MultimodalClassifier`` adds no head after it. "product" is, up to a constant, the log
    of the normalised product of the experts' distributions (Hinton 2002); "stack" learns
    the combiner jointly here, whereas classical stacking (Wolpert 1992) fits it on held-out
    predictions. ``modality_logits(features)`` returns the l_i, to inspect each expert.

    Shapes: features[i] (B, d_i) -> (B, num_classes).
    Parameters: sum_i (d_i + 1) * C, plus (M * C + 1) * C for "stack".
    """

    formula = r"\log \tfrac{1}{M}\sum_i \mathrm{softmax}(W_i x_i + b_i)"
    produces_logits = True
    MODES = ("mean", "product", "stack")

    def __init__(self, in_dims: Sequence[int], num_classes: int, mode: str = "mean"):
        super().__init__(in_dims)
        if mode not in self.MODES:
            raise ValueError(f"mode must be one of {self.MODES}, got {mode!r}")
        self.mode = mode
        self.num_classes = _positive_int(num_classes, "num_classes")
        if self.num_classes < 2:
            raise ValueError("num_classes must be at least 2 for late fusion of class scores")
        self.out_dim = self.num_classes
        self.heads = nn.ModuleList(nn.Linear(d, self.num_classes) for d in self.in_dims)
        self.combiner = (
            nn.Linear(self.num_modalities * self.num_classes, self.num_classes)
            if mode == "stack"
            else None
        )

    def modality_logits(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        """Each modality's own class scores l_i (B, C)."""
        self.check_features(features)
        return [head(x) for head, x in zip(self.heads, features, strict=True)]

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        logits = self.modality_logits(features)
        if self.mode == "stack":
            return self.combiner(torch.cat(logits, dim=1))
        log_probs = torch.stack([torch.log_softmax(lg, dim=1) for lg in logits])  # (M, B, C)
        if self.mode == "product":
            return log_probs.sum(dim=0)
        return torch.logsumexp(log_probs, dim=0) - math.log(self.num_modalities)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, mode={self.mode!r}"


class AttentionFusion(Fusion):
    """Attention over modalities: each example weighs its own modalities.

        h_i = W_i x_i + b_i                              project to a common size (B, dim)
        s_i = v^T tanh(U h_i + c)                        a score per modality (additive attention)
        alpha = softmax(s_1, ..., s_M)                   weights, per example, summing to 1
        z = sum_i alpha_i h_i

    Unlike ``WeightedFusion`` the weights depend on the input, so a noisy modality can be
    down-weighted for one example and trusted for another; ``last_weights`` (B, M) keeps
    the alphas of the latest forward pass for inspection.

    Shapes: features[i] (B, d_i) -> (B, dim).
    Parameters: sum_i (d_i + 1) * dim + (dim + 1) * a + a, with a = attn_hidden (default dim).
    """

    formula = (
        r"\sum_i \alpha_i h_i,\ \alpha=\mathrm{softmax}_i\!\left(v^\top\tanh(U h_i + c)\right)"
    )

    def __init__(self, in_dims: Sequence[int], dim: int, attn_hidden: int | None = None):
        super().__init__(in_dims)
        self.out_dim = _positive_int(dim, "dim")
        hidden = self.out_dim if attn_hidden is None else _positive_int(attn_hidden, "attn_hidden")
        self.projections = nn.ModuleList(nn.Linear(d, self.out_dim) for d in self.in_dims)
        self.score = nn.Sequential(
            nn.Linear(self.out_dim, hidden), nn.Tanh(), nn.Linear(hidden, 1, bias=False)
        )
        self.last_weights: torch.Tensor | None = None

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        self.check_features(features)
        h = torch.stack([p(x) for p, x in zip(self.projections, features, strict=True)], dim=1)
        alpha = torch.softmax(self.score(h).squeeze(-1), dim=1)  # (B, M)
        self.last_weights = alpha.detach()
        return (alpha.unsqueeze(-1) * h).sum(dim=1)


class GatedFusion(Fusion):
    """Gated Multimodal Unit (GMU, Arevalo et al. 2017).

        h_i = tanh(W_i x_i + b_i)                        each modality's candidate (B, dim)
        M = 2:  z = sigmoid(W_z [x_1; x_2] + b_z),   out = z * h_1 + (1 - z) * h_2
        M > 2:  z_i = sigmoid(W_zi [x_1; ...; x_M] + b_zi),   out = sum_i z_i * h_i

    The gate z, in (0, 1) per unit and per example, is computed from ALL modalities and
    multiplies a modality's candidate: that product is a multiplicative interaction, which
    additive fusion lacks. For M > 2 each modality gets its own sigmoid gate, the usual
    K-modality form of the GMU (for M = 2 the paper ties the two gates as z and 1 - z).
    ``last_gate`` keeps the gate of the latest forward pass:
    (B, dim) for M = 2, (B, M, dim) for M > 2. ``forward(features, gate=g)`` fixes the
    gate to ``g`` (a float or a broadcastable tensor) to study "what if" questions.

    Shapes: features[i] (B, d_i) -> (B, dim).
    Parameters: sum_i (d_i + 1) * dim + (sum_i d_i + 1) * dim * G, with G = 1 for M = 2
    and G = M otherwise.
    """

    formula = r"z \odot \tanh(W_1 x_1) + (1-z)\odot\tanh(W_2 x_2),\ z=\sigma(W_z[x_1;x_2])"

    def __init__(self, in_dims: Sequence[int], dim: int):
        super().__init__(in_dims)
        self.out_dim = _positive_int(dim, "dim")
        self.candidates = nn.ModuleList(nn.Linear(d, self.out_dim) for d in self.in_dims)
        gates = 1 if self.num_modalities == 2 else self.num_modalities
        self.gate = nn.Linear(sum(self.in_dims), gates * self.out_dim)
        self.last_gate: torch.Tensor | None = None

    def forward(self, features: list[torch.Tensor], gate=None) -> torch.Tensor:
        batch = self.check_features(features)
        h = [torch.tanh(c(x)) for c, x in zip(self.candidates, features, strict=True)]
        if gate is None:
            z = torch.sigmoid(self.gate(torch.cat(list(features), dim=1)))
            if self.num_modalities > 2:
                z = z.view(batch, self.num_modalities, self.out_dim)
        else:
            z = torch.as_tensor(gate, dtype=h[0].dtype, device=h[0].device)
            if ((z < 0) | (z > 1)).any():
                raise ValueError("gate must lie in [0, 1]")
        self.last_gate = z.detach()
        if self.num_modalities == 2:
            return z * h[0] + (1 - z) * h[1]
        try:  # a fixed gate for M > 2: one number, or per modality (M, 1), or full (B, M, dim)
            z = z.expand(batch, self.num_modalities, self.out_dim)
        except RuntimeError as exc:
            raise ValueError(
                f"gate must broadcast to (B, M, dim) = {(batch, self.num_modalities, self.out_dim)}"
                f", got shape {tuple(z.shape)}"
            ) from exc
        return sum(z[:, i] * h[i] for i in range(self.num_modalities))


class TensorFusion(Fusion):
    """Tensor Fusion (TFN, Zadeh et al. 2017): the outer product of [x_i; 1] vectors.

        Z = [x_1; 1] (x) [x_2; 1] (x) ... (x) [x_M; 1]     a tensor of size prod_i (d_i + 1)
        z = vec(Z)                                          (out_dim=None)
        z = W vec(Z) + b                                    (out_dim given)

    Because of the appended 1s, Z holds every product of features from different
    modalities AND the unimodal features themselves. Positions, for two modalities
    a = x_1 (d_a) and b = x_2 (d_b), with ``vec`` in row-major (C) order:

        z[i * (d_b + 1) + j]   = a_i * b_j   for i < d_a, j < d_b   (bimodal products)
        z[i * (d_b + 1) + d_b] = a_i                                (unimodal a)
        z[d_a * (d_b + 1) + j] = b_j                                (unimodal b)
        z[-1]                  = 1

    In general ``position(i_1, ..., i_M)`` gives the flat index, where i_m = d_m picks the
    constant 1 of modality m. The size grows as the product of the d_i: keep them small.

    Shapes: features[i] (B, d_i) -> (B, prod_i (d_i + 1)) or (B, out_dim).
    Parameters: 0, or (prod_i (d_i + 1) + 1) * out_dim with out_dim.
    """

    formula = r"W\,\mathrm{vec}\!\left([x_1;1]\otimes[x_2;1]\otimes\cdots\right) + b"

    def __init__(self, in_dims: Sequence[int], out_dim: int | None = None, max_size: int = 2**20):
        _positive_int(max_size, "max_size")
        super().__init__(in_dims)
        self.tensor_size = math.prod(d + 1 for d in self.in_dims)
        if self.tensor_size > max_size:
            raise ValueError(
                f"the fusion tensor would have prod(d_i + 1) = {self.tensor_size} "
                f"entries (> max_size={max_size}); project the modalities to "
                "fewer features first, or use LowRankFusion"
            )
        if out_dim is None:
            self.linear = None
            self.out_dim = self.tensor_size
        else:
            self.out_dim = _positive_int(out_dim, "out_dim")
            self.linear = nn.Linear(self.tensor_size, self.out_dim)

    def position(self, *index: int) -> int:
        """Flat index in vec(Z) of Z[i_1, ..., i_M] (i_m = d_m is modality m's constant 1)."""
        if len(index) != self.num_modalities:
            raise ValueError(f"position needs {self.num_modalities} indices, got {len(index)}")
        flat = 0
        for m, (i, d) in enumerate(zip(index, self.in_dims, strict=True)):
            if not 0 <= i <= d:
                raise ValueError(f"index {m} must lie in [0, {d}], got {i}")
            flat = flat * (d + 1) + i
        return flat

    def tensor(self, features: list[torch.Tensor]) -> torch.Tensor:
        """vec(Z), the raw fusion tensor (B, prod_i (d_i + 1))."""
        batch = self.check_features(features)
        z = _append_one(features[0])
        for x in features[1:]:
            # (B, P) x (B, d + 1) -> (B, P, d + 1) -> (B, P * (d + 1)): row-major outer product
            z = (z.unsqueeze(2) * _append_one(x).unsqueeze(1)).reshape(batch, -1)
        return z

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        z = self.tensor(features)
        return z if self.linear is None else self.linear(z)


class LowRankFusion(Fusion):
    """Low-rank Multimodal Fusion (LMF, Liu et al. 2018): TFN without building the tensor.

        z = sum_{r=1}^{R} lambda_r * prod_i ( [x_i; 1]^T W_i^(r) ) + b

    with modality-specific factors W_i^(r) of shape (d_i + 1, out_dim) and the product
    taken elementwise over the M modalities. This equals ``TensorFusion`` followed by a
    linear layer whose weight tensor has rank R: W = sum_r lambda_r W_1^(r) (x) ... (x)
    W_M^(r) (``full_weight()`` builds it), at a cost linear in sum_i d_i instead of
    prod_i d_i. ``from_full_weight`` gives the best rank-R factors of a two-modality
    weight by SVD (Eckart-Young), so the approximation error shrinks to 0 as R grows.

    All factors are registered parameters (``factors``, a ParameterList) and are trained.

    Shapes: features[i] (B, d_i) -> (B, out_dim).
    Parameters: R * sum_i (d_i + 1) * out_dim + R + out_dim.
    """

    formula = r"\sum_{r=1}^{R}\lambda_r \prod_i \left(W_i^{(r)\top}[x_i;1]\right) + b"

    def __init__(self, in_dims: Sequence[int], out_dim: int, rank: int = 4):
        super().__init__(in_dims)
        self.out_dim = _positive_int(out_dim, "out_dim")
        self.rank = _positive_int(rank, "rank")
        self.factors = nn.ParameterList(
            nn.Parameter(torch.empty(self.rank, d + 1, self.out_dim)) for d in self.in_dims
        )
        self.rank_weights = nn.Parameter(torch.full((self.rank,), 1.0 / self.rank))
        self.bias = nn.Parameter(torch.zeros(self.out_dim))
        for factor in self.factors:
            # Xavier-like scale per factor, so that a product of M factors stays O(1)
            nn.init.normal_(factor, std=math.sqrt(2.0 / (factor.shape[1] + factor.shape[2])))

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        self.check_features(features)
        product = None
        for x, factor in zip(features, self.factors, strict=True):
            # (B, d + 1) with (R, d + 1, out) -> (R, B, out): one projection per rank
            proj = torch.einsum("bd,rdo->rbo", _append_one(x), factor)
            product = proj if product is None else product * proj
        return torch.einsum("r,rbo->bo", self.rank_weights, product) + self.bias

    @torch.no_grad()
    def full_weight(self) -> torch.Tensor:
        """The equivalent TFN weight, shape (prod_i (d_i + 1), out_dim): with it,
        ``TensorFusion(in_dims).tensor(x) @ full_weight() + bias`` equals ``self(x)``."""
        total = None
        for r in range(self.rank):
            w = self.factors[0][r]  # (d_1 + 1, out)
            for factor in self.factors[1:]:
                w = (w.unsqueeze(1) * factor[r].unsqueeze(0)).reshape(-1, self.out_dim)
            w = self.rank_weights[r] * w
            total = w if total is None else total + w
        return total

    @classmethod
    @torch.no_grad()
    def from_full_weight(
        cls, weight: torch.Tensor, rank: int, bias: torch.Tensor | None = None
    ) -> LowRankFusion:
        """The best rank-``rank`` LMF for a two-modality TFN weight (d_1 + 1, d_2 + 1, out).

        For each output unit k, the slice weight[:, :, k] is approximated by its truncated
        SVD sum_r s_r u_r v_r^T, which is optimal in the Frobenius norm (Eckart-Young).
        """
        if not isinstance(weight, torch.Tensor) or weight.ndim != 3:
            raise ValueError(
                "weight must be a tensor of shape (d_1 + 1, d_2 + 1, out_dim), got "
                f"{getattr(weight, 'shape', type(weight).__name__)}"
            )
        d1, d2, out = weight.shape
        if min(d1, d2) < 2:
            raise ValueError(
                f"weight must have at least 2 rows and columns, got {tuple(weight.shape)}"
            )
        lmf = cls([d1 - 1, d2 - 1], out, rank)
        u, s, vh = torch.linalg.svd(weight.permute(2, 0, 1))  # per output k: (d1, d1), (k), ...
        keep = min(rank, s.shape[1])
        lmf.factors[0].zero_()
        lmf.factors[1].zero_()
        # factor[r][:, k] = sqrt(s_r) u_r (and v_r) of output k; lambda_r = 1
        root = s[:, :keep].sqrt()  # (out, keep)
        lmf.factors[0][:keep] = (u[:, :, :keep] * root.unsqueeze(1)).permute(2, 1, 0)
        lmf.factors[1][:keep] = (vh[:, :keep, :] * root.unsqueeze(2)).permute(1, 2, 0)
        lmf.rank_weights.fill_(1.0)
        if bias is not None:
            lmf.bias.copy_(bias)
        return lmf

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, rank={self.rank}"


class FiLMFusion(Fusion):
    """Feature-wise Linear Modulation (FiLM, Perez et al. 2018): one modality conditions another.

        h = W_x x_t + b_x                          the target modality (or x_t itself)
        c = [x_j for j != t]                       the conditioning modalities, concatenated
        gamma = W_g c + b_g,  beta = W_b c + b_b   per-feature scale and shift
        z = gamma * h + beta

    gamma(c) * h multiplies the target's features by a function of the others: a
    multiplicative interaction, and a form of model-level fusion "in series" (one branch
    steers the other). b_g starts at 1 and W_g at 0, so the layer starts as z = h + beta(c).

    Shapes: features[i] (B, d_i) -> (B, out_dim) (out_dim = d_t without projection).
    Parameters: (sum_{j != t} d_j + 1) * 2 * out_dim, plus (d_t + 1) * out_dim with out_dim.
    """

    formula = r"\gamma(c)\odot(W x_t + b) + \beta(c)"

    def __init__(self, in_dims: Sequence[int], out_dim: int | None = None, target: int = 0):
        super().__init__(in_dims)
        if not isinstance(target, int) or not 0 <= target < self.num_modalities:
            raise ValueError(
                f"target must be a modality index in [0, {self.num_modalities}), got {target!r}"
            )
        self.target = target
        d_t = self.in_dims[target]
        if out_dim is None:
            self.out_dim = d_t
            self.projection = nn.Identity()
        else:
            self.out_dim = _positive_int(out_dim, "out_dim")
            self.projection = nn.Linear(d_t, self.out_dim)
        d_c = sum(d for i, d in enumerate(self.in_dims) if i != target)
        self.film = nn.Linear(d_c, 2 * self.out_dim)
        with torch.no_grad():
            self.film.weight[: self.out_dim].zero_()
            self.film.bias[: self.out_dim].fill_(1.0)

    def gamma_beta(self, features: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """The scale and shift (B, out_dim) each computed from the conditioning modalities."""
        self.check_features(features)
        c = torch.cat([x for i, x in enumerate(features) if i != self.target], dim=1)
        gamma, beta = self.film(c).chunk(2, dim=1)
        return gamma, beta

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        gamma, beta = self.gamma_beta(features)
        return gamma * self.projection(features[self.target]) + beta

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, target={self.target}"


class CrossAttentionFusion(Fusion):
    """Cross-modal attention, as in the Multimodal Transformer (MulT, Tsai et al. 2019).

    Each modality is first projected to a common width: H_i = X_i P_i + p_i, (B, L_i, dim).
    For every ordered pair (target i, source j != i), the target's positions query the
    source's positions:

        A_ij = softmax( (H_i W_Q)(H_j W_K)^T / sqrt(dim / heads) ) (H_j W_V)   (multi-head, W_O)
        Y_ij = H_i + A_ij                                         residual, (B, L_i, dim)
        y_ij = masked mean of Y_ij over the L_i target positions   (B, dim)
        z = [y_ij for all pairs]                                  (B, P * dim)

    P = M (M - 1) pairs by default; ``targets=[0]`` keeps only pairs whose target is
    modality 0 (P = M - 1). This is one cross-modal attention layer with a residual; MulT
    stacks several, with layer norm and feed-forward blocks, and a self-attention
    transformer per target. The attention itself is ``mmcourse.attention.MultiHeadAttention``,
    which equals ``torch.nn.MultiheadAttention`` with copied weights.

    Inputs: features[i] of shape (B, L_i, d_i) (a sequence: tokens, audio frames, image
    patches) or (B, d_i) (read as a sequence of one). ``masks``: optional list, one entry per
    modality, None or a bool tensor (B, L_i) with True = real position; every example needs
    at least one real position per modality. ``last_weights[(i, j)]`` holds the attention
    weights (B, heads, L_i, L_j) of the latest forward pass.

    Shapes: -> (B, P * dim).
    Parameters: sum_i (d_i + 1) * dim + P * 4 * (dim + 1) * dim.
    """

    formula = (
        r"\mathrm{pool}\!\left(H_i + "
        r"\mathrm{softmax}\!\left(\tfrac{Q_i K_j^\top}{\sqrt{d}}\right)V_j\right)"
    )
    accepts_sequences = True
    uses_masks = True

    def __init__(
        self,
        in_dims: Sequence[int],
        dim: int = 32,
        num_heads: int = 1,
        targets: Sequence[int] | None = None,
    ):
        super().__init__(in_dims)
        self.dim = _positive_int(dim, "dim")
        if targets is None:
            targets = list(range(self.num_modalities))
        targets = list(targets)
        if (
            not targets
            or any(not isinstance(t, int) or not 0 <= t < self.num_modalities for t in targets)
            or len(set(targets)) != len(targets)
        ):
            raise ValueError(
                f"targets must be distinct modality indices in "
                f"[0, {self.num_modalities}), got {targets!r}"
            )
        self.pairs = [(i, j) for i in targets for j in range(self.num_modalities) if j != i]
        self.projections = nn.ModuleList(nn.Linear(d, self.dim) for d in self.in_dims)
        _positive_int(num_heads, "num_heads")  # MultiHeadAttention checks it divides dim
        self.attention = nn.ModuleList(MultiHeadAttention(self.dim, num_heads) for _ in self.pairs)
        self.num_heads = num_heads
        self.out_dim = len(self.pairs) * self.dim
        self.last_weights: dict[tuple[int, int], torch.Tensor] = {}

    def _masks(self, features, masks) -> list[torch.Tensor | None]:
        if masks is None:
            return [None] * self.num_modalities
        if not isinstance(masks, (list, tuple)) or len(masks) != self.num_modalities:
            raise ValueError(
                f"masks must be None or a list of {self.num_modalities} entries "
                f"(None or a bool tensor (B, L_i)), got {masks!r:.80}"
            )
        checked = []
        for i, (m, x) in enumerate(zip(masks, features, strict=True)):
            if m is None:
                checked.append(None)
                continue
            length = x.shape[1] if x.ndim == 3 else 1
            if not isinstance(m, torch.Tensor) or m.dtype != torch.bool:
                raise ValueError(f"masks[{i}] must be a bool tensor (True = real position)")
            if tuple(m.shape) != (x.shape[0], length):
                raise ValueError(
                    f"masks[{i}] must have shape (B, L_{i}) = "
                    f"({x.shape[0]}, {length}), got {tuple(m.shape)}"
                )
            if not m.any(dim=1).all():
                raise ValueError(f"masks[{i}]: every example needs at least one real position")
            checked.append(m)
        return checked

    def forward(self, features: list[torch.Tensor], masks=None) -> torch.Tensor:
        self.check_features(features)
        masks = self._masks(features, masks)
        seqs = [x if x.ndim == 3 else x.unsqueeze(1) for x in features]  # (B, L_i, d_i)
        h = [p(x) for p, x in zip(self.projections, seqs, strict=True)]
        pooled = []
        self.last_weights = {}
        for (i, j), attn in zip(self.pairs, self.attention, strict=True):
            a, weights = attn(h[i], h[j], h[j], key_mask=masks[j])
            self.last_weights[(i, j)] = weights.detach()
            y = h[i] + a
            if masks[i] is None:
                pooled.append(y.mean(dim=1))
            else:
                keep = masks[i].unsqueeze(-1).to(y.dtype)
                pooled.append((y * keep).sum(dim=1) / keep.sum(dim=1))
        return torch.cat(pooled, dim=1)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, pairs={self.pairs}, num_heads={self.num_heads}"


FUSIONS: dict[str, type[Fusion]] = {
    "concat": ConcatFusion,
    "weighted": WeightedFusion,
    "late": LateFusion,
    "attention": AttentionFusion,
    "gmu": GatedFusion,
    "tensor": TensorFusion,
    "low_rank": LowRankFusion,
    "film": FiLMFusion,
    "cross_attention": CrossAttentionFusion,
}
"""Name -> class, for loops over all operators."""
