"""The course's CLIP and VLM in Hugging Face ``transformers`` (notebook 11 only).

Everything here builds *tiny* models from configs written in code, so it runs offline in
seconds; real checkpoints are an opt-in for a learner who is online (Binder is).

    word_tokenizer(texts, add_eos)          a word-level tokenizer trained with ``tokenizers``
    tiny_clip(tokenizer, ...)               CLIPModel + CLIPProcessor from a local config
    TinyCLIPOnHF / as_tiny_clip(clip)       the course's TinyCLIP around CLIPModel's own pieces
    clamp_logit_scale_(clip)                CLIP's cap, applied after each step as OpenAI did
    tiny_llava(tokenizer, ...)              LlavaForConditionalGeneration + LlavaProcessor
    merge_image_tokens(...)                 LLaVA's <image> splice, written out
    to_pil(images)                          the course's float arrays as PIL pictures
    real_weights_wanted / load_or_tiny      the opt-in switch, with a one-line offline fallback
    REAL_CONFIGS, count_from_config         parameter counts of real configs, no weights
    count_parts(model)                      parameters per part (towers, projector, LM)

Only this module and notebook 11 import ``transformers`` (about 1 GB and several seconds to
import); the rest of the course stays free of it.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable, Sequence
from urllib.parse import urlparse

import numpy as np
import torch
from torch import Tensor, nn

from mmcourse._checks import check_int, check_module
from mmcourse.contrastive import TinyCLIP
from mmcourse.utils import offset_seed, seeded_generator

# transformers imports torchao when it is installed; torchao registers enums with torch's
# pytree, which logs two deprecation warnings that say nothing about the lesson.
logging.getLogger("torch.utils._pytree").setLevel(logging.ERROR)

import transformers  # noqa: E402
from transformers import (  # noqa: E402
    CLIPConfig,
    CLIPImageProcessor,
    CLIPModel,
    CLIPProcessor,
    LlavaConfig,
    LlavaForConditionalGeneration,
    LlavaProcessor,
    PreTrainedTokenizerFast,
)

REAL_WEIGHTS_ENV = "MMCOURSE_REAL_WEIGHTS"
REAL_CLIP = "openai/clip-vit-base-patch32"
# A small LLaVA-family model (SigLIP encoder, pixel-shuffle connector, SmolLM2 decoder):
# 256 M parameters, about 0.5 GB in bfloat16, so it fits Binder's 2 GB.
REAL_VLM = "HuggingFaceTB/SmolVLM-256M-Instruct"
SPECIALS = ("<pad>", "<unk>", "<bos>", "<eos>", "<image>")  # ids 0..4 in every tokenizer here
# LLaVA-1.5's conversation format ("USER: <image>\n... ASSISTANT:"), as a chat template.
CHAT_TEMPLATE = (
    "{% for m in messages %}{% if m['role'] == 'user' %}USER: "
    "{% for c in m['content'] %}{% if c['type'] == 'image' %}<image> "
    "{% else %}{{ c['text'] }} {% endif %}{% endfor %}"
    "{% else %}ASSISTANT: {{ m['content'][0]['text'] }} <eos> {% endif %}{% endfor %}"
    "{% if add_generation_prompt %}ASSISTANT:{% endif %}"
)


# --------------------------------------------------------------------------- tokenizer


def word_tokenizer(texts: Sequence[str], add_eos: bool = True) -> PreTrainedTokenizerFast:
    """A word-level tokenizer trained on ``texts`` with the ``tokenizers`` library.

    Lower-cases, splits on white space and punctuation, and knows ``SPECIALS`` (ids 0-4).
    Every encoding starts with <bos>; ``add_eos`` also ends it with <eos>, which CLIP's text
    tower needs (it pools the hidden state at the first <eos>). A decoder continues a prompt,
    so the VLM's tokenizer leaves <eos> for the model to write (``add_eos=False``).
    """
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers

    if isinstance(texts, str) or not isinstance(texts, Sequence) or not texts:
        raise ValueError("texts must be a non-empty list of strings")
    bad = next((t for t in texts if not isinstance(t, str)), None)
    if bad is not None:
        raise TypeError(f"texts must hold strings, got {type(bad).__name__} {bad!r:.40}")
    tok = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(texts, trainers.WordLevelTrainer(special_tokens=list(SPECIALS)))
    bos, eos = tok.token_to_id("<bos>"), tok.token_to_id("<eos>")
    tok.post_processor = processors.TemplateProcessing(
        single="<bos> $A <eos>" if add_eos else "<bos> $A",
        special_tokens=[("<bos>", bos), ("<eos>", eos)],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<bos>",
        eos_token="<eos>",
        pad_token="<pad>",
        unk_token="<unk>",
        model_max_length=64,
    )


def to_pil(images) -> list:
    """The course's float images (N, 3, H, W) in [0, 1] as a list of RGB PIL pictures: what a
    processor is given in real use (a file or a camera frame, 8 bits per channel)."""
    from PIL import Image

    array = images.detach().cpu().numpy() if isinstance(images, Tensor) else np.asarray(images)
    if array.ndim != 4 or array.shape[1] != 3 or not np.issubdtype(array.dtype, np.floating):
        raise ValueError(
            f"images must be floats of shape (N, 3, H, W), got {array.dtype} {array.shape}"
        )
    if array.size and (array.min() < 0 or array.max() > 1):
        raise ValueError(f"images must lie in [0, 1], got [{array.min():.3g}, {array.max():.3g}]")
    pixels = np.round(array.transpose(0, 2, 3, 1) * 255).astype(np.uint8)
    return [Image.fromarray(p) for p in pixels]


def _image_processor(image_size: int) -> CLIPImageProcessor:
    # CLIP's pipeline: resize the short side, centre-crop, rescale to [0, 1], normalise with
    # the mean and std of OpenAI's training images (the processor's defaults).
    return CLIPImageProcessor(
        size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size}
    )


# --------------------------------------------------------------------------- CLIP


def tiny_clip_config(
    tokenizer: PreTrainedTokenizerFast,
    width: int = 32,
    layers: int = 2,
    heads: int = 2,
    image_size: int = 32,
    patch_size: int = 8,
    projection_dim: int = 32,
) -> CLIPConfig:
    """A CLIPConfig of the same *shape* as ViT-B/32's, scaled down: a ViT over
    ``image_size / patch_size`` squared patches, a causal text Transformer, projections.

    The text side takes its vocabulary and its <bos>/<eos>/<pad> ids from ``tokenizer``
    (CLIPTextConfig's defaults are those of OpenAI's 49,408-token BPE, wrong for a tiny one).
    """
    for name, value in [("width", width), ("layers", layers), ("heads", heads)]:
        check_int(value, name)
    check_int(projection_dim, "projection_dim")
    if image_size % patch_size:
        raise ValueError(f"image_size {image_size} must be a multiple of patch_size {patch_size}")
    text = dict(
        vocab_size=len(tokenizer),
        hidden_size=width,
        intermediate_size=4 * width,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        max_position_embeddings=tokenizer.model_max_length,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    vision = dict(
        hidden_size=width,
        intermediate_size=4 * width,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        image_size=image_size,
        patch_size=patch_size,
    )
    return CLIPConfig(text_config=text, vision_config=vision, projection_dim=projection_dim)


def tiny_clip(
    tokenizer: PreTrainedTokenizerFast, seed: int = 0, **config
) -> tuple[CLIPModel, CLIPProcessor]:
    """A randomly initialised tiny CLIPModel (seed: ``seed`` + MMCOURSE_SEED_OFFSET) and the
    CLIPProcessor that feeds it."""
    cfg = tiny_clip_config(tokenizer, **config)
    torch.manual_seed(offset_seed(seed))  # moves with MMCOURSE_SEED_OFFSET, like the course
    model = CLIPModel(cfg).eval()
    processor = CLIPProcessor(
        image_processor=_image_processor(cfg.vision_config.image_size), tokenizer=tokenizer
    )
    return model, processor


class _VisionTower(nn.Module):
    """CLIPModel's vision transformer as a course tower: images -> pooled (B, width)."""

    def __init__(self, vision_model: nn.Module):
        super().__init__()
        self.vision_model = vision_model

    def forward(self, images: Tensor) -> Tensor:
        return self.vision_model(pixel_values=images).pooler_output  # the [CLS] token


