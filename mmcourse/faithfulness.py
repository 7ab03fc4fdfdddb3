"""Is an explanation faithful to the model? Deletion and insertion curves (notebook 10).

A saliency map claims "these pixels matter most". Test the claim on the model itself
(Samek et al. 2017; Petsiuk, Das & Saenko, "RISE", BMVC 2018):

* **deletion**: replace the pixels with a neutral ``baseline``, the most salient first,
  and record the score after each step. A faithful map makes the score fall fast: a small
  area under the curve.
* **insertion**: start from the baseline picture and put the pixels back, the most salient
  first: a faithful map makes the score rise fast, a large area.

Both are compared with a **random order** of the pixels: a map no better than random
explains nothing about this model, however plausible it looks. :func:`edge_map` is such
a map on purpose: the picture's own edges, computed without looking at the model at all
(Adebayo et al. 2018 found that several saliency methods behave like edge detectors;
``mmcourse.explain.randomisation_check`` exposes them).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from mmcourse._checks import check_callable, check_finite, check_int, check_seed
from mmcourse.utils import seeded_generator


def _check_pair(image, saliency) -> tuple[torch.Tensor, torch.Tensor]:
    if not isinstance(image, torch.Tensor) or image.dim() != 3 or not image.is_floating_point():
        raise ValueError("image must be one float picture of shape (C, H, W)")
    if not isinstance(saliency, torch.Tensor) or saliency.shape != image.shape[1:]:
        raise ValueError(
            f"saliency must be a (H, W) = {tuple(image.shape[1:])} map of the image, got "
            f"{getattr(saliency, 'shape', type(saliency).__name__)}"
        )
    check_finite(saliency, "saliency")
    return image, saliency.detach().to(image.device)


def _baseline(image: torch.Tensor, baseline) -> torch.Tensor:
    base = torch.as_tensor(baseline, dtype=image.dtype, device=image.device)
    if base.dim() == 1 and base.numel() == image.shape[0]:
        base = base.view(-1, 1, 1)
    try:
        return base.expand_as(image)
    except RuntimeError as exc:
        raise ValueError(
            "baseline must be a number, one value per channel, or a tensor shaped like "
            f"the image {tuple(image.shape)}"
        ) from exc


def _curve(score_fn, image, saliency, steps, baseline, insert: bool) -> torch.Tensor:
    check_callable(score_fn, "score_fn")
    image, saliency = _check_pair(image, saliency)
    check_int(steps, "steps")
    _, H, W = image.shape
    base = _baseline(image, baseline)
    order = torch.argsort(saliency.reshape(-1), descending=True, stable=True)
    counts = torch.linspace(0, H * W, steps + 1).round().long()
    rank = torch.empty(H * W, dtype=torch.long, device=image.device)
    rank[order] = torch.arange(H * W, device=image.device)
    # step k changes the pixels whose rank is below counts[k]: (steps + 1, 1, H, W) masks
    changed = (rank.view(1, H, W) < counts.to(image.device).view(-1, 1, 1))[:, None]
    start, end = (base, image) if insert else (image, base)
    pictures = torch.where(changed, end, start)
    with torch.no_grad():
        scores = score_fn(pictures)
    scores = torch.as_tensor(scores).reshape(-1).float().cpu()
    if scores.numel() != steps + 1:
        raise ValueError(f"score_fn must return one score per picture ({steps + 1},)")
    return scores


def deletion_curve(
    score_fn: Callable[[torch.Tensor], torch.Tensor],
    image: torch.Tensor,
    saliency: torch.Tensor,
    steps: int = 16,
    baseline=0.0,
) -> torch.Tensor:
    """Scores (steps + 1,) as the most salient pixels (all channels of a pixel together) are
    replaced by ``baseline``: entry k after k/steps of the pixels are gone.

    score_fn: pictures (S, C, H, W) -> scores (S,). saliency: (H, W). baseline: a number, one
    value per channel, or a picture."""
    return _curve(score_fn, image, saliency, steps, baseline, insert=False)


def insertion_curve(
    score_fn: Callable[[torch.Tensor], torch.Tensor],
    image: torch.Tensor,
    saliency: torch.Tensor,
    steps: int = 16,
    baseline=0.0,
) -> torch.Tensor:
    """Scores (steps + 1,) as the most salient pixels are put back onto the ``baseline``
    picture: entry 0 is the baseline, the last entry the full picture."""
    return _curve(score_fn, image, saliency, steps, baseline, insert=True)


def curve_area(curve: torch.Tensor) -> float:
    """Area under a curve sampled at equal steps of [0, 1] (trapezoid rule): the mean score
    along the way."""
    curve = torch.as_tensor(curve, dtype=torch.float64).reshape(-1)
    if curve.numel() < 2:
        raise ValueError("curve needs at least 2 points")
    return float(((curve[1:] + curve[:-1]) / 2).mean())


def random_saliency(shape: tuple[int, int], seed: int = 0) -> torch.Tensor:
    """A map of independent uniform values: a random pixel order (moves with the seed
    offset), the reference a real explanation must beat."""
    if len(shape) != 2:
        raise ValueError(f"shape must be (H, W), got {shape!r}")
    for value in shape:
        check_int(value, "shape")
    return torch.rand(tuple(shape), generator=seeded_generator(check_seed(seed)))


def edge_map(image: torch.Tensor) -> torch.Tensor:
    """The magnitude of the picture's own intensity gradient (Sobel filters), (H, W).

    A deliberately *unfaithful* explanation: it outlines the animal, so it looks plausible,
    but it never looks at the model. It does not change when the model's weights are
    randomised, and it has no reason to beat a random order in a deletion test."""
    if not isinstance(image, torch.Tensor) or image.dim() != 3 or not image.is_floating_point():
        raise ValueError("image must be one float picture of shape (C, H, W)")
    grey = image.mean(0, keepdim=True)[None]  # (1, 1, H, W)
    sobel = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])
    kernels = torch.stack([sobel, sobel.T])[:, None].to(image)
    grad = F.conv2d(F.pad(grey, (1, 1, 1, 1), mode="replicate"), kernels)
    return grad[0].pow(2).sum(0).sqrt()
