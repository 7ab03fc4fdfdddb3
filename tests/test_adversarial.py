"""Tests of mmcourse.adversarial: FGSM on linear models, where the gradient's sign is known."""

import numpy as np
import pytest
import torch

from mmcourse import adversarial


def test_fgsm_on_a_linear_binary_model_moves_along_sign_w():
    w = torch.randn(1, 2, 4, 4, generator=torch.Generator().manual_seed(0))
    x = 0.3 + 0.4 * torch.rand(6, 2, 4, 4)  # away from the clip at 0 and 1
    labels = torch.tensor([0, 1, 0, 1, 1, 0])
    adv = adversarial.fgsm(lambda p: (p * w).sum(dim=(1, 2, 3)), x, labels, epsilon=0.05)
    # d BCE / dx = (sigma(z) - y) w: up along sign(w) for a 0, down for a 1
    direction = torch.where(labels.view(-1, 1, 1, 1) == 0, 1.0, -1.0) * w.sign()
    torch.testing.assert_close(adv - x, 0.05 * direction)


def test_fgsm_multiclass_matches_the_cross_entropy_gradient():
    weights = torch.randn(3, 12)
    x = 0.2 + 0.6 * torch.rand(5, 1, 3, 4)
    labels = torch.tensor([0, 1, 2, 1, 0])
    f = lambda p: p.reshape(len(p), -1) @ weights.T  # noqa: E731
    adv = adversarial.fgsm(f, x, labels, epsilon=0.01)
    xr = x.clone().requires_grad_(True)
    torch.nn.functional.cross_entropy(f(xr), labels).backward()
    torch.testing.assert_close(adv, x + 0.01 * xr.grad.sign())


def test_fgsm_stays_in_the_box_and_the_ball():
    x = torch.rand(8, 3, 5, 5)
    w = torch.randn(3, 5, 5)
    adv = adversarial.fgsm(lambda p: (p * w).sum(dim=(1, 2, 3)), x, torch.ones(8), epsilon=0.2)
    assert adv.min() >= 0 and adv.max() <= 1
    assert (adv - x).abs().max() <= 0.2 + 1e-6


def test_flip_rate_counts_only_correct_answers():
    labels, clean, attacked = [0, 1, 1, 0], [0, 1, 0, 0], [1, 1, 1, 1]
    assert adversarial.flip_rate(labels, clean, attacked) == pytest.approx(2 / 3)


def test_inconsistency():
    np.testing.assert_allclose(adversarial.inconsistency([0.9, 0.2], [0.1, 0.2]), [0.8, 0.0])


@pytest.mark.parametrize(
    "call, name",
    [
        (
            lambda: adversarial.fgsm(
                lambda p: p.sum((1, 2, 3)), torch.rand(2, 1, 3, 3) + 1, torch.ones(2), 0.1
            ),
            "images",
        ),  # fmt: skip
        (
            lambda: adversarial.fgsm(
                lambda p: p.sum((1, 2, 3)), torch.rand(2, 1, 3, 3), torch.ones(3), 0.1
            ),
            "labels",
        ),  # fmt: skip
        (
            lambda: adversarial.fgsm(
                lambda p: p.sum((1, 2, 3)), torch.rand(2, 1, 3, 3), torch.ones(2), -0.1
            ),
            "epsilon",
        ),  # fmt: skip
        (lambda: adversarial.flip_rate([1], [0], [0]), "no example"),
        (lambda: adversarial.inconsistency([1.5], [0.2]), "p_image"),
    ],
)
def test_bad_inputs_name_the_argument(call, name):
    with pytest.raises(ValueError, match=name):
        call()