class _TextTower(nn.Module):
    """CLIPModel's text transformer as a course tower: (ids, mask) -> pooled (B, width)."""

    def __init__(self, text_model: nn.Module):
        super().__init__()
        self.text_model = text_model

    def forward(self, ids: Tensor, mask: Tensor) -> Tensor:
        return self.text_model(input_ids=ids, attention_mask=mask.long()).pooler_output  # <eos>


def as_tiny_clip(clip: CLIPModel) -> TinyCLIP:
    """The course's ``TinyCLIP`` assembled from a CLIPModel's pieces.

    The towers are CLIPModel's own modules (shared, not copied: training one trains the
    other); the two projections and ``logit_scale`` are copied into TinyCLIP's. What is left
    is the course's code: normalisation, the capped scale, ``clip_loss``.
    """
    if not isinstance(clip, CLIPModel):
        raise TypeError(f"clip must be a transformers CLIPModel, got {type(clip).__name__}")
    cfg = clip.config
    tiny = TinyCLIP(
        _VisionTower(clip.vision_model),
        _TextTower(clip.text_model),
        image_dim=cfg.vision_config.hidden_size,
        text_dim=cfg.text_config.hidden_size,
        embed_dim=cfg.projection_dim,
    )
    with torch.no_grad():
        tiny.image_projection.weight.copy_(clip.visual_projection.weight)
        tiny.text_projection.weight.copy_(clip.text_projection.weight)
        tiny.logit_scale.copy_(clip.logit_scale)
    return tiny


