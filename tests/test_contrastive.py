"""Tests of mmcourse.contrastive: the CLIP loss, TinyCLIP, retrieval, zero-shot, search."""

import itertools
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mmcourse import contrastive as C

# --------------------------------------------------------------------------- helpers


def reference_clip_loss(image_emb, text_emb, logit_scale):
    """A plain float64 NumPy transcription of CLIP's pseudo-code (Radford et al. 2021, Fig. 3)."""
    i = np.asarray(image_emb, dtype=np.float64)
    t = np.asarray(text_emb, dtype=np.float64)
    logits = min(math.exp(logit_scale), 100.0) * i @ t.T

    def ce(rows):  # mean over rows of -log softmax(row)[diagonal]
        out = 0.0
        for r, row in enumerate(rows):
            m = row.max()
            out += -(row[r] - m - math.log(np.exp(row - m).sum()))
        return out / len(rows)

    return 0.5 * (ce(logits) + ce(logits.T))


def unit(*shape, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(*shape, generator=g), dim=-1).to(dtype)


class PixelEncoder(nn.Module):
    """Stand-in image tower: flatten + linear."""

    def __init__(self, in_features, out_dim):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(in_features, out_dim))

    def forward(self, x):
        return self.net(x)


class BagOfWords(nn.Module):
    """Stand-in text tower: masked mean of token embeddings."""

    def __init__(self, vocab_size, out_dim):
        super().__init__()
        self.emb = nn.Embedding(vocab_size, out_dim)

    def forward(self, ids, mask):
        m = mask.unsqueeze(-1).float()
        return (self.emb(ids) * m).sum(1) / m.sum(1).clamp(min=1)


def tiny_model(learn_temperature=True, temperature=0.07):
    return C.TinyCLIP(
        PixelEncoder(3 * 4 * 4, 16),
        BagOfWords(10, 16),
        16,
        16,
        embed_dim=8,
        temperature=temperature,
        learn_temperature=learn_temperature,
    )


def toy_pairs(n=64, seed=0):
    """Images whose colour channel tells the token: caption k <-> images with brightness k."""
    g = torch.Generator().manual_seed(seed)
    tok = torch.randint(1, 9, (n,), generator=g)
    images = torch.rand(n, 3, 4, 4, generator=g) * 0.1
    images[torch.arange(n), tok % 3] += tok[:, None, None].float() / 8
    ids = torch.stack([tok, (tok + 1) % 10, torch.zeros_like(tok)], dim=1)
    mask = torch.tensor([True, True, False]).expand(n, 3).clone()
    return images, ids, mask


# --------------------------------------------------------------------------- clip_loss


def test_clip_loss_hand_computed():
    # Scale 1 (logit_scale = 0). image = I, text rows both (1, 0): logits [[1, 1], [0, 0]].
    # image->text: both rows are ties -> ln 2 each. text->image (columns): [1, 0] target 0
    # -> ln(1 + e^-1); [1, 0] target 1 -> ln(1 + e). Loss = (ln 2 + (those two) / 2) / 2.
    image = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    text = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    expected = 0.5 * (math.log(2) + 0.5 * (math.log(1 + math.exp(-1)) + math.log(1 + math.e)))
    assert C.clip_loss(image, text, 0.0).item() == pytest.approx(expected, rel=1e-6)
    # Perfect pairs, scale 1: each row [1, 0] with the right target -> ln(1 + e^-1).
    assert C.clip_loss(image, image, torch.tensor(0.0)).item() == pytest.approx(
        math.log(1 + math.exp(-1)), rel=1e-6
    )


@pytest.mark.parametrize("b,d,t", [(1, 4, 0.0), (5, 3, math.log(1 / 0.07)), (16, 8, 4.0)])
def test_clip_loss_matches_reference(b, d, t):
    image, text = unit(b, d, seed=1), unit(b, d, seed=2)
    got = C.clip_loss(image, text, torch.tensor(t)).item()
    assert got == pytest.approx(reference_clip_loss(image, text, t), rel=1e-5, abs=1e-6)


def test_clip_loss_batch_of_one_is_zero():
    # One pair: the only caption is the right one, whatever the embeddings.
    loss = C.clip_loss(unit(1, 5), unit(1, 5, seed=3), math.log(1 / 0.07))
    assert loss.item() == pytest.approx(0.0, abs=1e-7)


