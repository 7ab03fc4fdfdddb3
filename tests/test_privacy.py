"""Tests of mmcourse.privacy: the membership attack against scikit-learn, DP-SGD against
plain autograd and against opacus."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score

from mmcourse import privacy


def small_net(seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))


def data(n=24, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 5, generator=g) * 3, torch.randint(0, 3, (n,), generator=g)


# --------------------------------------------------------------------------- the attack
def test_attack_auc_equals_sklearn_with_ties():
    rng = np.random.default_rng(0)
    members, others = rng.exponential(0.5, 70).round(1), rng.exponential(1.0, 50).round(1)
    expected = roc_auc_score(np.r_[np.ones(70), np.zeros(50)], -np.r_[members, others])
    assert privacy.attack_auc(members, others) == pytest.approx(expected, abs=1e-12)


def test_attack_auc_extremes_and_direction():
    assert privacy.attack_auc([0.1, 0.2], [0.3, 0.4]) == 1.0  # low loss = member
    assert privacy.attack_auc([0.3, 0.4], [0.1, 0.2]) == 0.0
    assert privacy.attack_auc([1.0], [1.0]) == 0.5


def test_attack_accuracy_finds_the_separating_threshold():
    acc, threshold = privacy.attack_accuracy([0.1, 0.2, 0.25], [0.3, 0.5, 0.9])
    assert acc == 1.0 and 0.25 <= threshold < 0.3
    acc, _ = privacy.attack_accuracy([0.5, 0.5], [0.5, 0.5])
    assert acc == pytest.approx(0.5)


def test_over_fitted_model_leaks_membership():
    x, y = data(40, seed=1)
    y = torch.randint(0, 3, (40,), generator=torch.Generator().manual_seed(5))  # random labels
    net = privacy.train_plain(small_net(), x[:20], y[:20], epochs=300)
    members = privacy.per_example_loss(net, x[:20], y[:20])
    others = privacy.per_example_loss(net, x[20:], y[20:])
    assert members.mean() < others.mean()
    assert privacy.attack_auc(members, others) > 0.8


# --------------------------------------------------------------------------- DP-SGD
def test_dp_sgd_without_clipping_or_noise_is_the_mean_gradient():
    net, (x, y) = small_net(), data()
    grads = privacy.dp_sgd_gradient(net, x, y, max_grad_norm=1e6, noise_multiplier=0.0)
    net.zero_grad()
    F.cross_entropy(net(x), y).backward()
    for g, p in zip(grads, net.parameters(), strict=True):
        torch.testing.assert_close(g, p.grad, rtol=1e-5, atol=1e-7)


def test_dp_sgd_clips_each_example_like_opacus():
    net, (x, y) = small_net(), data()
    ours = privacy.dp_sgd_gradient(net, x, y, max_grad_norm=0.1, noise_multiplier=0.0)
    theirs = privacy.opacus_gradient(net, x, y, max_grad_norm=0.1)
    for a, b in zip(ours, theirs, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-7)
    total = torch.sqrt(sum(g.pow(2).sum() for g in ours))
    assert total <= 0.1 + 1e-6  # the mean of vectors of norm <= C has norm <= C


def test_dp_sgd_noise_has_std_sigma_c_over_b():
    net = torch.nn.Linear(200, 50)
    x, y = torch.randn(10, 200), torch.randint(0, 50, (10,))
    clean = privacy.dp_sgd_gradient(net, x, y, max_grad_norm=0.5, noise_multiplier=0.0)
    noisy = privacy.dp_sgd_gradient(net, x, y, max_grad_norm=0.5, noise_multiplier=2.0, seed=3)
    noise = torch.cat([(a - b).reshape(-1) for a, b in zip(noisy, clean, strict=True)])
    assert noise.std().item() == pytest.approx(2.0 * 0.5 / 10, rel=0.05)


def test_train_dp_spends_the_target_epsilon():
    x, y = data(64, seed=2)
    net, spent = privacy.train_dp(small_net(), x, y, target_epsilon=2.0, epochs=2, batch_size=16)
    assert spent["epsilon"] == pytest.approx(2.0, rel=0.05)
    assert spent["noise_multiplier"] > 0 and spent["steps"] > 0
    assert isinstance(net, torch.nn.Module)


def test_train_dp_is_repeatable_and_leaves_global_rng_alone():
    x, y = data(64, seed=2)
    net_a, net_b = small_net(), small_net()
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a, _ = privacy.train_dp(net_a, x, y, target_epsilon=4.0, epochs=1, batch_size=16)
    after = torch.rand(1)
    b, _ = privacy.train_dp(net_b, x, y, target_epsilon=4.0, epochs=1, batch_size=16)
    assert torch.equal(before, after)
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(p, q)


@pytest.mark.parametrize(
    "call, name",
    [
        (lambda net, x, y: privacy.per_example_loss(net, x, y.float()), "y"),
        (lambda net, x, y: privacy.per_example_loss(net, x[0], y), "x"),
        (lambda net, x, y: privacy.train_dp(net, x, y, target_epsilon=0.0), "target_epsilon"),
        (lambda net, x, y: privacy.dp_sgd_gradient(net, x, y, -1.0, 0.0), "max_grad_norm"),
        (lambda net, x, y: privacy.attack_auc([], [1.0]), "member_losses"),
    ],
)
def test_bad_inputs_name_the_argument(call, name):
    net, (x, y) = small_net(), data()
    with pytest.raises((ValueError, TypeError), match=name):
        call(net, x, y)
