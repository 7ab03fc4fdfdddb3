"""Tests of mmcourse.explain on hand-made models whose explanations are known analytically."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from mmcourse import explain  # noqa: E402


def linear_image_model(seed=0, shape=(3, 8, 8)):
    w = torch.randn(shape, generator=torch.Generator().manual_seed(seed))
    return w, (lambda x: (x * w).sum(dim=(1, 2, 3)))


# --------------------------------------------------------------------------- occlusion
def test_occlusion_of_a_linear_model_is_weight_times_input():
    w, f = linear_image_model()
    x = torch.rand(3, 8, 8)
    sal = explain.occlusion_saliency(f, x, patch=1)
    torch.testing.assert_close(sal, (w * x).sum(0))


def test_occlusion_patch_sums_the_patch_and_baseline_is_used():
    w, f = linear_image_model()
    x = torch.rand(3, 8, 8)
    base = torch.full_like(x, 0.5)
    sal = explain.occlusion_saliency(f, x, patch=2, baseline=base)
    per_pixel = (w * (x - base)).sum(0)
    expected = per_pixel.reshape(4, 2, 4, 2).sum(dim=(1, 3)).repeat_interleave(2, 0)
    expected = expected.repeat_interleave(2, 1)
    torch.testing.assert_close(sal, expected)


def test_occlusion_overlapping_patches_cover_every_pixel_and_batching_agrees():
    _, f = linear_image_model(shape=(1, 9, 9))
    x = torch.rand(1, 9, 9)
    a = explain.occlusion_saliency(f, x, patch=3, stride=2, batch_size=5)
    b = explain.occlusion_saliency(f, x[None], patch=3, stride=2, batch_size=1000)
    assert a.shape == (9, 9) and torch.isfinite(a).all()
    torch.testing.assert_close(a, b)


def test_occlusion_bad_inputs():
    _, f = linear_image_model()
    with pytest.raises(TypeError, match="image"):
        explain.occlusion_saliency(f, [[0.0]])
    with pytest.raises(ValueError, match="image"):
        explain.occlusion_saliency(f, torch.rand(8, 8))
    with pytest.raises(ValueError, match="patch"):
        explain.occlusion_saliency(f, torch.rand(3, 8, 8), patch=9)
    with pytest.raises(ValueError, match="patch"):
        explain.occlusion_saliency(f, torch.rand(3, 8, 8), patch=0)
    with pytest.raises(ValueError, match="baseline"):
        explain.occlusion_saliency(f, torch.rand(3, 8, 8), baseline=torch.zeros(3, 4, 4))
    with pytest.raises(ValueError, match="score_fn"):
        explain.occlusion_saliency(lambda x: x.sum(dim=(2, 3)), torch.rand(3, 8, 8))


# --------------------------------------------------------------------------- Grad-CAM
class TinyCAMNet(nn.Module):
    """conv -> ReLU -> global average pool -> linear: Grad-CAM reduces to CAM here."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 5, 3, stride=2, padding=1)
        self.head = nn.Linear(5, 1)

    def features(self, x):
        return torch.relu(self.conv(x))

    def forward(self, x):
        return self.head(self.features(x).mean(dim=(2, 3)))[:, 0]


def test_grad_cam_equals_class_activation_map_for_a_gap_network():
    net = TinyCAMNet()
    x = torch.rand(3, 8, 8)
    for relu in (True, False):
        cam = explain.grad_cam(net, net.conv, x, relu=relu)
        # d score / d conv output = v_k / (h w) where the ReLU is active, 0 elsewhere.
        z = net.conv(x[None])[0].detach()
        active = (z > 0).float()
        grad = net.head.weight[0].detach()[:, None, None] * active / (4 * 4)
        manual = (grad.mean(dim=(1, 2))[:, None, None] * z).sum(0)
        if relu:
            manual = manual.clamp(min=0)
        manual = nn.functional.interpolate(
            manual[None, None], size=(8, 8), mode="bilinear", align_corners=False
        )[0, 0]
        torch.testing.assert_close(cam, manual)