@pytest.mark.parametrize("b", [2, 7, 128])
def test_uninformative_embeddings_give_ln_b(b):
    same = F.normalize(torch.ones(b, 6), dim=-1)
    assert C.clip_loss(same, same, math.log(100)).item() == pytest.approx(math.log(b), rel=1e-6)


def test_loss_is_symmetric_and_matches_cross_entropy_of_logits():
    image, text = unit(6, 4, seed=5), unit(6, 4, seed=6)
    a = C.clip_loss(image, text, 2.0)
    b = C.clip_loss(text, image, 2.0)
    assert a.item() == pytest.approx(b.item(), rel=1e-6)
    logits = C.clip_logits(image, text, 2.0)
    assert logits.shape == (6, 6)
    torch.testing.assert_close(logits, math.exp(2.0) * image @ text.T)


def test_scale_is_capped_at_100_and_gradient_stops_past_the_cap():
    image, text = unit(8, 4, seed=7), unit(8, 4, seed=8)
    over = torch.tensor(math.log(200.0), requires_grad=True)
    C.clip_loss(image, text, over).backward()
    assert over.grad.item() == 0.0  # clamped: no gradient, as CLIP's clamp
    at_cap = C.clip_loss(image, text, math.log(100.0)).item()
    assert C.clip_loss(image, text, math.log(200.0)).item() == pytest.approx(at_cap, rel=1e-6)
    assert C.effective_scale(math.log(1e6)).item() == pytest.approx(100.0)
    below = torch.tensor(math.log(50.0), requires_grad=True)
    C.clip_loss(image, text, below).backward()
    assert below.grad.item() != 0.0


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_inputs_no_nan(dtype):
    image, text = unit(64, 16, seed=9, dtype=dtype), unit(64, 16, seed=10, dtype=dtype)
    image.requires_grad_(True)
    scale = torch.tensor(math.log(90.0), dtype=dtype)
    loss = C.clip_loss(image, text, scale)
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    ref = C.clip_loss(image.detach().float(), text.float(), scale.float())
    assert loss.item() == pytest.approx(ref.item(), rel=1e-4)
    loss.backward()
    assert image.grad.dtype == dtype and torch.isfinite(image.grad.float()).all()
    # Unnormalised half embeddings whose dot products overflow float16 (> 65504) stay finite.
    big = torch.full((4, 8), 200.0, dtype=dtype)
    assert torch.isfinite(C.clip_loss(big, big, math.log(100.0)))


def test_clip_loss_bad_inputs_name_the_argument():
    good = unit(4, 3)
    with pytest.raises(ValueError, match="image_emb and text_emb must have the same shape"):
        C.clip_loss(good, unit(5, 3), 0.0)
    with pytest.raises(ValueError, match="same shape"):
        C.clip_loss(good, unit(4, 2), 0.0)
    with pytest.raises(ValueError, match="image_emb must have shape"):
        C.clip_loss(good[0], good, 0.0)
    with pytest.raises(TypeError, match="text_emb must be a torch.Tensor"):
        C.clip_loss(good, good.numpy(), 0.0)
    with pytest.raises(ValueError, match="image_emb must have B >= 1"):
        C.clip_loss(good[:0], good[:0], 0.0)
    with pytest.raises(TypeError, match="text_emb must be a floating-point"):
        C.clip_loss(good, torch.ones(4, 3, dtype=torch.long), 0.0)
    with pytest.raises(ValueError, match="logit_scale must hold one number"):
        C.clip_loss(good, good, torch.zeros(2))
    with pytest.raises(TypeError, match="logit_scale must be a float"):
        C.clip_loss(good, good, "14")


