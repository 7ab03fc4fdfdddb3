"""Adversarial pictures and a cross-modal consistency check (notebook 10).

**FGSM**, the fast gradient sign method (Goodfellow, Shlens & Szegedy, ICLR 2015): move every
pixel by ``epsilon`` in the direction that increases the loss,

    x_adv = clip(x + epsilon * sign(grad_x loss(f(x), y)), 0, 1),

a change no larger than ``epsilon`` per pixel (an L-infinity ball) that a linear-ish model
feels in every one of its thousands of inputs at once.

**Cross-modal inconsistency**: when a picture and its caption tell different stories (one of
them attacked, corrupted or simply wrong), the single-modality models disagree. The score
``|P_image(dog) - P_text(dog)|`` is a safety signal that needs no label.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from mmcourse._checks import check_callable, check_finite, check_real


def fgsm(
    logit_fn: Callable[[torch.Tensor], torch.Tensor],
    images: torch.Tensor,
    labels: torch.Tensor,
    epsilon: float,
) -> torch.Tensor:
    """FGSM pictures (N, C, H, W) in [0, 1], each pixel at most ``epsilon`` from ``images``.

    logit_fn: pictures -> logits, either (N,) (one logit of the positive class, binary
    cross-entropy) or (N, K) (cross-entropy). labels: (N,) class indices (0/1 when binary).
    """
    check_callable(logit_fn, "logit_fn")
    if not isinstance(images, torch.Tensor) or images.dim() != 4 or not images.is_floating_point():
        raise ValueError("images must be a float tensor (N, C, H, W) with values in [0, 1]")
    check_finite(images, "images")
    if float(images.min()) < 0 or float(images.max()) > 1:
        raise ValueError("images must have values in [0, 1]")
    labels = torch.as_tensor(labels, device=images.device)
    if labels.shape != images.shape[:1]:
        raise ValueError(f"labels must have shape ({images.shape[0]},), got {tuple(labels.shape)}")
    check_real(epsilon, "epsilon", low=0.0, high=1.0)
    x = images.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        logits = logit_fn(x)
        if logits.dim() == 1:
            loss = F.binary_cross_entropy_with_logits(logits, labels.float())
        else:
            loss = F.cross_entropy(logits, labels.long())
        (grad,) = torch.autograd.grad(loss, x)
    return (images + epsilon * grad.sign()).clamp(0, 1).detach()


def flip_rate(labels, clean_pred, attacked_pred) -> float:
    """The attack's success rate: of the examples predicted correctly before the attack,
    the share predicted wrongly after it."""
    labels, clean, attacked = (
        np.asarray(a).reshape(-1) for a in (labels, clean_pred, attacked_pred)
    )
    if not (labels.shape == clean.shape == attacked.shape) or labels.size == 0:
        raise ValueError("labels, clean_pred and attacked_pred must be equally long and non-empty")
    correct = clean == labels
    if not correct.any():
        raise ValueError("no example was predicted correctly before the attack")
    return float((attacked[correct] != labels[correct]).mean())


def inconsistency(p_image, p_text) -> np.ndarray:
    """``|P_image(dog) - P_text(dog)|`` per example, in [0, 1]: how much the picture-only
    and the caption-only model disagree."""
    a = np.asarray(torch.as_tensor(p_image).detach().cpu(), dtype=float).reshape(-1)
    b = np.asarray(torch.as_tensor(p_text).detach().cpu(), dtype=float).reshape(-1)
    if a.shape != b.shape or a.size == 0:
        raise ValueError("p_image and p_text must be equally long and non-empty")
    if a.min() < 0 or a.max() > 1 or b.min() < 0 or b.max() > 1:
        raise ValueError("p_image and p_text must be probabilities in [0, 1]")
    return np.abs(a - b)
