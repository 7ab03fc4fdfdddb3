"""Explanations of a multimodal prediction: which pixels, which words, which modality.

Post-processing (seed section 2.5) claims that multimodal models are "more interpretable";
these functions are how a lesson *shows* it instead of claiming it. Every method explains a
scalar ``score`` (a logit, or the probability of one class) of one example:

- image saliency: :func:`occlusion_saliency` (grey out a patch, measure how the score drops;
  Zeiler & Fergus 2014) and :func:`grad_cam` (gradient-weighted class activation maps;
  Selvaraju et al. 2017);
- word attributions: :func:`leave_one_word_out` (occlusion for text) and
  :func:`embedding_integrated_gradients` (integrated gradients on the word embeddings;
  Sundararajan, Taly & Yan 2017);
- modality contributions: :func:`modality_contributions`, the prediction with a modality
  removed ("leave one out"), or exact Shapley values over modalities, which add up to the
  full prediction minus the prediction with every modality removed;
- checks of an explanation (an explanation is a claim too): :func:`randomisation_check`, the
  model-parameter randomisation test of Adebayo et al. (2018) (a map that does not change when
  the weights are randomised explains the input, not the model), and
  :func:`localisation_ratio` / :func:`pointing_game`, whether the saliency falls on the region
  that really carries the evidence more than chance would put it there.

The functions take plain callables (``score_fn``) rather than a particular model class, so
the same code explains the case study's model, the unit tests' hand-made linear models, or a
learner's own network. Plot helpers at the end draw the results.
"""

from __future__ import annotations

import copy
import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from mmcourse._checks import check_callable, check_real

Batch = Mapping[str, torch.Tensor]


