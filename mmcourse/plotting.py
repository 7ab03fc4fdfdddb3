"""Small plotting helpers shared by the notebooks: image grids and the pipeline diagram."""

from __future__ import annotations

import textwrap

import matplotlib.pyplot as plt
import numpy as np

PIPELINE_STAGES = (
    ("input data", "images, text, audio"),
    ("preprocessing", "clean, normalise, split"),
    ("feature extraction", "CNN, RNN / Transformer, MFCC"),
    ("fusion", "concat, weighted, attention, ..."),
    ("prediction", "classify, regress, generate"),
    ("post-processing", "visualise, explain"),
)


def draw_pipeline(ax=None, stages=PIPELINE_STAGES, notebooks=("00", "01", "02", "03", "04", "05")):
    """Draw the seed article's pipeline as boxes joined by arrows; returns the axes.

    Each box names a stage, what happens there and the notebook that teaches it.
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(13, 2.6))
    width, gap = 1.0, 0.45
    colours = plt.cm.tab10(np.arange(len(stages)))
    for i, ((name, detail), colour) in enumerate(zip(stages, colours)):
        x = i * (width + gap)
        ax.add_patch(
            plt.Rectangle(
                (x, 0), width, 1, facecolor=(*colour[:3], 0.18), edgecolor=colour, linewidth=2
            )
        )
        ax.text(
            x + width / 2,
            0.68,
            textwrap.fill(name, 12, break_long_words=False),  # keep long names in the box
            ha="center",
            va="center",
            fontsize=10,
            fontweight="bold",
        )
        ax.text(
            x + width / 2,
            0.3,
            detail.replace(", ", ",\n"),
            ha="center",
            va="center",
            fontsize=7.5,
        )
        if i < len(notebooks):
            ax.text(
                x + width / 2,
                -0.18,
                f"notebook {notebooks[i]}",
                ha="center",
                fontsize=8,
                color="0.35",
            )
        if i:
            ax.annotate(
                "",
                xy=(x, 0.5),
                xytext=(x - gap, 0.5),
                arrowprops={"arrowstyle": "->", "linewidth": 1.8},
            )
    ax.set_xlim(-0.1, len(stages) * (width + gap) - gap + 0.1)
    ax.set_ylim(-0.35, 1.1)
    ax.axis("off")
    return ax


def show_images(images, titles=None, ncols: int = 8, size: float = 1.5, cmap="gray"):
    """Show a grid of images given as (N, C, H, W) or (N, H, W) arrays/tensors in [0, 1].

    Returns the figure. Titles, if given, must be one per image.
    """
    images = np.asarray(images.detach().cpu() if hasattr(images, "detach") else images)
    if images.ndim == 3:
        images = images[:, None]
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ValueError(
            f"images must have shape (N, C, H, W) with C in (1, 3) or (N, H, W), got {images.shape}"
        )
    if len(images) == 0:
        raise ValueError("images is empty: nothing to show")
    if titles is not None and len(titles) != len(images):
        raise ValueError(f"titles must have one entry per image: {len(titles)} != {len(images)}")
    nrows = -(-len(images) // ncols)
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(ncols * size, nrows * size * 1.15), squeeze=False
    )
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= len(images):
            continue
        picture = images[i].transpose(1, 2, 0)
        ax.imshow(picture[..., 0] if picture.shape[-1] == 1 else picture, cmap=cmap, vmin=0, vmax=1)
        if titles is not None:
            ax.set_title(str(titles[i]), fontsize=7)
    fig.tight_layout()
    return fig
