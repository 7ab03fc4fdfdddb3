"""The shared plotting helpers draw what they promise and reject bad input."""

import matplotlib

matplotlib.use("agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from mmcourse.plotting import (  # noqa: E402
    PIPELINE_STAGES,
    draw_pipeline,
    label_points,
    show_images,
)


def test_pipeline_has_one_box_per_stage_and_arrows_between():
    ax = draw_pipeline()
    assert len(ax.patches) == len(PIPELINE_STAGES)
    texts = [" ".join(t.get_text().replace("-\n", "-").split()) for t in ax.texts]  # may wrap
    assert all(name in texts for name, _ in PIPELINE_STAGES)
    arrows = [c for c in ax.get_children() if isinstance(c, matplotlib.text.Annotation)]
    assert len(arrows) == len(PIPELINE_STAGES) - 1
    plt.close("all")


def test_show_images_grid_and_titles():
    fig = show_images(np.zeros((5, 3, 4, 4)), titles=list("abcde"), ncols=2)
    shown = [ax for ax in fig.axes if ax.images]
    assert len(fig.axes) == 6 and len(shown) == 5
    assert [ax.get_title() for ax in shown] == list("abcde")
    show_images(np.zeros((2, 4, 4)))
    plt.close("all")


@pytest.mark.parametrize(
    "images, titles, match",
    [
        (np.zeros((2, 2, 4, 4)), None, "shape"),
        (np.zeros((0, 1, 4, 4)), None, "empty"),
        (np.zeros((2, 1, 4, 4)), ["a"], "titles"),
    ],
)
def test_show_images_bad_input(images, titles, match):
    with pytest.raises(ValueError, match=match):
        show_images(images, titles)


def test_label_points_never_overlap_and_keep_their_order():
    fig, ax = plt.subplots(figsize=(4, 3))
    x = np.array([1.0, 1.1, 1.2, 5.0, 5.0])
    y = np.array([0.80, 0.801, 0.802, 0.5, 0.1])  # three points almost on top of each other
    ax.scatter(x, y)
    ax.set(xlim=(0, 10), ylim=(0, 1))
    artists = label_points(ax, x, y, list("abcde"), min_gap=10)
    fig.canvas.draw()
    boxes = [matplotlib.text.Text.get_window_extent(a) for a in artists]  # text, no line
    for i in range(len(boxes)):
        for j in range(i + 1, len(boxes)):
            assert not boxes[i].overlaps(boxes[j]), (artists[i].get_text(), artists[j].get_text())
    heights = [b.y0 for b in boxes]
    assert heights[0] < heights[1] < heights[2]  # the order in y is kept
    far = artists[3]  # a lone point keeps its label next to it (no leader line needed)
    assert far.arrow_patch is None
    plt.close("all")


def test_label_points_rejects_mismatched_input():
    fig, ax = plt.subplots()
    with pytest.raises(ValueError, match="one length"):
        label_points(ax, [1, 2], [1, 2], ["a"])
    with pytest.raises(ValueError, match="finite"):
        label_points(ax, [1, np.nan], [1, 2], ["a", "b"])
    with pytest.raises(ValueError, match="min_gap"):
        label_points(ax, [1], [1], ["a"], min_gap=0)
    plt.close("all")


def test_label_points_stay_inside_the_axes():
    fig, ax = plt.subplots(figsize=(4, 3))
    y = np.full(8, 0.99)  # eight labels at the very top would run out of the axes
    ax.set(xlim=(0, 1), ylim=(0, 1))
    artists = label_points(ax, np.linspace(0.1, 0.5, 8), y, [f"label {i}" for i in range(8)])
    fig.canvas.draw()
    inside = ax.get_window_extent()
    for a in artists:
        box = matplotlib.text.Text.get_window_extent(a)
        assert inside.y0 - 1 <= box.y0 and box.y1 <= inside.y1 + 1, a.get_text()
    plt.close("all")


def test_label_points_in_a_column_line_up():
    fig, ax = plt.subplots(figsize=(4, 3))
    x, y = np.array([0.1, 0.3, 0.5]), np.array([0.5, 0.52, 0.2])
    ax.set(xlim=(0, 1), ylim=(0, 1))
    artists = label_points(ax, x, y, ["a", "b", "c"], column=True)
    fig.canvas.draw()
    lefts = [matplotlib.text.Text.get_window_extent(a).x0 for a in artists]
    assert max(lefts) - min(lefts) < 1.0  # one column
    plt.close("all")
