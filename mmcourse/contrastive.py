"""Contrastive image-text pretraining: a tiny CLIP, its loss, zero-shot use and retrieval.

The recipe of CLIP (Radford et al., ICML 2021): an image tower and a text tower map a batch
of B matching (image, caption) pairs to L2-normalised embeddings; the B x B matrix of cosine
similarities, multiplied by a learned scale exp(t), is read as logits; a symmetric
cross-entropy (InfoNCE, van den Oord, Li & Vinyals 2018) asks every image to pick its own
caption among the B captions of the batch, and every caption its own image.

    clip_loss(image_emb, text_emb, logit_scale)      the symmetric InfoNCE loss
    clip_loss_few_negatives(..., num_negatives)       the same with k sampled negatives per row
    siglip_loss(image_emb, text_emb, logit_scale, logit_bias)   SigLIP's pairwise sigmoid loss
    TinyCLIP(image_encoder, text_encoder, ...)        towers + linear projections + scale
    make_tiny_clip(vocab_size, ...)                   TinyCLIP on ImageCNN + TextTransformer
    train_clip(model, images, ids, mask, ...)         a small, seeded training loop
    embed_images / embed_texts                        embeddings of a whole set, no grad
    recall_at_k, retrieval_report, random_recall_at_k retrieval metrics and their chance level
    format_prompts, zero_shot_weights, zero_shot_predict   zero-shot classification
    search_images                                     text -> image search (the widget's logic)
    same_key_mask, duplicate_loss_floor, multi_positive_clip_loss   false negatives
    stacked_contrastive_loss, train_lit_heads, LiTHeads   LiT: heads on locked features, many
                                                      seeds and both losses trained at once
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmcourse._checks import (
    check_callable,
    check_finite,
    check_int,
    check_module,
    check_real,
    check_seed,
)
from mmcourse.utils import seeded_generator

LOGIT_SCALE_MAX = 100.0  # CLIP caps exp(logit_scale) at 100 (temperature >= 0.01)


# --------------------------------------------------------------------------- checks


def _check_embeddings(name: str, emb) -> Tensor:
    if not isinstance(emb, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (B, D), got {type(emb).__name__}")
    if emb.dim() != 2:
        raise ValueError(f"{name} must have shape (B, D), got shape {tuple(emb.shape)}")
    if emb.shape[0] < 1 or emb.shape[1] < 1:
        raise ValueError(f"{name} must have B >= 1 rows and D >= 1 columns, got {tuple(emb.shape)}")
    if not emb.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {emb.dtype}")
    return emb


def _check_pair(image_emb, text_emb) -> None:
    _check_embeddings("image_emb", image_emb)
    _check_embeddings("text_emb", text_emb)
    if image_emb.shape != text_emb.shape:
        raise ValueError(
            "image_emb and text_emb must have the same shape (B, D): row i of each is one "
            f"matching pair; got image_emb {tuple(image_emb.shape)} and text_emb "
            f"{tuple(text_emb.shape)}"
        )


def _as_logit_scale(logit_scale, like: Tensor) -> Tensor:
    if isinstance(logit_scale, bool) or not isinstance(logit_scale, (Tensor, int, float)):
        raise TypeError(
            "logit_scale must be a float or a one-element tensor holding log(scale), "
            f"got {type(logit_scale).__name__}"
        )
    if isinstance(logit_scale, Tensor):
        if logit_scale.numel() != 1:
            raise ValueError(
                "logit_scale must hold one number (the log of the scale), got shape "
                f"{tuple(logit_scale.shape)}"
            )
        return logit_scale.reshape(()).float()
    return torch.tensor(float(logit_scale), device=like.device)


def _check_k(k, n: int, what: str = "gallery") -> int:
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive int, got {k!r}")
    if k > n:
        raise ValueError(f"k={k} is larger than the {what} ({n} items)")
    return k


# --------------------------------------------------------------------------- the loss


def effective_scale(logit_scale) -> Tensor:
    """exp(logit_scale) capped at ``LOGIT_SCALE_MAX`` (100), as in CLIP.

    The cap is a clamp: past it the gradient to ``logit_scale`` is zero, so the learned
    temperature 1/scale cannot fall below 0.01 and the logits cannot blow up.
    """
    scale = _as_logit_scale(logit_scale, torch.empty(0))
    return scale.exp().clamp(max=LOGIT_SCALE_MAX)


def clip_logits(image_emb: Tensor, text_emb: Tensor, logit_scale) -> Tensor:
    """The (B, B) logits ``scale * image_emb @ text_emb.T``: row i = image i against every caption.

    Computed in float32 whatever the input dtype, so half-precision embeddings cannot
    overflow or lose the softmax's precision.
    """
    _check_pair(image_emb, text_emb)
    scale = effective_scale(_as_logit_scale(logit_scale, image_emb).to(image_emb.device))
    return scale * image_emb.float() @ text_emb.float().T


def clip_loss(image_emb: Tensor, text_emb: Tensor, logit_scale) -> Tensor:
    """CLIP's symmetric contrastive loss (InfoNCE in both directions).

    image_emb, text_emb: (B, D); row i of each is a matching pair. They are used as given:
    the model normalises them (TinyCLIP does), as in open_clip and TorchMultimodal.
    logit_scale: a float or one-element tensor t; the logits are min(exp(t), 100) * I @ T^T.

        L = ( CE(logits, arange(B)) + CE(logits^T, arange(B)) ) / 2

    Returns a float32 scalar. With uninformative embeddings (all logits equal) L = ln(B).
    """
    logits = clip_logits(image_emb, text_emb, logit_scale)
    targets = torch.arange(logits.shape[0], device=logits.device)
    return 0.5 * (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets))


def _keep_negatives(b: int, num_negatives: int, generator, device) -> Tensor:
    """(b, b) bool: the diagonal plus ``num_negatives`` random off-diagonal entries per row."""
    r = torch.rand(b, b, generator=generator).to(device)
    r.fill_diagonal_(2.0)  # above every random number: the positive is always kept
    kth = r.topk(num_negatives + 1, dim=1).values[:, -1:]
    return r >= kth


def clip_loss_few_negatives(
    image_emb: Tensor,
    text_emb: Tensor,
    logit_scale,
    num_negatives: int,
    generator: torch.Generator | None = None,
) -> Tensor:
    """``clip_loss`` where each row (and each column) sees its positive and only
    ``num_negatives`` randomly chosen negatives of the batch, the others masked out.

    It isolates the number of negatives from the batch size: the same pairs, the same
    positives and the same compute per step, only the softmax's competition changes. With
    uninformative embeddings it equals ln(num_negatives + 1); with ``num_negatives = B - 1``
    it is ``clip_loss``.
    """
    logits = clip_logits(image_emb, text_emb, logit_scale)
    b = logits.shape[0]
    if (
        isinstance(num_negatives, bool)
        or not isinstance(num_negatives, int)
        or not 0 <= num_negatives <= b - 1
    ):
        raise ValueError(
            f"num_negatives must be an int in [0, {b - 1}] (B - 1), got {num_negatives!r}"
        )
    targets = torch.arange(b, device=logits.device)
    rows = logits.masked_fill(
        ~_keep_negatives(b, num_negatives, generator, logits.device), float("-inf")
    )
    cols = logits.T.masked_fill(
        ~_keep_negatives(b, num_negatives, generator, logits.device), float("-inf")
    )
    return 0.5 * (F.cross_entropy(rows, targets) + F.cross_entropy(cols, targets))


def siglip_loss(image_emb: Tensor, text_emb: Tensor, logit_scale, logit_bias) -> Tensor:
    """The pairwise sigmoid loss of SigLIP (Zhai, Mustafa, Kolesnikov & Beyer, ICCV 2023).

    Every image-caption pair of the batch is its own binary problem, "do these two match?":
    with logits ``S_ij = min(exp(t), 100) * u_i . v_j + b`` and labels ``z_ij = +1`` on the
    diagonal, ``-1`` elsewhere,

        L = -(1/B) sum_i sum_j log sigmoid(z_ij S_ij)

    (a sum over the B captions, averaged over the B images, as in the paper). No softmax
    normalises a row, so no pair needs the whole batch: the loss splits into independent
    blocks. ``logit_bias`` b (a float or a one-element tensor; the paper learns it from -10)
    offsets the B^2 - B negatives' overwhelming majority at the start.
    """
    logits = clip_logits(image_emb, text_emb, logit_scale)
    if isinstance(logit_bias, bool) or not isinstance(logit_bias, (Tensor, int, float)):
        raise TypeError(
            f"logit_bias must be a float or a one-element tensor, got {type(logit_bias).__name__}"
        )
    if isinstance(logit_bias, Tensor) and logit_bias.numel() != 1:
        raise ValueError(f"logit_bias must hold one number, got shape {tuple(logit_bias.shape)}")
    bias = torch.as_tensor(logit_bias, dtype=torch.float32, device=logits.device).reshape(())
    labels = 2 * torch.eye(logits.shape[0], device=logits.device) - 1
    return -F.logsigmoid(labels * (logits + bias)).sum() / logits.shape[0]


def same_key_mask(keys: Sequence[Hashable], other: Sequence[Hashable] | None = None) -> Tensor:
    """(N, M) bool matrix, True where ``keys[i] == other[j]`` (``other`` defaults to ``keys``).

    With captions as keys, True off the diagonal marks *false negatives*: pairs that the
    plain CLIP loss pushes apart although their captions are identical.
    """
    if isinstance(keys, (str, bytes)) or not isinstance(keys, Sequence) or len(keys) == 0:
        raise ValueError("keys must be a non-empty sequence (list of captions, tuples, ids)")
    other = keys if other is None else other
    if isinstance(other, (str, bytes)) or not isinstance(other, Sequence) or len(other) == 0:
        raise ValueError("other must be a non-empty sequence, like keys")
    codes: dict[Hashable, int] = {}
    for name, seq in (("keys", keys), ("other", other)):
        bad = next((x for x in seq if not isinstance(x, Hashable)), None)
        if bad is not None:
            raise TypeError(
                f"{name} must hold hashable items (str, int, tuple), got {type(bad).__name__}"
            )
    a = torch.tensor([codes.setdefault(k, len(codes)) for k in keys])
    b = torch.tensor([codes.setdefault(k, len(codes)) for k in other])
    return a[:, None] == b[None, :]


def duplicate_loss_floor(keys: Sequence[Hashable]) -> float:
    """The lowest value ``clip_loss`` can reach on one batch whose pairs have these keys.

    Pairs with identical captions (equal keys) have identical text embeddings, so the best
    a model can do is split the probability evenly among the m_i pairs sharing row i's key:
    floor = mean_i ln(m_i). It is 0 only when every key in the batch is unique.
    """
    counts = same_key_mask(keys).sum(dim=1).double()
    return float(counts.log().mean())


def multi_positive_clip_loss(
    image_emb: Tensor, text_emb: Tensor, logit_scale, positives: Tensor
) -> Tensor:
    """The CLIP loss with soft targets: row i's target mass is spread evenly over every j with
    ``positives[i, j]`` True (e.g. identical captions), instead of only over j = i.

    positives: (B, B) bool with a True diagonal. With ``positives = eye(B)`` this equals
    ``clip_loss``. This is the multi-positive idea of supervised contrastive learning
    (Khosla et al., NeurIPS 2020) applied to image-text pairs.
    """
    logits = clip_logits(image_emb, text_emb, logit_scale)
    b = logits.shape[0]
    if not isinstance(positives, Tensor) or positives.shape != (b, b):
        got = tuple(positives.shape) if isinstance(positives, Tensor) else type(positives).__name__
        raise ValueError(f"positives must be a bool tensor of shape ({b}, {b}), got {got}")
    if positives.dtype != torch.bool:
        raise TypeError(f"positives must be a bool tensor (True = positive), got {positives.dtype}")
    positives = positives.to(device=logits.device)
    if not bool(positives.diagonal().all()):
        raise ValueError("positives must be True on its diagonal (each pair is its own positive)")
    targets = positives.float()
    row_targets = targets / targets.sum(dim=1, keepdim=True)
    col_targets = targets.T / targets.T.sum(dim=1, keepdim=True)
    return 0.5 * (F.cross_entropy(logits, row_targets) + F.cross_entropy(logits.T, col_targets))


# --------------------------------------------------------------------------- the model


class TinyCLIP(nn.Module):
    """Two towers, two linear projections into a shared space, L2 normalisation, a scale.

    image_encoder: images (B, C, H, W) -> (B, image_dim)
    text_encoder:  (ids (B, L) long, mask (B, L) bool) -> (B, text_dim)
    embed_dim:     size of the shared embedding space
    temperature:   initial temperature tau; ``logit_scale`` starts at log(1 / tau)
                   (CLIP: tau = 0.07, i.e. a scale of about 14.3)
    learn_temperature: True makes ``logit_scale`` a parameter; False freezes it (a buffer)
    logit_bias:    None (CLIP), or the initial learned bias b of the sigmoid loss (SigLIP: -10);
                   a model with a bias is trained by ``train_clip`` with ``siglip_loss``
    """

    def __init__(
        self,
        image_encoder: nn.Module,
        text_encoder: nn.Module,
        image_dim: int,
        text_dim: int,
        embed_dim: int = 64,
        temperature: float = 0.07,
        learn_temperature: bool = True,
        logit_bias: float | None = None,
    ):
        super().__init__()
        for name, value in (
            ("image_dim", image_dim),
            ("text_dim", text_dim),
            ("embed_dim", embed_dim),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if not isinstance(temperature, (int, float)) or not 0 < temperature <= 100:
            raise ValueError(f"temperature must be a number in (0, 100], got {temperature!r}")
        self.image_encoder = image_encoder
        self.text_encoder = text_encoder
        self.image_dim, self.text_dim, self.embed_dim = image_dim, text_dim, embed_dim
        # Linear projections without bias, as in CLIP.
        self.image_projection = nn.Linear(image_dim, embed_dim, bias=False)
        self.text_projection = nn.Linear(text_dim, embed_dim, bias=False)
        init = torch.tensor(math.log(1.0 / temperature))
        if learn_temperature:
            self.logit_scale = nn.Parameter(init)
        else:
            self.register_buffer("logit_scale", init)
        if logit_bias is not None:
            check_real(logit_bias, "logit_bias")
        # SigLIP's bias; None keeps a CLIP model's state dict exactly as before
        self.logit_bias = None if logit_bias is None else nn.Parameter(torch.tensor(logit_bias))

    @property
    def scale(self) -> float:
        """The scale in use, min(exp(logit_scale), 100)."""
        return float(effective_scale(self.logit_scale.detach()))

    @property
    def temperature(self) -> float:
        """The temperature in use, 1 / scale."""
        return 1.0 / self.scale

    def _project(self, features: Tensor, projection: nn.Linear, tower: str) -> Tensor:
        dim = projection.in_features
        if features.dim() != 2 or features.shape[1] != dim:
            raise ValueError(
                f"the {tower} encoder must return (B, {dim}), got {tuple(features.shape)}; "
                f"check {tower}_dim"
            )
        return F.normalize(projection(features), dim=-1)

    def encode_image(self, images: Tensor) -> Tensor:
        """images (B, C, H, W) -> unit-length embeddings (B, embed_dim)."""
        if not isinstance(images, Tensor) or images.dim() != 4:
            got = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
            raise ValueError(f"images must be a tensor of shape (B, C, H, W), got {got}")
        return self._project(self.image_encoder(images), self.image_projection, "image")

    def encode_text(self, ids: Tensor, mask: Tensor) -> Tensor:
        """ids (B, L) long, mask (B, L) bool (True = real token) -> (B, embed_dim), unit length."""
        if not isinstance(ids, Tensor) or ids.dim() != 2 or ids.is_floating_point():
            got = tuple(ids.shape) if isinstance(ids, Tensor) else type(ids).__name__
            raise ValueError(f"ids must be an integer tensor of shape (B, L), got {got}")
        if not isinstance(mask, Tensor) or mask.shape != ids.shape:
            got = tuple(mask.shape) if isinstance(mask, Tensor) else type(mask).__name__
            raise ValueError(
                f"mask must be a bool tensor shaped like ids {tuple(ids.shape)}, got {got}"
            )
        return self._project(self.text_encoder(ids, mask.bool()), self.text_projection, "text")

    def forward(self, images: Tensor, ids: Tensor, mask: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Returns (image_emb (B, E), text_emb (B, E), logit_scale): the inputs of clip_loss."""
        return self.encode_image(images), self.encode_text(ids, mask), self.logit_scale

    def loss(self, images: Tensor, ids: Tensor, mask: Tensor) -> Tensor:
        """clip_loss, or siglip_loss for a model with a ``logit_bias``."""
        if self.logit_bias is not None:
            return siglip_loss(*self(images, ids, mask), self.logit_bias)
        return clip_loss(*self(images, ids, mask))