def copy_heads_(tiny: TinyCLIP, clip: CLIPModel) -> None:
    """Copy a TinyCLIP's projections and ``logit_scale`` back into ``clip`` (after training
    the TinyCLIP that ``as_tiny_clip`` built, the towers are already shared)."""
    check_module(tiny, "tiny")
    if not isinstance(clip, CLIPModel):
        raise TypeError(f"clip must be a transformers CLIPModel, got {type(clip).__name__}")
    with torch.no_grad():
        clip.visual_projection.weight.copy_(tiny.image_projection.weight)
        clip.text_projection.weight.copy_(tiny.text_projection.weight)
        clip.logit_scale.copy_(tiny.logit_scale)


def clamp_logit_scale_(clip: CLIPModel, max_scale: float = 100.0) -> None:
    """Clamp ``clip.logit_scale`` in place to [0, ln(max_scale)].

    CLIPModel's forward multiplies by ``logit_scale.exp()`` with no cap; OpenAI's training
    code clamps the parameter after every optimiser step instead, to the same bound of 100
    that ``mmcourse.contrastive.effective_scale`` applies inside the forward pass.
    """
    with torch.no_grad():
        clip.logit_scale.clamp_(0.0, float(np.log(max_scale)))


# --------------------------------------------------------------------------- LLaVA