def test_grad_cam_leaves_no_hook_and_rejects_unused_layer():
    net = TinyCAMNet()
    explain.grad_cam(net, net.conv, torch.rand(3, 8, 8))
    assert not net.conv._forward_hooks
    with pytest.raises(ValueError, match="never called"):
        explain.grad_cam(net, nn.Conv2d(3, 3, 1), torch.rand(3, 8, 8))
    with pytest.raises(TypeError, match="layer"):
        explain.grad_cam(net, "conv", torch.rand(3, 8, 8))


# --------------------------------------------------------------------------- IG
def test_integrated_gradients_exact_for_linear_and_quadratic():
    w = torch.randn(6)
    x, b = torch.randn(6), torch.randn(6)
    ig = explain.integrated_gradients(lambda z: z @ w, x, baseline=b, steps=3)
    torch.testing.assert_close(ig, (x - b) * w)
    # f = sum x^2, zero baseline: IG_i = x_i^2 (midpoint rule is exact for a linear integrand)
    ig = explain.integrated_gradients(lambda z: (z**2).sum(1), x, steps=4)
    torch.testing.assert_close(ig, x**2)


def test_integrated_gradients_completeness_on_a_nonlinear_net():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 1))
    x = torch.randn(5)
    ig = explain.integrated_gradients(lambda z: net(z)[:, 0], x, steps=200)
    gap = (net(x[None]) - net(torch.zeros(1, 5))).item()
    assert abs(ig.sum().item() - gap) < 1e-3


def test_integrated_gradients_bad_inputs():
    with pytest.raises(TypeError, match="x"):
        explain.integrated_gradients(lambda z: z.sum(1), torch.arange(3))
    with pytest.raises(ValueError, match="baseline"):
        explain.integrated_gradients(lambda z: z.sum(1), torch.ones(3), baseline=torch.ones(4))
    with pytest.raises(ValueError, match="steps"):
        explain.integrated_gradients(lambda z: z.sum(1), torch.ones(3), steps=0)


class MeanEmbeddingModel(nn.Module):
    def __init__(self, vocab=10, dim=4):
        super().__init__()
        torch.manual_seed(1)
        self.embedding = nn.Embedding(vocab, dim)
        self.head = nn.Linear(dim, 1)

    def forward(self, ids, mask):
        e = self.embedding(ids) * mask[..., None]
        return self.head(e.sum(1) / mask.sum(1, keepdim=True))[:, 0]


def test_embedding_ig_exact_for_a_linear_bag_of_embeddings():
    model = MeanEmbeddingModel()
    ids = torch.tensor([3, 5, 7, 0])
    mask = torch.tensor([True, True, True, False])
    attr = explain.embedding_integrated_gradients(model, model.embedding, ids, mask, steps=2)
    w = model.head.weight[0].detach()
    expected = model.embedding.weight[ids].detach() @ w / 3 * mask
    torch.testing.assert_close(attr, expected)
    assert not model.embedding._forward_hooks


def test_embedding_ig_completeness_on_an_lstm():
    torch.manual_seed(0)
    emb, lstm, head = nn.Embedding(12, 6), nn.LSTM(6, 8, batch_first=True), nn.Linear(8, 1)

    def score(ids, mask):
        out, _ = lstm(emb(ids))
        return head(out[:, -1])[:, 0]

    ids, mask = torch.tensor([[4, 2, 9, 1]]), torch.ones(1, 4, dtype=torch.bool)
    attr = explain.embedding_integrated_gradients(score, emb, ids, mask, steps=200, baseline_id=0)
    with torch.no_grad():
        out0, _ = lstm(emb.weight[0].expand(1, 4, 6))
        gap = score(ids, mask) - head(out0[:, -1])[:, 0]
    assert attr.shape == (4,)
    assert abs(attr.sum().item() - gap.item()) < 2e-3


