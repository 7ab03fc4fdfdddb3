"""Privacy of a trained model: membership inference, and DP-SGD as the defence (notebook 10).

A model that has memorised its training set gives itself away: its loss on a training
example ("member") is lower than on an example it never saw. The **loss-threshold attack**
(Yeom et al., CSF 2018, a simple form of Shokri et al.'s membership inference, S&P 2017)
guesses "member" when the loss is below a threshold; its ROC AUC over all thresholds is the
attacker's skill (0.5 = chance).

**DP-SGD** (Abadi et al., CCS 2016) bounds what any one example can do to the weights: clip
each example's gradient to norm ``C``, sum, add Gaussian noise of standard deviation
``sigma * C`` and average. :func:`dp_sgd_gradient` writes one step out by hand;
:func:`train_dp` lets ``opacus`` (Yousefpour et al. 2021) do it and count the privacy
budget epsilon for a given delta.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mmcourse._checks import check_finite, check_int, check_module, check_real
from mmcourse.utils import offset_seed, seeded_generator


def _check_xy(x, y) -> tuple[torch.Tensor, torch.Tensor]:
    if not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.dim() < 2:
        raise TypeError("x must be a float tensor (N, ...) of inputs")
    if not isinstance(y, torch.Tensor) or y.dtype != torch.long or y.shape != x.shape[:1]:
        raise ValueError(f"y must be a LongTensor of {x.shape[0]} class labels, shape (N,)")
    if len(x) == 0:
        raise ValueError("x is empty")
    check_finite(x, "x")
    return x, y


# --------------------------------------------------------------------------- the attack
@torch.no_grad()
def per_example_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    """The cross-entropy of each example (N,): what the loss-threshold attacker observes."""
    check_module(model)
    x, y = _check_xy(x, y)
    model.eval()
    return F.cross_entropy(model(x), y, reduction="none").cpu().numpy()


def attack_auc(member_losses, nonmember_losses) -> float:
    """ROC AUC of the loss-threshold attack, by counting: the probability that a random
    member has a LOWER loss than a random non-member (ties count one half), i.e. the
    Mann-Whitney U statistic divided by the number of pairs. 0.5 = chance, 1 = every member
    found."""
    members = np.asarray(member_losses, dtype=float).reshape(-1)
    others = np.asarray(nonmember_losses, dtype=float).reshape(-1)
    for name, a in (("member_losses", members), ("nonmember_losses", others)):
        if a.size == 0 or not np.isfinite(a).all():
            raise ValueError(f"{name} must be a non-empty array of finite losses")
    lower = (members[:, None] < others[None, :]).sum()
    ties = (members[:, None] == others[None, :]).sum()
    return float((lower + 0.5 * ties) / (members.size * others.size))


def attack_accuracy(member_losses, nonmember_losses) -> tuple[float, float]:
    """The best balanced accuracy of "member if loss <= t" over all thresholds t, and that t.
    With equally many members and non-members 0.5 is chance. (The threshold is chosen on
    the very losses it is scored on: an upper bound on what the attacker reaches.)"""
    members = np.asarray(member_losses, dtype=float).reshape(-1)
    others = np.asarray(nonmember_losses, dtype=float).reshape(-1)
    attack_auc(members, others)  # the same input checks
    thresholds = np.unique(np.r_[members, others])
    tpr = (members[None, :] <= thresholds[:, None]).mean(1)
    tnr = (others[None, :] > thresholds[:, None]).mean(1)
    balanced = (tpr + tnr) / 2
    best = int(balanced.argmax())
    return float(balanced[best]), float(thresholds[best])


# --------------------------------------------------------------------------- training
def train_plain(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, epochs: int = 200, lr: float = 1e-2
) -> nn.Module:
    """Full-batch Adam for ``epochs`` steps without regularisation: on a small training set
    this memorises it (training loss near 0), the over-fitted model an attacker hopes for."""
    check_module(model)
    x, y = _check_xy(x, y)
    check_int(epochs, "epochs")
    check_real(lr, "lr", low=0.0, low_open=True)
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in range(epochs):
        optimizer.zero_grad()
        F.cross_entropy(model(x), y).backward()
        optimizer.step()
    return model.eval()


def dp_sgd_gradient(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    max_grad_norm: float,
    noise_multiplier: float,
    seed: int = 0,
) -> list[torch.Tensor]:
    """One DP-SGD gradient, written out (Abadi et al. 2016, Algorithm 1):

        g_i  = grad of loss(x_i, y_i)                  per example
        g_i <- g_i / max(1, ||g_i|| / C)               clip: no example moves more than C
        g    = (sum_i g_i + N(0, sigma^2 C^2 I)) / B   noise hides any single example

    ``||g_i||`` is the norm over ALL parameters together. Returns one tensor per parameter
    (the order of ``model.parameters()``). The noise comes from ``seeded_generator(seed)``.
    """
    check_module(model)
    x, y = _check_xy(x, y)
    check_real(max_grad_norm, "max_grad_norm", low=0.0, low_open=True)
    check_real(noise_multiplier, "noise_multiplier", low=0.0)
    params = dict(model.named_parameters())

    def loss_one(p, xi, yi):
        logits = torch.func.functional_call(model, p, (xi[None],))
        return F.cross_entropy(logits, yi[None])

    per_example = torch.func.vmap(torch.func.grad(loss_one), in_dims=(None, 0, 0))(params, x, y)
    norms = torch.sqrt(sum(g.reshape(len(x), -1).pow(2).sum(1) for g in per_example.values()))
    scale = 1.0 / torch.clamp(norms / max_grad_norm, min=1.0)  # (B,)
    generator = seeded_generator(seed)
    out = []
    for g in per_example.values():
        clipped = (g * scale.view(-1, *[1] * (g.dim() - 1))).sum(0)
        noise = torch.randn(clipped.shape, generator=generator) * noise_multiplier * max_grad_norm
        out.append((clipped + noise.to(clipped.device)) / len(x))
    return out


def _private(model, optimizer, loader, **kwargs):
    from opacus import PrivacyEngine

    with warnings.catch_warnings():  # opacus warns about secure RNG and sampling details
        warnings.simplefilter("ignore")
        engine = PrivacyEngine(accountant="rdp")
        private = engine.make_private_with_epsilon if "target_epsilon" in kwargs else None
        private = private or engine.make_private
        model, optimizer, loader = private(
            module=model, optimizer=optimizer, data_loader=loader, **kwargs
        )
    return engine, model, optimizer, loader


def opacus_gradient(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, max_grad_norm: float
) -> list[torch.Tensor]:
    """The gradient that opacus's DP optimizer applies for one batch ``x`` with no noise
    (``noise_multiplier=0``): to compare with :func:`dp_sgd_gradient`. ``model`` is not
    changed (opacus works on a copy)."""
    import copy

    from torch.utils.data import DataLoader, TensorDataset

    check_module(model)
    x, y = _check_xy(x, y)
    check_real(max_grad_norm, "max_grad_norm", low=0.0, low_open=True)
    twin = copy.deepcopy(model)
    before = [p.detach().clone() for p in twin.parameters()]
    optimizer = torch.optim.SGD(twin.parameters(), lr=1.0)  # the step is the gradient itself
    loader = DataLoader(TensorDataset(x, y), batch_size=len(x))
    _, private_model, private_opt, _ = _private(
        twin, optimizer, loader, noise_multiplier=0.0, max_grad_norm=max_grad_norm,
        poisson_sampling=False,
    )  # fmt: skip
    with warnings.catch_warnings():  # a backward-hook notice of opacus's per-example hooks
        warnings.simplefilter("ignore")
        private_opt.zero_grad()
        F.cross_entropy(private_model(x), y).backward()
        private_opt.step()
    return [(b - p.detach()) for b, p in zip(before, twin.parameters(), strict=True)]


def train_dp(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    target_epsilon: float,
    delta: float = 1e-3,
    epochs: int = 30,
    batch_size: int = 50,
    max_grad_norm: float = 1.0,
    lr: float = 0.2,
    seed: int = 0,
) -> tuple[nn.Module, dict]:
    """Train ``model`` with DP-SGD through opacus so that the whole run is
    (``target_epsilon``, ``delta``)-differentially private (RDP accountant, Poisson sampling).

    Returns (the trained model, {"epsilon": spent, "delta", "noise_multiplier": sigma that
    opacus chose, "steps"}). ``model`` itself is trained (opacus wraps it; the wrapper's
    weights are ``model``'s).
    """
    from torch.utils.data import DataLoader, TensorDataset

    check_module(model)
    x, y = _check_xy(x, y)
    check_real(target_epsilon, "target_epsilon", low=0.0, low_open=True)
    check_real(delta, "delta", low=0.0, high=1.0, low_open=True, high_open=True)
    check_int(epochs, "epochs")
    check_int(batch_size, "batch_size")
    check_real(max_grad_norm, "max_grad_norm", low=0.0, low_open=True)
    check_real(lr, "lr", low=0.0, low_open=True)
    generator = seeded_generator(seed)
    loader = DataLoader(TensorDataset(x, y), batch_size=batch_size, generator=generator)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.5)
    model.train()
    engine, private_model, private_opt, private_loader = _private(
        model, optimizer, loader, target_epsilon=target_epsilon, target_delta=delta,
        epochs=epochs, max_grad_norm=max_grad_norm,
    )  # fmt: skip
    steps = 0
    # opacus draws its batches and its noise from torch's global generator: seed it here,
    # and leave the caller's random state as it was
    with warnings.catch_warnings(), torch.random.fork_rng(devices=[]):
        warnings.simplefilter("ignore")
        torch.manual_seed(offset_seed(seed))
        for _ in range(epochs):
            for xb, yb in private_loader:
                if len(xb) == 0:  # Poisson sampling can draw an empty batch
                    continue
                private_opt.zero_grad()
                F.cross_entropy(private_model(xb), yb).backward()
                private_opt.step()
                steps += 1
    model.eval()
    return model, {
        "epsilon": float(engine.get_epsilon(delta)),
        "delta": delta,
        "noise_multiplier": float(private_opt.noise_multiplier),
        "steps": steps,
    }