def tiny_llava(
    tokenizer: PreTrainedTokenizerFast,
    seed: int = 0,
    width: int = 32,
    layers: int = 2,
    heads: int = 2,
    image_size: int = 32,
    patch_size: int = 8,
) -> tuple[LlavaForConditionalGeneration, LlavaProcessor]:
    """A randomly initialised tiny LLaVA: a CLIP ViT, LLaVA-1.5's two-layer GELU projector,
    and a Llama decoder (RMSNorm, rotary positions, SwiGLU) over ``tokenizer``'s words.

    As in LLaVA-1.5 the decoder reads the patch features of the vision tower's second-last
    layer, without the [CLS] token: (image_size / patch_size)^2 image tokens, which the
    processor makes room for by repeating <image> that many times.
    """
    for name, value in [("width", width), ("layers", layers), ("heads", heads)]:
        check_int(value, name)
    if image_size % patch_size:
        raise ValueError(f"image_size {image_size} must be a multiple of patch_size {patch_size}")
    image_token = tokenizer.convert_tokens_to_ids("<image>")
    if image_token == tokenizer.unk_token_id:
        raise ValueError("tokenizer must know the <image> token (build it with word_tokenizer)")
    vision = dict(
        hidden_size=width,
        intermediate_size=4 * width,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        image_size=image_size,
        patch_size=patch_size,
    )
    text = dict(
        model_type="llama",
        vocab_size=len(tokenizer),
        hidden_size=width,
        intermediate_size=4 * width,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        max_position_embeddings=tokenizer.model_max_length,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    cfg = LlavaConfig(
        vision_config=dict(model_type="clip_vision_model", **vision),
        text_config=text,
        image_token_id=image_token,
        projector_hidden_act="gelu",
        vision_feature_layer=-2,
        vision_feature_select_strategy="default",  # drop [CLS], keep the patches
    )
    torch.manual_seed(offset_seed(seed))
    model = LlavaForConditionalGeneration(cfg).eval()
    # generate() reads these from the generation config, not from the text config
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.bos_token_id = tokenizer.bos_token_id
    processor = LlavaProcessor(
        image_processor=_image_processor(image_size),
        tokenizer=tokenizer,
        patch_size=patch_size,
        vision_feature_select_strategy="default",
        chat_template=CHAT_TEMPLATE,
        num_additional_image_tokens=1,  # the [CLS] token, which "default" then drops
    )
    return model, processor


def merge_image_tokens(
    token_embeddings: Tensor, input_ids: Tensor, image_tokens: Tensor, image_token_id: int
) -> Tensor:
    """LLaVA's splice, written out: put the projected image tokens where the <image>
    placeholders are, in order. token_embeddings (B, L, D), input_ids (B, L),
    image_tokens (B, N, D) with N placeholders per row."""
    if token_embeddings.dim() != 3 or input_ids.shape != token_embeddings.shape[:2]:
        raise ValueError(
            f"token_embeddings must be (B, L, D) and input_ids (B, L), got "
            f"{tuple(token_embeddings.shape)} and {tuple(input_ids.shape)}"
        )
    slots = input_ids == image_token_id
    if int(slots.sum()) != image_tokens.shape[0] * image_tokens.shape[1]:
        raise ValueError(
            f"input_ids hold {int(slots.sum())} <image> placeholders but image_tokens has "
            f"{image_tokens.shape[0] * image_tokens.shape[1]} vectors: the processor must "
            "expand <image> to one placeholder per image token"
        )
    merged = token_embeddings.clone()
    merged[slots] = image_tokens.reshape(-1, image_tokens.shape[-1]).to(merged.dtype)
    return merged


# --------------------------------------------------------------------------- real weights


def real_weights_wanted(real: bool | None = None) -> bool:
    """The opt-in switch: ``real`` if given, else ``MMCOURSE_REAL_WEIGHTS`` ("1", "true",
    "yes" turn it on; unset, "" or "0" leave it off, which is the default)."""
    if real is not None:
        if not isinstance(real, bool):
            raise TypeError(f"real must be True, False or None, got {real!r}")
        return real
    text = os.environ.get(REAL_WEIGHTS_ENV, "").strip().lower()
    if text in ("", "0", "false", "no", "off"):
        return False
    if text in ("1", "true", "yes", "on"):
        return True
    raise ValueError(f"{REAL_WEIGHTS_ENV} must be 1/true/yes or 0/false/no, got {text!r}")


def hub_offline() -> bool:
    """True when ``HF_HUB_OFFLINE`` (read now, not at import) asks for no network."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def hub_reachable(timeout: float = 2.0) -> bool:
    """Can this machine open a connection to the Hub (``HF_ENDPOINT``) within ``timeout`` s?

    Asked once before a download: without it, a hub call on a machine with no network
    retries for about 55 seconds before it gives up.
    """
    host = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname
    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return True
    except OSError:  # no DNS, refused, timed out, or the course's offline guard
        return False


def load_or_tiny(
    load: Callable[..., object],
    repo_id: str,
    tiny: Callable[[], object],
    real: bool | None = None,
    say: Callable[[str], None] = print,
):
    """``(thing, source)``: the real checkpoint when asked for and available, else the tiny one.

    ``load(repo_id, local_files_only=...)`` loads the real thing (a ``from_pretrained``);
    ``tiny()`` builds the offline replacement. The real one is tried only when
    ``real_weights_wanted(real)``: first from the local cache, then (unless HF_HUB_OFFLINE
    is set, or the Hub cannot be reached) from the Hub. Any failure is said in one line
    through ``say`` and falls back to ``tiny()``; ``source`` is "tiny", "cache" or "hub".
    """
    if not isinstance(repo_id, str) or "/" not in repo_id:
        raise ValueError(f"repo_id must look like 'owner/name', got {repo_id!r}")
    if not real_weights_wanted(real):
        return tiny(), "tiny"
    quiet = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()  # the one line below says what went wrong
    try:
        try:
            return load(repo_id, local_files_only=True), "cache"
        except OSError:
            pass  # not in the cache
        if hub_offline():
            reason = "HF_HUB_OFFLINE is set and it is not in the local cache"
        elif not hub_reachable():
            reason = "the Hugging Face Hub cannot be reached (no network)"
        else:
            try:
                return load(repo_id, local_files_only=False), "hub"
            except Exception as exc:  # noqa: BLE001 (any failure falls back, in one line)
                reason = f"{type(exc).__name__}: {str(exc).splitlines()[0][:120]}"
    finally:
        transformers.logging.set_verbosity(quiet)
    say(f"real weights of {repo_id} not loaded ({reason}): using the tiny model instead")
    return tiny(), "tiny"


# --------------------------------------------------------------------------- scale

# Configs of real checkpoints, written out so that they can be built without a download.
# Sources: the config.json files of the Hub repositories named (values as published there;
# keys that are absent take transformers' defaults, which for CLIP are ViT-B/32's).
REAL_CONFIGS = {
    "CLIP ViT-B/32 (openai/clip-vit-base-patch32)": (
        "clip",
        dict(
            projection_dim=512,
            text_config=dict(
                vocab_size=49408,
                hidden_size=512,
                intermediate_size=2048,
                num_hidden_layers=12,
                num_attention_heads=8,
                max_position_embeddings=77,
            ),
            vision_config=dict(
                hidden_size=768,
                intermediate_size=3072,
                num_hidden_layers=12,
                num_attention_heads=12,
                image_size=224,
                patch_size=32,
            ),
        ),
    ),
    "LLaVA-1.5-7B (llava-hf/llava-1.5-7b-hf)": (
        "llava",
        dict(
            image_token_id=32000,
            projector_hidden_act="gelu",
            vision_feature_layer=-2,
            vision_feature_select_strategy="default",
            vision_config=dict(  # CLIP ViT-L/14 at 336 px
                model_type="clip_vision_model",
                hidden_size=1024,
                intermediate_size=4096,
                num_hidden_layers=24,
                num_attention_heads=16,
                image_size=336,
                patch_size=14,
                projection_dim=768,
            ),
            text_config=dict(  # Vicuna-7B v1.5 (Llama 2 7B), 64 tokens added by llava-hf
                model_type="llama",
                vocab_size=32064,
                hidden_size=4096,
                intermediate_size=11008,
                num_hidden_layers=32,
                num_attention_heads=32,
                num_key_value_heads=32,
                max_position_embeddings=4096,
            ),
        ),
    ),
}


def count_from_config(kind: str, values: dict) -> dict[str, int]:
    """Parameters of a model built from a config on PyTorch's "meta" device: shapes only, no
    memory and no weights, so a 7-billion-parameter model is counted in well under a second.

    kind: "clip" or "llava". Returns a dict of parameter counts per part and "total".
    """
    if kind not in ("clip", "llava"):
        raise ValueError(f"kind must be 'clip' or 'llava', got {kind!r}")
    if not isinstance(values, dict):
        raise TypeError(f"values must be a dict of config values, got {type(values).__name__}")
    config_cls, model_cls = {
        "clip": (CLIPConfig, CLIPModel),
        "llava": (LlavaConfig, LlavaForConditionalGeneration),
    }[kind]
    with torch.device("meta"):
        model = model_cls(config_cls(**values))
    return count_parts(model)


def count_parts(model: nn.Module) -> dict[str, int]:
    """Parameters per part of a CLIPModel (towers, projections and scale) or a
    LlavaForConditionalGeneration (vision tower, projector, language model), and "total"."""

    def n(module: nn.Module) -> int:
        return sum(p.numel() for p in module.parameters())

    if isinstance(model, CLIPModel):
        parts = {
            "vision tower": n(model.vision_model),
            "text tower": n(model.text_model),
            "projections and scale": n(model.visual_projection)
            + n(model.text_projection)
            + model.logit_scale.numel(),
        }
    elif isinstance(model, LlavaForConditionalGeneration):
        parts = {
            "vision tower": n(model.model.vision_tower),
            "projector": n(model.model.multi_modal_projector),
            "language model": n(model.model.language_model) + n(model.lm_head),
        }
    else:
        raise TypeError(
            f"model must be a CLIPModel or a LlavaForConditionalGeneration, got {type(model)}"
        )
    parts["total"] = n(model)
    return parts


# --------------------------------------------------------------------------- VQA data


def chat(question: str, answer: str | None = None) -> list[dict]:
    """One turn of a conversation about one picture, in the Hub's message format."""
    if not isinstance(question, str) or not question.strip():
        raise ValueError(f"question must be a non-empty string, got {question!r}")
    turn = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}]
    if answer is not None:
        turn.append({"role": "assistant", "content": [{"type": "text", "text": answer}]})
    return turn