def make_tiny_clip(
    vocab_size: int,
    embed_dim: int = 32,
    width: int = 64,
    in_channels: int = 3,
    image_channels: tuple[int, ...] = (16, 32, 64),
    downsample: int = 2,
    text_layers: int = 1,
    temperature: float = 0.07,
    learn_temperature: bool = True,
    logit_bias: float | None = None,
) -> TinyCLIP:
    """A TinyCLIP on the course's encoders: ``ImageCNN`` and ``TextTransformer``.

    width: output size of both towers; embed_dim: the shared space. ``downsample`` average-
    pools the images first (32x32 -> 16x16 by default: four times less compute, and fur,
    pose and background stay visible). The towers are small enough to train on a CPU in
    seconds; dropout is off because the runs are short.
    """
    from mmcourse.encoders import ImageCNN, TextTransformer

    if isinstance(downsample, bool) or not isinstance(downsample, int) or downsample < 1:
        raise ValueError(f"downsample must be a positive int, got {downsample!r}")
    check_int(width, "width")
    check_int(text_layers, "text_layers")
    if isinstance(image_channels, str) or not isinstance(image_channels, Sequence):
        raise TypeError(f"image_channels must be a tuple of ints, got {image_channels!r}")
    if not image_channels:
        raise ValueError("image_channels must list at least one block width")
    cnn = ImageCNN(in_channels, width, channels=tuple(image_channels))
    image_encoder = nn.Sequential(nn.AvgPool2d(downsample), cnn) if downsample > 1 else cnn
    text_encoder = TextTransformer(vocab_size, width, num_layers=text_layers, dropout=0.0)
    return TinyCLIP(
        image_encoder,
        text_encoder,
        width,
        width,
        embed_dim,
        temperature=temperature,
        learn_temperature=learn_temperature,
        logit_bias=logit_bias,
    )


