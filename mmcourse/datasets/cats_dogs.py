"""Cats vs dogs, multimodal: procedurally drawn pictures plus compositional captions.

Every sample has attributes (species, fur colour, pose, background, facing, ear shape,
muzzle length, occlusion, pixel noise, caption cue). The picture is drawn from them and the
caption is composed from them, so both modalities carry *partial* evidence:

* image: cats have pointed ears and short muzzles, dogs floppy ears and long muzzles, but
  prick-eared dogs exist (35% of dogs), muzzle lengths overlap, and an occluder or heavy
  noise can hide the cues;
* text: a caption names fur, pose and background (no species), plus a behaviour cue whose
  strength varies: strong (purring / barking), weak (a behaviour both do, skewed to one),
  neutral (none) or misleading (the other species' behaviour).

Neither modality alone is reliable; combining them is. The "leaky" captions state the label
("this is a cat"), and ``paths`` mimics the seed article's class-named file paths: both are
there to demonstrate label leakage. Deterministic from ``SEED``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from mmcourse.datasets.cache import load_arrays
from mmcourse.datasets.common import SubsetMixin, stratified_split

SEED = 7
N_PER_CLASS = 1000
SIZE = 32  # pixels of the stored image; drawn at twice that and averaged down (anti-aliasing)
CLASSES = ("cat", "dog")
FURS = {
    "black": (0.12, 0.11, 0.10),
    "white": (0.93, 0.92, 0.88),
    "ginger": (0.90, 0.50, 0.16),
    "grey": (0.55, 0.56, 0.58),
    "brown": (0.50, 0.32, 0.18),
}
# Known bias, as in real photo collections: ginger is commoner among cats, brown among dogs.
FUR_PROBS = {"cat": (0.2, 0.2, 0.25, 0.2, 0.15), "dog": (0.2, 0.2, 0.15, 0.2, 0.25)}
POSES = ("sitting", "standing", "lying")
BACKGROUNDS = {
    "grass": (0.30, 0.62, 0.25),
    "sofa": (0.55, 0.20, 0.22),
    "snow": (0.86, 0.90, 0.96),
    "beach": (0.93, 0.82, 0.55),
}
PLACES = {
    "grass": "on the grass",
    "sofa": "on a sofa",
    "snow": "in the snow",
    "beach": "on the beach",
}
POSE_WORDS = {"sitting": "sitting", "standing": "standing", "lying": "lying down"}
CUES = ("strong", "weak", "neutral", "misleading")
CUE_PROBS = (0.45, 0.2, 0.3, 0.05)
STRONG = {
    "cat": ("purring", "meowing", "grooming its whiskers", "chasing a mouse"),
    "dog": ("barking", "wagging its tail", "fetching a stick", "chewing a bone"),
}
# Behaviours both species show, each skewed towards one of them (used 70% for that one).
WEAK = {
    "cat": ("napping in the sun", "watching a bird"),
    "dog": ("playing with a ball", "waiting by the door"),
}
NEUTRAL_ENDINGS = ("", "", "looking at the camera", "in the afternoon")


@dataclass
class CatsDogs(SubsetMixin):
    """The multimodal cats-vs-dogs set; per-sample fields share the first axis."""

    images: np.ndarray  # float32 (N, 3, 32, 32) in [0, 1]
    captions: list  # honest captions (never name the species)
    leaky_captions: list  # "this is a cat": the label written into the text
    paths: list  # "images/cat/cat_0042.png": class-named file paths
    labels: np.ndarray  # int64 (N,), 0 = cat, 1 = dog
    attributes: pd.DataFrame  # one row of generating attributes per sample
    split: np.ndarray  # "train" / "val" / "test"
    classes: tuple = CLASSES


def _sample_attributes(rng: np.random.Generator) -> pd.DataFrame:
    species = np.repeat(CLASSES, N_PER_CLASS)
    n = species.size
    is_dog = species == "dog"
    fur_names = list(FURS)
    fur = np.where(
        is_dog,
        rng.choice(fur_names, n, p=FUR_PROBS["dog"]),
        rng.choice(fur_names, n, p=FUR_PROBS["cat"]),
    )
    pointy = np.where(is_dog, rng.random(n) < 0.35, True)
    muzzle = np.where(is_dog, rng.uniform(0.25, 1.0, n), rng.uniform(0.0, 0.55, n))
    return pd.DataFrame(
        {
            "species": species,
            "fur": fur,
            "pose": rng.choice(POSES, n),
            "background": rng.choice(list(BACKGROUNDS), n),
            "facing": rng.choice(["left", "right"], n),
            "ears": np.where(pointy, "pointed", "floppy"),
            "muzzle": muzzle.round(3),
            "occluded": rng.random(n) < 0.4,
            "noise_std": rng.uniform(0.0, 0.2, n).round(3),
            "cue": rng.choice(CUES, n, p=CUE_PROBS),
        }
    )


def _caption(row, rng: np.random.Generator) -> str:
    other = "dog" if row.species == "cat" else "cat"
    if row.cue == "strong":
        action = rng.choice(STRONG[row.species])
    elif row.cue == "misleading":
        action = rng.choice(STRONG[other])
    elif row.cue == "weak":
        owner = row.species if rng.random() < 0.7 else other
        action = rng.choice(WEAK[owner])
    else:
        action = rng.choice(NEUTRAL_ENDINGS)
    noun = rng.choice(["pet", "animal", "furry friend"])
    text = f"a {row.fur} {noun} {POSE_WORDS[row.pose]} {PLACES[row.background]}"
    return f"{text}, {action}" if action else text


def _ellipse(yy, xx, cy, cx, ry, rx):
    return ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0


def _triangle(yy, xx, apex, left, right):
    """Inside test for a triangle given three (y, x) corners, by signs of edge functions."""

    def edge(a, b):
        return (xx - a[1]) * (b[0] - a[0]) - (yy - a[0]) * (b[1] - a[1])

    d1, d2, d3 = edge(apex, left), edge(left, right), edge(right, apex)
    has_neg = (d1 < 0) | (d2 < 0) | (d3 < 0)
    has_pos = (d1 > 0) | (d2 > 0) | (d3 > 0)
    return ~(has_neg & has_pos)


def _draw(row, rng: np.random.Generator) -> np.ndarray:
    """Draw one 64x64 RGB picture from its attributes; returns float (64, 64, 3)."""
    big = 2 * SIZE
    yy, xx = np.mgrid[0:big, 0:big].astype(np.float32)
    background = np.array(BACKGROUNDS[row.background]) * rng.uniform(0.85, 1.1)
    img = np.broadcast_to(background, (big, big, 3)).copy()
    img *= 1 + 0.06 * np.sin(yy / rng.uniform(2, 5))[..., None]  # texture stripes
    fur = np.clip(np.array(FURS[row.fur]) * rng.uniform(0.85, 1.15), 0, 1)
    dark = fur * 0.55
    cx, cy = big / 2 + rng.uniform(-5, 5), big / 2 + rng.uniform(2, 8)
    scale = rng.uniform(1.15, 1.4)  # the animal fills a good part of the frame
    # body: its shape carries the pose
    body = {"sitting": (10, 8, 8, 0), "standing": (7, 14, 9, 0), "lying": (5, 16, 14, 0)}
    ry, rx, dy, _ = body[row.pose]
    img[_ellipse(yy, xx, cy + dy * scale, cx, ry * scale, rx * scale)] = fur
    # head, ears and muzzle
    hy, hx, hr = cy - 6 * scale, cx, 8 * scale
    side = 1 if row.facing == "right" else -1
    if row.ears == "pointed":
        for s in (-1, 1):
            base = hx + s * 5 * scale
            img[
                _triangle(
                    yy,
                    xx,
                    (hy - 15 * scale, base + s * 1.5 * scale),
                    (hy - 3 * scale, base - 4 * scale),
                    (hy - 3 * scale, base + 4 * scale),
                )
            ] = fur
    img[_ellipse(yy, xx, hy, hx, hr, hr)] = fur
    if row.ears == "floppy":
        for s in (-1, 1):
            img[_ellipse(yy, xx, hy + 4 * scale, hx + s * 8 * scale, 9 * scale, 3.5 * scale)] = dark
    length = 2 + 7 * row.muzzle
    mx = hx + side * (2 + length / 2) * scale
    img[_ellipse(yy, xx, hy + 3 * scale, mx, 3 * scale, length * scale)] = np.clip(
        fur * 1.25 + 0.1, 0, 1
    )
    nose_x = hx + side * (2 + length) * scale
    img[_ellipse(yy, xx, hy + 2 * scale, nose_x, 1.6 * scale, 1.6 * scale)] = 0.05
    for s in (-1, 1):  # eyes
        img[_ellipse(yy, xx, hy - 2 * scale, hx + s * 3 * scale + side * scale, 1.3, 1.3)] = 0.02
    if row.occluded:  # a post or blanket in front of the head
        top = rng.uniform(hy - 16 * scale, hy - 4 * scale)
        left = rng.uniform(hx - 14, hx + 2)
        block = (
            (yy >= top)
            & (yy < top + rng.uniform(10, 18))
            & (xx >= left)
            & (xx < left + rng.uniform(10, 16))
        )
        img[block] = rng.uniform(0.2, 0.8, 3)
    img = img.reshape(SIZE, 2, SIZE, 2, 3).mean(axis=(1, 3))
    img += rng.normal(0, row.noise_std, img.shape)
    return np.clip(img, 0, 1)


def _generate() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(SEED)
    attributes = _sample_attributes(rng)
    images = np.stack([_draw(row, rng) for row in attributes.itertuples()])
    captions = [_caption(row, rng) for row in attributes.itertuples()]
    labels = (attributes["species"].to_numpy() == "dog").astype(np.int64)
    arrays = {f"attr_{k}": v.to_numpy() for k, v in attributes.items()}
    arrays = {k: (v.astype(str) if v.dtype == object else v) for k, v in arrays.items()}
    return {
        "images": np.round(images * 255).astype(np.uint8),  # (N, 32, 32, 3) as an image file would
        "captions": np.array(captions),
        "labels": labels,
        "split": stratified_split(labels, seed=SEED),
        **arrays,
    }


def load_cats_dogs(variant: str = "honest") -> CatsDogs:
    """Load the cats-vs-dogs set. ``variant="leaky"`` puts the label-stating captions in
    ``captions`` (for the leakage lesson); the honest ones are the default."""
    if variant not in ("honest", "leaky"):
        raise ValueError(f"variant must be 'honest' or 'leaky', got {variant!r}")
    arrays = load_arrays("cats_dogs", _generate)
    attributes = pd.DataFrame({k[5:]: v for k, v in arrays.items() if k.startswith("attr_")})
    species = attributes["species"].tolist()
    leaky = [f"this is a {s}" for s in species]
    paths = [f"images/{s}/{s}_{i:04d}.png" for i, s in enumerate(species)]
    honest = arrays["captions"].tolist()
    return CatsDogs(
        images=arrays["images"].transpose(0, 3, 1, 2).astype(np.float32) / 255.0,
        captions=leaky if variant == "leaky" else honest,
        leaky_captions=leaky,
        paths=paths,
        labels=arrays["labels"],
        attributes=attributes,
        split=arrays["split"],
    )
