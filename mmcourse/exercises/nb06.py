"""Exercises of notebook 06, contrastive pretraining (a tiny CLIP).

06.recall_at_k       recall@k of a similarity matrix whose matches lie on the diagonal
06.prompt_ensemble   zero-shot class embeddings from several prompt templates
06.soft_targets      the target matrix of a multi-positive loss (identical captions)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from mmcourse.contrastive import recall_at_k, same_key_mask
from mmcourse.exercises import register


def _random_similarity(n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    sim = torch.rand(n, n, generator=g)
    return sim + 0.5 * torch.eye(n) * torch.rand(n, 1, generator=g)  # some diagonals win


# --------------------------------------------------------------------------- 06.recall_at_k


def _check_recall(fn) -> None:
    if not callable(fn):
        raise AssertionError("answer with a function recall(similarity, k) -> float")
    hand = torch.tensor([[0.9, 0.1, 0.0], [0.8, 0.5, 0.1], [0.7, 0.6, 0.2]])
    for k, want in ((1, 1 / 3), (2, 2 / 3), (3, 1.0)):
        got = float(fn(hand.clone(), k))
        if abs(got - want) > 1e-6:
            raise AssertionError(
                f"on the 3x3 example (right items ranked 1st, 2nd, 3rd) recall@{k} should be "
                f"{want:.3f}, got {got:.3f}. Count a query as a hit when its own item "
                "(column i for row i) is among the k highest scores of its row."
            )
    for seed in range(3):
        sim = _random_similarity(40, seed)
        for k in (1, 5, 10):
            want, got = recall_at_k(sim, k), float(fn(sim.clone(), k))
            if abs(got - want) > 1e-6:
                raise AssertionError(
                    f"on a random 40x40 matrix recall@{k} should be {want:.3f}, got {got:.3f}. "
                    "Use the rows as queries and check k per row, then average over rows."
                )


def _solution_recall():
    def recall(similarity, k):
        # rank of the right item = how many items score at least as high (ties count against)
        right = similarity.diagonal().unsqueeze(1)  # (N, 1)
        better = (similarity >= right).sum(dim=1) - 1  # others scoring >= the right one
        return (better < k).float().mean().item()

    return recall


register(
    "06.recall_at_k",
    check=_check_recall,
    solution=_solution_recall,
    hint="The right item of row i is column i. Count how many other items of the row score at "
    "least as high; a hit is a count < k.",
)


# --------------------------------------------------------------------------- 06.prompt_ensemble


def _reference_ensemble(prompt_emb: torch.Tensor) -> torch.Tensor:
    return F.normalize(F.normalize(prompt_emb, dim=-1).mean(dim=1), dim=-1)


def _check_ensemble(fn) -> None:
    if not callable(fn):
        raise AssertionError("answer with a function ensemble(prompt_emb (C, T, D)) -> (C, D)")
    g = torch.Generator().manual_seed(0)
    prompt_emb = torch.randn(3, 4, 8, generator=g) * torch.rand(3, 4, 1, generator=g) * 5
    got = fn(prompt_emb.clone())
    if not isinstance(got, torch.Tensor) or got.shape != (3, 8):
        shape = tuple(got.shape) if isinstance(got, torch.Tensor) else type(got).__name__
        raise AssertionError(f"for prompt_emb of shape (3, 4, 8) return shape (3, 8), got {shape}")
    if not torch.allclose(got.norm(dim=-1), torch.ones(3), atol=1e-5):
        raise AssertionError("each class embedding must have unit length: normalise at the end")
    want = _reference_ensemble(prompt_emb)
    if not torch.allclose(got, want, atol=1e-5):
        plain = F.normalize(prompt_emb.mean(dim=1), dim=-1)
        if torch.allclose(got, plain, atol=1e-5):
            raise AssertionError(
                "close: normalise each prompt embedding BEFORE averaging, or prompts whose "
                "embeddings happen to be long dominate the mean"
            )
        raise AssertionError("not the normalised mean of the normalised prompt embeddings")


def _solution_ensemble():
    def ensemble(prompt_emb):
        unit = F.normalize(prompt_emb, dim=-1)  # each prompt counts equally
        return F.normalize(unit.mean(dim=1), dim=-1)  # back onto the unit sphere

    return ensemble


register(
    "06.prompt_ensemble",
    check=_check_ensemble,
    solution=_solution_ensemble,
    hint="F.normalize over the last dimension, mean over the template dimension (dim=1), "
    "then normalise again.",
)


# --------------------------------------------------------------------------- 06.soft_targets


def _check_soft_targets(fn) -> None:
    if not callable(fn):
        raise AssertionError("answer with a function soft_targets(captions) -> (B, B) tensor")
    cases = [
        ["a", "b", "c"],
        ["a white pet", "a black pet", "a white pet", "a white pet"],
        ["x", "x"],
    ]
    for captions in cases:
        same = same_key_mask(captions).float()
        want = same / same.sum(dim=1, keepdim=True)
        got = fn(list(captions))
        if not isinstance(got, torch.Tensor) or got.shape != want.shape:
            shape = tuple(got.shape) if isinstance(got, torch.Tensor) else type(got).__name__
            raise AssertionError(
                f"for {len(captions)} captions return a {tuple(want.shape)} tensor, got {shape}"
            )
        got = got.float()
        if not torch.allclose(got.sum(dim=1), torch.ones(len(captions)), atol=1e-6):
            raise AssertionError("each row is a probability distribution: it must sum to 1")
        if not torch.allclose(got, want, atol=1e-6):
            raise AssertionError(
                f"for captions {captions} expected\n{want}\ngot\n{got}\nRow i spreads its mass "
                "evenly over every j whose caption equals caption i (including i itself)."
            )


def _solution_soft_targets():
    def soft_targets(captions):
        same = torch.tensor([[a == b for b in captions] for a in captions]).float()
        return same / same.sum(dim=1, keepdim=True)  # each row sums to 1

    return soft_targets


register(
    "06.soft_targets",
    check=_check_soft_targets,
    solution=_solution_soft_targets,
    hint="Build the (B, B) matrix of caption equality, then divide each row by its sum.",
)