def vqa_batch(processor: LlavaProcessor, images, questions, answers) -> dict[str, Tensor]:
    """Processor inputs plus ``labels`` for teaching a LLaVA to answer: every token is -100
    (ignored by the loss) except the answer's words and its <eos>.

    images (N, 3, H, W) floats in [0, 1]; questions and answers: N strings each.
    """
    questions, answers = list(questions), list(answers)
    if not len(questions) == len(answers) == len(images) or not answers:
        raise ValueError(
            f"images, questions and answers must be non-empty and of equal length, got "
            f"{len(images)}, {len(questions)} and {len(answers)}"
        )
    texts = [
        processor.apply_chat_template(chat(q, a)) for q, a in zip(questions, answers, strict=True)
    ]
    batch = processor(text=texts, images=to_pil(images), padding=True, return_tensors="pt")
    tokenizer = processor.tokenizer
    labels = torch.full_like(batch["input_ids"], -100)
    ends = batch["attention_mask"].sum(dim=1)
    for i, answer in enumerate(answers):
        answer_ids = tokenizer(f"{answer} <eos>", add_special_tokens=False)["input_ids"]
        end = int(ends[i])
        labels[i, end - len(answer_ids) : end] = torch.tensor(answer_ids)
    batch["labels"] = labels
    return dict(batch)