def test_embedding_ig_bad_inputs():
    model = MeanEmbeddingModel()
    ids, mask = torch.tensor([1, 2]), torch.tensor([True, True])
    with pytest.raises(TypeError, match="embedding"):
        explain.embedding_integrated_gradients(model, model.head, ids, mask)
    with pytest.raises(TypeError, match="ids"):
        explain.embedding_integrated_gradients(model, model.embedding, ids.float(), mask)
    with pytest.raises(TypeError, match="mask"):
        explain.embedding_integrated_gradients(model, model.embedding, ids, mask.long())
    with pytest.raises(ValueError, match="shape"):
        explain.embedding_integrated_gradients(model, model.embedding, ids, mask[:1])


# --------------------------------------------------------------------------- words
WEIGHTS = {"ginger": 0.5, "barks": 2.0, "purring": -1.5, "a": 0.1, "pet": 0.0}


def bag_of_words(captions):
    return torch.tensor([sum(WEIGHTS.get(w, 0.0) for w in c) for c in captions])


def test_leave_one_word_out_recovers_bag_of_words_weights():
    words = ["a", "ginger", "pet", "barks", "purring"]
    attr = explain.leave_one_word_out(bag_of_words, words)
    torch.testing.assert_close(attr, torch.tensor([WEIGHTS[w] for w in words]))
    # replacing with an unknown word (weight 0) gives the same answer and keeps the length
    seen = []

    def spy(captions):
        seen.extend(len(c) for c in captions)
        return bag_of_words(captions)

    attr2 = explain.leave_one_word_out(spy, words, replace_with="<unk>")
    torch.testing.assert_close(attr2, attr)
    assert set(seen) == {5}


def test_leave_one_word_out_bad_inputs():
    with pytest.raises(TypeError, match="words"):
        explain.leave_one_word_out(bag_of_words, "a ginger pet")
    with pytest.raises(ValueError, match="empty"):
        explain.leave_one_word_out(bag_of_words, [])


# --------------------------------------------------------------------------- modalities
def additive(batch):
    return 2 * batch["image"].sum(1) - 3 * batch["text"].sum(1)


def multiplicative(batch):
    return batch["image"].sum(1) * batch["text"].sum(1)


def test_contributions_of_an_additive_model_are_its_terms():
    batch = {"image": torch.rand(4, 3), "text": torch.rand(4, 2)}
    for method in ("shapley", "leave_one_out"):
        c = explain.modality_contributions(additive, batch, ["image", "text"], method=method)
        torch.testing.assert_close(c["image"], 2 * batch["image"].sum(1))
        torch.testing.assert_close(c["text"], -3 * batch["text"].sum(1))
        torch.testing.assert_close(c["none"], torch.zeros(4))


def test_shapley_splits_an_interaction_and_adds_up_but_leave_one_out_does_not():
    batch = {"image": torch.rand(4, 3) + 0.5, "text": torch.rand(4, 2) + 0.5}
    full = multiplicative(batch)
    shap = explain.modality_contributions(multiplicative, batch, ["image", "text"])
    torch.testing.assert_close(shap["image"], full / 2)
    torch.testing.assert_close(shap["image"] + shap["text"], shap["full"] - shap["none"])
    loo = explain.modality_contributions(
        multiplicative, batch, ["image", "text"], method="leave_one_out"
    )
    torch.testing.assert_close(loo["image"], full)  # each alone "explains" everything
    assert (loo["image"] + loo["text"] - full).abs().min() > 0.1