# --------------------------------------------------------------------------- training


@dataclass
class CLIPHistory:
    """What ``train_clip`` records: one entry per step, and per epoch for the validation."""

    batch_size: int
    loss: list[float] = field(default_factory=list)  # training loss per step
    scale: list[float] = field(default_factory=list)  # min(exp(logit_scale), 100) per step
    val_recall: list[float] = field(default_factory=list)  # mean R@5 (both directions) per epoch

    @property
    def chance_loss(self) -> float:
        """ln(B): the loss of embeddings that carry no information."""
        return math.log(self.batch_size)


def _check_pairs_data(images, ids, mask) -> int:
    if not isinstance(images, Tensor) or images.dim() != 4:
        raise ValueError("images must be a tensor of shape (N, C, H, W)")
    if not images.is_floating_point():
        raise TypeError(f"images must be a floating-point tensor, got {images.dtype}")
    if images.shape[0] == 0:
        raise ValueError(f"images is empty (shape {tuple(images.shape)})")
    check_finite(images, "images")
    if not isinstance(ids, Tensor) or ids.dim() != 2 or ids.shape[0] != images.shape[0]:
        raise ValueError(
            f"ids must be a (N, L) tensor with N = {images.shape[0]} rows, like images"
        )
    if ids.is_floating_point() or ids.dtype == torch.bool:
        raise TypeError(f"ids must be an integer (long) tensor of token ids, got {ids.dtype}")
    if not isinstance(mask, Tensor) or mask.shape != ids.shape:
        raise ValueError("mask must be a tensor shaped like ids")
    if mask.dtype != torch.bool:
        raise TypeError(f"mask must be a bool tensor (True = real token), got {mask.dtype}")
    return images.shape[0]