def test_multi_positive_loss():
    image, text = unit(6, 4, seed=11), unit(6, 4, seed=12)
    eye = torch.eye(6, dtype=torch.bool)
    assert C.multi_positive_clip_loss(image, text, 1.0, eye).item() == pytest.approx(
        C.clip_loss(image, text, 1.0).item(), rel=1e-6
    )
    # Two identical pairs: no loss can go below ln 2 on their rows (the duplicate floor).
    e = torch.eye(3)
    pairs = torch.stack([e[0], e[0], e[1], e[2]])
    keys = ["a", "a", "b", "c"]
    pos = C.same_key_mask(keys)
    assert pos.sum().item() == 6 and pos[0, 1] and not pos[0, 2]
    floor = C.duplicate_loss_floor(keys)
    assert floor == pytest.approx(0.5 * math.log(2))  # 2 of 4 rows stuck at ln 2
    assert C.duplicate_loss_floor(["a", "b"]) == 0.0
    assert C.clip_loss(pairs, pairs, math.log(100)).item() == pytest.approx(floor, rel=1e-4)
    assert C.multi_positive_clip_loss(pairs, pairs, math.log(100), pos).item() == pytest.approx(
        floor, rel=1e-4
    )
    # Hand-computed, scale 1: two pairs declared positives of each other. Separating them
    # (embeddings = identity, logits [[1, 0], [0, 1]]) is rewarded by the plain loss,
    # ln(1 + e^-1), and penalised by the soft one: -ln(e/(e+1))/2 - ln(1/(e+1))/2.
    sep = torch.eye(2)
    both = torch.ones(2, 2, dtype=torch.bool)
    assert C.clip_loss(sep, sep, 0.0).item() == pytest.approx(math.log(1 + math.exp(-1)))
    soft_sep = C.multi_positive_clip_loss(sep, sep, 0.0, both).item()
    assert soft_sep == pytest.approx(math.log(1 + math.e) - 0.5, rel=1e-6)
    merged = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    soft_merged = C.multi_positive_clip_loss(merged, merged, 0.0, both).item()
    assert soft_merged == pytest.approx(math.log(2)) and soft_merged < soft_sep
    with pytest.raises(ValueError, match="positives must be a bool tensor of shape"):
        C.multi_positive_clip_loss(image, text, 1.0, eye[:5, :5])
    with pytest.raises(ValueError, match="diagonal"):
        C.multi_positive_clip_loss(image, text, 1.0, torch.zeros(6, 6, dtype=torch.bool))
    with pytest.raises(ValueError, match="keys must be a non-empty sequence"):
        C.same_key_mask("abc")


def test_few_negatives_loss():
    image, text = unit(16, 4, seed=13), unit(16, 4, seed=14)
    full = C.clip_loss(image, text, 2.0).item()
    g = torch.Generator().manual_seed(0)
    assert C.clip_loss_few_negatives(image, text, 2.0, 15, g).item() == pytest.approx(
        full, rel=1e-6
    )
    # Uninformative embeddings: chance is ln(k + 1), not ln(B).
    same = F.normalize(torch.ones(16, 4), dim=-1)
    for k in (0, 1, 7):
        assert C.clip_loss_few_negatives(same, same, 2.0, k, g).item() == pytest.approx(
            math.log(k + 1), rel=1e-6, abs=1e-7
        )
    # Fewer competitors can only lower the loss (each kept set is a subset of the full row).
    assert C.clip_loss_few_negatives(image, text, 2.0, 3, g).item() < full
    keep = C._keep_negatives(16, 3, torch.Generator().manual_seed(1), "cpu")
    assert keep.diagonal().all() and (keep.sum(dim=1) == 4).all()
    with pytest.raises(ValueError, match="num_negatives must be an int in \\[0, 15\\]"):
        C.clip_loss_few_negatives(image, text, 2.0, 16)


# --------------------------------------------------------------------------- TinyCLIP


def test_make_tiny_clip_uses_the_course_encoders():
    from mmcourse.encoders import ImageCNN, TextTransformer

    model = C.make_tiny_clip(30, embed_dim=8, width=16, image_channels=(4, 8))
    assert isinstance(model.image_encoder[1], ImageCNN)
    assert isinstance(model.text_encoder, TextTransformer)
    ids = torch.randint(1, 30, (3, 5))
    i, t, s = model(torch.rand(3, 3, 32, 32), ids, ids != 0)
    assert i.shape == t.shape == (3, 8)
    assert isinstance(C.make_tiny_clip(30, downsample=1).image_encoder, ImageCNN)
    with pytest.raises(ValueError, match="downsample must be a positive int"):
        C.make_tiny_clip(30, downsample=0)


def test_tiny_clip_shapes_normalisation_and_temperature():
    model = tiny_model()
    images, ids, mask = toy_pairs(10)
    i, t, s = model(images, ids, mask)
    assert i.shape == t.shape == (10, 8)
    torch.testing.assert_close(i.norm(dim=1), torch.ones(10))
    torch.testing.assert_close(t.norm(dim=1), torch.ones(10))
    assert s.item() == pytest.approx(math.log(1 / 0.07))
    assert model.temperature == pytest.approx(0.07, rel=1e-5)
    assert isinstance(model.logit_scale, nn.Parameter)
    fixed = tiny_model(learn_temperature=False, temperature=1.0)
    assert "logit_scale" not in dict(fixed.named_parameters())
    assert fixed.scale == pytest.approx(1.0)