def train_vqa(
    model: LlavaForConditionalGeneration,
    batch: dict[str, Tensor],
    epochs: int = 10,
    batch_size: int = 64,
    lr: float = 3e-3,
    seed: int = 0,
) -> list[float]:
    """AdamW on shuffled mini-batches of ``vqa_batch``'s rows; returns the loss per step.

    The loss is the model's own: cross-entropy of each labelled token given the ones before
    it (``labels`` are shifted inside the model, as for any causal LM on the Hub).
    """
    if not isinstance(model, LlavaForConditionalGeneration):
        raise TypeError(f"model must be a LlavaForConditionalGeneration, got {type(model)}")
    check_int(epochs, "epochs")
    check_int(batch_size, "batch_size")
    n = len(batch["labels"])
    generator = seeded_generator(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    losses = []
    model.train()
    for _ in range(epochs):
        order = torch.randperm(n, generator=generator)
        for start in range(0, n - batch_size + 1, batch_size):
            idx = order[start : start + batch_size]
            loss = model(**{k: v[idx] for k, v in batch.items()}).loss
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
    model.eval()
    return losses


def copy_projector_(course_projector: nn.Module, llava: LlavaForConditionalGeneration) -> None:
    """Copy the course's two-layer projector (``mmcourse.vlm.make_projector("mlp", ...)``:
    Linear, GELU, Linear) into LLaVA's ``multi_modal_projector`` (linear_1, GELU, linear_2)."""
    check_module(course_projector, "course_projector")
    linears = [m for m in course_projector.modules() if isinstance(m, nn.Linear)]
    target = llava.model.multi_modal_projector
    if len(linears) != 2:
        raise ValueError(
            f"course_projector must hold two Linear layers (the 'mlp' kind), got {len(linears)}"
        )
    with torch.no_grad():
        for source, dest in zip(linears, (target.linear_1, target.linear_2), strict=True):
            if source.weight.shape != dest.weight.shape:
                raise ValueError(
                    f"course_projector's layer {tuple(source.weight.shape)} does not fit LLaVA's "
                    f"{tuple(dest.weight.shape)}: build it with the vision and text widths"
                )
            dest.weight.copy_(source.weight)
            dest.bias.copy_(source.bias)
