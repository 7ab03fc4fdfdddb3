"""Tests of mmcourse.faithfulness on a linear model, whose ideal explanation is known."""

import pytest
import torch

from mmcourse import faithfulness as fh


def linear(shape=(3, 6, 6), seed=0):
    w = torch.randn(shape, generator=torch.Generator().manual_seed(seed))
    return w, (lambda x: (x * w).sum(dim=(1, 2, 3)))


def test_deletion_curve_of_a_linear_model_removes_contributions_in_order():
    w, f = linear()
    x = torch.rand(3, 6, 6)
    contribution = (w * x).sum(0)  # exact per-pixel contributions with baseline 0
    curve = fh.deletion_curve(f, x, contribution, steps=36)
    ranked = contribution.reshape(-1).sort(descending=True).values
    expected = contribution.sum() - torch.cat([torch.zeros(1), ranked.cumsum(0)])
    torch.testing.assert_close(curve, expected, rtol=1e-5, atol=1e-5)
    inserted = fh.insertion_curve(f, x, contribution, steps=36)
    torch.testing.assert_close(inserted, torch.cat([torch.zeros(1), ranked.cumsum(0)]),
                               rtol=1e-5, atol=1e-5)  # fmt: skip


def test_the_true_attribution_beats_a_random_order():
    w, f = linear(seed=1)
    x = torch.rand(3, 6, 6)
    truth = fh.curve_area(fh.deletion_curve(f, x, (w * x).sum(0), steps=12))
    randoms = [
        fh.curve_area(fh.deletion_curve(f, x, fh.random_saliency((6, 6), seed=s), steps=12))
        for s in range(5)
    ]
    assert truth < min(randoms)


def test_baseline_per_channel_and_endpoints():
    _, f = linear()
    x = torch.rand(3, 6, 6)
    base = torch.tensor([0.1, 0.2, 0.3])
    curve = fh.deletion_curve(f, x, torch.rand(6, 6), steps=4, baseline=base)
    assert curve[0] == pytest.approx(f(x[None])[0].item(), rel=1e-5)
    assert curve[-1] == pytest.approx(
        f(base.view(1, 3, 1, 1).expand(1, 3, 6, 6))[0].item(), rel=1e-5
    )


def test_curve_area():
    assert fh.curve_area(torch.ones(5)) == pytest.approx(1.0)
    assert fh.curve_area(torch.linspace(0, 1, 11)) == pytest.approx(0.5)


def test_random_saliency_follows_the_seed():
    assert torch.equal(fh.random_saliency((4, 4), 1), fh.random_saliency((4, 4), 1))
    assert not torch.equal(fh.random_saliency((4, 4), 1), fh.random_saliency((4, 4), 2))


def test_edge_map_sees_edges_only():
    flat = torch.full((3, 8, 8), 0.4)
    assert fh.edge_map(flat).abs().max() < 1e-6
    step = flat.clone()
    step[:, :, 4:] = 0.9
    edges = fh.edge_map(step)
    assert edges[:, 3:5].min() > 1 and edges[:, :2].max() < 1e-6 and edges[:, 6:].max() < 1e-6


@pytest.mark.parametrize(
    "call, name",
    [
        (lambda f, x: fh.deletion_curve(f, x, torch.rand(5, 6)), "saliency"),
        (lambda f, x: fh.deletion_curve(f, x[0], torch.rand(6, 6)), "image"),
        (lambda f, x: fh.deletion_curve(f, x, torch.rand(6, 6), steps=0), "steps"),
        (
            lambda f, x: fh.insertion_curve(f, x, torch.rand(6, 6), baseline=torch.ones(2)),
            "baseline",
        ),
        (lambda f, x: fh.deletion_curve(None, x, torch.rand(6, 6)), "score_fn"),
    ],
)
def test_bad_inputs_name_the_argument(call, name):
    _, f = linear()
    with pytest.raises((ValueError, TypeError), match=name):
        call(f, torch.rand(3, 6, 6))