def test_tiny_clip_bad_inputs():
    model = tiny_model()
    images, ids, mask = toy_pairs(4)
    with pytest.raises(ValueError, match="images must be a tensor of shape"):
        model.encode_image(images[0])
    with pytest.raises(ValueError, match="ids must be an integer tensor"):
        model.encode_text(ids.float(), mask)
    with pytest.raises(ValueError, match="mask must be a bool tensor shaped like ids"):
        model.encode_text(ids, mask[:, :2])
    with pytest.raises(ValueError, match="embed_dim must be a positive int"):
        C.TinyCLIP(nn.Identity(), nn.Identity(), 4, 4, embed_dim=0)
    with pytest.raises(ValueError, match="temperature must be"):
        C.TinyCLIP(nn.Identity(), nn.Identity(), 4, 4, temperature=0)
    wrong = C.TinyCLIP(PixelEncoder(48, 16), BagOfWords(10, 16), 32, 16)
    with pytest.raises(ValueError, match="image encoder must return \\(B, 32\\)"):
        wrong.encode_image(images)


def test_train_clip_learns_and_fixed_temperature_stays_fixed():
    torch.manual_seed(0)
    images, ids, mask = toy_pairs(96)
    model = tiny_model()
    hist = C.train_clip(
        model,
        images,
        ids,
        mask,
        epochs=15,
        batch_size=32,
        lr=1e-2,
        val=(images[:32], ids[:32], mask[:32]),
    )
    assert len(hist.loss) == 15 * 3 and len(hist.val_recall) == 15
    assert hist.chance_loss == pytest.approx(math.log(32))
    # Only 8 distinct captions: the floor is above 0, but far below ln(B).
    assert np.mean(hist.loss[-3:]) < 0.75 * hist.chance_loss
    assert hist.scale[-1] != pytest.approx(1 / 0.07)  # the temperature moved
    torch.manual_seed(0)
    fixed = tiny_model(learn_temperature=False)
    hist_fixed = C.train_clip(fixed, images, ids, mask, epochs=2, batch_size=32)
    assert hist_fixed.scale == pytest.approx([1 / 0.07] * 6)
    # With the captions as keys the multi-positive loss trains too (and goes lower).
    torch.manual_seed(0)
    soft = tiny_model()
    hist_soft = C.train_clip(
        soft, images, ids, mask, epochs=15, batch_size=32, lr=1e-2, keys=ids[:, 0].tolist()
    )
    assert np.mean(hist_soft.loss[-3:]) < np.mean(hist.loss[-3:])
    with pytest.raises(ValueError, match="batch_size must be an int in \\[1, 96\\]"):
        C.train_clip(model, images, ids, mask, batch_size=200)
    with pytest.raises(ValueError, match="ids must be a \\(N, L\\) tensor"):
        C.train_clip(model, images, ids[:5], mask[:5])
    with pytest.raises(ValueError, match="keys must have one entry per pair"):
        C.train_clip(model, images, ids, mask, batch_size=32, keys=["a"])


# --------------------------------------------------------------------------- retrieval


def test_recall_at_k_hand_made():
    sim = torch.tensor(
        [
            [0.9, 0.1, 0.0],  # right item first
            [0.8, 0.5, 0.1],  # right item second
            [0.7, 0.6, 0.2],  # right item third
        ]
    )
    assert C.retrieval_ranks(sim).tolist() == [0, 1, 2]
    assert C.recall_at_k(sim, 1) == pytest.approx(1 / 3)
    assert C.recall_at_k(sim, 2) == pytest.approx(2 / 3)
    assert C.recall_at_k(sim, 3) == pytest.approx(1.0)
    # A tie with a wrong item counts against the query.
    assert C.recall_at_k(torch.tensor([[0.5, 0.5], [0.0, 1.0]]), 1) == pytest.approx(0.5)
    # Index targets and relevance matrices.
    assert C.recall_at_k(sim, 1, relevant=torch.tensor([0, 0, 0])) == pytest.approx(1.0)
    rel = torch.eye(3, dtype=torch.bool)
    rel[2, 0] = True  # query 2 also accepts item 0, which it ranks first
    assert C.recall_at_k(sim, 1, relevant=rel) == pytest.approx(2 / 3)


