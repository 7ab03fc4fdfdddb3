"""Tests for mmcourse.models: the classifier pipeline and the seed article's network."""

import pytest
import torch
from torch import nn

from mmcourse.fusion import ConcatFusion, CrossAttentionFusion, GatedFusion, LateFusion
from mmcourse.models import MultimodalClassifier, SeedFusionNet


class MaskedMean(nn.Module):
    """A toy text encoder called as enc(ids, mask): embeds and averages real tokens."""

    def __init__(self, vocab, dim, keep_sequence=False):
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.keep_sequence = keep_sequence
        self.calls = []

    def forward(self, ids, mask):
        self.calls.append(mask)
        e = self.embed(ids)
        if self.keep_sequence:
            return e
        keep = mask.unsqueeze(-1).float()
        return (e * keep).sum(1) / keep.sum(1)


def batch(n=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    mask = torch.arange(5).expand(n, 5) < torch.randint(1, 6, (n, 1), generator=g)
    return {
        "image": torch.randn(n, 10, generator=g),
        "text": torch.randint(0, 20, (n, 5), generator=g),
        "text_mask": mask,
        "label": torch.randint(0, 3, (n,), generator=g),
    }


def test_classifier_runs_encoders_fusion_and_head():
    torch.manual_seed(0)
    text = MaskedMean(20, 4)
    model = MultimodalClassifier(
        {"image": nn.Linear(10, 6), "text": text}, GatedFusion([6, 4], 8), num_classes=3, hidden=16
    )
    b = batch()
    logits = model(b)
    assert logits.shape == (6, 3)
    assert text.calls and text.calls[-1] is b["text_mask"]  # the mask was passed
    feats = model.features(b)
    assert set(feats) == {"image", "text"} and feats["image"].shape == (6, 6)
    loss = nn.functional.cross_entropy(logits, b["label"])
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())


def test_classifier_without_mask_key_calls_encoder_with_one_argument():
    model = MultimodalClassifier({"image": nn.Linear(10, 6)}, ConcatFusion([6]), 2)
    assert model({"image": torch.randn(3, 10)}).shape == (3, 2)


def test_classifier_with_late_fusion_has_no_head():
    model = MultimodalClassifier(
        {"image": nn.Identity(), "audio": nn.Identity()},
        LateFusion([4, 3], 5, mode="product"),
        num_classes=5,
    )
    assert isinstance(model.head, nn.Identity)
    x = {"image": torch.randn(2, 4), "audio": torch.randn(2, 3)}
    torch.testing.assert_close(model(x), model.fusion([x["image"], x["audio"]]))
    with pytest.raises(ValueError, match="produces 5 class scores but num_classes=3"):
        MultimodalClassifier(
            {"a": nn.Identity(), "b": nn.Identity()}, LateFusion([4, 3], 5), num_classes=3
        )


def test_classifier_passes_masks_to_sequence_fusion():
    torch.manual_seed(0)
    text = MaskedMean(20, 4, keep_sequence=True)
    fusion = CrossAttentionFusion([6, 4], 8)
    model = MultimodalClassifier({"image": nn.Linear(10, 6), "text": text}, fusion, 3).eval()
    b = batch()
    out = model(b)
    # padded tokens must not matter: change them and the logits stay the same
    b2 = dict(b)
    b2["text"] = torch.where(b["text_mask"], b["text"], (b["text"] + 7) % 20)
    torch.testing.assert_close(model(b2), out)


def test_classifier_permutation_equivariance():
    torch.manual_seed(0)
    model = MultimodalClassifier(
        {"image": nn.Linear(10, 6), "text": MaskedMean(20, 4)}, GatedFusion([6, 4], 8), 3
    ).eval()
    b = batch(n=8)
    perm = torch.randperm(8)
    permuted = {k: v[perm] for k, v in b.items()}
    torch.testing.assert_close(model(permuted), model(b)[perm])


def test_classifier_bad_inputs():
    enc = {"image": nn.Linear(10, 6), "audio": nn.Identity()}
    with pytest.raises(TypeError, match="non-empty dict"):
        MultimodalClassifier({}, ConcatFusion([6]), 2)
    with pytest.raises(TypeError, match="out_dim"):
        MultimodalClassifier(enc, nn.Linear(3, 3), 2)
    with pytest.raises(ValueError, match="fusion expects 1 modalities"):
        MultimodalClassifier(enc, ConcatFusion([6]), 2)
    with pytest.raises(ValueError, match="num_classes must be a positive int"):
        MultimodalClassifier(enc, ConcatFusion([6, 3]), 0)
    with pytest.raises(ValueError, match="encoder names"):
        MultimodalClassifier({"text_mask": nn.Identity()}, ConcatFusion([6]), 2)
    model = MultimodalClassifier(enc, ConcatFusion([6, 3]), 2)
    with pytest.raises(KeyError, match="batch has no key 'audio'"):
        model({"image": torch.randn(2, 10)})
    with pytest.raises(ValueError, match="encoder 'audio' returns 4 features"):
        model({"image": torch.randn(2, 10), "audio": torch.randn(2, 4)})
    with pytest.raises(TypeError, match="batch must be a dict"):
        model(torch.randn(2, 10))


def test_seed_net_is_concatenation_followed_by_a_linear_layer():
    torch.manual_seed(0)
    net = SeedFusionNet(image_dim=5, text_dim=3, hidden=4)
    i, t = torch.randn(6, 5), torch.randn(6, 3)
    fusion = net.to_concat_fusion()
    torch.testing.assert_close(fusion([i, t]), net.fused(i, t))
    W = net.concat_weight()
    torch.testing.assert_close(torch.cat([i, t], 1) @ W.T, net.W1(i) + net.W2(t))
    y_hat = net.predict_proba(i, t)
    assert y_hat.shape == (6, 1) and ((y_hat > 0) & (y_hat < 1)).all()
    params = sum(p.numel() for p in net.parameters())
    assert params == (5 + 3 + 1) * 4 + (4 + 1) * 1


def test_seed_net_manual_gradients_match_autograd():
    torch.manual_seed(0)
    net = SeedFusionNet(5, 3, hidden=4, num_outputs=2)
    i, t = torch.randn(6, 5), torch.randn(6, 3)
    y = torch.randint(0, 2, (6, 2)).float()
    manual = net.manual_gradients(i, t, y)
    nn.functional.binary_cross_entropy_with_logits(net(i, t), y).backward()
    auto = {
        "W1": net.W1.weight.grad,
        "W2": net.W2.weight.grad,
        "b": net.b.grad,
        "W3": net.W3.weight.grad,
        "b_prime": net.W3.bias.grad,
    }
    for key in auto:
        torch.testing.assert_close(manual[key], auto[key])
    with pytest.raises(ValueError, match="targets must have shape"):
        net.manual_gradients(i, t, y[:, 0])


def test_seed_net_bad_inputs():
    net = SeedFusionNet(5, 3)
    with pytest.raises(ValueError, match=r"image_features must have shape \(B, 5\)"):
        net(torch.randn(2, 4), torch.randn(2, 3))
    with pytest.raises(ValueError, match="share the batch size"):
        net(torch.randn(2, 5), torch.randn(3, 3))
    with pytest.raises(TypeError, match="text_features must be a torch.Tensor"):
        net(torch.randn(2, 5), [[0.0] * 3] * 2)
    with pytest.raises(ValueError, match="hidden must be a positive int"):
        SeedFusionNet(5, 3, hidden=0)
