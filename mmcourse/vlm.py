"""Vision-language models, tiny: how LLaVA, Flamingo and BLIP-2 join a vision tower to a
language model (notebook 07).

Build and train the course's tiny LLaVA in one call (about 15-20 s on one CPU core)::

    from mmcourse import vlm
    out = vlm.build_tiny_llava()                     # connector="mlp", both stages
    test = torch.as_tensor(out.data.subset("test").images)
    out.ask(test[:4], vlm.QUESTIONS["pose"])         # -> ["sitting", "lying", ...]
    captions = out.ask(test, vlm.CAPTION_PROMPT, temperature=1.0, generator=g)
    vlm.hallucination_rate(captions, out.data.subset("test").attributes)

Public API, by concern:

- Vision: ``patchify``, ``PatchEmbedding``, ``Block``, ``ViTEncoder`` (ViT, Dosovitskiy et
  al., ICLR 2021, trained from scratch) and ``CLIPGridTower`` (notebook 06's pretrained CLIP
  image tower, frozen, read as a grid of patch features, as LLaVA reads CLIP's).
- Language model: ``TinyLM``, a GPT-style causal decoder that can read a prefix of visual
  tokens or, through gated cross-attention, a set of visual features.
- Connectors: ``make_projector`` (linear: LLaVA, Liu et al., NeurIPS 2023; 2-layer MLP:
  LLaVA-1.5, Liu et al., 2023, "Improved Baselines with Visual Instruction Tuning"),
  ``GatedCrossAttentionBlock`` (Flamingo, Alayrac et al., NeurIPS 2022; the identity at
  initialisation) and ``QFormer`` (BLIP-2's learned queries, Li et al., ICML 2023).
- The model: ``TinyVLM`` (tower -> connector -> ``TinyLM``; ``CONNECTORS``), ``set_stage``
  (what LLaVA's stages train: ``"align"`` the connector, ``"instruct"`` connector + LM).
- Training and generation: ``next_token_loss``, ``fit_lm``, ``fit_vlm``, ``image_features``,
  ``sample_next_token``, ``generate``, ``ask``.
- Chat template and data: ``IMAGE_TOKEN``, ``CHAT_TEMPLATE``, ``chat_prompt``, ``SPECIALS``,
  ``QUESTIONS``, ``CAPTION_PROMPT``, ``build_vocab``, ``encode_prompt``, ``encode_pairs``,
  ``decode_answers``, ``course_vocab``, ``chat_rows``.
- The recipe: ``pretrain_tower`` (06's CLIP), ``pretrain_lm``, ``train_stage``,
  ``build_tiny_llava`` -> ``TinyLlava`` (model, vocab, data, history; ``.ask``).
- Evaluation: ``attribute_accuracy``, ``mentioned_value``, ``attribute_phrases``,
  ``hallucinated`` and ``hallucination_rate`` (CHAIR-style, Rohrbach et al., EMNLP 2018),
  ``nearest_neighbours``.
- Counting: ``count_parameters``, ``count_flops`` (PyTorch's FlopCounterMode),
  ``estimate_forward_flops`` (2 x parameters x tokens, Kaplan et al., 2020),
  ``vit_image_params`` and ``published_figures`` (cited figures of CLIP and LLaVA-1.5).

Shapes: B batch, C channels, H/W image size, P patch size, N patches (visual tokens),
L text length, V vocabulary size, D model width, Q learned queries.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

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
    "CLIPGridTower",
    "TinyLM",
    "make_projector",
    "GatedCrossAttentionBlock",
    "QFormer",
    "TinyVLM",
    "CONNECTORS",
    "STAGES",
    "set_stage",
    "next_token_loss",
    "fit_lm",
    "fit_vlm",
    "image_features",
    "sample_next_token",
    "generate",
    "ask",
    "IMAGE_TOKEN",
    "CHAT_TEMPLATE",
    "chat_prompt",
    "QUESTIONS",
    "PARAPHRASES",
    "CAPTION_PROMPT",
    "SPECIALS",
    "build_vocab",
    "encode_pairs",
    "encode_prompt",
    "decode_answers",
    "course_vocab",
    "chat_rows",
    "TOWER_RECIPE",
    "LM_CONFIG",
    "EPOCHS",
    "pretrain_tower",
    "pretrain_lm",
    "train_stage",
    "TinyLlava",
    "build_tiny_llava",
    "mentioned_value",
    "attribute_accuracy",
    "attribute_phrases",
    "hallucinated",
    "hallucination_rate",
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


# --------------------------------------------------------------------------- a pretrained tower
class CLIPGridTower(nn.Module):
    """The image tower of a trained ``mmcourse.contrastive.TinyCLIP`` (notebook 06), frozen,
    read as a grid of patch features.

    LLaVA does not pool: it hands the language model one feature per patch of CLIP's
    penultimate layer. Our CLIP's image tower is a CNN (``ImageCNN``); its last
    convolutional block, before the pooling head, is a G x G grid of ``dim``-channel
    features, and each grid cell plays the part of a patch: images (B, C, H, W) ->
    (B, G*G, dim), cells row by row. The tower is frozen (no gradient, always in eval mode,
    so that its BatchNorm statistics stay those learned in CLIP's pretraining).
    """

    def __init__(self, clip: nn.Module, image_size: int = 32, in_channels: int = 3, grid_size=None):
        super().__init__()
        if grid_size is not None:
            _check_positive_int(grid_size, "grid_size")
        self.grid_size = grid_size
        from mmcourse.encoders import ImageCNN

        encoder = getattr(clip, "image_encoder", None)
        if isinstance(encoder, nn.Sequential) and isinstance(encoder[-1], ImageCNN):
            self.pre, self.cnn = encoder[:-1], encoder[-1]  # e.g. the AvgPool2d of make_tiny_clip
        elif isinstance(encoder, ImageCNN):
            self.pre, self.cnn = nn.Identity(), encoder
        else:
            raise TypeError(
                "clip must be a TinyCLIP whose image_encoder is an ImageCNN, optionally after "
                f"a pooling layer (as make_tiny_clip builds it), got {type(clip).__name__}"
            )
        for p in self.parameters():
            p.requires_grad_(False)
        self.eval()
        with torch.no_grad():
            probe = self(torch.zeros(1, in_channels, image_size, image_size))
        self.num_patches, self.dim = probe.shape[1], probe.shape[2]

    def train(self, mode: bool = True) -> CLIPGridTower:
        return super().train(False)  # frozen: BatchNorm keeps CLIP's running statistics

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        _check_images(images, channels=self.cnn.in_channels)
        grid = self.cnn.feature_maps(self.pre(images))[-1]  # (B, dim, G, G)
        if self.grid_size is not None:  # fewer, coarser patches: fewer visual tokens
            grid = F.adaptive_avg_pool2d(grid, self.grid_size)
        tokens = grid.flatten(2).transpose(1, 2)  # (B, G*G, dim)
        # A ViT ends with a LayerNorm; a CNN's ReLU features are all >= 0 and of uneven scale.
        # Normalising each token (no learned weights: the tower stays frozen) centres them,
        # as BLIP-2's ln_vision does before its Q-Former.
        return F.layer_norm(tokens, tokens.shape[-1:])


# --------------------------------------------------------------------------- the language model
class TinyLM(nn.Module):
    """A small GPT-style causal language model (the "Vicuna" of our tiny LLaVA).

    ``forward(ids (B, L)) -> logits (B, L, V)``: the logits at position t predict token t+1.
    Two optional inputs let a VLM feed it the picture without changing its weights:
    ``prefix`` (B, P, d_model), vectors put before the text (LLaVA's visual tokens, which
    bring their own position embeddings), and ``cross`` + ``media``, one gated
    cross-attention block per layer that the text passes through before each block
    (Flamingo). Text positions always count from 0, so an LM pretrained on text alone
    reads the same text the same way with a picture in front of it.
    """

    def __init__(
        self,
        vocab_size: int,
        max_len: int = 24,
        d_model: int = 64,
        depth: int = 2,
        n_heads: int = 4,
    ):
        super().__init__()
        for name, value in [
            ("vocab_size", vocab_size),
            ("max_len", max_len),
            ("d_model", d_model),
            ("depth", depth),
            ("n_heads", n_heads),
        ]:
            _check_positive_int(value, name)
        self.vocab_size, self.max_len, self.d_model, self.depth = (
            vocab_size,
            max_len,
            d_model,
            depth,
        )
        self.tok_emb = nn.Embedding(vocab_size, d_model)
        nn.init.normal_(self.tok_emb.weight, std=0.02)  # GPT-2's init
        self.pos_emb = nn.Parameter(torch.randn(1, max_len, d_model) * 0.02)
        self.blocks = nn.ModuleList(Block(d_model, n_heads) for _ in range(depth))
        self.ln_f = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, vocab_size, bias=False)

    def forward(
        self,
        ids: torch.Tensor,
        prefix: torch.Tensor | None = None,
        cross: nn.ModuleList | None = None,
        media: torch.Tensor | None = None,
    ) -> torch.Tensor:
        _check_ids(ids, "ids", self.vocab_size, self.max_len)
        x = self.tok_emb(ids) + self.pos_emb[:, : ids.shape[1]]
        n_prefix = 0
        if prefix is not None:
            _check_tokens(prefix, "prefix", self.d_model)
            if prefix.shape[0] != ids.shape[0]:
                raise ValueError(
                    f"prefix and ids must have the same batch size, "
                    f"got {prefix.shape[0]} and {ids.shape[0]}"
                )
            x, n_prefix = torch.cat([prefix, x], dim=1), prefix.shape[1]
        if (cross is None) != (media is None):
            raise ValueError("cross and media go together: give both or neither")
        if cross is not None and len(cross) != len(self.blocks):
            raise ValueError(f"cross must hold one block per layer ({len(self.blocks)})")
        mask = causal_mask(x.shape[1], device=x.device)
        for i, block in enumerate(self.blocks):
            if cross is not None:
                x = cross[i](x, media)
            x = block(x, attn_mask=mask)
        return self.head(self.ln_f(x[:, n_prefix:]))


# --------------------------------------------------------------------------- the VLM
class TinyVLM(nn.Module):
    """A tiny vision-language model: vision tower -> connector -> causal language model.

    ``vision``: a module images (B, C, H, W) -> patch features (B, N, dim) with attributes
    ``dim`` and ``num_patches`` (a frozen ``CLIPGridTower``, as LLaVA uses CLIP); None builds
    a small ``ViTEncoder`` trained from scratch. ``lm``: a (pretrained) ``TinyLM``; None
    builds a new one from ``vocab_size``, ``max_text_len``, ``d_model``, ``depth``.

    ``connector``:
      - ``"linear"`` / ``"mlp"`` (LLaVA / LLaVA-1.5): every patch feature is projected into
        the LM's token space and put before the text, as N "visual words".
      - ``"qformer"`` (BLIP-2): Q learned queries summarise the patches; their outputs are
        projected linearly and put before the text (Q visual words instead of N).
      - ``"xattn"`` (Flamingo): no visual words; a tanh-gated cross-attention block before
        each LM block lets the text attend to the patch features.
    Visual words get their own learned positions (``visual_pos``, part of the connector).

    ``forward(images (B, C, H, W), ids (B, L)) -> logits (B, L, V)`` over the text: the
    logits at text position t predict token t + 1. Attention is causal over [visual words;
    text]. ``forward_features`` does the same from precomputed ``vision(images)``.
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
        vision: nn.Module | None = None,
        lm: TinyLM | None = None,
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
        if vision is None:
            vision = ViTEncoder(
                image_size, patch_size, in_channels, vision_dim, vision_depth, n_heads
            )
        elif not isinstance(vision, nn.Module) or not hasattr(vision, "num_patches"):
            raise TypeError(
                "vision must be an nn.Module with attributes dim and num_patches "
                f"(e.g. CLIPGridTower), got {type(vision).__name__}"
            )
        if lm is None:
            lm = TinyLM(vocab_size, max_text_len, d_model, depth, n_heads)
        elif not isinstance(lm, TinyLM):
            raise TypeError(f"lm must be a TinyLM, got {type(lm).__name__}")
        elif lm.vocab_size != vocab_size:
            raise ValueError(f"vocab_size={vocab_size} differs from the lm's {lm.vocab_size}")
        self.vision, self.lm, self.connector = vision, lm, connector
        self.vocab_size, self.max_text_len = lm.vocab_size, lm.max_len
        d_model, v_dim = lm.d_model, vision.dim
        if connector in ("linear", "mlp"):
            self.projector = make_projector(connector, v_dim, d_model)
            self.num_prefix = vision.num_patches
        elif connector == "qformer":
            self.qformer = QFormer(num_queries, d_model, v_dim, n_heads)  # queries of LM width
            self.projector = nn.Linear(d_model, d_model)  # BLIP-2's FC layer into the LM
            self.num_prefix = num_queries
        else:
            self.xattn = nn.ModuleList(
                GatedCrossAttentionBlock(d_model, v_dim, n_heads) for _ in range(lm.depth)
            )
            self.num_prefix = 0
        if self.num_prefix:
            self.visual_pos = nn.Parameter(torch.randn(1, self.num_prefix, d_model) * 0.02)

    def connector_modules(self) -> list[nn.Module]:
        """The modules that join the tower to the LM (what LLaVA's stage 1 trains)."""
        names = ("projector", "qformer", "xattn")
        return [getattr(self, n) for n in names if hasattr(self, n)]

    def connector_parameters(self) -> list[nn.Parameter]:
        params = [p for m in self.connector_modules() for p in m.parameters()]
        return params + ([self.visual_pos] if self.num_prefix else [])

    def visual_tokens(self, features: torch.Tensor) -> torch.Tensor:
        """Patch features (B, N, dim) -> what the LM reads: (B, num_prefix, d_model) visual
        words, or (for ``"xattn"``) the features themselves, which the gated blocks attend to."""
        if self.connector == "xattn":
            return features
        if self.connector == "qformer":
            features = self.qformer(features)
        return self.projector(features) + self.visual_pos

    def forward_features(self, features: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        _check_tokens(features, "features", self.vision.dim)
        if features.shape[0] != ids.shape[0]:
            raise ValueError(
                f"images and ids must have the same batch size, "
                f"got {features.shape[0]} and {ids.shape[0]}"
            )
        visual = self.visual_tokens(features)
        if self.connector == "xattn":
            return self.lm(ids, cross=self.xattn, media=visual)
        return self.lm(ids, prefix=visual)

    def forward(self, images: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        _check_ids(ids, "ids", self.vocab_size, self.max_text_len)
        _check_images(images)
        if images.shape[0] != ids.shape[0]:
            raise ValueError(
                f"images and ids must have the same batch size, "
                f"got {images.shape[0]} and {ids.shape[0]}"
            )
        return self.forward_features(self.vision(images), ids)


STAGES = ("all", "align", "instruct")


def set_stage(model: TinyVLM, stage: str) -> int:
    """Choose what trains, as in LLaVA's two stages; returns the number of trainable weights.

    ``"align"`` (stage 1, feature alignment): only the connector; tower and LM frozen.
    ``"instruct"`` (stage 2, visual instruction tuning): the connector and the LM; the
    tower stays frozen. ``"all"``: every weight except those of a frozen tower
    (``CLIPGridTower`` keeps itself frozen).
    """
    if not isinstance(model, TinyVLM):
        raise TypeError(f"model must be a TinyVLM, got {type(model).__name__}")
    if stage not in STAGES:
        raise ValueError(f"stage must be one of {STAGES}, got {stage!r}")
    frozen_tower = isinstance(model.vision, CLIPGridTower)
    for name, p in model.named_parameters():
        in_tower, in_lm = name.startswith("vision."), name.startswith("lm.")
        if stage == "all":
            p.requires_grad_(not (in_tower and frozen_tower))
        else:
            p.requires_grad_(not in_tower and (stage == "instruct" or not in_lm))
    return count_parameters(model)


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
    The tower runs once; the text is recomputed at each step (no KV cache: simple, and cheap here).
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
    features = model.vision(images)  # once: the picture does not change while we write
    ids = prompt_ids.to(images.device)
    done = torch.zeros(ids.shape[0], dtype=torch.bool, device=ids.device)
    for _ in range(max_new_tokens):
        logits = model.forward_features(features, ids)[:, -1]
        nxt = sample_next_token(logits, temperature, generator)
        nxt = torch.where(done, torch.full_like(nxt, pad_id), nxt)
        ids = torch.cat([ids, nxt[:, None]], dim=1)
        done = done | (nxt == eos_id)
        if bool(done.all()):
            break
    model.train(was_training)
    return ids


# --------------------------------------------------------------------------- training
def _check_target_mask(target_mask, ids: torch.Tensor) -> torch.Tensor:
    if target_mask is None:
        return torch.ones_like(ids, dtype=torch.bool)
    if (
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
    return target_mask


def _fit_next_token(
    forward, params, ids, target_mask, epochs, batch_size, lr, weight_decay, seed
) -> list[float]:
    """The loop of ``fit_vlm`` and ``fit_lm``: ``forward(rows, ids[rows, :n]) -> logits``."""
    _check_positive_int(epochs, "epochs")
    _check_positive_int(batch_size, "batch_size")
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not lr > 0:
        raise ValueError(f"lr must be a positive number, got {lr!r}")
    check_real(weight_decay, "weight_decay", low=0.0)
    check_seed(seed)
    if not params:
        raise ValueError("nothing to train: every parameter has requires_grad=False")
    positions = torch.arange(1, ids.shape[1] + 1, device=ids.device)
    lengths = (target_mask * positions).amax(dim=1).cpu()  # last target position + 1
    m = ids.shape[0]
    total_steps = epochs * math.ceil(m / batch_size)
    warmup = max(1, total_steps // 10)
    optimiser = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, betas=(0.9, 0.95))

    def lr_factor(step: int) -> float:  # linear warm-up for 10% of the steps, then cosine
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total_steps - warmup)))

    schedule = torch.optim.lr_scheduler.LambdaLR(optimiser, lr_factor)
    generator = seeded_generator(seed)
    history = []
    for _ in range(epochs):
        shuffled = torch.randperm(m, generator=generator)
        bucketed = shuffled[torch.sort(lengths[shuffled], stable=True).indices]
        batches = list(bucketed.split(batch_size))
        total = 0.0
        for b in torch.randperm(len(batches), generator=generator).tolist():
            rows = batches[b].to(ids.device)
            n = int(lengths[batches[b]].max())  # cut each batch after its last target
            y, t = ids[rows, :n], target_mask[rows, :n]
            loss = next_token_loss(forward(rows, y), y, t)
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
            total += value * len(rows)
        history.append(total / m)
    return history


@torch.no_grad()
def image_features(model: TinyVLM, images: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """``model.vision(images)`` in eval mode, in chunks: (N, num_patches, dim)."""
    if not isinstance(model, TinyVLM):
        raise TypeError(f"model must be a TinyVLM, got {type(model).__name__}")
    _check_images(images)
    check_finite(images, "images")
    _check_positive_int(batch_size, "batch_size")
    was_training = model.vision.training
    model.vision.eval()
    features = torch.cat([model.vision(x) for x in images.split(batch_size)])
    model.vision.train(was_training)
    return features


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
    rows: torch.Tensor | None = None,
) -> list[float]:
    """Train the trainable weights of ``model`` (see ``set_stage``) with teacher forcing;
    returns the mean next-token loss per epoch.

    ids (M, L), target_mask (M, L) bool: the training rows; images (N, C, H, W): the
    pictures, row i showing picture ``rows[i]`` (default: picture i, N = M). AdamW with a
    linear warm-up, then a cosine decay of the learning rate. Batches are length-bucketed
    (rows of similar length together, in a random order from ``seed``) and cut after their
    last target. When the tower is frozen its features never change, so they are computed
    once per picture instead of once per step (same result, a fraction of the cost).
    """
    if not isinstance(model, TinyVLM):
        raise TypeError(f"model must be a TinyVLM, got {type(model).__name__}")
    _check_images(images)
    check_finite(images, "images")
    _check_ids(ids, "ids", model.vocab_size, model.max_text_len)
    if rows is None:
        if images.shape[0] != ids.shape[0]:
            raise ValueError(
                f"images and ids must have the same number of rows (or give rows), "
                f"got {images.shape[0]} and {ids.shape[0]}"
            )
        rows = torch.arange(ids.shape[0])
    elif (
        not isinstance(rows, torch.Tensor)
        or rows.shape != (ids.shape[0],)
        or rows.is_floating_point()
        or rows.dtype == torch.bool
    ):
        raise ValueError(f"rows must be an integer tensor of shape ({ids.shape[0]},)")
    elif int(rows.min()) < 0 or int(rows.max()) >= images.shape[0]:
        raise ValueError(
            f"rows must index the {images.shape[0]} images, got values in "
            f"[{int(rows.min())}, {int(rows.max())}]"
        )
    target_mask = _check_target_mask(target_mask, ids)
    rows = rows.to(images.device)
    params = [p for p in model.parameters() if p.requires_grad]
    tower_frozen = not any(p.requires_grad for p in model.vision.parameters())
    features = image_features(model, images) if tower_frozen else None
    model.train()

    def forward(batch, y):
        if features is not None:
            return model.forward_features(features[rows[batch]], y)
        return model(images[rows[batch]], y)

    history = _fit_next_token(
        forward, params, ids, target_mask, epochs, batch_size, lr, weight_decay, seed
    )
    model.eval()
    return history


def fit_lm(
    lm: TinyLM,
    ids: torch.Tensor,
    target_mask: torch.Tensor | None = None,
    epochs: int = 10,
    batch_size: int = 64,
    lr: float = 3e-3,
    weight_decay: float = 0.01,
    seed: int = 0,
) -> list[float]:
    """Pretrain a ``TinyLM`` on text alone (same loop and schedule as ``fit_vlm``)."""
    if not isinstance(lm, TinyLM):
        raise TypeError(f"lm must be a TinyLM, got {type(lm).__name__}")
    _check_ids(ids, "ids", lm.vocab_size, lm.max_len)
    target_mask = _check_target_mask(target_mask, ids)
    lm.train()
    params = [p for p in lm.parameters() if p.requires_grad]
    history = _fit_next_token(
        lambda batch, y: lm(y), params, ids, target_mask, epochs, batch_size, lr, weight_decay, seed
    )
    lm.eval()
    return history


# --------------------------------------------------------------------------- chat, captions, VQA
# Questions about the cats-vs-dogs attributes; each answer is one attribute value.
QUESTIONS = {
    "fur": "what colour is the pet?",
    "pose": "is it sitting, standing or lying?",
    "background": "where is the pet?",
    "species": "is it a cat or a dog?",
}
CAPTION_PROMPT = "describe the picture"
SPECIALS = ("<bos>", "<eos>")  # after mmcourse.text's <pad> (id 0) and <unk> (id 1)
IMAGE_TOKEN = "<image>"
# LLaVA-1.5 (Vicuna v1) writes "SYSTEM USER: <image>\n{prompt} ASSISTANT: {reply}</s>"; we
# drop the system line and put the picture first, so the <image> slot is the visual prefix.
CHAT_TEMPLATE = IMAGE_TOKEN + "\nUSER: {prompt}\nASSISTANT:"


def chat_prompt(prompt: str) -> str:
    """The prompt as an instruction-tuned VLM reads it: ``CHAT_TEMPLATE`` filled in.

    ``<image>`` marks where the visual tokens go; the model's reply follows "ASSISTANT:"
    and ends with <eos>. Only the reply is a training target.
    """
    if not isinstance(prompt, str) or not prompt.strip():
        raise ValueError(f"prompt must be a non-empty str, got {prompt!r}")
    return CHAT_TEMPLATE.format(prompt=prompt)


def build_vocab(texts):
    """A ``mmcourse.text.Vocab`` of ``texts`` with the tokens the chat template needs.

    Ids: 0 <pad>, 1 <unk>, 2 <bos>, 3 <eos>, then the words of ``texts`` and of the
    template ("user", "assistant"), most frequent first. ``<image>`` is not a token: its
    slot is filled with visual tokens. ``mmcourse.text.tokenize`` drops punctuation, so no
    word can collide with the specials.
    """
    from mmcourse.text import PAD, UNK, Vocab

    template = CHAT_TEMPLATE.replace(IMAGE_TOKEN, "").format(prompt="")
    words = Vocab.build([*texts, template]).tokens[2:]
    return Vocab([PAD, UNK, *SPECIALS, *words])


def _special_ids(vocab) -> tuple[int, int]:
    try:
        return tuple(vocab.index[t] for t in SPECIALS)
    except (AttributeError, KeyError, TypeError):
        raise ValueError(
            f"vocab must be built with vlm.build_vocab (it lacks the tokens {SPECIALS})"
        ) from None


def encode_prompt(vocab, prompt: str) -> torch.Tensor:
    """The text of ``chat_prompt(prompt)`` as token ids (P,): <bos> user ... assistant.

    The <image> slot is left out: the model puts the visual tokens there itself."""
    bos, _ = _special_ids(vocab)
    if not isinstance(prompt, str):
        raise TypeError(f"prompt must be a str, got {type(prompt).__name__}")
    if not vocab.ids(prompt):
        raise ValueError(f"prompt {prompt!r} has no word: give the question or instruction")
    text = chat_prompt(prompt).replace(IMAGE_TOKEN, "")
    return torch.tensor([bos, *vocab.ids(text)], dtype=torch.long)


def encode_pairs(vocab, prompts, answers, max_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Training rows ``<bos> user prompt assistant answer <eos> <pad>...`` (the chat template).

    Returns ids (M, max_len) long and target_mask (M, max_len) bool, True at the answer's
    tokens and its <eos>: the loss teaches the model to answer, not to repeat the question
    (as in LLaVA, whose loss covers only the assistant's reply).
    """
    _, eos = _special_ids(vocab)
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
    heads = {p: encode_prompt(vocab, p).tolist() for p in set(prompts)}
    for i, (prompt, answer) in enumerate(zip(prompts, answers, strict=True)):
        head, tail = heads[prompt], [*vocab.ids(answer), eos]
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
    _, eos = _special_ids(vocab)
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


def ask(model: TinyVLM, vocab, images: torch.Tensor, prompt: str, max_new_tokens=None, **kw):
    """Ask every picture the same question (or instruction); returns the replies as text.

    ``max_new_tokens`` defaults to the room left in the model's context; further keyword
    arguments (``temperature``, ``generator``) go to ``generate``."""
    prompt_ids = encode_prompt(vocab, prompt).to(images.device)
    room = model.max_text_len - len(prompt_ids)
    out = generate(
        model,
        images,
        prompt_ids,
        room if max_new_tokens is None else max_new_tokens,
        eos_id=vocab.index[SPECIALS[1]],
        **kw,
    )
    return decode_answers(vocab, out, len(prompt_ids))


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
    texts, truth = _texts_and_truth(texts, truth)
    values = set(truth) if values is None else {str(v) for v in values}
    hits = [mentioned_value(t, values) == y for t, y in zip(texts, truth, strict=True)]
    return sum(hits) / len(hits)


def _texts_and_truth(texts, truth) -> tuple[list[str], list[str]]:
    for name, seq in (("texts", texts), ("truth", truth)):
        if isinstance(seq, (str, bytes)) or not hasattr(seq, "__iter__"):
            raise TypeError(f"{name} must be a list of strings, got {seq!r:.60}")
    texts, truth = list(texts), [str(t) for t in truth]
    if len(texts) != len(truth) or not texts:
        raise ValueError(
            f"texts and truth must be non-empty and of equal length, "
            f"got {len(texts)} and {len(truth)}"
        )
    return texts, truth


# --------------------------------------------------------------------------- hallucination
def attribute_phrases() -> dict[str, dict[str, tuple[str, ...]]]:
    """What a caption may say about each visible attribute of a cats-vs-dogs picture:
    attribute -> value -> the phrases that claim that value.

    Fur, pose and background are named by one word each. The species is never named in
    the honest captions, but their strong behaviour cues claim it ("barking" is a dog's;
    ``mmcourse.datasets.cats_dogs.STRONG``); the weak cues (behaviours of both) claim
    nothing. The data's misleading captions (5%) give the other species' behaviour.
    """
    from mmcourse.datasets.cats_dogs import BACKGROUNDS, FURS, POSES, STRONG

    return {
        "fur": {v: (v,) for v in FURS},
        "pose": {v: (v,) for v in POSES},
        "background": {v: (v,) for v in BACKGROUNDS},
        "species": {s: (s, *STRONG[s]) for s in STRONG},
    }


def hallucinated(caption: str, truth: dict, phrases=None) -> list[tuple[str, str]]:
    """The (attribute, claimed value) pairs of ``caption`` that contradict ``truth``, a dict
    attribute -> the picture's value. An attribute the caption does not mention is not a
    hallucination (it is an omission)."""
    from mmcourse.text import tokenize

    if not isinstance(caption, str):
        raise TypeError(f"caption must be a str, got {type(caption).__name__}")
    phrases = attribute_phrases() if phrases is None else phrases
    words = f" {' '.join(tokenize(caption))} "
    found = []
    for attribute, values in phrases.items():
        if attribute not in truth:
            raise ValueError(f"truth lacks the attribute {attribute!r} (has {sorted(truth)})")
        for value, said in values.items():
            if value != str(truth[attribute]) and any(f" {p} " in words for p in said):
                found.append((attribute, value))
    return found


def hallucination_rate(captions, attributes, phrases=None) -> dict[str, float]:
    """How often captions claim what the picture does not show (CHAIR, Rohrbach et al.
    2018, "Object Hallucination in Image Captioning", applied to attributes).

    captions: N strings; attributes: a DataFrame (or dict of sequences) with one column per
    attribute of ``phrases`` (default ``attribute_phrases()``: fur, pose, background,
    species), row i describing picture i. Returns, per attribute, the share of captions
    that state a wrong value of it, and under "any" the share of captions with at least one
    hallucination (CHAIR_s).
    """
    phrases = attribute_phrases() if phrases is None else phrases
    if isinstance(captions, str) or not hasattr(captions, "__iter__"):
        raise TypeError(f"captions must be a list of strings, got {captions!r:.60}")
    captions = list(captions)
    try:
        columns = {a: [str(v) for v in attributes[a]] for a in phrases}
    except (KeyError, TypeError) as exc:
        raise ValueError(
            f"attributes must have a column for each of {list(phrases)}: {exc}"
        ) from None
    for a, col in columns.items():
        if len(col) != len(captions) or not captions:
            raise ValueError(
                f"captions and attributes must be non-empty and of equal length, "
                f"got {len(captions)} captions and {len(col)} rows of {a!r}"
            )
    found = [
        {a for a, _ in hallucinated(c, {a: columns[a][i] for a in phrases}, phrases)}
        for i, c in enumerate(captions)
    ]
    rates = {a: sum(a in f for f in found) / len(found) for a in phrases}
    rates["any"] = sum(bool(f) for f in found) / len(found)
    return rates


# --------------------------------------------------------------------------- the recipe
# Second phrasings of the two questions that need shape, not colour: asked twice in stage 2
PARAPHRASES = {"pose": "is the pet sitting, standing or lying?", "species": "what animal is it?"}
# Notebook 06's batch, learning rate and caption length; 12 epochs, two more than 06 can afford
TOWER_RECIPE = {"epochs": 12, "batch_size": 128, "lr": 3e-3, "max_len": 16}
LM_CONFIG = {"max_len": 24, "d_model": 32, "depth": 2, "n_heads": 4}
EPOCHS = {"lm": 3, "align": 4, "instruct": 6}


def pretrain_tower(train, seed: int = 0, grid_size: int = 2) -> tuple[CLIPGridTower, object]:
    """Notebook 06's tiny CLIP, trained on ``train`` (a cats-vs-dogs subset) with 06's
    model and loop (``TOWER_RECIPE``, ``mmcourse.contrastive``), returned as a frozen
    ``CLIPGridTower`` with a ``grid_size`` x ``grid_size`` grid, and the CLIP history."""
    from mmcourse import contrastive
    from mmcourse.text import Vocab
    from mmcourse.utils import seed_everything

    check_seed(seed)
    vocab = Vocab.build(train.captions)
    ids, mask = vocab.encode(train.captions, TOWER_RECIPE["max_len"])
    seed_everything(seed)
    clip = contrastive.make_tiny_clip(len(vocab))
    history = contrastive.train_clip(
        clip,
        torch.as_tensor(train.images),
        ids,
        mask,
        epochs=TOWER_RECIPE["epochs"],
        batch_size=TOWER_RECIPE["batch_size"],
        lr=TOWER_RECIPE["lr"],
        seed=seed,
    )
    return CLIPGridTower(clip, grid_size=grid_size), history


def course_vocab(data):
    """The VLM's vocabulary: every caption, question and answer of the cats-vs-dogs set."""
    texts = [*data.captions, *QUESTIONS.values(), *PARAPHRASES.values(), CAPTION_PROMPT]
    texts += [str(v) for field in QUESTIONS for v in data.attributes[field].unique()]
    return build_vocab(texts)


def chat_rows(vocab, part, kind: str, max_len: int = LM_CONFIG["max_len"]):
    """Training conversations for one subset ``part``: (ids, target_mask, rows), row i about
    picture ``rows[i]``; every row is one user turn and the assistant's reply.

    ``"captions"`` (stage 1, as LLaVA's 558K caption pairs): "describe the picture" ->
    the caption. ``"instruct"`` (stage 2): the caption, the pose and the species (each
    asked twice, in two phrasings: they need shape, not colour), and fur or background
    (alternately). ``"text"`` (the LM's
    text-only pretraining): the caption and one question per picture, in turn.
    """
    kinds = ("captions", "instruct", "text")
    if kind not in kinds:
        raise ValueError(f"kind must be one of {kinds}, got {kind!r}")
    rows, prompts, answers = [], [], []
    attributes = part.attributes
    for i, caption in enumerate(part.captions):
        turns = [(CAPTION_PROMPT, caption)]
        if kind == "instruct":
            for f in ("pose", "species"):
                turns += [
                    (QUESTIONS[f], attributes[f].iloc[i]),
                    (PARAPHRASES[f], attributes[f].iloc[i]),
                ]
            field = ("fur", "background")[i % 2]
            turns += [(QUESTIONS[field], attributes[field].iloc[i])]
        elif kind == "text":
            field = list(QUESTIONS)[i % len(QUESTIONS)]
            turns += [(QUESTIONS[field], attributes[field].iloc[i])]
        for prompt, answer in turns:
            rows.append(i), prompts.append(prompt), answers.append(str(answer))
    ids, mask = encode_pairs(vocab, prompts, answers, max_len)
    return ids, mask, torch.tensor(rows)


def pretrain_lm(vocab, train, seed: int = 0, epochs: int = EPOCHS["lm"]) -> tuple[TinyLM, list]:
    """The tiny LM (``LM_CONFIG``), pretrained on the text of ``chat_rows(..., "text")``:
    it learns the language and the chat format, but has never seen a picture."""
    from mmcourse.utils import seed_everything

    ids, mask, _ = chat_rows(vocab, train, "text")
    seed_everything(seed)
    lm = TinyLM(len(vocab), **LM_CONFIG)
    return lm, fit_lm(lm, ids, mask, epochs=epochs, batch_size=64, lr=3e-3, seed=seed)


def train_stage(model: TinyVLM, stage: str, vocab, train, epochs=None, seed: int = 0):
    """One stage of LLaVA's recipe on the pictures of ``train``: ``"align"`` trains the
    connector on captions, ``"instruct"`` the connector and the LM on instructions
    (``chat_rows``). Returns the loss per epoch."""
    kind = {"align": "captions", "instruct": "instruct"}.get(stage)
    if kind is None:
        raise ValueError(f"stage must be 'align' or 'instruct', got {stage!r}")
    epochs = EPOCHS[stage] if epochs is None else epochs
    ids, mask, rows = chat_rows(vocab, train, kind)
    set_stage(model, stage)
    images = torch.as_tensor(train.images)
    lr = 1e-2 if stage == "align" else 6e-3  # the connector alone takes a larger step
    return fit_vlm(model, images, ids, mask, epochs, 64, lr, seed=seed, rows=rows)


@dataclass
class TinyLlava:
    """What ``build_tiny_llava`` returns: the model, its vocabulary, the data and histories."""

    model: TinyVLM
    vocab: object
    data: object  # the cats-vs-dogs set (subset("train"/"val"/"test"))
    history: dict  # "tower" (CLIPHistory), "lm", "align", "instruct": loss per epoch

    def ask(self, images: torch.Tensor, prompt: str, **kw) -> list[str]:
        """``vlm.ask`` with this model and vocabulary."""
        return ask(self.model, self.vocab, images, prompt, **kw)


def build_tiny_llava(
    connector: str = "mlp", seed: int = 0, stages=("align", "instruct"), data=None
) -> TinyLlava:
    """Build and train the course's tiny LLaVA end to end (about 15-20 s on one CPU core):
    06's CLIP tower (frozen), a text-pretrained ``TinyLM``, then the ``stages`` of LLaVA's
    recipe. ``seed`` is offset by ``MMCOURSE_SEED_OFFSET``; ``data`` defaults to
    ``load_cats_dogs()``. Test pictures: ``torch.as_tensor(out.data.subset("test").images)``.
    """
    from mmcourse.utils import seed_everything

    if data is None:
        from mmcourse.datasets import load_cats_dogs

        data = load_cats_dogs()
    bad = [s for s in stages if s not in ("align", "instruct")]
    if isinstance(stages, str) or bad:
        raise ValueError(f"stages must be a sequence of 'align'/'instruct', got {stages!r}")
    train = data.subset("train")
    vocab = course_vocab(data)
    tower, tower_history = pretrain_tower(train, seed)
    lm, lm_history = pretrain_lm(vocab, train, seed)
    seed_everything(seed)
    model = TinyVLM(len(vocab), connector=connector, vision=tower, lm=lm, num_queries=2)
    history = {"tower": tower_history, "lm": lm_history}
    for stage in stages:
        history[stage] = train_stage(model, stage, vocab, train, seed=seed)
    return TinyLlava(model, vocab, data, history)


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