def test_recall_bad_inputs():
    sim = torch.rand(3, 4)
    with pytest.raises(ValueError, match="must be square"):
        C.recall_at_k(sim, 1)
    with pytest.raises(ValueError, match="k=5 is larger than the gallery"):
        C.recall_at_k(torch.rand(4, 4), 5)
    with pytest.raises(ValueError, match="k must be a positive int"):
        C.recall_at_k(torch.rand(4, 4), 0)
    with pytest.raises(ValueError, match="similarity must be a"):
        C.recall_at_k(torch.rand(4), 1)
    with pytest.raises(ValueError, match="relevant indices must lie in"):
        C.recall_at_k(sim, 1, relevant=torch.tensor([0, 1, 4]))
    with pytest.raises(ValueError, match="at least one relevant"):
        C.recall_at_k(sim, 1, relevant=torch.zeros(3, 4, dtype=torch.bool))


def test_random_recall_formula_and_random_rankings():
    assert C.random_recall_at_k(100, 5) == pytest.approx(0.05)
    # Brute force over all k-subsets for 2 relevant items among 6.
    hits = [bool({0, 1} & set(s)) for s in itertools.combinations(range(6), 3)]
    assert C.random_recall_at_k(6, 3, n_relevant=2) == pytest.approx(np.mean(hits))
    g = torch.Generator().manual_seed(0)
    rand = C.recall_at_k(
        torch.rand(2000, 200, generator=g), 10, relevant=torch.zeros(2000, dtype=torch.long)
    )
    assert rand == pytest.approx(0.05, abs=0.015)
    with pytest.raises(ValueError, match="n_gallery must be a positive int"):
        C.random_recall_at_k(0, 1)


def test_retrieval_report_both_directions():
    image = torch.eye(4)
    text = torch.eye(4)[[0, 1, 3, 2]]  # captions 2 and 3 swapped
    report = C.retrieval_report(image, text, ks=(1, 2))
    assert report["image→text R@1"] == pytest.approx(0.5)
    assert report["text→image R@1"] == pytest.approx(0.5)
    # Declaring captions 2 and 3 interchangeable (e.g. identical) makes every query a hit.
    assert C.retrieval_report(image, text, ks=(1,), relevant=C.same_key_mask(["a", "b", "c", "c"]))[
        "image→text R@1"
    ] == pytest.approx(1.0)


# --------------------------------------------------------------------------- zero-shot


WORDS = {"cat": 0, "dog": 1, "ginger": 2, "photo": 3, "pet": 3}


def fake_encode(texts):
    """Each known word adds its basis vector; 'photo'/'pet' add shared noise."""
    out = torch.zeros(len(texts), 5)
    for i, text in enumerate(texts):
        for word in text.split():
            if word in WORDS:
                out[i, WORDS[word]] += 1.0
    return out


def test_format_prompts_and_zero_shot_weights():
    prompts = C.format_prompts(["cat", "dog"], ["a photo of a {}", "a {} pet"])
    assert prompts == [["a photo of a cat", "a cat pet"], ["a photo of a dog", "a dog pet"]]
    w = C.zero_shot_weights(fake_encode, ["cat", "dog"], ["a photo of a {}", "a {} pet"])
    assert w.shape == (2, 5)
    torch.testing.assert_close(w.norm(dim=1), torch.ones(2))
    expected = F.normalize(torch.tensor([1.0, 0, 0, 1, 0]), dim=0)  # mean of two equal prompts
    torch.testing.assert_close(w[0], expected)
    with pytest.raises(ValueError, match="exactly one '\\{\\}' placeholder"):
        C.format_prompts(["cat"], ["a photo"])
    with pytest.raises(ValueError, match="class_names must be a non-empty list"):
        C.format_prompts("cat", ["a {}"])
    with pytest.raises(ValueError, match="encode_text must return a \\(2, E\\) tensor"):
        C.zero_shot_weights(lambda t: torch.zeros(1, 5), ["cat", "dog"], ["a {}"])


def test_zero_shot_on_constructed_case():
    g = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 2, (200,), generator=g)
    images = F.one_hot(labels, 5).float() + 0.3 * torch.randn(200, 5, generator=g)
    images = F.normalize(images, dim=-1)
    w = C.zero_shot_weights(fake_encode, ["cat", "dog"], ["a photo of a {}", "a {} pet"])
    pred, scores = C.zero_shot_predict(images, w)
    assert scores.shape == (200, 2)
    assert (pred == labels).float().mean().item() > 0.9
    # Swapping the class names swaps the predictions: nothing was learned about the label order.
    pred_swapped, _ = C.zero_shot_predict(
        images, C.zero_shot_weights(fake_encode, ["dog", "cat"], ["a photo of a {}"])
    )
    assert (pred_swapped == 1 - labels).float().mean().item() > 0.9
    with pytest.raises(ValueError, match="image_emb has 5 dimensions but class_weights has 4"):
        C.zero_shot_predict(images, torch.rand(2, 4))