def test_shapley_efficiency_with_three_modalities_and_custom_ablation():
    batch = {"a": torch.rand(5, 2), "b": torch.rand(5, 2), "c": torch.rand(5, 2)}

    def f(b):
        return torch.sigmoid(b["a"].sum(1) * b["b"].sum(1) - b["c"].sum(1) + b["a"][:, 0])

    ablations = {
        "a": lambda b: explain.remove_modality(b, "a", fill=0.5),
        "b": lambda b: explain.remove_modality(b, "b"),
        "c": lambda b: explain.remove_modality(b, "c"),
    }
    c = explain.modality_contributions(f, batch, ablations)
    torch.testing.assert_close(c["a"] + c["b"] + c["c"], c["full"] - c["none"])
    assert not torch.equal(batch["a"], torch.full_like(batch["a"], 0.5))  # input untouched


def test_modality_contributions_bad_inputs():
    batch = {"image": torch.rand(2, 3), "text": torch.rand(2, 2)}
    with pytest.raises(ValueError, match="method"):
        explain.modality_contributions(additive, batch, ["image"], method="lime")
    with pytest.raises(KeyError, match="audio"):
        explain.modality_contributions(additive, batch, ["audio"])
    with pytest.raises(ValueError, match="empty"):
        explain.modality_contributions(additive, batch, [])
    with pytest.raises(TypeError, match="str"):
        explain.modality_contributions(additive, batch, "image")
    with pytest.raises(ValueError, match="score_fn"):
        explain.modality_contributions(lambda b: b["image"], batch, ["image"])


def test_plot_helpers_draw():
    fig, axes = plt.subplots(1, 2)
    explain.show_saliency(axes[0], torch.rand(3, 8, 8), torch.randn(8, 8), title="x")
    explain.show_word_attributions(axes[1], ["a", "cat"], torch.tensor([0.2, -1.0]))
    assert len(axes[1].texts) == 2
    with pytest.raises(ValueError, match="length"):
        explain.show_word_attributions(axes[1], ["a"], torch.tensor([0.2, -1.0]))
    plt.close(fig)


# --------------------------------------------------------------------------- sanity checks
def test_rank_correlation_matches_scipy_with_ties_and_known_values():
    stats = pytest.importorskip("scipy.stats")
    g = torch.Generator().manual_seed(1)
    a = torch.randn(6, 6, generator=g).clamp(min=0)  # many tied zeros, as in Grad-CAM
    b = torch.randn(6, 6, generator=g)
    expected = stats.spearmanr(a.reshape(-1).numpy(), b.reshape(-1).numpy()).statistic
    assert explain.rank_correlation(a, b) == pytest.approx(expected, abs=1e-12)
    x = torch.tensor([1.0, 2.0, 3.0, 4.0])
    assert explain.rank_correlation(x, x**3) == pytest.approx(1.0)  # monotone: 1
    assert explain.rank_correlation(x, -x) == pytest.approx(-1.0)
    # by hand: ranks (1,2,3,4) vs (2,1,4,3): d^2 = 4, rho = 1 - 6*4/(4*15) = 0.6
    assert explain.rank_correlation(x, torch.tensor([2.0, 1.0, 4.0, 3.0])) == pytest.approx(0.6)
    assert explain.rank_correlation(torch.ones(4), x) == 0.0  # a constant map has no order
    with pytest.raises(ValueError, match="as many"):
        explain.rank_correlation(x, torch.ones(5))
    with pytest.raises(TypeError, match="a must be"):
        explain.rank_correlation([1, 2], x)
    with pytest.raises(ValueError, match="NaN"):
        explain.rank_correlation(torch.tensor([1.0, float("nan")]), torch.ones(2))


