"""Vision-language models, tiny: how LLaVA, Flamingo and BLIP-2 join a vision encoder to a
language model (notebook 07).

The pieces, each small enough to read in one sitting:

- ``patchify`` and ``PatchEmbedding``: ViT's first step, an image cut into P x P patches,
  each flattened and projected linearly (Dosovitskiy et al., ICLR 2021).
- ``Block`` / ``ViTEncoder``: a pre-norm Transformer block and a stack of them over patches.
- ``make_projector``: the LLaVA connector, a linear map (LLaVA, Liu et al., NeurIPS 2023) or
  a 2-layer MLP (LLaVA-1.5, Liu et al., "Improved Baselines with Visual Instruction Tuning",
  2023) from vision features to the language model's token space.
- ``GatedCrossAttentionBlock``: Flamingo's tanh-gated cross-attention (Alayrac et al.,
  NeurIPS 2022); an identity at initialisation, so a pretrained LM is untouched at first.
- ``QFormer``: BLIP-2's idea (Li et al., ICML 2023): a few learned queries cross-attend to
  the image features and hand the language model a short, fixed-length summary.
- ``TinyVLM``: a small causal decoder that reads image tokens through one of these
  connectors and generates text; ``generate`` does greedy or temperature sampling.
- Counting: ``count_parameters``, ``count_flops`` (measured with PyTorch's FlopCounterMode),
  ``estimate_forward_flops`` (the 2 x parameters x tokens rule of Kaplan et al., 2020),
  ``vit_image_params`` and ``published_figures`` (cited figures of CLIP and LLaVA-1.5).

Shapes: B batch, C channels, H/W image size, P patch size, N patches, L text length,
V vocabulary size, D model width, Q learned queries.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from mmcourse._checks import check_dropout, check_finite, check_int, check_real, check_seed
from mmcourse.utils import (
    count_parameters,  # noqa: F401  (re-exported)
    seeded_generator,
)

__all__ = [
    "patchify",
    "PatchEmbedding",
    "causal_mask",
    "Block",
    "ViTEncoder",
    "make_projector",
    "GatedCrossAttentionBlock",
    "QFormer",
    "TinyVLM",
    "CONNECTORS",
    "next_token_loss",
    "sample_next_token",
    "generate",
    "fit_vlm",
    "QUESTIONS",
    "CAPTION_PROMPT",
    "SPECIALS",
    "build_vocab",
    "encode_pairs",
    "encode_prompt",
    "decode_answers",
    "mentioned_value",
    "attribute_accuracy",
    "nearest_neighbours",
    "count_parameters",
    "count_flops",
    "estimate_forward_flops",
    "vit_image_params",
    "published_figures",
]

CONNECTORS = ("linear", "mlp", "qformer", "xattn")


# --------------------------------------------------------------------------- input checks
def _check_positive_int(value, name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value


def _check_images(
    images, name: str = "images", channels: int | None = None, size: int | None = None
) -> torch.Tensor:
    if not isinstance(images, torch.Tensor):
        raise TypeError(
            f"{name} must be a torch.Tensor of shape (B, C, H, W), got {type(images).__name__}"
        )
    if images.dim() != 4:
        raise ValueError(f"{name} must have shape (B, C, H, W), got shape {tuple(images.shape)}")
    if not images.is_floating_point():
        raise TypeError(f"{name} must be a float tensor, got dtype {images.dtype}")
    if images.shape[0] == 0:
        raise ValueError(f"{name} is an empty batch (shape {tuple(images.shape)})")
    if channels is not None and images.shape[1] != channels:
        raise ValueError(f"{name} must have {channels} channels, got shape {tuple(images.shape)}")
    if size is not None and tuple(images.shape[2:]) != (size, size):
        raise ValueError(f"{name} must be {size}x{size} images, got shape {tuple(images.shape)}")
    return images


def _check_tokens(x, name: str, dim: int | None = None) -> torch.Tensor:
    """A float (B, T, D) sequence of token vectors."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (B, T, D), got {type(x).__name__}")
    if x.dim() != 3 or not x.is_floating_point():
        raise ValueError(
            f"{name} must be a float tensor of shape (B, T, D), "
            f"got shape {tuple(x.shape)} and dtype {x.dtype}"
        )
    if dim is not None and x.shape[-1] != dim:
        raise ValueError(f"{name} must have last dimension {dim}, got shape {tuple(x.shape)}")
    return x


def _check_ids(ids, name: str, vocab_size: int, max_len: int | None = None) -> torch.Tensor:
    if not isinstance(ids, torch.Tensor):
        raise TypeError(f"{name} must be a LongTensor of shape (B, L), got {type(ids).__name__}")
    if ids.dim() != 2 or ids.dtype != torch.long:
        raise ValueError(
            f"{name} must be a LongTensor of shape (B, L), "
            f"got shape {tuple(ids.shape)} and dtype {ids.dtype}"
        )
    if ids.shape[1] == 0:
        raise ValueError(f"{name} must hold at least one token per row")
    if max_len is not None and ids.shape[1] > max_len:
        raise ValueError(
            f"{name} has length {ids.shape[1]}, longer than the model's max_text_len={max_len}"
        )
    if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= vocab_size):
        raise ValueError(
            f"{name} must hold token ids in [0, {vocab_size}), "
            f"got values in [{int(ids.min())}, {int(ids.max())}]"
        )
    return ids


