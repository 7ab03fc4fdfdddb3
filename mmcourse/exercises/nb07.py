"""Exercises of notebook 07, vision-language models (a tiny LLaVA).

07.patchify      cut images into flattened P x P patches, in ViT's order
07.vit_params    count the parameters of a CLIP image tower from its configuration
07.temperature   sample the next token with a temperature
07.hallucination the share of captions that claim the other species
"""

from __future__ import annotations

import torch

from mmcourse.exercises import register
from mmcourse.vlm import attribute_phrases, hallucination_rate, patchify, vit_image_params

# --------------------------------------------------------------------------- 07.patchify


def _check_patchify(fn) -> None:
    if not callable(fn):
        raise AssertionError("answer with a function patchify(images, patch_size) -> patches")
    g = torch.Generator().manual_seed(0)
    for shape, p in (((2, 3, 8, 8), 4), ((1, 3, 32, 32), 8), ((3, 1, 6, 6), 2)):
        images = torch.rand(*shape, generator=g)
        want = patchify(images, p)
        got = fn(images.clone(), p)
        if not isinstance(got, torch.Tensor) or tuple(got.shape) != tuple(want.shape):
            raise AssertionError(
                f"for images of shape {shape} and patch_size={p} the result should have shape "
                f"{tuple(want.shape)} = (B, number of patches, C*P*P), got "
                f"{getattr(got, 'shape', type(got).__name__)}"
            )
        if not torch.allclose(got, want):
            raise AssertionError(
                f"right shape, wrong contents (images {shape}, patch_size={p}). Each row must "
                "hold ONE patch: a plain reshape mixes pixels of neighbouring patches. Split H "
                "and W into (H/P, P) and (W/P, P), permute so the two patch-grid axes come "
                "right after B, then flatten."
            )