class TwoLayer(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Sequential(nn.Linear(16, 8), nn.Tanh())
        self.head = nn.Linear(8, 1)

    def forward(self, x):
        return self.head(self.body(x.reshape(x.shape[0], -1)))[:, 0]


def gradient_map(model, x):
    x = x.detach().clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(model(x[None]).sum(), x)
    return grad


def test_randomise_weights_copies_and_resets_only_the_named_modules():
    model = TwoLayer()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    twin = explain.randomise_weights(model, ["body"], seed=3)
    for k, v in model.state_dict().items():  # the original is untouched
        torch.testing.assert_close(v, before[k])
    assert not torch.equal(twin.body[0].weight, model.body[0].weight)
    torch.testing.assert_close(twin.head.weight, model.head.weight)  # the head keeps its weights
    again = explain.randomise_weights(model, "body", seed=3)  # a str is one module; seeded
    torch.testing.assert_close(again.body[0].weight, twin.body[0].weight)
    whole = explain.randomise_weights(model, seed=5)  # (seed 0 would rebuild its init)
    assert not torch.equal(whole.head.weight, model.head.weight)
    with pytest.raises(KeyError, match="modules"):
        explain.randomise_weights(model, ["tail"])
    with pytest.raises(ValueError, match="reset_parameters"):
        explain.randomise_weights(model, ["body.1"])  # Tanh has no weights
    with pytest.raises(ValueError, match="seed"):
        explain.randomise_weights(model, seed=-1)
    with pytest.raises(TypeError, match="model"):
        explain.randomise_weights("net")


def test_randomisation_check_passes_a_gradient_and_fails_an_input_only_map():
    model = TwoLayer()
    inputs = torch.rand(5, 4, 4, generator=torch.Generator().manual_seed(0))
    grad = explain.randomisation_check(gradient_map, model, inputs, seed=1)
    assert grad.trained.shape == grad.randomised.shape == (5, 4, 4)
    assert grad.correlations.shape == (5,)
    # the gradient depends on the weights: trained and random maps are far from identical
    assert grad.mean_correlation < 0.5
    torch.testing.assert_close(grad.trained[0], gradient_map(model, inputs[0]))
    # "saliency" = the input itself (an edge detector would behave the same): it ignores the
    # weights, so its maps are identical and the check flags it with correlation 1
    blind = explain.randomisation_check(lambda m, x: x, model, inputs, seed=1)
    assert blind.mean_correlation == pytest.approx(1.0)
    with pytest.raises(ValueError, match="inputs"):
        explain.randomisation_check(gradient_map, model, [])
    with pytest.raises(TypeError, match="model"):
        explain.randomisation_check(gradient_map, None, inputs)


def test_localisation_ratio_and_pointing_game_against_chance():
    region = torch.zeros(4, 4, dtype=torch.bool)
    region[:2, :2] = True  # a quarter of the pixels
    inside = torch.zeros(4, 4)
    inside[0, 0] = 1.0
    assert explain.localisation_ratio(inside, region) == pytest.approx(4.0)  # all mass, 1/4 area
    assert explain.localisation_ratio(torch.ones(4, 4), region) == pytest.approx(1.0)  # chance
    signed = inside.clone()
    signed[3, 3] = -1.0  # negative evidence counts only in the absolute mode
    assert explain.localisation_ratio(signed, region) == pytest.approx(4.0)
    assert explain.localisation_ratio(signed, region, positive=False) == pytest.approx(2.0)
    assert explain.localisation_ratio(-inside, region) == 0.0
    assert explain.pointing_game(inside, region)
    assert not explain.pointing_game(signed.flip(0, 1), region)
    with pytest.raises(ValueError, match="region"):
        explain.localisation_ratio(inside, region.float())
    with pytest.raises(ValueError, match="region"):
        explain.localisation_ratio(inside, torch.ones(4, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="saliency"):
        explain.pointing_game(torch.ones(16), region)


def test_show_saliency_draws_a_colour_bar():
    fig, ax = plt.subplots()
    explain.show_saliency(ax, torch.rand(3, 8, 8), torch.randn(8, 8))
    assert len(fig.axes) == 2  # the image axes and its colour bar
    fig2, ax2 = plt.subplots()
    explain.show_saliency(ax2, torch.rand(3, 8, 8), torch.randn(8, 8), colorbar=False)
    assert len(fig2.axes) == 1
    plt.close(fig)
    plt.close(fig2)