def test_search_images():
    image_emb = F.normalize(
        torch.tensor(
            [
                [0.0, 1.0, 0.0, 0.0, 0.0],  # dog
                [1.0, 0.0, 0.0, 0.0, 0.0],  # cat
                [1.0, 0.0, 1.0, 0.0, 0.0],  # ginger cat
                [0.0, 0.0, 1.0, 0.0, 0.0],  # ginger something
            ]
        ),
        dim=-1,
    )
    idx, scores = C.search_images("ginger cat", fake_encode, image_emb, k=3)
    assert idx.tolist()[0] == 2 and set(idx.tolist()[1:]) == {1, 3}
    assert scores[0].item() == pytest.approx(1.0) and (scores[:-1] >= scores[1:]).all()
    with pytest.raises(ValueError, match="query must be a non-empty string"):
        C.search_images("  ", fake_encode, image_emb)
    with pytest.raises(ValueError, match="k=9 is larger than the image set"):
        C.search_images("cat", fake_encode, image_emb, k=9)


# --------------------------------------------------------------------------- exercises


def test_exercises_accept_solutions_and_reject_plausible_wrong_answers():
    from mmcourse.exercises import check, get

    for key in ("06.recall_at_k", "06.prompt_ensemble", "06.soft_targets"):
        assert check(key, get(key).solution(), quiet=True), key
        assert not check(key, None, quiet=True)

    def recall_strict_ties(sim, k):  # off by one: counts the right item itself as "better"
        return ((sim >= sim.diagonal()[:, None]).sum(1) < k).float().mean().item()

    def ensemble_unnormalised_prompts(e):  # forgets to normalise each prompt first
        return F.normalize(e.mean(dim=1), dim=-1)

    def hard_targets(captions):  # the plain CLIP targets: ignores duplicates
        return torch.eye(len(captions))

    for key, wrong in (
        ("06.recall_at_k", recall_strict_ties),
        ("06.prompt_ensemble", ensemble_unnormalised_prompts),
        ("06.soft_targets", hard_targets),
    ):
        with pytest.raises(AssertionError):
            get(key).check(wrong)


# --------------------------------------------------------------------------- SigLIP
def test_siglip_loss_hand_computed_for_two_pairs():
    u = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    v = torch.tensor([[0.6, 0.8], [0.0, 1.0]])
    t, b = math.log(2.0), -1.0  # scale 2
    # logits 2 * u.v + b: [[1.2 - 1, 1.6 - 1], [0 - 1, 2 - 1]] = [[0.2, 0.6], [-1, 1]]
    # positives on the diagonal: -log s(0.2) - log s(1); negatives: -log s(-0.6) - log s(1)
    s = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
    expected = -(math.log(s(0.2)) + math.log(s(1.0)) + math.log(s(-0.6)) + math.log(s(1.0))) / 2
    assert C.siglip_loss(u, v, t, b).item() == pytest.approx(expected, rel=1e-6)
    assert C.siglip_loss(u, v, torch.tensor(t), torch.tensor(b)).item() == pytest.approx(expected)