# --------------------------------------------------------------------------- vision encoder
def patchify(images: torch.Tensor, patch_size: int) -> torch.Tensor:
    """Cut images into non-overlapping patches, flattened in (channel, row, column) order.

    images (B, C, H, W) -> patches (B, N, C*P*P) with N = (H/P) * (W/P), patches listed row
    by row (left to right, top to bottom), the order ViT and ``PatchEmbedding`` use.
    """
    _check_images(images)
    _check_positive_int(patch_size, "patch_size")
    b, c, h, w = images.shape
    if h % patch_size or w % patch_size:
        raise ValueError(
            f"patch_size={patch_size} must divide the image height and width, "
            f"got images of shape {tuple(images.shape)}"
        )
    x = images.reshape(b, c, h // patch_size, patch_size, w // patch_size, patch_size)
    x = x.permute(0, 2, 4, 1, 3, 5)  # (B, rows, cols, C, P, P): one patch per (row, col)
    return x.reshape(b, (h // patch_size) * (w // patch_size), c * patch_size * patch_size)


class PatchEmbedding(nn.Module):
    """ViT's patch embedding: a linear map of each flattened patch plus a learned position.

    As in ViT (Dosovitskiy et al., ICLR 2021), a Conv2d with kernel = stride = P: exactly a
    Linear layer applied to ``patchify``'s output (the tests prove it), just faster.
    images (B, C, H, W) -> tokens (B, N, dim).
    """

    def __init__(
        self, image_size: int = 32, patch_size: int = 8, in_channels: int = 3, dim: int = 64
    ):
        super().__init__()
        for name, value in [
            ("image_size", image_size),
            ("patch_size", patch_size),
            ("in_channels", in_channels),
            ("dim", dim),
        ]:
            _check_positive_int(value, name)
        if image_size % patch_size:
            raise ValueError(f"patch_size={patch_size} must divide image_size={image_size}")
        self.image_size, self.patch_size, self.in_channels = image_size, patch_size, in_channels
        self.num_patches = (image_size // patch_size) ** 2
        self.proj = nn.Conv2d(in_channels, dim, kernel_size=patch_size, stride=patch_size)
        self.pos = nn.Parameter(torch.randn(1, self.num_patches, dim) * 0.02)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        _check_images(images, channels=self.in_channels, size=self.image_size)
        x = self.proj(images)  # (B, dim, H/P, W/P)
        return x.flatten(2).transpose(1, 2) + self.pos  # (B, N, dim), patches row by row


def causal_mask(n: int, device=None) -> torch.Tensor:
    """Boolean (n, n) mask, True where attention is NOT allowed: position i sees j <= i only."""
    _check_positive_int(n, "n")
    return torch.ones(n, n, dtype=torch.bool, device=device).triu(1)


class Block(nn.Module):
    """A pre-norm Transformer block (as in GPT-2 and minGPT).

    x (B, T, dim) -> x + SelfAttn(LN(x)), then + MLP(LN(x)); ``attn_mask`` is a boolean
    (T, T) mask, True = blocked (``causal_mask`` for a language model, None for ViT).
    """

    def __init__(self, dim: int, n_heads: int, mlp_ratio: int = 4, dropout: float = 0.0):
        super().__init__()
        _check_positive_int(dim, "dim")
        _check_positive_int(n_heads, "n_heads")
        _check_positive_int(mlp_ratio, "mlp_ratio")
        check_dropout(dropout)
        if dim % n_heads:
            raise ValueError(f"dim={dim} must be divisible by n_heads={n_heads}")
        self.ln1 = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, n_heads, dropout=dropout, batch_first=True)
        self.ln2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(
            nn.Linear(dim, mlp_ratio * dim),
            nn.GELU(),
            nn.Linear(mlp_ratio * dim, dim),
            nn.Dropout(dropout),
        )

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        h = self.ln1(x)
        x = x + self.attn(h, h, h, attn_mask=attn_mask, need_weights=False)[0]
        return x + self.mlp(self.ln2(x))


class ViTEncoder(nn.Module):
    """A small Vision Transformer: patch embedding, ``depth`` blocks, a final LayerNorm.

    images (B, C, H, W) -> patch features (B, N, dim). No [CLS] token: a VLM reads every
    patch (LLaVA feeds the LM all patch features of CLIP's penultimate layer).
    """

    def __init__(
        self,
        image_size: int = 32,
        patch_size: int = 8,
        in_channels: int = 3,
        dim: int = 64,
        depth: int = 1,
        n_heads: int = 4,
    ):
        super().__init__()
        _check_positive_int(depth, "depth")
        self.patch = PatchEmbedding(image_size, patch_size, in_channels, dim)
        self.blocks = nn.ModuleList(Block(dim, n_heads) for _ in range(depth))
        self.ln = nn.LayerNorm(dim)
        self.dim, self.num_patches = dim, self.patch.num_patches

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.patch(images)
        for block in self.blocks:
            x = block(x)
        return self.ln(x)


# --------------------------------------------------------------------------- connectors
def make_projector(kind: str, in_dim: int, out_dim: int) -> nn.Module:
    """The LLaVA connector from vision features (..., in_dim) to LM tokens (..., out_dim).

    ``"linear"``: one matrix, as in LLaVA (Liu et al., NeurIPS 2023).
    ``"mlp"``: Linear -> GELU -> Linear, as in LLaVA-1.5 (Liu et al., 2023).
    """
    _check_positive_int(in_dim, "in_dim")
    _check_positive_int(out_dim, "out_dim")
    if kind == "linear":
        return nn.Linear(in_dim, out_dim)
    if kind == "mlp":
        return nn.Sequential(nn.Linear(in_dim, out_dim), nn.GELU(), nn.Linear(out_dim, out_dim))
    raise ValueError(f"kind must be 'linear' or 'mlp', got {kind!r}")


class GatedCrossAttentionBlock(nn.Module):
    """Flamingo's GATED XATTN-DENSE block (Alayrac et al., NeurIPS 2022).

    Text tokens x (B, L, dim) attend to visual tokens ``media`` (B, N, kv_dim):

        x <- x + tanh(alpha_attn) * CrossAttn(LN(x), media)
        x <- x + tanh(alpha_dense) * MLP(LN(x))

    Both gates start at alpha = 0, so the block is exactly the identity at initialisation:
    inserted between the layers of a frozen, pretrained LM it changes nothing until training
    opens the gates. Returns (B, L, dim).
    """

    def __init__(self, dim: int, kv_dim: int, n_heads: int = 4, mlp_ratio: int = 4):
        super().__init__()
        for name, value in [
            ("dim", dim),
            ("kv_dim", kv_dim),
            ("n_heads", n_heads),
            ("mlp_ratio", mlp_ratio),
        ]:
            _check_positive_int(value, name)
        if dim % n_heads:
            raise ValueError(f"dim={dim} must be divisible by n_heads={n_heads}")
        self.dim, self.kv_dim = dim, kv_dim
        self.ln_attn = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, n_heads, kdim=kv_dim, vdim=kv_dim, batch_first=True)
        self.ln_mlp = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(
            nn.Linear(dim, mlp_ratio * dim), nn.GELU(), nn.Linear(mlp_ratio * dim, dim)
        )
        self.alpha_attn = nn.Parameter(torch.zeros(1))
        self.alpha_dense = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor, media: torch.Tensor) -> torch.Tensor:
        _check_tokens(x, "x", self.dim)
        _check_tokens(media, "media", self.kv_dim)
        if media.shape[0] != x.shape[0]:
            raise ValueError(
                f"x and media must have the same batch size, got {x.shape[0]} and {media.shape[0]}"
            )
        attended = self.attn(self.ln_attn(x), media, media, need_weights=False)[0]
        x = x + torch.tanh(self.alpha_attn) * attended
        return x + torch.tanh(self.alpha_dense) * self.mlp(self.ln_mlp(x))


class QFormer(nn.Module):
    """The Q-Former idea of BLIP-2 (Li et al., ICML 2023), its query branch only.

    ``num_queries`` learned vectors (the queries) self-attend, then cross-attend to the image
    features (B, N, kv_dim), then pass an MLP; ``depth`` such layers. Output (B, Q, dim):
    a fixed number of visual tokens whatever N is (BLIP-2: 32 queries of width 768 read
    ViT-g's 257 patch features). BLIP-2's text branch and its three pretraining losses are
    not reproduced here.
    """

    def __init__(
        self,
        num_queries: int = 4,
        dim: int = 64,
        kv_dim: int = 64,
        n_heads: int = 4,
        depth: int = 1,
    ):
        super().__init__()
        for name, value in [
            ("num_queries", num_queries),
            ("dim", dim),
            ("kv_dim", kv_dim),
            ("n_heads", n_heads),
            ("depth", depth),
        ]:
            _check_positive_int(value, name)
        if dim % n_heads:
            raise ValueError(f"dim={dim} must be divisible by n_heads={n_heads}")
        self.num_queries, self.dim, self.kv_dim = num_queries, dim, kv_dim
        self.queries = nn.Parameter(torch.randn(1, num_queries, dim) * 0.02)
        self.self_blocks = nn.ModuleList(Block(dim, n_heads) for _ in range(depth))
        self.cross_ln = nn.ModuleList(nn.LayerNorm(dim) for _ in range(depth))
        self.cross = nn.ModuleList(
            nn.MultiheadAttention(dim, n_heads, kdim=kv_dim, vdim=kv_dim, batch_first=True)
            for _ in range(depth)
        )
        self.ln = nn.LayerNorm(dim)

    def forward(self, image_features: torch.Tensor) -> torch.Tensor:
        _check_tokens(image_features, "image_features", self.kv_dim)
        q = self.queries.expand(image_features.shape[0], -1, -1)
        for block, ln, cross in zip(self.self_blocks, self.cross_ln, self.cross, strict=True):
            h = ln(q)
            q = q + cross(h, image_features, image_features, need_weights=False)[0]
            q = block(q)  # self-attention among the queries, then the MLP
        return self.ln(q)


# --------------------------------------------------------------------------- the model
class TinyVLM(nn.Module):
    """A tiny vision-language model: ViT encoder -> connector -> causal Transformer decoder.

    ``connector``:
      - ``"linear"`` / ``"mlp"`` (LLaVA / LLaVA-1.5): every patch feature is projected into
        the LM's token space and put before the text, as N "visual words".
      - ``"qformer"`` (BLIP-2): Q learned queries summarise the patches; their outputs are
        projected linearly and put before the text (Q visual words instead of N).
      - ``"xattn"`` (Flamingo): no visual words; a tanh-gated cross-attention block before
        each decoder block lets the text attend to the patch features.

    ``forward(images (B, C, H, W), ids (B, L)) -> logits (B, L, V)``: the logits at text
    position t predict token t + 1. Attention is causal over [visual words; text].
    """

    def __init__(
        self,
        vocab_size: int,
        max_text_len: int = 24,
        connector: str = "mlp",
        image_size: int = 32,
        patch_size: int = 8,
        in_channels: int = 3,
        vision_dim: int = 64,
        vision_depth: int = 1,
        d_model: int = 64,
        depth: int = 2,
        n_heads: int = 4,
        num_queries: int = 4,
    ):
        super().__init__()
        for name, value in [
            ("vocab_size", vocab_size),
            ("max_text_len", max_text_len),
            ("vision_dim", vision_dim),
            ("vision_depth", vision_depth),
            ("d_model", d_model),
            ("depth", depth),
            ("n_heads", n_heads),
            ("num_queries", num_queries),
        ]:
            _check_positive_int(value, name)  # named here, not as the layers' arguments
        if connector not in CONNECTORS:
            raise ValueError(f"connector must be one of {CONNECTORS}, got {connector!r}")
        self.vocab_size, self.max_text_len, self.connector = vocab_size, max_text_len, connector
        self.vision = ViTEncoder(
            image_size, patch_size, in_channels, vision_dim, vision_depth, n_heads
        )
        if connector in ("linear", "mlp"):
            self.projector = make_projector(connector, vision_dim, d_model)
            self.num_prefix = self.vision.num_patches
        elif connector == "qformer":
            self.qformer = QFormer(num_queries, vision_dim, vision_dim, n_heads)
            self.projector = nn.Linear(vision_dim, d_model)  # BLIP-2's FC layer into the LM
            self.num_prefix = num_queries
        else:
            self.xattn = nn.ModuleList(
                GatedCrossAttentionBlock(d_model, vision_dim, n_heads) for _ in range(depth)
            )
            self.num_prefix = 0
        self.tok_emb = nn.Embedding(vocab_size, d_model)
        nn.init.normal_(
            self.tok_emb.weight, std=0.02
        )  # GPT-2's init: text and image tokens start at a similar scale
        self.pos_emb = nn.Parameter(torch.randn(1, self.num_prefix + max_text_len, d_model) * 0.02)
        self.blocks = nn.ModuleList(Block(d_model, n_heads) for _ in range(depth))
        self.ln_f = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, vocab_size, bias=False)
        self.register_buffer("_mask", causal_mask(self.num_prefix + max_text_len), persistent=False)

    def visual_tokens(self, images: torch.Tensor) -> torch.Tensor:
        """The image as the decoder sees it: (B, num_prefix, d_model) prefix tokens, or the
        (B, N, vision_dim) patch features that the ``"xattn"`` blocks attend to."""
        features = self.vision(images)
        if self.connector == "qformer":
            return self.projector(self.qformer(features))
        if self.connector == "xattn":
            return features
        return self.projector(features)

    def forward(self, images: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        _check_ids(ids, "ids", self.vocab_size, self.max_text_len)
        _check_images(images)
        if images.shape[0] != ids.shape[0]:
            raise ValueError(
                f"images and ids must have the same batch size, "
                f"got {images.shape[0]} and {ids.shape[0]}"
            )
        visual = self.visual_tokens(images)
        x = self.tok_emb(ids)
        if self.num_prefix:
            x = torch.cat([visual, x], dim=1)
        n = x.shape[1]
        x = x + self.pos_emb[:, :n]
        mask = self._mask[:n, :n]
        for i, block in enumerate(self.blocks):
            if self.connector == "xattn":
                x = self.xattn[i](x, visual)
            x = block(x, attn_mask=mask)
        return self.head(self.ln_f(x[:, self.num_prefix :]))


def next_token_loss(
    logits: torch.Tensor, ids: torch.Tensor, target_mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Mean cross-entropy of predicting ids[:, t+1] from logits[:, t].

    ``target_mask`` (B, L) bool marks the tokens that count as targets (True): padding is
    never a target, and in VQA the question is context, not a target (as in LLaVA, whose
    loss covers only the assistant's answer). None = every token after the first.
    """
    if not isinstance(logits, torch.Tensor) or logits.dim() != 3:
        raise ValueError("logits must be a tensor of shape (B, L, V)")
    if not logits.is_floating_point():
        raise TypeError(f"logits must be a floating-point tensor, got {logits.dtype}")
    if not isinstance(ids, torch.Tensor) or ids.shape != logits.shape[:2]:
        raise ValueError(
            f"ids must have shape {tuple(logits.shape[:2])} to match logits, "
            f"got {None if not isinstance(ids, torch.Tensor) else tuple(ids.shape)}"
        )
    if ids.dtype != torch.long:
        raise TypeError(f"ids must be a LongTensor of token ids, got {ids.dtype}")
    if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= logits.shape[-1]):
        raise ValueError(
            f"ids must hold token ids in [0, {logits.shape[-1]}) (V, the logits' last size), "
            f"got values in [{int(ids.min())}, {int(ids.max())}]"
        )
    if target_mask is None:
        target_mask = torch.ones_like(ids, dtype=torch.bool)
    elif (
        not isinstance(target_mask, torch.Tensor)
        or target_mask.shape != ids.shape
        or target_mask.dtype != torch.bool
    ):
        raise ValueError(f"target_mask must be a bool tensor of shape {tuple(ids.shape)}")
    targets = ids[:, 1:].masked_fill(~target_mask[:, 1:], -100)  # -100: ignored
    if not bool((targets != -100).any()):
        raise ValueError("target_mask selects no target token after the first position")
    return F.cross_entropy(
        logits[:, :-1].reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=-100
    )


# --------------------------------------------------------------------------- generation
def sample_next_token(
    logits: torch.Tensor, temperature: float = 0.0, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Pick the next token from logits (B, V) -> ids (B,).

    ``temperature == 0``: greedy (argmax). ``temperature > 0``: sample from
    softmax(logits / temperature); below 1 sharpens the distribution, above 1 flattens it.
    """
    if not isinstance(logits, torch.Tensor) or logits.dim() != 2:
        raise ValueError("logits must be a tensor of shape (B, V)")
    if not logits.is_floating_point():
        raise TypeError(f"logits must be a floating-point tensor, got {logits.dtype}")
    if logits.numel() == 0:
        raise ValueError(f"logits is empty (shape {tuple(logits.shape)})")
    bad = torch.isnan(logits) | torch.isposinf(logits)  # -inf is a valid "never this token"
    if bool(bad.any()):
        raise ValueError(
            f"logits contain NaN or +inf in {int(bad.any(dim=1).sum())} row(s): the model's "
            "output is broken (argmax would silently pick a meaningless token)"
        )
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got {generator!r}")
    if (
        isinstance(temperature, bool)
        or not isinstance(temperature, (int, float))
        or not math.isfinite(temperature)
        or temperature < 0
    ):
        raise ValueError(f"temperature must be a finite number >= 0, got {temperature!r}")
    if temperature == 0:
        return logits.argmax(dim=-1)
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(1)


@torch.no_grad()
def generate(
    model: TinyVLM,
    images: torch.Tensor,
    prompt_ids: torch.Tensor,
    max_new_tokens: int,
    eos_id: int,
    pad_id: int = 0,
    temperature: float = 0.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Continue ``prompt_ids`` token by token, conditioned on ``images``.

    prompt_ids: (P,) the same prompt for every image, or (B, P) without padding.
    Returns (B, P + T) with T <= max_new_tokens: each row stops at its first ``eos_id``
    (kept), later positions hold ``pad_id``; generation ends early once every row is done.
    The whole sequence is recomputed at each step (no KV cache: simple, and cheap here).
    """
    if not isinstance(model, TinyVLM):
        raise TypeError(f"model must be a TinyVLM, got {type(model).__name__}")
    _check_images(images)
    check_finite(images, "images")
    if isinstance(prompt_ids, torch.Tensor) and prompt_ids.dim() == 1:
        prompt_ids = prompt_ids.unsqueeze(0).expand(images.shape[0], -1)
    _check_ids(prompt_ids, "prompt_ids", model.vocab_size, model.max_text_len)
    if prompt_ids.shape[0] != images.shape[0]:
        raise ValueError(
            f"prompt_ids has {prompt_ids.shape[0]} rows but images has {images.shape[0]}"
        )
    if (
        not isinstance(max_new_tokens, int)
        or isinstance(max_new_tokens, bool)
        or max_new_tokens < 0
    ):
        raise ValueError(f"max_new_tokens must be an int >= 0, got {max_new_tokens!r}")
    if prompt_ids.shape[1] + max_new_tokens > model.max_text_len:
        raise ValueError(
            f"prompt length {prompt_ids.shape[1]} + max_new_tokens "
            f"{max_new_tokens} exceeds the model's max_text_len "
            f"{model.max_text_len}"
        )
    for name, value in [("eos_id", eos_id), ("pad_id", pad_id)]:
        if (
            not isinstance(value, int)
            or isinstance(value, bool)
            or not 0 <= value < model.vocab_size
        ):
            raise ValueError(f"{name} must be a token id in [0, {model.vocab_size}), got {value!r}")
    was_training = model.training
    model.eval()
    ids = prompt_ids.to(images.device)
    done = torch.zeros(ids.shape[0], dtype=torch.bool, device=ids.device)
    for _ in range(max_new_tokens):
        logits = model(images, ids)[:, -1]
        nxt = sample_next_token(logits, temperature, generator)
        nxt = torch.where(done, torch.full_like(nxt, pad_id), nxt)
        ids = torch.cat([ids, nxt[:, None]], dim=1)
        done = done | (nxt == eos_id)
        if bool(done.all()):
            break
    model.train(was_training)
    return ids


# --------------------------------------------------------------------------- training
def fit_vlm(
    model: TinyVLM,
    images: torch.Tensor,
    ids: torch.Tensor,
    target_mask: torch.Tensor | None = None,
    epochs: int = 10,
    batch_size: int = 64,
    lr: float = 3e-3,
    weight_decay: float = 0.01,
    seed: int = 0,
) -> list[float]:
    """Train ``model`` with teacher forcing (next-token loss); returns the mean loss per epoch.

    images (M, C, H, W), ids (M, L), target_mask (M, L) bool; all on the model's device.
    AdamW with a linear warm-up, then a cosine decay of the learning rate. Batches are
    length-bucketed: rows of similar length are batched together (in a random order, from
    ``seed``) and each batch is cut after its last target, so short VQA rows do not pay for
    long captions' padding.
    """
    if not isinstance(model, TinyVLM):
        raise TypeError(f"model must be a TinyVLM, got {type(model).__name__}")
    _check_images(images)
    _check_ids(ids, "ids", model.vocab_size, model.max_text_len)
    if ids.shape[0] != images.shape[0]:
        raise ValueError(
            f"images and ids must have the same number of rows, "
            f"got {images.shape[0]} and {ids.shape[0]}"
        )
    check_finite(images, "images")
    _check_positive_int(epochs, "epochs")
    _check_positive_int(batch_size, "batch_size")
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not lr > 0:
        raise ValueError(f"lr must be a positive number, got {lr!r}")
    check_real(weight_decay, "weight_decay", low=0.0)
    check_seed(seed)
    if target_mask is None:
        target_mask = torch.ones_like(ids, dtype=torch.bool)
    elif (
        not isinstance(target_mask, torch.Tensor)
        or target_mask.shape != ids.shape
        or target_mask.dtype != torch.bool
    ):
        raise ValueError(f"target_mask must be a bool tensor of shape {tuple(ids.shape)}")
    empty = ~target_mask[:, 1:].any(dim=1)
    if bool(empty.any()):
        raise ValueError(
            f"target_mask selects no target token after the first position in "
            f"{int(empty.sum())} row(s) (first: row {int(empty.nonzero()[0])})"
        )
    positions = torch.arange(1, ids.shape[1] + 1, device=ids.device)
    lengths = (target_mask * positions).amax(dim=1).cpu()  # last target position + 1
    m = images.shape[0]
    steps_per_epoch = math.ceil(m / batch_size)
    optimiser = torch.optim.AdamW(
        model.parameters(), lr=lr, weight_decay=weight_decay, betas=(0.9, 0.95)
    )  # beta2 = 0.95 as in GPT-3, for short runs
    total_steps = epochs * steps_per_epoch
    warmup = max(1, total_steps // 10)

    def lr_factor(step: int) -> float:  # linear warm-up for 10% of the steps, then cosine
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total_steps - warmup)))

    schedule = torch.optim.lr_scheduler.LambdaLR(optimiser, lr_factor)
    generator = seeded_generator(seed)
    model.train()
    history = []
    for _ in range(epochs):
        shuffled = torch.randperm(m, generator=generator)
        bucketed = shuffled[torch.sort(lengths[shuffled], stable=True).indices]
        batches = list(bucketed.split(batch_size))
        total = 0.0
        for b in torch.randperm(len(batches), generator=generator).tolist():
            idx = batches[b].to(images.device)
            n = int(lengths[batches[b]].max())
            x, y, t = images[idx], ids[idx, :n], target_mask[idx, :n]
            loss = next_token_loss(model(x, y), y, t)
            value = loss.item()
            if not math.isfinite(value):  # stop before the step spreads NaN into the weights
                raise FloatingPointError(
                    f"the training loss became {value} in epoch {len(history) + 1}; "
                    "try a smaller lr"
                )
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            schedule.step()
            total += value * len(idx)
        history.append(total / m)
    model.eval()
    return history


# --------------------------------------------------------------------------- captions and VQA
# Questions about the cats-vs-dogs attributes; each answer is one attribute value.
QUESTIONS = {
    "fur": "what colour is the pet?",
    "pose": "is it sitting, standing or lying?",
    "background": "where is the pet?",
    "species": "is it a cat or a dog?",
}
CAPTION_PROMPT = "describe the picture"
SPECIALS = ("<bos>", "<sep>", "<eos>")  # after mmcourse.text's <pad> (id 0) and <unk> (id 1)


def build_vocab(texts):
    """A ``mmcourse.text.Vocab`` of ``texts`` with the special tokens the decoder needs.

    Ids: 0 <pad>, 1 <unk>, 2 <bos> (start), 3 <sep> (end of the prompt), 4 <eos> (end of
    the answer), then the words of ``texts`` (captions, questions, answers), most frequent
    first. ``mmcourse.text.tokenize`` drops punctuation, so no word can collide with them.
    """
    from mmcourse.text import PAD, UNK, Vocab

    return Vocab([PAD, UNK, *SPECIALS, *Vocab.build(texts).tokens[2:]])


def _special_ids(vocab) -> tuple[int, int, int]:
    try:
        return tuple(vocab.index[t] for t in SPECIALS)
    except (AttributeError, KeyError, TypeError):
        raise ValueError(
            f"vocab must be built with vlm.build_vocab (it lacks the tokens {SPECIALS})"
        ) from None


def encode_prompt(vocab, prompt: str) -> torch.Tensor:
    """``<bos> prompt <sep>`` as a LongTensor (P,): what the decoder is given to continue."""
    bos, sep, _ = _special_ids(vocab)
    if not isinstance(prompt, str):
        raise TypeError(f"prompt must be a str, got {type(prompt).__name__}")
    if not vocab.ids(prompt):
        raise ValueError(f"prompt {prompt!r} has no word: give the question or instruction")
    return torch.tensor([bos, *vocab.ids(prompt), sep], dtype=torch.long)


def encode_pairs(vocab, prompts, answers, max_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Training rows ``<bos> prompt <sep> answer <eos> <pad>...`` for (prompt, answer) pairs.

    Returns ids (M, max_len) long and target_mask (M, max_len) bool, True at the answer's
    tokens and its <eos>: the loss teaches the model to answer, not to repeat the question.
    """
    _, _, eos = _special_ids(vocab)
    if isinstance(prompts, str) or isinstance(answers, str):
        raise TypeError("prompts and answers must be lists of strings, not single strings")
    prompts, answers = list(prompts), list(answers)
    for name, seq in (("prompts", prompts), ("answers", answers)):
        bad = next((x for x in seq if not isinstance(x, str)), None)
        if bad is not None:
            raise TypeError(f"{name} must be strings, got {type(bad).__name__} {bad!r:.40}")
    if len(prompts) != len(answers) or not prompts:
        raise ValueError(
            f"prompts and answers must be non-empty and of equal length, "
            f"got {len(prompts)} and {len(answers)}"
        )
    _check_positive_int(max_len, "max_len")
    ids = torch.zeros(len(prompts), max_len, dtype=torch.long)
    mask = torch.zeros(len(prompts), max_len, dtype=torch.bool)
    for i, (prompt, answer) in enumerate(zip(prompts, answers, strict=True)):
        head = encode_prompt(vocab, prompt).tolist()
        tail = [*vocab.ids(answer), eos]
        if len(head) + len(tail) > max_len:
            raise ValueError(
                f"row {i} needs {len(head) + len(tail)} tokens, more than "
                f"max_len={max_len}: {prompt!r} -> {answer!r}"
            )
        ids[i, : len(head) + len(tail)] = torch.tensor(head + tail)
        mask[i, len(head) : len(head) + len(tail)] = True
    return ids, mask


def decode_answers(vocab, ids: torch.Tensor, prompt_len: int) -> list[str]:
    """The generated part of each row of ``generate``'s output, up to (not including) <eos>."""
    _, _, eos = _special_ids(vocab)
    if not isinstance(ids, torch.Tensor) or ids.dim() != 2:
        raise ValueError("ids must be a tensor of shape (B, L)")
    if ids.is_floating_point() or ids.dtype == torch.bool:
        raise TypeError(f"ids must be an integer tensor of token ids, got {ids.dtype}")
    check_int(prompt_len, "prompt_len", minimum=0, maximum=ids.shape[1])
    texts = []
    for row in ids[:, prompt_len:].tolist():
        row = row[: row.index(eos)] if eos in row else row
        texts.append(vocab.decode(row))
    return texts


def mentioned_value(text: str, values) -> str | None:
    """The first of ``values`` (single words) that ``text`` mentions, or None."""
    from mmcourse.text import tokenize

    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        raise TypeError(f"values must be a list of words, got {values!r:.60}")
    values = set(values)
    return next((tok for tok in tokenize(text) if tok in values), None)


def attribute_accuracy(texts, truth, values=None) -> float:
    """Fraction of ``texts`` whose first mentioned attribute value equals ``truth``.

    A text that names no value, or the wrong one first, counts as wrong. ``values``: the
    possible values (default: those in ``truth``).
    """
    for name, seq in (("texts", texts), ("truth", truth)):
        if isinstance(seq, (str, bytes)) or not hasattr(seq, "__iter__"):
            raise TypeError(f"{name} must be a list of strings, got {seq!r:.60}")
    texts, truth = list(texts), [str(t) for t in truth]
    if len(texts) != len(truth) or not texts:
        raise ValueError(
            f"texts and truth must be non-empty and of equal length, "
            f"got {len(texts)} and {len(truth)}"
        )
    values = set(truth) if values is None else {str(v) for v in values}
    hits = [mentioned_value(t, values) == y for t, y in zip(texts, truth, strict=True)]
    return sum(hits) / len(hits)


def nearest_neighbours(train: torch.Tensor, query: torch.Tensor, chunk: int = 512):
    """Index of the nearest ``train`` row (Euclidean) for each ``query`` row: (Q,) long.

    Rows are flattened, so images (N, C, H, W) are compared pixel by pixel: the baseline
    "caption a new image with the caption of the most similar training image".
    """
    for name, x in [("train", train), ("query", query)]:
        if not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.dim() < 2:
            raise TypeError(f"{name} must be a float tensor with a batch axis first")
        if x.shape[0] == 0:
            raise ValueError(f"{name} is empty (shape {tuple(x.shape)})")
        check_finite(x, name)
    check_int(chunk, "chunk")
    train, query = train.flatten(1), query.flatten(1)
    if train.shape[1] != query.shape[1]:
        raise ValueError(
            f"train and query rows must have the same size, "
            f"got {train.shape[1]} and {query.shape[1]}"
        )
    return torch.cat([torch.cdist(q, train).argmin(dim=1) for q in query.split(chunk)])


# --------------------------------------------------------------------------- compute and scale
def count_flops(model: nn.Module, *inputs) -> int:
    """Floating-point operations of one forward pass, measured by PyTorch's FlopCounterMode
    (a multiply-add counts as 2 FLOPs; only matrix products and convolutions are counted)."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:  # not under no_grad: FlopCounterMode's module tracker needs autograd on
        model(*inputs)
    return int(counter.get_total_flops())


def estimate_forward_flops(n_params: float, n_tokens: float) -> float:
    """The rule of thumb C_forward ~ 2 N T (Kaplan et al., 2020, "Scaling Laws for Neural
    Language Models"): each parameter does one multiply-add per token it processes.
    Training costs about three times as much (forward + backward ~ 6 N T)."""
    for name, value in [("n_params", n_params), ("n_tokens", n_tokens)]:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise ValueError(f"{name} must be a positive number, got {value!r}")
    return 2.0 * n_params * n_tokens


def vit_image_params(
    width: int,
    layers: int,
    patch_size: int,
    image_size: int,
    embed_dim: int,
    in_channels: int = 3,
    mlp_ratio: int = 4,
) -> int:
    """Parameters of a CLIP image tower (OpenAI's VisionTransformer layout).

    Patch conv without bias, a class token, position embeddings for 1 + N tokens, LayerNorms
    before and after the blocks, ``layers`` blocks (attention 4 d^2 + 4 d, MLP 2 r d^2 + r d
    + d, two LayerNorms 4 d), and a final projection d -> embed_dim without bias.
    """
    for name, value in [
        ("width", width),
        ("layers", layers),
        ("patch_size", patch_size),
        ("image_size", image_size),
        ("embed_dim", embed_dim),
        ("in_channels", in_channels),
        ("mlp_ratio", mlp_ratio),
    ]:
        _check_positive_int(value, name)
    if image_size % patch_size:
        raise ValueError(f"patch_size={patch_size} must divide image_size={image_size}")
    d, tokens = width, (image_size // patch_size) ** 2 + 1
    per_layer = (4 * d * d + 4 * d) + (2 * mlp_ratio * d * d + mlp_ratio * d + d) + 4 * d
    stem = in_channels * patch_size**2 * d + d + tokens * d + 2 * d
    return stem + layers * per_layer + 2 * d + d * embed_dim


def published_figures():
    """Published sizes of CLIP ViT-B/32 and LLaVA-1.5-7B, each with its source.

    Returns a pandas DataFrame (model, component, figure, value, source). Only figures stated
    in the cited papers or in the open_clip model profile are listed.
    """
    import pandas as pd

    clip = "Radford et al., ICML 2021 (CLIP)"
    profile = "open_clip (Ilharco et al., 2021), docs/model_profile.csv"
    llava15 = (
        "Liu, Li, Li & Lee 2023, 'Improved Baselines with Visual Instruction Tuning' (LLaVA-1.5)"
    )
    rows = [
        ("CLIP ViT-B/32", "image encoder", "input resolution (pixels)", 224, clip),
        ("CLIP ViT-B/32", "image encoder", "patch size (pixels)", 32, clip),
        ("CLIP ViT-B/32", "image encoder", "layers x width", "12 x 768", clip),
        ("CLIP ViT-B/32", "text encoder", "layers x width", "12 x 512", clip),
        ("CLIP ViT-B/32", "image encoder", "parameters (M)", 87.85, profile),
        ("CLIP ViT-B/32", "text encoder", "parameters (M)", 63.43, profile),
        ("CLIP ViT-B/32", "whole model", "parameters (M)", 151.28, profile),
        ("CLIP ViT-B/32", "image encoder", "GFLOPs per image", 8.82, profile),
        ("CLIP ViT-B/32", "training data", "image-text pairs (M)", 400, clip),
        ("LLaVA-1.5-7B", "vision encoder", "model", "CLIP ViT-L/14, 336 px", llava15),
        ("LLaVA-1.5-7B", "vision encoder", "parameters (M)", 304.29, profile + " (ViT-L-14-336)"),
        ("LLaVA-1.5-7B", "connector", "model", "2-layer MLP (GELU)", llava15),
        ("LLaVA-1.5-7B", "language model", "model", "Vicuna-7B v1.5", llava15),
        ("LLaVA-1.5-7B", "training data", "pretraining image-text pairs (K)", 558, llava15),
        ("LLaVA-1.5-7B", "training data", "instruction-tuning examples (K)", 665, llava15),
    ]
    return pd.DataFrame(rows, columns=["model", "component", "figure", "value", "source"])