def train_clip(
    model: TinyCLIP,
    images: Tensor,
    ids: Tensor,
    mask: Tensor,
    *,
    epochs: int = 10,
    batch_size: int = 128,
    lr: float = 2e-3,
    weight_decay: float = 0.0,
    seed: int = 0,
    val: tuple[Tensor, Tensor, Tensor] | None = None,
    loss_fn: Callable[..., Tensor] | None = None,
    keys: Sequence[Hashable] | None = None,
) -> CLIPHistory:
    """Train ``model`` with AdamW on shuffled mini-batches of (image, caption) pairs.

    images (N, C, H, W), ids/mask (N, L): the training pairs (moved to the model's device).
    The last incomplete batch is dropped so that every step has exactly ``batch_size``
    pairs (the loss, and ln(B), depend on B). ``val = (images, ids, mask)`` adds the mean
    recall@5 of both directions on that set after each epoch. ``keys`` (e.g. the captions)
    switches to ``multi_positive_clip_loss`` with identical keys as positives. A model with a
    ``logit_bias`` (SigLIP) is trained with ``siglip_loss`` unless ``loss_fn`` says otherwise.
    """
    check_module(model, "model")
    n = _check_pairs_data(images, ids, mask)
    check_real(lr, "lr", low=0.0, low_open=True)
    check_real(weight_decay, "weight_decay", low=0.0)
    check_seed(seed)
    if loss_fn is not None:
        check_callable(loss_fn, "loss_fn")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or not 1 <= batch_size <= n:
        raise ValueError(f"batch_size must be an int in [1, {n}], got {batch_size!r}")
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be a positive int, got {epochs!r}")
    if keys is not None and len(keys) != n:
        raise ValueError(f"keys must have one entry per pair ({n}), got {len(keys)}")
    device = next(model.parameters()).device
    images, ids, mask = images.to(device), ids.to(device), mask.to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    generator = seeded_generator(seed)
    history = CLIPHistory(batch_size=batch_size)
    positives_all = same_key_mask(keys).to(device) if keys is not None else None
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(n, generator=generator).to(device)
        for start in range(0, n - batch_size + 1, batch_size):
            idx = order[start : start + batch_size]
            image_emb, text_emb, logit_scale = model(images[idx], ids[idx], mask[idx])
            if positives_all is not None:
                loss = multi_positive_clip_loss(
                    image_emb, text_emb, logit_scale, positives_all[idx][:, idx]
                )
            elif loss_fn is None and getattr(model, "logit_bias", None) is not None:
                loss = siglip_loss(image_emb, text_emb, logit_scale, model.logit_bias)
            else:
                loss = (loss_fn or clip_loss)(image_emb, text_emb, logit_scale)
            value = float(loss.detach())
            if not math.isfinite(value):  # stop before the step spreads NaN into the weights
                raise FloatingPointError(
                    f"the training loss became {value} at epoch {epoch + 1}, step "
                    f"{len(history.loss) + 1}; try a smaller lr"
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            history.loss.append(value)
            history.scale.append(model.scale)
        if val is not None:
            report = retrieval_report(
                embed_images(model, val[0]), embed_texts(model, *val[1:]), ks=(5,)
            )
            history.val_recall.append(0.5 * (report["image→text R@5"] + report["text→image R@5"]))
    return history


@torch.no_grad()
def embed_images(model: TinyCLIP, images: Tensor, batch_size: int = 500) -> Tensor:
    """Unit-length embeddings (N, E) of ``images`` (N, C, H, W), in eval mode, on the CPU."""
    check_module(model, "model")
    check_int(batch_size, "batch_size")
    if not isinstance(images, Tensor) or images.dim() != 4 or not images.is_floating_point():
        got = (images.dtype, tuple(images.shape)) if isinstance(images, Tensor) else type(images)
        raise ValueError(f"images must be a float tensor of shape (N, C, H, W), got {got}")
    if images.shape[0] == 0:
        raise ValueError(f"images is empty (shape {tuple(images.shape)})")
    model.eval()
    device = next(model.parameters()).device
    parts = [
        model.encode_image(images[i : i + batch_size].to(device)).float().cpu()
        for i in range(0, len(images), batch_size)
    ]
    return torch.cat(parts)


@torch.no_grad()
def embed_texts(model: TinyCLIP, ids: Tensor, mask: Tensor, batch_size: int = 500) -> Tensor:
    """Unit-length embeddings (N, E) of tokenised captions, in eval mode, on the CPU."""
    check_module(model, "model")
    check_int(batch_size, "batch_size")
    if not isinstance(ids, Tensor) or ids.dim() != 2 or ids.shape[0] == 0:
        got = tuple(ids.shape) if isinstance(ids, Tensor) else type(ids).__name__
        raise ValueError(f"ids must be a non-empty (N, L) tensor of token ids, got {got}")
    if not isinstance(mask, Tensor) or mask.dtype != torch.bool or mask.shape != ids.shape:
        got = (mask.dtype, tuple(mask.shape)) if isinstance(mask, Tensor) else type(mask)
        raise ValueError(
            f"mask must be a bool tensor shaped like ids {tuple(ids.shape)}, got {got}"
        )
    model.eval()
    device = next(model.parameters()).device
    parts = [
        model.encode_text(ids[i : i + batch_size].to(device), mask[i : i + batch_size].to(device))
        .float()
        .cpu()
        for i in range(0, len(ids), batch_size)
    ]
    return torch.cat(parts)


def text_embedder(model: TinyCLIP, vocab, max_len: int) -> Callable[[list[str]], Tensor]:
    """A function ``texts -> (n, E)`` embeddings; tokenises with ``vocab.encode(texts, max_len)``
    (the course's ``mmcourse.text.Vocab``), then calls ``embed_texts``."""
    check_module(model, "model")
    check_int(max_len, "max_len")
    if isinstance(vocab, (str, bytes)) or not callable(getattr(vocab, "encode", None)):
        raise TypeError(f"vocab must be a mmcourse.text.Vocab, got {type(vocab).__name__}")

    def encode(texts: list[str]) -> Tensor:
        ids, mask = vocab.encode(list(texts), max_len)
        return embed_texts(model, ids, mask)

    return encode


# --------------------------------------------------------------------------- retrieval


def _relevance(relevant, n_query: int, n_gallery: int) -> Tensor:
    if relevant is None:
        if n_query != n_gallery:
            raise ValueError(
                f"similarity is {n_query} x {n_gallery}; without `relevant` it must be square "
                "(query i matches gallery item i)"
            )
        return torch.eye(n_query, dtype=torch.bool)
    if not isinstance(relevant, Tensor):
        relevant = torch.as_tensor(relevant)
    if relevant.dim() == 1:
        if (
            relevant.shape[0] != n_query
            or relevant.is_floating_point()
            or relevant.dtype == torch.bool
        ):
            raise ValueError(f"relevant as indices must be an int tensor of shape ({n_query},)")
        if relevant.min() < 0 or relevant.max() >= n_gallery:
            raise ValueError(f"relevant indices must lie in [0, {n_gallery})")
        return F.one_hot(relevant.long(), n_gallery).bool()
    if relevant.shape != (n_query, n_gallery):
        raise ValueError(
            f"relevant must be None, ({n_query},) indices or a ({n_query}, {n_gallery}) bool "
            f"matrix, got shape {tuple(relevant.shape)}"
        )
    relevant = relevant.bool()
    if not bool(relevant.any(dim=1).all()):
        raise ValueError("every query needs at least one relevant gallery item in `relevant`")
    return relevant


def retrieval_ranks(similarity: Tensor, relevant=None) -> Tensor:
    """(N_query,) 0-based rank of the best-scored relevant item for each query.

    Rank = how many irrelevant gallery items score at least as high as the best relevant
    one: ties count against the query (a pessimistic, deterministic rule).
    similarity (N_query, N_gallery); relevant: None (square; query i <-> item i), (N_query,)
    gallery indices, or a (N_query, N_gallery) bool matrix (any relevant item counts).
    """
    if not isinstance(similarity, Tensor) or similarity.dim() != 2:
        got = (
            tuple(similarity.shape) if isinstance(similarity, Tensor) else type(similarity).__name__
        )
        raise ValueError(f"similarity must be a (N_query, N_gallery) tensor, got {got}")
    sim = similarity.detach().float().cpu()
    if sim.numel() == 0:
        raise ValueError(f"similarity is empty (shape {tuple(sim.shape)})")
    nan_rows = torch.isnan(sim).any(dim=1)
    if bool(nan_rows.any()):  # a NaN compares False with everything: it would count as a hit
        raise ValueError(
            f"similarity contains NaN in {int(nan_rows.sum())} row(s) (first: row "
            f"{int(nan_rows.nonzero()[0])}); the embeddings behind it are broken"
        )
    rel = _relevance(relevant, *sim.shape).cpu()
    best = sim.masked_fill(~rel, float("-inf")).max(dim=1, keepdim=True).values
    return ((sim >= best) & ~rel).sum(dim=1)


def recall_at_k(similarity: Tensor, k: int, relevant=None) -> float:
    """Fraction of queries whose relevant item is among the k highest-scored gallery items."""
    if not isinstance(similarity, Tensor) or similarity.dim() != 2:
        got = (
            tuple(similarity.shape) if isinstance(similarity, Tensor) else type(similarity).__name__
        )
        raise ValueError(f"similarity must be a (N_query, N_gallery) tensor, got {got}")
    _check_k(k, similarity.shape[1])
    return float((retrieval_ranks(similarity, relevant) < k).float().mean())


def random_recall_at_k(n_gallery: int, k: int, n_relevant: int = 1) -> float:
    """Expected recall@k of a random ranking: 1 - C(N - r, k) / C(N, k); k / N when r = 1."""
    if isinstance(n_gallery, bool) or not isinstance(n_gallery, int) or n_gallery < 1:
        raise ValueError(f"n_gallery must be a positive int, got {n_gallery!r}")
    _check_k(k, n_gallery)
    if (
        isinstance(n_relevant, bool)
        or not isinstance(n_relevant, int)
        or not 1 <= n_relevant <= n_gallery
    ):
        raise ValueError(f"n_relevant must be an int in [1, {n_gallery}], got {n_relevant!r}")
    # C(N - r, k) / C(N, k) = C(N - k, r) / C(N, r): the same rational number, so the same
    # correctly rounded float, but with the smaller of k and r as the binomial's lower index
    # (math.comb(10**6, 10**5) takes seconds; math.comb(10**6, 1) does not)
    if n_relevant <= k:
        ratio = math.comb(n_gallery - k, n_relevant) / math.comb(n_gallery, n_relevant)
    else:
        ratio = math.comb(n_gallery - n_relevant, k) / math.comb(n_gallery, k)
    return 1.0 - ratio


def retrieval_report(
    image_emb: Tensor, text_emb: Tensor, ks: Sequence[int] = (1, 5, 10), relevant=None
) -> dict[str, float]:
    """Recall@k in both directions for N matching pairs (row i of each is a pair).

    Keys like "image→text R@5" and "text→image R@5". ``relevant`` (N, N) bool marks extra
    correct captions for each image (e.g. identical captions); its transpose is used for
    text→image.
    """
    _check_pair(image_emb, text_emb)
    if isinstance(ks, (str, int)) or not isinstance(ks, Sequence) or not ks:
        raise ValueError(f"ks must be a non-empty sequence of positive ints, got {ks!r}")
    for k in ks:
        try:
            _check_k(k, image_emb.shape[0])
        except ValueError as exc:
            raise ValueError(f"ks: {exc}") from exc
    sim = image_emb.detach().float().cpu() @ text_emb.detach().float().cpu().T
    rel_t = None
    if relevant is not None:
        relevant = _relevance(relevant, *sim.shape)
        rel_t = relevant.T
    out = {}
    for k in ks:
        out[f"image→text R@{k}"] = recall_at_k(sim, k, relevant)
        out[f"text→image R@{k}"] = recall_at_k(sim.T, k, rel_t)
    return out


# --------------------------------------------------------------------------- zero-shot


def format_prompts(class_names: Sequence[str], templates: Sequence[str]) -> list[list[str]]:
    """One prompt per (class, template): ``templates`` contain "{}" where the name goes.

    >>> format_prompts(["cat", "dog"], ["a photo of a {}", "a {} pet"])
    [['a photo of a cat', 'a cat pet'], ['a photo of a dog', 'a dog pet']]
    """
    if isinstance(class_names, str) or not class_names:
        raise ValueError("class_names must be a non-empty list of strings")
    bad = [name for name in class_names if not isinstance(name, str) or not name.strip()]
    if bad:
        raise ValueError(f"class_names must be non-empty strings, got {bad[0]!r}")
    if isinstance(templates, str) or not templates:
        raise ValueError("templates must be a non-empty list of strings with one '{}' each")
    for template in templates:
        if not isinstance(template, str) or template.count("{}") != 1:
            raise ValueError(
                f"each template needs exactly one '{{}}' placeholder, got {template!r}"
            )
    return [[template.format(name) for template in templates] for name in class_names]


def zero_shot_weights(
    encode_text: Callable[[list[str]], Tensor],
    class_names: Sequence[str],
    templates: Sequence[str],
) -> Tensor:
    """(C, E) class embeddings: the mean of the normalised prompt embeddings of each class,
    normalised again (CLIP's prompt ensembling). ``encode_text(list_of_str) -> (n, E)``."""
    check_callable(encode_text, "encode_text")
    prompts = format_prompts(class_names, templates)
    flat = [p for group in prompts for p in group]
    emb = encode_text(flat)
    if not isinstance(emb, Tensor) or emb.dim() != 2 or emb.shape[0] != len(flat):
        raise ValueError(
            f"encode_text must return a ({len(flat)}, E) tensor for {len(flat)} prompts"
        )
    emb = F.normalize(emb.float(), dim=-1).reshape(len(class_names), len(templates), -1)
    return F.normalize(emb.mean(dim=1), dim=-1)


def zero_shot_predict(image_emb: Tensor, class_weights: Tensor) -> tuple[Tensor, Tensor]:
    """Predicted class (N,) and cosine scores (N, C) of unit-length ``image_emb`` (N, E)."""
    _check_embeddings("image_emb", image_emb)
    _check_embeddings("class_weights", class_weights)
    check_finite(image_emb, "image_emb")
    check_finite(class_weights, "class_weights")
    if image_emb.shape[1] != class_weights.shape[1]:
        raise ValueError(
            f"image_emb has {image_emb.shape[1]} dimensions but class_weights has "
            f"{class_weights.shape[1]}"
        )
    scores = image_emb.float() @ class_weights.float().to(image_emb.device).T
    return scores.argmax(dim=1), scores


# --------------------------------------------------------------------------- search


def search_images(
    query: str,
    encode_text: Callable[[list[str]], Tensor],
    image_emb: Tensor,
    k: int = 5,
) -> tuple[Tensor, Tensor]:
    """Text -> image search: indices (k,) of the ``image_emb`` rows most similar to ``query``,
    best first, and their cosine similarities (k,). The widget of notebook 06 calls this."""
    if not isinstance(query, str) or not query.strip():
        raise ValueError(f"query must be a non-empty string, got {query!r}")
    _check_embeddings("image_emb", image_emb)
    check_finite(image_emb, "image_emb")
    _check_k(k, image_emb.shape[0], "image set")
    check_callable(encode_text, "encode_text")
    try:
        q = encode_text([query])
    except ValueError as exc:  # e.g. a query with no word the vocabulary can tokenise
        raise ValueError(f"query {query!r} could not be encoded: {exc}") from exc
    if not isinstance(q, Tensor) or q.shape != (1, image_emb.shape[1]):
        raise ValueError(
            f"encode_text must return a (1, {image_emb.shape[1]}) tensor for one query"
        )
    scores = image_emb.float() @ F.normalize(q.float(), dim=-1).to(image_emb.device)[0]
    top = torch.topk(scores, k)
    return top.indices, top.values


# --------------------------------------------------------------------------- LiT: locked tower


def stacked_contrastive_loss(
    image_emb: Tensor, text_emb: Tensor, logit_scale: Tensor, logit_bias: Tensor | None = None
) -> Tensor:
    """The loss of R independent models at once: (R,) values, one per replica.

    image_emb, text_emb: (R, B, E), row i of replica r being a matching pair; logit_scale
    (R,) (each replica's log-scale t, capped like ``clip_loss``); logit_bias None for
    ``clip_loss`` (InfoNCE), or (R,) for ``siglip_loss``. Entry r equals ``clip_loss`` or
    ``siglip_loss`` of replica r alone; summing the entries keeps the replicas' gradients
    apart, so one optimizer step trains them all (Adam updates each weight on its own).
    """
    for name, emb in (("image_emb", image_emb), ("text_emb", text_emb)):
        if not isinstance(emb, Tensor) or emb.dim() != 3 or not emb.is_floating_point():
            got = tuple(emb.shape) if isinstance(emb, Tensor) else type(emb).__name__
            raise ValueError(f"{name} must be a float tensor of shape (R, B, E), got {got}")
    if image_emb.shape != text_emb.shape:
        raise ValueError(
            f"image_emb and text_emb must have the same shape (R, B, E), got "
            f"{tuple(image_emb.shape)} and {tuple(text_emb.shape)}"
        )
    r, b, _ = image_emb.shape
    for name, value in (("logit_scale", logit_scale), ("logit_bias", logit_bias)):
        if name == "logit_bias" and value is None:
            continue
        if not isinstance(value, Tensor) or value.shape != (r,):
            got = tuple(value.shape) if isinstance(value, Tensor) else type(value).__name__
            raise ValueError(f"{name} must be a tensor of shape ({r},), one per replica, got {got}")
    scale = logit_scale.float().exp().clamp(max=LOGIT_SCALE_MAX)
    logits = scale[:, None, None] * image_emb.float() @ text_emb.float().transpose(1, 2)
    if logit_bias is None:  # InfoNCE over rows and columns, averaged over the B pairs
        targets = torch.arange(b, device=logits.device).expand(r, b)
        rows = F.cross_entropy(logits.transpose(1, 2), targets, reduction="none").mean(1)
        cols = F.cross_entropy(logits, targets, reduction="none").mean(1)
        return 0.5 * (rows + cols)
    labels = 2 * torch.eye(b, device=logits.device) - 1
    z = labels * (logits + logit_bias.float()[:, None, None])
    return -F.logsigmoid(z).sum(dim=(1, 2)) / b


@dataclass
class LiTHeads:
    """R pairs of linear projection heads trained on locked features (``train_lit_heads``).

    image_projection (R, D_image, E), text_projection (R, D_text, E), logit_scale (R,) and,
    for the sigmoid loss, logit_bias (R,); ``loss`` is "softmax" or "sigmoid"; ``steps`` the
    number of optimizer steps taken.
    """

    loss: str
    image_projection: Tensor
    text_projection: Tensor
    logit_scale: Tensor
    logit_bias: Tensor | None
    steps: int

    @torch.no_grad()
    def embed(self, image_features: Tensor, text_features: Tensor) -> tuple[Tensor, Tensor]:
        """Unit-length embeddings (R, N, E) of image and text feature rows, one per replica."""
        img = F.normalize(image_features.float() @ self.image_projection, dim=-1)
        txt = F.normalize(text_features.float() @ self.text_projection, dim=-1)
        return img, txt


LIT_LOSSES = ("softmax", "sigmoid")


def train_lit_heads(
    image_features: Tensor,
    text_features: Tensor,
    *,
    batch_size: int,
    examples: int,
    seeds: Sequence[int] = (0,),
    losses: Sequence[str] = LIT_LOSSES,
    embed_dim: int = 32,
    lr: float = 1e-2,
    temperature: float = 0.07,
    sigmoid_temperature: float = 0.1,
    logit_bias: float = -10.0,
) -> dict[str, LiTHeads]:
    """Train only linear projection heads on locked (precomputed) features, "LiT" style.

    LiT (Zhai et al., CVPR 2022) locks a pretrained image tower and trains the rest; with
    both sides given as features, what remains are the two projections into the shared
    space, the log-scale t and (sigmoid) the bias b. For every loss in ``losses``
    ("softmax": InfoNCE, scale from 1 / ``temperature``, CLIP's 0.07; "sigmoid": SigLIP, scale
    1 / ``sigmoid_temperature`` = 10 and bias ``logit_bias`` = -10, the paper's start) and every
    seed, one replica is trained, all at once (``stacked_contrastive_loss``; AdamW updates each
    weight on its own, so this equals separate runs). A seed fixes a replica's initial heads
    (drawn like ``nn.Linear``'s weights, the same for every loss) and its shuffling by
    ``seeded_generator(seed)``: the losses are compared on the same batches. ``examples``
    pairs are seen in ``examples // batch_size`` steps at a constant learning rate, as in
    ``train_clip``; each epoch drops its last incomplete batch, so no batch holds a pair
    twice. Returns {loss: LiTHeads}.
    """
    for name, feats in (("image_features", image_features), ("text_features", text_features)):
        if not isinstance(feats, Tensor) or feats.dim() != 2 or not feats.is_floating_point():
            got = tuple(feats.shape) if isinstance(feats, Tensor) else type(feats).__name__
            raise ValueError(f"{name} must be a float tensor of shape (N, D), got {got}")
        check_finite(feats, name)
    n = image_features.shape[0]
    if text_features.shape[0] != n:
        raise ValueError(
            f"image_features and text_features must have one row per pair, got {n} and "
            f"{text_features.shape[0]} rows"
        )
    if isinstance(losses, str) or not losses or any(x not in LIT_LOSSES for x in losses):
        raise ValueError(f"losses must be a non-empty list drawn from {LIT_LOSSES}, got {losses!r}")
    if len(set(losses)) != len(losses):
        raise ValueError(f"losses must not repeat a loss, got {losses!r}")
    check_int(batch_size, "batch_size", minimum=2, maximum=n)
    check_int(examples, "examples", minimum=batch_size)
    check_int(embed_dim, "embed_dim")
    check_real(lr, "lr", low=0.0, low_open=True)
    check_real(temperature, "temperature", low=0.0, low_open=True)
    check_real(sigmoid_temperature, "sigmoid_temperature", low=0.0, low_open=True)
    check_real(logit_bias, "logit_bias")
    if isinstance(seeds, (str, bytes)) or not isinstance(seeds, Sequence) or not seeds:
        raise ValueError(f"seeds must be a non-empty sequence of ints, got {seeds!r}")
    for seed in seeds:
        check_seed(seed)
    x_img, x_txt = image_features.float(), text_features.float()
    d_img, d_txt, r, m = x_img.shape[1], x_txt.shape[1], len(seeds), len(losses)
    generators = [seeded_generator(seed) for seed in seeds]

    def init(rows: int, gen: torch.Generator) -> Tensor:  # nn.Linear's U(-1/sqrt(d), 1/sqrt(d))
        return (torch.rand(rows, embed_dim, generator=gen) * 2 - 1) / math.sqrt(rows)

    heads = [(init(d_img, g), init(d_txt, g)) for g in generators]  # the same start per loss
    w_img = torch.stack([h[0] for h in heads] * m)  # (M * R, D_image, E), loss-major
    w_txt = torch.stack([h[1] for h in heads] * m)
    t0 = {"softmax": 1.0 / temperature, "sigmoid": 1.0 / sigmoid_temperature}
    t = torch.tensor([math.log(t0[name]) for name in losses for _ in seeds])
    b = torch.full((r,), float(logit_bias))
    # one flat parameter vector: a single tensor for AdamW, however many replicas
    flat = torch.cat([w_img.flatten(), w_txt.flatten(), t, b]).requires_grad_()
    sizes = [w_img.numel(), w_txt.numel(), m * r, r]
    optimizer = torch.optim.AdamW([flat], lr=lr, weight_decay=0.0)

    def unpack(vector: Tensor):
        a, c, e, f = vector.split(sizes)
        return a.view(m * r, d_img, embed_dim), c.view(m * r, d_txt, embed_dim), e, f

    steps, per_epoch = examples // batch_size, n // batch_size
    done = 0
    while done < steps:
        order = torch.stack([torch.randperm(n, generator=g) for g in generators])
        for j in range(min(per_epoch, steps - done)):
            idx = order[:, j * batch_size : (j + 1) * batch_size].repeat(m, 1)  # (M * R, B)
            wi, wt, ts, bs = unpack(flat)
            img = F.normalize(x_img[idx] @ wi, dim=-1)
            txt = F.normalize(x_txt[idx] @ wt, dim=-1)
            total = 0.0
            for k, name in enumerate(losses):
                part = slice(k * r, (k + 1) * r)
                bias = bs if name == "sigmoid" else None
                total = total + stacked_contrastive_loss(img[part], txt[part], ts[part], bias).sum()
            optimizer.zero_grad(set_to_none=True)
            total.backward()
            optimizer.step()
        done += min(per_epoch, steps - done)
    wi, wt, ts, bs = (x.detach().clone() for x in unpack(flat))
    out = {}
    for k, name in enumerate(losses):
        part = slice(k * r, (k + 1) * r)
        bias = bs if name == "sigmoid" else None
        out[name] = LiTHeads(name, wi[part], wt[part], ts[part], bias, steps)
    return out