@pytest.mark.parametrize("b", [1, 4, 33])
def test_siglip_loss_matches_binary_cross_entropy_and_splits_into_blocks(b):
    g = torch.Generator().manual_seed(b)
    u = F.normalize(torch.randn(b, 8, generator=g), dim=-1)
    v = F.normalize(torch.randn(b, 8, generator=g), dim=-1)
    logits = 10.0 * u @ v.T - 3.0
    reference = F.binary_cross_entropy_with_logits(logits, torch.eye(b), reduction="sum") / b
    got = C.siglip_loss(u, v, math.log(10.0), -3.0)
    torch.testing.assert_close(got, reference)
    # no softmax couples a row: the loss is a sum of independent blocks (the chunked
    # implementation of the paper); a block of pairs is the sum of its terms
    if b >= 4:
        halves = (torch.arange(b // 2), torch.arange(b // 2, b))
        blocks = sum(
            C.siglip_loss(u[rows], v[cols], math.log(10.0), -3.0) * len(rows)
            if rows is cols
            else F.binary_cross_entropy_with_logits(
                logits[rows][:, cols], torch.zeros(len(rows), len(cols)), reduction="sum"
            )
            for rows in halves
            for cols in halves
        )
        torch.testing.assert_close(blocks / b, got)


def test_siglip_bias_and_scale_get_gradients_and_bad_inputs_fail():
    u = F.normalize(torch.randn(4, 8), dim=-1)
    t = torch.tensor(math.log(10.0), requires_grad=True)
    bias = torch.tensor(-10.0, requires_grad=True)
    C.siglip_loss(u, u, t, bias).backward()
    assert bias.grad is not None and bias.grad.item() != 0 and t.grad.item() != 0
    with pytest.raises(TypeError, match="logit_bias"):
        C.siglip_loss(u, u, 0.0, "x")
    with pytest.raises(ValueError, match="logit_bias"):
        C.siglip_loss(u, u, 0.0, torch.zeros(2))
    with pytest.raises(ValueError, match="same shape"):
        C.siglip_loss(u, u[:3], 0.0, 0.0)


def test_a_model_with_a_bias_trains_with_the_sigmoid_loss():
    torch.manual_seed(0)
    images, ids, mask = toy_pairs(64)
    clip = tiny_model()
    assert clip.logit_bias is None and "logit_bias" not in clip.state_dict()
    torch.manual_seed(0)
    model = C.TinyCLIP(PixelEncoder(48, 16), BagOfWords(10, 16), 16, 16, 8, 0.1, True, -10.0)
    assert model.logit_bias.item() == -10.0 and "logit_bias" in dict(model.named_parameters())
    torch.testing.assert_close(
        model.loss(images[:8], ids[:8], mask[:8]),
        C.siglip_loss(*model(images[:8], ids[:8], mask[:8]), model.logit_bias),
    )
    hist = C.train_clip(model, images, ids, mask, epochs=10, batch_size=32, lr=1e-2)
    assert model.logit_bias.item() != -10.0  # the bias is learned
    assert np.mean(hist.loss[-2:]) < 0.5 * hist.loss[0]
    with pytest.raises(ValueError, match="logit_bias"):
        C.TinyCLIP(nn.Identity(), nn.Identity(), 4, 4, logit_bias=float("nan"))


# --------------------------------------------------------------------------- LiT heads


def test_stacked_loss_hand_computed_for_two_pairs():
    # one replica, B = 2, E = 1: u = v = (1, -1), scale e^0 = 1: logits [[1, -1], [-1, 1]]
    u = torch.tensor([[[1.0], [-1.0]]])
    t = torch.zeros(1)
    nce = C.stacked_contrastive_loss(u, u, t)
    assert nce.shape == (1,)
    # each row and column: -log(e / (e + 1/e)) = log(1 + e^-2)
    assert nce.item() == pytest.approx(math.log(1 + math.exp(-2)), rel=1e-6)
    # sigmoid, bias 0: every pair has z_ij * logit = +1, four terms log(1 + e^-1), divided by B = 2
    sig = C.stacked_contrastive_loss(u, u, t, torch.zeros(1))
    assert sig.item() == pytest.approx(2 * math.log(1 + math.exp(-1)), rel=1e-6)


def test_stacked_loss_equals_the_single_model_losses_per_replica():
    r, b, e = 3, 6, 4
    img = torch.stack([unit(b, e, seed=s) for s in range(r)])
    txt = torch.stack([unit(b, e, seed=10 + s) for s in range(r)])
    t = torch.tensor([0.0, 2.0, 5.0])  # the last one is past the cap of 100
    bias = torch.tensor([-1.0, -3.0, 0.5])
    nce = C.stacked_contrastive_loss(img, txt, t)
    sig = C.stacked_contrastive_loss(img, txt, t, bias)
    for i in range(r):
        assert nce[i].item() == pytest.approx(C.clip_loss(img[i], txt[i], t[i]).item(), rel=1e-5)
        assert nce[i].item() == pytest.approx(
            reference_clip_loss(img[i], txt[i], t[i].item()), rel=1e-5
        )
        expected = C.siglip_loss(img[i], txt[i], t[i], bias[i]).item()
        assert sig[i].item() == pytest.approx(expected, rel=1e-5)


def test_stacked_loss_bad_inputs():
    x = torch.zeros(2, 3, 4)
    with pytest.raises(ValueError, match="image_emb"):
        C.stacked_contrastive_loss(torch.zeros(3, 4), torch.zeros(3, 4), torch.zeros(1))
    with pytest.raises(ValueError, match="same shape"):
        C.stacked_contrastive_loss(x, torch.zeros(2, 3, 5), torch.zeros(2))
    with pytest.raises(ValueError, match="logit_scale"):
        C.stacked_contrastive_loss(x, x, torch.zeros(3))
    with pytest.raises(ValueError, match="logit_scale"):
        C.stacked_contrastive_loss(x, x, None)
    with pytest.raises(ValueError, match="logit_bias"):
        C.stacked_contrastive_loss(x, x, torch.zeros(2), torch.zeros(1))


def _lit_data(n=96, classes=6, seed=0):
    """Image features: a noisy class prototype; text features: the one-hot class."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % classes
    protos = torch.randn(classes, 16, generator=g)
    image = protos[labels] + 0.3 * torch.randn(n, 16, generator=g)
    text = F.one_hot(labels, classes).float()
    return image, text, labels


def test_train_lit_heads_equals_separate_runs():
    image, text, _ = _lit_data()
    both = C.train_lit_heads(image, text, batch_size=8, examples=200, seeds=(0, 1))
    assert set(both) == {"softmax", "sigmoid"} and both["softmax"].steps == 25
    for seed in (0, 1):
        for loss in ("softmax", "sigmoid"):
            alone = C.train_lit_heads(
                image, text, batch_size=8, examples=200, seeds=(seed,), losses=(loss,)
            )[loss]
            for name in ("image_projection", "text_projection", "logit_scale"):
                torch.testing.assert_close(
                    getattr(both[loss], name)[seed], getattr(alone, name)[0], rtol=1e-4, atol=1e-5
                )
    assert both["softmax"].logit_bias is None
    assert both["sigmoid"].logit_bias.shape == (2,)
    # the same seed starts both losses from the same heads: a different seed does not
    start = C.train_lit_heads(image, text, batch_size=8, examples=8, seeds=(0, 1), lr=1e-9)
    torch.testing.assert_close(start["softmax"].image_projection, start["sigmoid"].image_projection)
    assert not torch.allclose(
        start["softmax"].image_projection[0], start["softmax"].image_projection[1]
    )
    assert start["softmax"].logit_scale[0].item() == pytest.approx(math.log(1 / 0.07), rel=1e-6)
    assert start["sigmoid"].logit_scale[0].item() == pytest.approx(math.log(10), rel=1e-6)
    assert start["sigmoid"].logit_bias[0].item() == pytest.approx(-10.0, rel=1e-6)


def test_train_lit_heads_learns_to_match_classes():
    image, text, labels = _lit_data()
    heads = C.train_lit_heads(image, text, batch_size=16, examples=3000, seeds=(0, 1))
    for loss, h in heads.items():
        img, txt = h.embed(image, text)
        assert img.shape == (2, 96, 32)
        torch.testing.assert_close(img.norm(dim=-1), torch.ones(2, 96))
        for r in range(2):  # the right class's caption is the most similar: zero-shot accuracy 1
            pred = (img[r] @ txt[r].T).argmax(dim=1)
            accuracy = (labels[pred] == labels).float().mean().item()
            assert accuracy > 0.95, (loss, r, accuracy)
    assert heads["sigmoid"].logit_bias[0].item() != -10.0  # the bias is trained


def test_train_lit_heads_bad_inputs():
    image, text, _ = _lit_data()
    ok = dict(batch_size=8, examples=16)
    with pytest.raises(ValueError, match="one row per pair"):
        C.train_lit_heads(image, text[:-1], **ok)
    with pytest.raises(ValueError, match="losses"):
        C.train_lit_heads(image, text, losses=("hinge",), **ok)
    with pytest.raises(ValueError, match="losses"):
        C.train_lit_heads(image, text, losses="softmax", **ok)
    with pytest.raises(ValueError, match="batch_size"):
        C.train_lit_heads(image, text, batch_size=1, examples=16)
    with pytest.raises(ValueError, match="examples"):
        C.train_lit_heads(image, text, batch_size=8, examples=4)
    with pytest.raises(ValueError, match="seeds"):
        C.train_lit_heads(image, text, seeds=(), **ok)
    with pytest.raises(ValueError, match="image_features"):
        C.train_lit_heads(image[0], text, **ok)
    bad = image.clone()
    bad[0, 0] = float("nan")
    with pytest.raises(ValueError):
        C.train_lit_heads(bad, text, **ok)
