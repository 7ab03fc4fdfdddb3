"""Exercises of notebook 05 (case study: cats vs dogs from pictures and captions)."""

from __future__ import annotations

import numpy as np
import torch

from mmcourse import explain
from mmcourse.exercises import register
from mmcourse.text import tokenize

# --------------------------------------------------------------------------- 05.leak_audit
# A leak detector: words that occur often and always with the same label.

_AUDIT_CAPTIONS = (
    ["this is a cat purring"] * 6
    + ["this is a dog barking"] * 5
    + ["this is a dog purring"] * 2  # "purring" is a strong cue, not a leak: 6 cats, 2 dogs
    + ["a black pet on a sofa"] * 3
    + ["a black pet on the grass"] * 3
    + ["a rare cat"]  # "rare" occurs once: too rare to call a leak
)
_AUDIT_LABELS = [0] * 6 + [1] * 5 + [1] * 2 + [0, 1, 0] + [1, 0, 1] + [0]


def _reference_audit(captions, labels, min_count=3):
    seen: dict[str, set] = {}
    counts: dict[str, int] = {}
    for caption, label in zip(captions, labels, strict=True):
        for word in set(tokenize(caption)):
            seen.setdefault(word, set()).add(int(label))
            counts[word] = counts.get(word, 0) + 1
    return {w for w, s in seen.items() if len(s) == 1 and counts[w] >= min_count}


def _check_leak_audit(find_leaky_words):
    if not callable(find_leaky_words):
        raise AssertionError("answer with a function find_leaky_words(captions, labels, min_count)")
    got = find_leaky_words(_AUDIT_CAPTIONS, _AUDIT_LABELS, 3)
    if got is None or isinstance(got, str):
        raise AssertionError("return a set of words, e.g. {'cat', 'dog'}")
    got = set(got)
    expected = _reference_audit(_AUDIT_CAPTIONS, _AUDIT_LABELS, 3)
    if "purring" in got:
        raise AssertionError(
            "'purring' appears with both labels (6 cats, 2 dogs): a strong cue, not a leak"
        )
    if "rare" in got:
        raise AssertionError("'rare' occurs in only 1 caption: below min_count, not evidence")
    if got != expected:
        raise AssertionError(f"on the test captions expected {sorted(expected)}, got {sorted(got)}")
    rng = np.random.default_rng(0)  # a second, random check: honest words never leak
    words = ["a", "grey", "pet", "sofa", "snow", "barking", "purring"]
    captions = [" ".join(rng.choice(words, 4)) for _ in range(40)]
    labels = rng.integers(0, 2, 40).tolist()
    captions += ["this is a cat"] * 4 + ["this is a dog"] * 4
    labels += [0] * 4 + [1] * 4
    expected = _reference_audit(captions, labels, 4)
    got = set(find_leaky_words(captions, labels, 4))
    if got != expected:
        raise AssertionError(
            f"on random captions plus 'this is a cat/dog' expected {sorted(expected)}, "
            f"got {sorted(got)}; count each word once per caption"
        )


def _solution_leak_audit():
    def find_leaky_words(captions, labels, min_count=3):
        labels_of, count = {}, {}
        for caption, label in zip(captions, labels, strict=True):
            for word in set(tokenize(caption)):  # once per caption
                labels_of.setdefault(word, set()).add(int(label))
                count[word] = count.get(word, 0) + 1
        # a leak: frequent enough to matter, and never seen with the other label
        return {w for w in labels_of if len(labels_of[w]) == 1 and count[w] >= min_count}

    return find_leaky_words


register(
    "05.leak_audit",
    check=_check_leak_audit,
    solution=_solution_leak_audit,
    hint="Tokenise each caption with mmcourse.text.tokenize, count each word once per caption, "
    "and keep the words seen at least min_count times and only ever with one label.",
)