def _solution_patchify():
    def patchify_answer(images, patch_size):
        b, c, h, w = images.shape
        p = patch_size
        x = images.reshape(b, c, h // p, p, w // p, p)  # split rows and columns into blocks
        x = x.permute(0, 2, 4, 1, 3, 5)  # (B, block row, block column, C, P, P)
        return x.reshape(b, (h // p) * (w // p), c * p * p)

    return patchify_answer


register(
    "07.patchify",
    check=_check_patchify,
    solution=_solution_patchify,
    hint="reshape to (B, C, H/P, P, W/P, P), permute the block axes next to B, flatten the rest.",
)


# --------------------------------------------------------------------------- 07.vit_params

_CONFIGS = (  # width, layers, patch, image size, embed dim: (name)
    ((768, 12, 32, 224, 512), "CLIP ViT-B/32 (87.85 M in open_clip's table)"),
    ((1024, 24, 14, 336, 768), "CLIP ViT-L/14 at 336 px, LLaVA-1.5's encoder (304.29 M)"),
    ((64, 2, 8, 32, 32), "a tiny tower"),
)


def _check_vit_params(fn) -> None:
    if not callable(fn):
        raise AssertionError(
            "answer with a function vit_params(width, layers, patch_size, image_size, "
            "embed_dim) -> int"
        )
    for config, name in _CONFIGS:
        want, got = vit_image_params(*config), fn(*config)
        if int(got) != want:
            off = int(got) - want
            raise AssertionError(
                f"{name}: width, layers, patch, image size, embed dim = {config} should give "
                f"{want:,} parameters, got {int(got):,} (off by {off:+,}). Per block: "
                "attention 4d^2 + 4d, MLP 8d^2 + 5d, two LayerNorms 4d. Outside the blocks: "
                "the patch convolution (no bias), a class token, one position per token "
                "(patches + 1), two more LayerNorms and the projection d -> embed_dim."
            )


def _solution_vit_params():
    def vit_params(width, layers, patch_size, image_size, embed_dim):
        d = width
        tokens = (image_size // patch_size) ** 2 + 1  # patches + the class token
        attention = 4 * d * d + 4 * d  # q, k, v and output projections, with biases
        mlp = (d * 4 * d + 4 * d) + (4 * d * d + d)  # d -> 4d -> d, with biases
        norms = 2 * 2 * d  # two LayerNorms (scale and shift)
        stem = 3 * patch_size**2 * d + d + tokens * d + 2 * d  # conv, class, positions, ln_pre
        head = 2 * d + d * embed_dim  # ln_post and the projection to the shared space
        return stem + layers * (attention + mlp + norms) + head

    return vit_params


register(
    "07.vit_params",
    check=_check_vit_params,
    solution=_solution_vit_params,
    hint="Almost everything is in the blocks: about 12 d^2 each. Then add the small terms.",
)


# --------------------------------------------------------------------------- 07.temperature


def _check_temperature(fn) -> None:
    if not callable(fn):
        raise AssertionError("answer with a function sample(logits, temperature, generator)")
    logits = torch.tensor([[2.0, 1.0, 0.0, -1.0]]).expand(20000, -1)
    greedy = fn(logits[:3].clone(), 0.0, torch.Generator().manual_seed(0))
    if torch.as_tensor(greedy).tolist() != [0, 0, 0]:
        raise AssertionError("temperature 0 must be greedy: always the argmax (token 0 here)")
    for t in (1.0, 0.5, 2.0):
        ids = torch.as_tensor(fn(logits.clone(), t, torch.Generator().manual_seed(1)))
        if ids.shape != (20000,):
            raise AssertionError(f"return one token id per row: shape (20000,), got {ids.shape}")
        freq = torch.bincount(ids, minlength=4).float() / ids.numel()
        want = torch.softmax(logits[0] / t, dim=0)
        if (freq - want).abs().max() > 0.02:
            raise AssertionError(
                f"at temperature {t} token frequencies should be about "
                f"{[round(v, 3) for v in want.tolist()]}, got "
                f"{[round(v, 3) for v in freq.tolist()]}. Divide the logits by the "
                "temperature, then softmax, then torch.multinomial."
            )


def _solution_temperature():
    def sample(logits, temperature, generator=None):
        if temperature == 0:
            return logits.argmax(dim=-1)  # greedy
        probs = torch.softmax(logits / temperature, dim=-1)
        return torch.multinomial(probs, 1, generator=generator).squeeze(1)

    return sample


register(
    "07.temperature",
    check=_check_temperature,
    solution=_solution_temperature,
    hint="p = softmax(logits / T); T -> 0 approaches argmax, T large approaches uniform.",
)


# --------------------------------------------------------------------------- 07.hallucination

_CASES = (  # (captions, species, right answer, what a wrong answer usually means)
    (["a grey pet lying down, barking"], ["cat"], 1.0, "a dog's behaviour under a cat"),
    (["a grey pet lying down, purring"], ["cat"], 0.0, "the cat's own behaviour is no claim"),
    (["a grey pet lying down"], ["dog"], 0.0, "saying nothing is an omission, not a claim"),
    (
        ["a pet, meowing", "a pet, fetching a stick", "a pet", "a pet, barking"],
        ["dog", "dog", "cat", "cat"],
        0.5,
        "a share of the captions, not a count",
    ),
)


def _check_hallucination(fn) -> None:
    if not callable(fn):
        raise AssertionError("answer with a function species_hallucinations(captions, species)")
    for captions, species, want, meaning in _CASES:
        got = fn(list(captions), list(species))
        if not isinstance(got, (int, float)) or abs(float(got) - want) > 1e-9:
            raise AssertionError(
                f"for captions {captions} of {species} pictures the rate is {want}, got {got!r} "
                f"({meaning}). Count a caption when it contains a behaviour phrase of the OTHER "
                "species, then divide by the number of captions."
            )
    from mmcourse.datasets import load_cats_dogs

    data = load_cats_dogs()
    want = hallucination_rate(data.captions, data.attributes)["species"]
    got = fn(list(data.captions), list(data.attributes["species"]))
    if abs(float(got) - want) > 1e-9:
        raise AssertionError(
            f"on the 2,000 captions of the data set the rate is {want:.4f}, got {got!r}: "
            "match whole phrases (e.g. 'chasing a mouse'), not single words"
        )


def _solution_hallucination():
    def species_hallucinations(captions, species):
        phrases = attribute_phrases()["species"]  # species -> its behaviour phrases
        wrong = 0
        for caption, truth in zip(captions, species, strict=True):
            other = "dog" if truth == "cat" else "cat"
            wrong += any(phrase in caption for phrase in phrases[other])
        return wrong / len(captions)

    return species_hallucinations


register(
    "07.hallucination",
    check=_check_hallucination,
    solution=_solution_hallucination,
    hint="vlm.attribute_phrases()['species'] lists each species' phrases; look for the other's.",
)
