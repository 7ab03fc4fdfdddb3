"""Exercises of notebook 11, the course's CLIP and VLM in Hugging Face transformers.

11.image_tokens     how many <image> placeholders a LLaVA processor inserts for one picture
11.answer_labels    the labels of a causal LM that learns only the answer (-100 elsewhere)

Plain PyTorch: importing this module does not import transformers.
"""

from __future__ import annotations

import torch

from mmcourse.exercises import register

IGNORE = -100  # the label PyTorch's cross-entropy (and every model of the Hub) skips

# --------------------------------------------------------------------------- 11.image_tokens


def _check_image_tokens(fn) -> None:
    if not callable(fn):
        raise AssertionError(
            "answer with a function image_tokens(image_size, patch_size, strategy)"
        )
    cases = [  # (image_size, patch_size, strategy, expected, what it is)
        (32, 8, "default", 16, "this notebook's tiny LLaVA"),
        (336, 14, "default", 576, "LLaVA-1.5 (CLIP ViT-L/14 at 336 px)"),
        (224, 32, "full", 50, "CLIP ViT-B/32 with [CLS] kept"),
        (224, 14, "full", 257, "CLIP ViT-L/14 at 224 px with [CLS] kept"),
    ]
    for size, patch, strategy, want, what in cases:
        got = fn(size, patch, strategy)
        if got == want:
            continue
        side = size // patch
        if got in (side, side + 1):
            hint = "that is the patches along one side: a picture is a square of them"
        elif strategy == "default" and got == want + 1:
            hint = "'default' drops the [CLS] token"
        elif strategy == "full" and got == want - 1:
            hint = "'full' keeps the [CLS] token: one more than the patches"
        elif got == size * size // patch:
            hint = "divide both sides by the patch size: (size / patch)^2, not size^2 / patch"
        else:
            hint = "count (image_size // patch_size) ** 2 patches, plus [CLS] for 'full'"
        raise AssertionError(
            f"for {what} ({size} px, patches of {patch}, strategy {strategy!r}) the answer is "
            f"{want}, got {got!r}: {hint}"
        )


def _solution_image_tokens():
    def image_tokens(image_size, patch_size, strategy):
        patches = (image_size // patch_size) ** 2  # a square grid of patches
        return patches + 1 if strategy == "full" else patches  # "default" drops [CLS]

    return image_tokens


register(
    "11.image_tokens",
    check=_check_image_tokens,
    solution=_solution_image_tokens,
    hint="One side holds image_size // patch_size patches; the ViT adds one [CLS] token.",
)


# --------------------------------------------------------------------------- 11.answer_labels


def _reference_labels(ids: torch.Tensor, answer_length: int) -> torch.Tensor:
    labels = torch.full_like(ids, IGNORE)
    labels[len(ids) - answer_length :] = ids[len(ids) - answer_length :]
    return labels


def _check_answer_labels(fn) -> None:
    if not callable(fn):
        raise AssertionError("answer with a function answer_labels(input_ids, answer_length)")
    g = torch.Generator().manual_seed(0)
    for length, answer_length in ((12, 2), (29, 2), (9, 4)):
        ids = torch.randint(5, 60, (length,), generator=g)
        want = _reference_labels(ids, answer_length)
        got = fn(ids.clone(), answer_length)
        if not isinstance(got, torch.Tensor) or got.shape != ids.shape:
            shape = tuple(got.shape) if isinstance(got, torch.Tensor) else type(got).__name__
            raise AssertionError(
                f"return a tensor shaped like input_ids {tuple(ids.shape)}, got {shape}"
            )
        if torch.equal(got, want):
            continue
        if torch.equal(got, ids):
            hint = (
                "the prompt must be -100: otherwise the model is also taught to write the question"
            )
        elif torch.equal(got[:-1], want[1:]) or torch.equal(got[1:], want[:-1]):
            hint = "do not shift: the model compares position t's logits with label t + 1 itself"
        elif int((got != IGNORE).sum()) == answer_length - 1:
            hint = "keep all answer_length tokens, <eos> included: the model must learn to stop"
        elif bool((got == 0).any()) and not bool((got == IGNORE).any()):
            hint = "ignored positions are -100 (PyTorch's ignore_index), not 0: 0 is a token id"
        else:
            hint = "copy input_ids and set every position before the last answer_length to -100"
        raise AssertionError(
            f"for {length} ids ending in a {answer_length}-token answer the labels should be "
            f"{want.tolist()}, got {got.tolist()}: {hint}"
        )


def _solution_answer_labels():
    def answer_labels(input_ids, answer_length):
        labels = torch.full_like(input_ids, -100)  # -100: skipped by the cross-entropy
        labels[-answer_length:] = input_ids[-answer_length:]  # no shift: the model does it
        return labels

    return answer_labels


register(
    "11.answer_labels",
    check=_check_answer_labels,
    solution=_solution_answer_labels,
    hint="Start from a tensor of -100 shaped like input_ids; copy the last answer_length ids.",
)