# --------------------------------------------------------------------------- 05.shapley
def _check_shapley(shapley_two):
    if not callable(shapley_two):
        raise AssertionError("answer with a function shapley_two(v_none, v_image, v_text, v_both)")
    cases = [(0.5, 0.9, 0.5, 0.9), (0.5, 0.5, 0.5, 0.95), (0.2, 0.6, 0.3, 0.4)]
    rng = np.random.default_rng(1)
    cases += [tuple(rng.random(4)) for _ in range(5)]
    for v in cases:
        got = shapley_two(*v)
        if got is None or len(got) != 2:
            raise AssertionError("return two numbers: (phi_image, phi_text)")
        phi_image, phi_text = float(got[0]), float(got[1])
        if not np.isclose(phi_image + phi_text, v[3] - v[0]):
            raise AssertionError(
                f"for v = {np.round(v, 3).tolist()} the two values must add up to "
                f"v_both - v_none = {v[3] - v[0]:.3f}, got {phi_image + phi_text:.3f}"
            )
        batch = {"image": torch.ones(1, 1), "text": torch.ones(1, 1)}

        def value(b, v=v):
            i, t = bool(b["image"][0, 0]), bool(b["text"][0, 0])
            return torch.tensor([{(0, 0): v[0], (1, 0): v[1], (0, 1): v[2], (1, 1): v[3]}[i, t]])

        ref = explain.modality_contributions(value, batch, ["image", "text"])
        if not np.isclose(phi_image, float(ref["image"][0]), atol=1e-6):
            raise AssertionError(
                f"for v = {np.round(v, 3).tolist()} phi_image should be "
                f"{float(ref['image'][0]):.3f}, got {phi_image:.3f}: average the image's "
                "effect with and without the text"
            )


def _solution_shapley():
    def shapley_two(v_none, v_image, v_text, v_both):
        # the image's effect, averaged over "text absent" and "text present"
        phi_image = 0.5 * ((v_image - v_none) + (v_both - v_text))
        phi_text = 0.5 * ((v_text - v_none) + (v_both - v_image))
        return phi_image, phi_text

    return shapley_two


register(
    "05.shapley",
    check=_check_shapley,
    solution=_solution_shapley,
    hint="phi_image = average of (v_image - v_none) and (v_both - v_text); same for the text.",
)


# --------------------------------------------------------------------------- 05.occlusion
def _check_occlusion(occlude):
    if not callable(occlude):
        raise AssertionError("answer with a function occlude(score_fn, image, patch)")
    torch.manual_seed(0)
    w = torch.randn(3, 8, 8)

    def score_fn(x):
        return torch.tanh((x * w).sum(dim=(1, 2, 3)) / 8)

    image = torch.rand(3, 8, 8)
    for patch in (1, 2, 4):
        got = occlude(score_fn, image, patch)
        if not isinstance(got, torch.Tensor) or got.shape != (8, 8):
            raise AssertionError(
                f"return an (H, W) = (8, 8) tensor, got {getattr(got, 'shape', got)}"
            )
        expected = explain.occlusion_saliency(score_fn, image, patch=patch)
        if torch.allclose(got, -expected, atol=1e-5) and expected.abs().max() > 0:
            raise AssertionError("the sign is flipped: saliency = score(full) - score(occluded)")
        if not torch.allclose(got, expected, atol=1e-5):
            raise AssertionError(
                f"with patch={patch} your map differs from the occlusion saliency by up to "
                f"{(got - expected).abs().max():.3g}; give every pixel of a patch that patch's drop"
            )


def _solution_occlusion():
    def occlude(score_fn, image, patch):
        C, H, W = image.shape
        full = score_fn(image[None])[0]
        saliency = torch.zeros(H, W)
        for r in range(0, H, patch):  # non-overlapping patches (H, W multiples of patch)
            for c in range(0, W, patch):
                hidden = image.clone()
                hidden[:, r : r + patch, c : c + patch] = 0.0  # grey it out
                saliency[r : r + patch, c : c + patch] = full - score_fn(hidden[None])[0]
        return saliency

    return occlude


register(
    "05.occlusion",
    check=_check_occlusion,
    solution=_solution_occlusion,
    hint="Loop over patch corners (r, c) in steps of patch; zero the patch in a copy; the drop "
    "score(full) - score(copy) goes to every pixel of that patch.",
)
