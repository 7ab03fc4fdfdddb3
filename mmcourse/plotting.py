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


def label_points(
    ax, x, y, labels, min_gap: float = 11.0, fontsize: float = 8, dx: float = 6.0, column=False
):
    """Write ``labels`` next to the points (x, y) of a scatter plot without overlaps.

    Labels go ``dx`` points to the right of their point; where two would be closer than
    ``min_gap`` points vertically, they are pushed apart (keeping their order in y, and inside
    the axes) and a thin line joins each moved label to its point. Set the axes' scales and
    limits, and call ``tight_layout``, first: the spacing is computed in screen coordinates.
    With ``column=True`` all labels line up in one column, ``dx`` points right of the
    rightmost point (tidier for a dense cluster: the leader lines do not cross). Returns the
    annotation artists.
    """
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    labels = [str(label) for label in labels]
    if x.ndim != 1 or x.shape != y.shape or len(labels) != len(x):
        raise ValueError(
            f"x, y and labels must be 1-D and of one length, got {x.shape}, {y.shape} and "
            f"{len(labels)} labels"
        )
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError("x and y must be finite numbers")
    if min_gap <= 0:
        raise ValueError(f"min_gap must be > 0 points, got {min_gap}")
    points_per_pixel = 72.0 / ax.figure.dpi
    screen = ax.transData.transform(np.column_stack([x, y])) * points_per_pixel  # in points
    order = np.argsort(screen[:, 1], kind="stable")
    # bottom to top: labels closer than min_gap form a group, stacked min_gap apart and
    # centred on their points; a group that would then touch the one below moves up
    groups = []
    for i in order:
        if groups and screen[i, 1] < groups[-1]["top"] + min_gap:
            groups[-1]["members"].append(i)
        else:
            groups.append({"members": [i]})
        members = groups[-1]["members"]
        stack = np.arange(len(members)) * min_gap
        groups[-1]["base"] = (screen[members, 1] - stack).mean()
        groups[-1]["top"] = groups[-1]["base"] + stack[-1]
    placed = screen[:, 1].copy()
    floor = -np.inf
    for group in groups:
        base = max(group["base"], floor)
        for k, i in enumerate(group["members"]):
            placed[i] = base + k * min_gap
        floor = placed[group["members"][-1]] + min_gap
    # keep every label inside the axes: push down from the top edge, then up from the bottom
    box = ax.get_window_extent()
    top, bottom = box.y1 * points_per_pixel - min_gap / 2, box.y0 * points_per_pixel + min_gap / 2
    ceiling = top
    for i in order[::-1]:
        placed[i] = min(placed[i], ceiling)
        ceiling = placed[i] - min_gap
    floor = bottom
    for i in order:
        placed[i] = max(placed[i], floor)
        floor = placed[i] + min_gap
    artists = []
    right = screen[:, 0].max() + dx  # the column's left edge, in points
    for i, label in enumerate(labels):
        dy = placed[i] - screen[i, 1]
        offset = right - screen[i, 0] if column else dx
        moved = abs(dy) > 1.0 or offset > dx
        artists.append(
            ax.annotate(
                label,
                (x[i], y[i]),
                xytext=(offset, dy),
                textcoords="offset points",
                fontsize=fontsize,
                va="center",
                arrowprops=dict(arrowstyle="-", lw=0.5, color="0.5") if moved else None,
            )
        )
    return artists