# --------------------------------------------------------------------------- checks
def _check_image(image, name: str = "image") -> torch.Tensor:
    if not isinstance(image, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (C, H, W), got {type(image)!r}")
    if image.dim() == 4 and image.shape[0] == 1:
        image = image[0]
    if image.dim() != 3:
        raise ValueError(f"{name} must have shape (C, H, W) or (1, C, H, W), got {image.shape}")
    if not image.is_floating_point():
        raise TypeError(f"{name} must be a float tensor, got dtype {image.dtype}")
    if image.numel() == 0:
        raise ValueError(f"{name} is empty (shape {tuple(image.shape)})")
    return image


def _scores(score_fn: Callable, inputs, expected: int, what: str) -> torch.Tensor:
    """Call ``score_fn`` and check that it returned one score per example."""
    out = score_fn(inputs)
    if not isinstance(out, torch.Tensor):
        out = torch.as_tensor(out, dtype=torch.float32)
    out = out.reshape(-1) if out.dim() > 1 and out.shape[-1] == 1 else out
    if out.dim() != 1 or out.shape[0] != expected:
        raise ValueError(
            f"score_fn must return one score per {what}: a tensor of shape ({expected},), "
            f"got shape {tuple(out.shape)}"
        )
    return out.float()


def _positive_int(value, name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value


# --------------------------------------------------------------------------- images
def occlusion_saliency(
    score_fn: Callable[[torch.Tensor], torch.Tensor],
    image: torch.Tensor,
    patch: int = 4,
    stride: int | None = None,
    baseline: float | torch.Tensor = 0.0,
    batch_size: int = 256,
) -> torch.Tensor:
    """Occlusion saliency: how much the score drops when a square patch is hidden.

    For every patch position p the patch is replaced by ``baseline`` (a number, or a tensor
    shaped like ``image``, e.g. the mean image), and ``drop_p = s(x) - s(x with p hidden)``.
    Each pixel's saliency is the mean drop over the patches that cover it, so for a linear
    score ``s(x) = sum(w * x)`` with ``patch=1`` and a zero baseline it is exactly
    ``sum_c w[c] * x[c]`` per pixel. Positive = evidence *for* the score.

    score_fn: images (B, C, H, W) -> scores (B,). image: (C, H, W). Returns (H, W).
    """
    check_callable(score_fn, "score_fn")
    image = _check_image(image)
    C, H, W = image.shape
    patch = _positive_int(patch, "patch")
    stride = patch if stride is None else _positive_int(stride, "stride")
    batch_size = _positive_int(batch_size, "batch_size")
    if patch > min(H, W):
        raise ValueError(f"patch={patch} is larger than the image ({H}x{W})")
    if not isinstance(baseline, torch.Tensor):
        check_real(baseline, "baseline")
    base = torch.as_tensor(baseline, dtype=image.dtype, device=image.device)
    if base.dim() > 0 and base.shape != image.shape:
        raise ValueError(
            f"baseline must be a number or a tensor of the image's shape {tuple(image.shape)}, "
            f"got shape {tuple(base.shape)}"
        )
    base = base.expand_as(image)
    # Patch corners; the last row/column is added so that every pixel is covered.
    rows = sorted(set(range(0, H - patch + 1, stride)) | {H - patch})
    cols = sorted(set(range(0, W - patch + 1, stride)) | {W - patch})
    corners = list(itertools.product(rows, cols))

    with torch.no_grad():
        full = _scores(score_fn, image[None], 1, "image")[0]
        drops = []
        for start in range(0, len(corners), batch_size):
            chunk = corners[start : start + batch_size]
            occluded = image.expand(len(chunk), C, H, W).clone()
            for k, (r, c) in enumerate(chunk):
                occluded[k, :, r : r + patch, c : c + patch] = base[:, r : r + patch, c : c + patch]
            drops.append(full - _scores(score_fn, occluded, len(chunk), "image"))
        drops = torch.cat(drops).cpu()

    total = torch.zeros(H, W)
    count = torch.zeros(H, W)
    for drop, (r, c) in zip(drops, corners, strict=True):
        total[r : r + patch, c : c + patch] += drop
        count[r : r + patch, c : c + patch] += 1
    return total / count


def grad_cam(
    score_fn: Callable[[torch.Tensor], torch.Tensor],
    layer: nn.Module,
    image: torch.Tensor,
    relu: bool = True,
) -> torch.Tensor:
    """Grad-CAM (Selvaraju et al., ICCV 2017) for one image.

    With ``A`` the (K, h, w) activation of ``layer`` (usually the last convolution) and ``s``
    the score, the channel weights are the spatially averaged gradients
    ``alpha_k = mean_ij ds/dA_kij`` and the map is ``ReLU(sum_k alpha_k A_k)``, upsampled
    (bilinear) to the image size. ``layer`` must run inside ``score_fn``.

    score_fn: images (1, C, H, W) -> scores (1,). image: (C, H, W). Returns (H, W).
    """
    check_callable(score_fn, "score_fn")
    image = _check_image(image)
    if not isinstance(layer, nn.Module):
        raise TypeError(f"layer must be an nn.Module inside the model, got {type(layer)!r}")
    captured: dict[str, torch.Tensor] = {}

    def hook(_module, _inputs, output):
        if not isinstance(output, torch.Tensor) or output.dim() != 4:
            raise ValueError("layer must output a (B, K, h, w) feature map for Grad-CAM")
        output.retain_grad()
        captured["A"] = output

    handle = layer.register_forward_hook(hook)
    try:
        with torch.enable_grad():
            # an input that needs a gradient builds the graph even when weights are frozen
            x = image[None].detach().clone().requires_grad_(True)
            score = _scores(score_fn, x, 1, "image")[0]
            if "A" not in captured:
                raise ValueError("layer was never called by score_fn; pass a layer of the model")
            activation = captured["A"]
            (grad,) = torch.autograd.grad(score, activation)
    finally:
        handle.remove()
    alpha = grad[0].mean(dim=(1, 2))  # (K,)
    cam = torch.einsum("k,khw->hw", alpha, activation[0].detach())
    if relu:
        cam = cam.clamp(min=0)
    cam = F.interpolate(cam[None, None], size=image.shape[1:], mode="bilinear", align_corners=False)
    return cam[0, 0].cpu()


# --------------------------------------------------------------------------- attributions
def integrated_gradients(
    fn: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    baseline: torch.Tensor | None = None,
    steps: int = 32,
) -> torch.Tensor:
    """Integrated gradients (Sundararajan, Taly & Yan, ICML 2017) of one input.

    ``IG_i = (x_i - x'_i) * integral_0^1 df/dx_i (x' + a (x - x')) da``, the integral taken
    by the midpoint rule with ``steps`` points. Completeness: ``sum(IG) ~= f(x) - f(x')``.

    fn: a batch (S, *x.shape) -> scores (S,). x: one input. baseline: like x (default zeros).
    Returns a tensor shaped like x.
    """
    check_callable(fn, "fn")
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise TypeError("x must be a float torch.Tensor")
    if x.numel() == 0:
        raise ValueError(f"x is empty (shape {tuple(x.shape)})")
    steps = _positive_int(steps, "steps")
    baseline = torch.zeros_like(x) if baseline is None else baseline
    if not isinstance(baseline, torch.Tensor) or baseline.shape != x.shape:
        raise ValueError(f"baseline must be a tensor shaped like x {tuple(x.shape)}")
    alphas = (torch.arange(steps, dtype=x.dtype, device=x.device) + 0.5) / steps
    shape = (steps,) + (1,) * x.dim()
    path = (baseline + alphas.view(shape) * (x - baseline)).detach().requires_grad_(True)
    with torch.enable_grad():
        scores = _scores(fn, path, steps, "point on the path")
        (grads,) = torch.autograd.grad(scores.sum(), path)
    return ((x - baseline) * grads.mean(dim=0)).detach()


def embedding_integrated_gradients(
    score_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    embedding: nn.Embedding,
    ids: torch.Tensor,
    mask: torch.Tensor,
    steps: int = 32,
    baseline_id: int | None = None,
) -> torch.Tensor:
    """Integrated gradients of one caption, per token, taken on the word embeddings.

    Token ids are discrete, so the path runs between the embedding vectors instead:
    ``e' + a (e - e')`` where ``e'`` is the zero vector (or the embedding of
    ``baseline_id``, e.g. the padding token). A forward hook substitutes the path into
    ``embedding``'s output; each token's attribution is its IG summed over embedding
    dimensions, and they add up to ``s(caption) - s(baseline caption)``.

    score_fn: (ids (S, L), mask (S, L)) -> scores (S,); it must call ``embedding``.
    ids, mask: (L,) or (1, L). Returns (L,) (zero at padding positions).
    """
    check_callable(score_fn, "score_fn")
    if not isinstance(embedding, nn.Embedding):
        raise TypeError(f"embedding must be the model's nn.Embedding, got {type(embedding)!r}")
    if not isinstance(ids, torch.Tensor) or ids.dtype != torch.long:
        raise TypeError("ids must be a LongTensor of token ids, shape (L,) or (1, L)")
    if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool:
        raise TypeError("mask must be a BoolTensor (True = real token), shape like ids")
    ids, mask = (
        ids.reshape(1, -1) if ids.dim() == 1 else ids,
        mask.reshape(1, -1) if mask.dim() == 1 else mask,
    )
    if ids.shape[0] != 1 or ids.shape != mask.shape:
        raise ValueError(
            "ids and mask must both have shape (L,) or (1, L); "
            f"got {tuple(ids.shape)} and {tuple(mask.shape)}"
        )
    steps = _positive_int(steps, "steps")
    if ids.numel() == 0 or int(ids.min()) < 0 or int(ids.max()) >= embedding.num_embeddings:
        raise ValueError(
            f"ids must be a non-empty row of token ids in [0, {embedding.num_embeddings}), "
            f"got {ids.tolist()}"
        )
    if baseline_id is not None and (
        not isinstance(baseline_id, int)
        or isinstance(baseline_id, bool)
        or not 0 <= baseline_id < embedding.num_embeddings
    ):
        raise ValueError(
            f"baseline_id must be None or a token id in [0, {embedding.num_embeddings}), "
            f"got {baseline_id!r}"
        )
    with torch.no_grad():
        e = embedding(ids)[0]  # (L, D)
        if baseline_id is None:
            base = torch.zeros_like(e)
        else:
            base = embedding.weight[baseline_id].expand_as(e).clone()
    alphas = (torch.arange(steps, dtype=e.dtype, device=e.device) + 0.5) / steps
    path = (base + alphas.view(-1, 1, 1) * (e - base)).detach().requires_grad_(True)

    def hook(_module, _inputs, output):
        if output.shape[:2] != path.shape[:2]:
            raise ValueError("embedding was called on ids other than the ones being explained")
        return path

    handle = embedding.register_forward_hook(hook)
    try:
        with torch.enable_grad():
            scores = _scores(
                lambda pair: score_fn(*pair),
                (ids.expand(steps, -1), mask.expand(steps, -1)),
                steps,
                "point on the path",
            )
            (grads,) = torch.autograd.grad(scores.sum(), path)
    finally:
        handle.remove()
    attribution = ((e - base) * grads.mean(dim=0)).sum(dim=-1)
    return (attribution * mask[0]).detach().cpu()


def leave_one_word_out(
    score_fn: Callable[[list[list[str]]], torch.Tensor],
    words: Sequence[str],
    replace_with: str | None = None,
) -> torch.Tensor:
    """Occlusion for text: the score drop when each word is removed (or replaced).

    ``attribution_i = s(words) - s(words without word i)``; with ``replace_with`` (e.g. the
    unknown-word token) word i is replaced instead of deleted, which keeps the length. For a
    bag-of-words score ``s = sum_i w[word_i]`` (delete mode) it is exactly ``w[word_i]``.

    score_fn: a list of token lists -> scores (B,). words: the caption's tokens. Returns (L,).
    """
    check_callable(score_fn, "score_fn")
    if isinstance(words, str) or not all(isinstance(w, str) for w in words):
        raise TypeError("words must be a list of str tokens (tokenise the caption first)")
    if replace_with is not None and not isinstance(replace_with, str):
        raise TypeError(f"replace_with must be None or a str token, got {replace_with!r}")
    if len(words) == 0:
        raise ValueError("words is empty: there is nothing to attribute")
    words = list(words)
    variants = [words]
    for i in range(len(words)):
        if replace_with is None:
            variants.append(words[:i] + words[i + 1 :])
        else:
            variants.append(words[:i] + [replace_with] + words[i + 1 :])
    with torch.no_grad():
        scores = _scores(score_fn, variants, len(variants), "caption")
    return (scores[0] - scores[1:]).cpu()


# --------------------------------------------------------------------------- modalities
def remove_modality(batch: Batch, name: str, fill: float = 0.0) -> dict[str, torch.Tensor]:
    """A copy of ``batch`` with modality ``name`` replaced by ``fill`` (zeros by default).

    A "name_mask" key, if any, is kept: an all-padding caption would be undefined for many
    text encoders, so a removed caption is a caption of ``fill`` ids (e.g. the padding or
    unknown-word id) of the original length. Pass your own ablation to
    :func:`modality_contributions` when another notion of "absent" fits better.
    """
    if not isinstance(batch, Mapping):
        raise TypeError(f"batch must be a dict of tensors, got {type(batch)!r}")
    if name not in batch:
        raise KeyError(f"name: batch has no modality {name!r}; it has {sorted(batch)}")
    check_real(fill, "fill")
    out = dict(batch)
    out[name] = torch.full_like(batch[name], fill)
    return out


def modality_contributions(
    score_fn: Callable[[Batch], torch.Tensor],
    batch: Batch,
    ablations: Mapping[str, Callable[[Batch], Batch]] | Sequence[str],
    method: str = "shapley",
) -> dict[str, torch.Tensor]:
    """Each modality's contribution to each example's score.

    ``v(S)`` is the score with only the modalities in S present (the others ablated).
    ``method="leave_one_out"``: ``phi_m = v(all) - v(all without m)``.
    ``method="shapley"``: the exact Shapley value over modalities,
    ``phi_m = sum_{S not containing m} |S|! (n-|S|-1)! / n! [v(S + m) - v(S)]``, which adds
    up to ``v(all) - v(none)`` even when modalities interact (leave-one-out does not).

    ablations: {name: function batch -> batch with that modality removed}, or a list of
    names (then :func:`remove_modality` with zeros). score_fn: batch -> scores (B,).
    Returns {name: (B,) contributions, "full": v(all), "none": v(none)}.
    """
    check_callable(score_fn, "score_fn")
    if method not in ("shapley", "leave_one_out"):
        raise ValueError(f"method must be 'shapley' or 'leave_one_out', got {method!r}")
    if not isinstance(ablations, Mapping):
        if isinstance(ablations, str):
            raise TypeError("ablations must be a list of modality names or a dict, not a str")
        if isinstance(batch, Mapping):
            unknown = [name for name in ablations if name not in batch]
            if unknown:
                raise KeyError(
                    f"ablations: batch has no modality {unknown[0]!r}; it has {sorted(batch)}"
                )
        ablations = {name: (lambda b, n=name: remove_modality(b, n)) for name in ablations}
    names = list(ablations)
    if not names:
        raise ValueError("ablations is empty: name at least one modality")
    if len(names) > 8:
        raise ValueError("exact Shapley values need 2^n evaluations; use at most 8 modalities")
    first = next(iter(batch.values())) if isinstance(batch, Mapping) and batch else None
    if first is None:
        raise ValueError("batch must be a non-empty dict of tensors")
    size = first.shape[0]

    cache: dict[frozenset, torch.Tensor] = {}

    def value(present: frozenset) -> torch.Tensor:
        if present not in cache:
            b = batch
            for name in names:
                if name not in present:
                    b = ablations[name](b)
            with torch.no_grad():
                cache[present] = _scores(score_fn, b, size, "example").cpu()
        return cache[present]

    everything = frozenset(names)
    out: dict[str, torch.Tensor] = {}
    n = len(names)
    for m in names:
        if method == "leave_one_out":
            out[m] = value(everything) - value(everything - {m})
            continue
        others = [o for o in names if o != m]
        phi = torch.zeros(size)
        for k in range(n):
            weight = math.factorial(k) * math.factorial(n - k - 1) / math.factorial(n)
            for subset in itertools.combinations(others, k):
                s = frozenset(subset)
                phi = phi + weight * (value(s | {m}) - value(s))
        out[m] = phi
    out["full"] = value(everything)
    out["none"] = value(frozenset())
    return out


# --------------------------------------------------------------------------- sanity checks
def rank_correlation(a: torch.Tensor, b: torch.Tensor) -> float:
    """Spearman's rank correlation of two maps (any shapes with the same number of entries).

    The Pearson correlation of the ranks; tied values share their average rank (Grad-CAM maps
    have many exact zeros). 1 = same ordering, 0 = unrelated, -1 = reversed. A constant map
    has no ordering: its correlation is 0.
    """
    a, b = _flat_map(a, "a"), _flat_map(b, "b")
    if a.numel() != b.numel():
        raise ValueError(f"a and b must have as many entries, got {a.numel()} and {b.numel()}")
    ra, rb = _average_ranks(a), _average_ranks(b)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    norm = float(ra.norm() * rb.norm())
    return 0.0 if norm == 0.0 else float((ra * rb).sum()) / norm


def _flat_map(x, name: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor (a saliency map), got {type(x)!r}")
    if x.numel() < 2:
        raise ValueError(f"{name} needs at least 2 entries to be ranked, got {x.numel()}")
    x = x.detach().reshape(-1).double().cpu()
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return x


def _average_ranks(x: torch.Tensor) -> torch.Tensor:
    """Ranks 1..n of a 1-D tensor; a run of ties gets the mean of the ranks it spans."""
    values, order = torch.sort(x)
    _, inverse, counts = torch.unique_consecutive(values, return_inverse=True, return_counts=True)
    ends = counts.cumsum(0).double()  # rank of the last member of each run
    mean_rank = ends - (counts.double() - 1) / 2
    ranks = torch.empty_like(x)
    ranks[order] = mean_rank[inverse]
    return ranks


def randomise_weights(model: nn.Module, modules: Sequence[str] | None = None, seed: int = 0):
    """A deep copy of ``model`` whose ``modules`` have freshly initialised weights.

    Every submodule of the named ``modules`` (dotted names as in ``model.named_modules()``;
    default: the whole model) that has ``reset_parameters()`` is re-initialised with the
    default PyTorch initialisation, under the seed ``seed``; the original is not touched, and
    the rest of the copy (e.g. the head, a frozen other branch) keeps its trained weights.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model)!r}")
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    if isinstance(modules, str):
        modules = [modules]
    names = [""] if modules is None else list(modules)
    if not names:
        raise ValueError("modules is empty: name at least one submodule (or pass None)")
    known = dict(model.named_modules())
    for name in names:
        if name not in known:
            raise KeyError(f"modules: model has no submodule {name!r}")
    twin = copy.deepcopy(model)
    twin_modules = dict(twin.named_modules())
    reset = 0
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for name in names:
            for sub in twin_modules[name].modules():
                if callable(getattr(sub, "reset_parameters", None)):
                    sub.reset_parameters()
                    reset += 1
    if reset == 0:
        raise ValueError(f"modules {names} contain no layer with reset_parameters()")
    return twin


@dataclass(frozen=True)
class RandomisationCheck:
    """The result of :func:`randomisation_check`: maps (N, H, W) and their rank correlations."""

    trained: torch.Tensor  # maps of the trained model
    randomised: torch.Tensor  # maps of the same model with randomised weights
    correlations: torch.Tensor  # (N,) rank correlation per input, trained vs randomised

    @property
    def mean_correlation(self) -> float:
        return float(self.correlations.mean())


def randomisation_check(
    saliency_fn: Callable[[nn.Module, torch.Tensor], torch.Tensor],
    model: nn.Module,
    inputs: torch.Tensor | Sequence,
    modules: Sequence[str] | None = None,
    seed: int = 0,
    absolute: bool = True,
) -> RandomisationCheck:
    """The model-parameter randomisation test (Adebayo et al., NeurIPS 2018, "Sanity Checks
    for Saliency Maps").

    An explanation of a *model* must depend on what the model learned: explain each input
    with the trained ``model`` and with a copy whose ``modules`` are re-initialised
    (:func:`randomise_weights`), and compare the two maps by their rank correlation
    (:func:`rank_correlation`; of ``|map|`` when ``absolute``, as the paper does, because
    a randomised network may flip signs). A high correlation means the method shows the
    input's structure (edges, a bright blob) whatever the weights: it fails the check.

    saliency_fn: (model, one input) -> a map. inputs: a sequence (or a batch tensor) of inputs.
    """
    check_callable(saliency_fn, "saliency_fn")
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model)!r}")
    if len(inputs) == 0:
        raise ValueError("inputs is empty: give at least one input to explain")
    randomised = randomise_weights(model, modules, seed)
    trained_maps, random_maps = [], []
    for x in inputs:
        trained_maps.append(torch.as_tensor(saliency_fn(model, x)).detach().float().cpu())
        random_maps.append(torch.as_tensor(saliency_fn(randomised, x)).detach().float().cpu())
    trained, random_ = torch.stack(trained_maps), torch.stack(random_maps)
    pick = torch.abs if absolute else (lambda t: t)
    correlations = torch.tensor(
        [rank_correlation(pick(a), pick(b)) for a, b in zip(trained, random_, strict=True)]
    )
    return RandomisationCheck(trained, random_, correlations)


def _check_region(saliency, region) -> tuple[torch.Tensor, torch.Tensor]:
    if not isinstance(saliency, torch.Tensor) or saliency.dim() != 2:
        raise ValueError("saliency must be a (H, W) tensor")
    region = torch.as_tensor(region)
    if region.dtype != torch.bool or region.shape != saliency.shape:
        raise ValueError(
            f"region must be a bool mask of the saliency's shape {tuple(saliency.shape)}, "
            f"got dtype {region.dtype} and shape {tuple(region.shape)}"
        )
    if not region.any() or region.all():
        raise ValueError("region must cover some but not all pixels (chance is undefined)")
    return saliency.detach().float().cpu(), region.cpu()


def localisation_ratio(
    saliency: torch.Tensor, region: torch.Tensor, positive: bool = True
) -> float:
    """How much more saliency falls inside ``region`` than chance would put there.

    ``(share of the saliency mass inside the region) / (share of the pixels in the region)``:
    1 = no better than spreading the mass uniformly, above 1 = concentrated on the region.
    The mass is the positive part of the map when ``positive`` (evidence *for* the score), its
    absolute value otherwise. A map without any mass has no localisation: ratio 0.

    saliency: (H, W). region: (H, W) bool, True where the true evidence is.
    """
    saliency, region = _check_region(saliency, region)
    mass = saliency.clamp(min=0) if positive else saliency.abs()
    total = float(mass.sum())
    if total == 0.0:
        return 0.0
    return (float(mass[region].sum()) / total) / float(region.float().mean())


def pointing_game(saliency: torch.Tensor, region: torch.Tensor) -> bool:
    """The pointing game (Zhang et al., ECCV 2016): does the map's maximum fall inside
    ``region``? Its chance rate is the region's share of the pixels."""
    saliency, region = _check_region(saliency, region)
    return bool(region.reshape(-1)[saliency.reshape(-1).argmax()])


# --------------------------------------------------------------------------- plots
def show_saliency(
    ax,
    image: torch.Tensor,
    saliency: torch.Tensor,
    title: str = "",
    alpha: float = 0.5,
    cmap: str = "RdBu_r",
    colorbar: bool = True,
):
    """Draw ``image`` (C, H, W) with a diverging ``saliency`` (H, W) map on top.

    With ``colorbar`` a colour bar beside the axes gives the map's scale (in the units of the
    score). Returns the overlay's image handle."""
    image = _check_image(image).detach().cpu()
    ax.imshow(
        image.permute(1, 2, 0).clamp(0, 1).numpy() if image.shape[0] == 3 else image[0],
        cmap=None if image.shape[0] == 3 else "gray",
    )
    limit = float(saliency.abs().max()) or 1.0
    low = 0.0 if float(saliency.min()) >= 0 else -limit  # a non-negative map (Grad-CAM) from 0
    overlay = ax.imshow(
        saliency.detach().cpu().numpy(), cmap=cmap, alpha=alpha, vmin=low, vmax=limit
    )
    if colorbar:
        bar = ax.figure.colorbar(overlay, ax=ax, fraction=0.046, pad=0.03)
        bar.ax.tick_params(labelsize=7)
    ax.set_title(title, fontsize=8)
    ax.axis("off")
    return overlay


def show_word_attributions(
    ax, words: Sequence[str], scores: torch.Tensor, title: str = "", cmap: str = "RdBu_r"
) -> None:
    """Write ``words`` in a row, each on a background coloured by its attribution."""
    import matplotlib.pyplot as plt

    scores = torch.as_tensor(scores).detach().cpu().float()
    if len(words) != scores.numel():
        raise ValueError(f"words ({len(words)}) and scores ({scores.numel()}) differ in length")
    limit = float(scores.abs().max()) or 1.0
    colour = plt.get_cmap(cmap)
    x = 0.0
    for word, score in zip(words, scores.tolist(), strict=True):
        ax.text(
            x,
            0.5,
            word,
            fontsize=9,
            va="center",
            transform=ax.transAxes,
            bbox={"facecolor": colour(0.5 + 0.5 * score / limit), "edgecolor": "none", "pad": 1.5},
        )
        x += 0.018 * (len(word) + 1.5)
    ax.set_title(title, fontsize=8, loc="left")
    ax.axis("off")
