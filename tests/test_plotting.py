"""The shared plotting helpers draw what they promise and reject bad input."""

import matplotlib

matplotlib.use("agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from mmcourse.plotting import PIPELINE_STAGES, draw_pipeline, show_images  # noqa: E402


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
