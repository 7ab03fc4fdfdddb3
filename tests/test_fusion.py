"""Tests for mmcourse.fusion: shapes, gradients, the math of each operator, references."""

import math

import pytest
import torch
from torch import nn

from mmcourse.fusion import (
    FUSIONS,
    AttentionFusion,
    ConcatFusion,
    CrossAttentionFusion,
    FiLMFusion,
    GatedFusion,
    LateFusion,
    LowRankFusion,
    TensorFusion,
    WeightedFusion,
    count_parameters,
)

DIMS2 = [5, 3]
DIMS3 = [5, 3, 4]


def make(name, in_dims):
    """One configured instance of every operator."""
    return {
        "concat": lambda: ConcatFusion(in_dims, 6, activation="tanh"),
        "weighted": lambda: WeightedFusion(in_dims, 6),
        "late": lambda: LateFusion(in_dims, 4, mode="stack"),
        "late_mean": lambda: LateFusion(in_dims, 4, mode="mean"),
        "late_product": lambda: LateFusion(in_dims, 4, mode="product"),
        "attention": lambda: AttentionFusion(in_dims, 6),
        "gmu": lambda: GatedFusion(in_dims, 6),
        "tensor": lambda: TensorFusion(in_dims, 6),
        "low_rank": lambda: LowRankFusion(in_dims, 6, rank=3),
        "film": lambda: FiLMFusion(in_dims, 6),
        "cross_attention": lambda: CrossAttentionFusion(in_dims, 8, num_heads=2),
    }[name]()


NAMES = [
    "concat",
    "weighted",
    "late",
    "late_mean",
    "late_product",
    "attention",
    "gmu",
    "tensor",
    "low_rank",
    "film",
    "cross_attention",
]


def inputs(in_dims, batch=7, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, d, generator=g) for d in in_dims]


def test_registry_lists_every_operator():
    assert set(FUSIONS) == {
        "concat",
        "weighted",
        "late",
        "attention",
        "gmu",
        "tensor",
        "low_rank",
        "film",
        "cross_attention",
    }
    for cls in FUSIONS.values():
        assert cls.formula and cls.__doc__ and "Parameters" in cls.__doc__


@pytest.mark.parametrize("in_dims", [DIMS2, DIMS3], ids=["2 modalities", "3 modalities"])
@pytest.mark.parametrize("name", NAMES)
def test_shape_and_every_parameter_gets_a_gradient(name, in_dims):
    torch.manual_seed(0)
    fusion = make(name, in_dims)
    xs = inputs(in_dims)
    if name == "cross_attention":  # sequences: with one key per modality softmax is constant
        xs = [torch.randn(7, 4 + i, d) for i, d in enumerate(in_dims)]
    out = fusion(xs)
    assert out.shape == (7, fusion.out_dim)
    assert torch.isfinite(out).all()
    # a loss that depends on every output unit in a non-symmetric way
    (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
    # every learnable tensor is a registered parameter...
    registered = {id(p) for p in fusion.parameters()}
    for attr, value in vars(fusion).items():
        if isinstance(value, torch.Tensor) and value.requires_grad:
            assert id(value) in registered, f"{attr} is learnable but not registered"
    # ...and each one receives a non-zero gradient
    for pname, p in fusion.named_parameters():
        assert p.grad is not None, f"{name}: {pname} got no gradient"
        if pname.endswith("k_proj.bias"):
            # q . b_k adds the same number to every key's score, and softmax ignores that:
            # the key bias is inert in any attention (torch's MultiheadAttention has it too)
            assert p.grad.abs().max() < 1e-5
            continue
        assert p.grad.abs().sum() > 0, f"{name}: {pname} got a zero gradient"


@pytest.mark.parametrize("name", NAMES)
def test_permuting_the_batch_permutes_the_output(name):
    torch.manual_seed(0)
    fusion = make(name, DIMS3).eval()
    xs = inputs(DIMS3, batch=9)
    perm = torch.randperm(9)
    out = fusion(xs)
    out_perm = fusion([x[perm] for x in xs])
    torch.testing.assert_close(out_perm, out[perm])


@pytest.mark.parametrize("name", NAMES)
def test_bad_inputs_raise_clear_errors(name):
    fusion = make(name, DIMS2)
    a, b = inputs(DIMS2)
    with pytest.raises(TypeError, match="list of tensors"):
        fusion(torch.cat([a, b], dim=1))
    with pytest.raises(ValueError, match="expected 2 modality tensors"):
        fusion([a])
    with pytest.raises(ValueError, match=r"features\[1\] has 4 features but in_dims\[1\] is 3"):
        fusion([a, torch.randn(7, 4)])
    with pytest.raises(ValueError, match=r"features\[1\] has batch size 6 but features\[0\] has 7"):
        fusion([a, b[:6]])
    with pytest.raises(ValueError, match="floating point"):
        fusion([a, b.long()])
    with pytest.raises(TypeError, match=r"features\[0\] must be a torch.Tensor"):
        fusion([a.numpy(), b])


def test_bad_constructor_arguments():
    with pytest.raises(TypeError, match="in_dims must be a list"):
        ConcatFusion(5)
    with pytest.raises(ValueError, match=r"in_dims\[1\] must be a positive int"):
        GatedFusion([4, 0], 3)
    with pytest.raises(ValueError, match="at least 2 modalities"):
        TensorFusion([4])
    with pytest.raises(ValueError, match="out_dim must be a positive int"):
        ConcatFusion([3, 4], out_dim=-1)
    with pytest.raises(ValueError, match="activation must be one of"):
        ConcatFusion([3, 4], 5, activation="swish")
    with pytest.raises(ValueError, match="needs equal in_dims"):
        WeightedFusion([3, 4])
    with pytest.raises(ValueError, match="mode must be one of"):
        LateFusion([3, 4], 2, mode="vote")
    with pytest.raises(ValueError, match="max_size"):
        TensorFusion([200, 200, 200])
    with pytest.raises(ValueError, match="target must be a modality index"):
        FiLMFusion([3, 4], target=2)
    with pytest.raises(ValueError, match="num_heads"):
        CrossAttentionFusion([3, 4], dim=6, num_heads=4)
    with pytest.raises(ValueError, match="targets must be distinct"):
        CrossAttentionFusion([3, 4], dim=6, targets=[0, 0])


def test_parameter_counts_match_the_docstrings():
    d, M = DIMS3, 3
    S, o, C, R = sum(d), 6, 4, 3
    expected = {
        "concat": (S + 1) * o,
        "weighted": sum(di + 1 for di in d) * o + M,
        "late": sum(di + 1 for di in d) * C + (M * C + 1) * C,
        "late_mean": sum(di + 1 for di in d) * C,
        "attention": sum(di + 1 for di in d) * o + (o + 1) * o + o,
        "gmu": sum(di + 1 for di in d) * o + (S + 1) * o * M,
        "tensor": (math.prod(di + 1 for di in d) + 1) * o,
        "low_rank": R * sum(di + 1 for di in d) * o + R + o,
        "film": (d[1] + d[2] + 1) * 2 * o + (d[0] + 1) * o,
        "cross_attention": sum(di + 1 for di in d) * 8 + 6 * 4 * (8 + 1) * 8,
    }
    for name, count in expected.items():
        assert count_parameters(make(name, d)) == count, name
    assert count_parameters(GatedFusion(DIMS2, 6)) == (5 + 1 + 3 + 1) * 6 + (8 + 1) * 6
    assert count_parameters(ConcatFusion(DIMS2)) == 0
    assert count_parameters(TensorFusion(DIMS2)) == 0


def test_concat_is_the_seed_equation():
    torch.manual_seed(0)
    fusion = ConcatFusion([5, 3], 4, activation="sigmoid")
    i, t = inputs([5, 3])
    W1, W2 = fusion.linear.weight[:, :5], fusion.linear.weight[:, 5:]
    expected = torch.sigmoid(i @ W1.T + t @ W2.T + fusion.linear.bias)
    torch.testing.assert_close(fusion([i, t]), expected)
    assert ConcatFusion([5, 3]).out_dim == 8
    torch.testing.assert_close(ConcatFusion([5, 3])([i, t]), torch.cat([i, t], 1))
    assert ConcatFusion([5]).out_dim == 5  # a unimodal baseline with the same interface


def test_weighted_fusion_weights_sum_to_one_and_mix():
    fusion = WeightedFusion([4, 4, 4])
    with torch.no_grad():
        fusion.logits.copy_(torch.tensor([0.0, math.log(3.0), -100.0]))
    torch.testing.assert_close(fusion.weights.sum(), torch.tensor(1.0))
    xs = inputs([4, 4, 4])
    torch.testing.assert_close(fusion(xs), 0.25 * xs[0] + 0.75 * xs[1], atol=1e-6, rtol=0)


def test_late_fusion_modes():
    torch.manual_seed(0)
    xs = inputs(DIMS2)
    mean = LateFusion(DIMS2, 4, mode="mean")
    product = LateFusion(DIMS2, 4, mode="product")
    product.load_state_dict(mean.state_dict())
    p = [torch.softmax(lg, 1) for lg in mean.modality_logits(xs)]
    torch.testing.assert_close(mean(xs).exp(), (p[0] + p[1]) / 2)  # averaged probabilities
    poe = p[0] * p[1] / (p[0] * p[1]).sum(1, keepdim=True)  # normalised product
    torch.testing.assert_close(torch.softmax(product(xs), 1), poe)
    assert LateFusion.produces_logits
    with pytest.raises(ValueError, match="at least 2"):
        LateFusion(DIMS2, 1)


def test_attention_weights_are_a_distribution_per_example():
    torch.manual_seed(0)
    fusion = AttentionFusion(DIMS3, 6)
    xs = inputs(DIMS3)
    out = fusion(xs)
    alpha = fusion.last_weights
    assert alpha.shape == (7, 3)
    torch.testing.assert_close(alpha.sum(1), torch.ones(7))
    assert alpha.std(0).sum() > 0  # the weights change from example to example
    h = torch.stack([p(x) for p, x in zip(fusion.projections, xs, strict=True)], 1)
    torch.testing.assert_close(out, (alpha.unsqueeze(-1) * h).sum(1))


@pytest.mark.parametrize("in_dims", [DIMS2, DIMS3])
def test_gmu_gate_lies_in_zero_one_and_mixes_candidates(in_dims):
    torch.manual_seed(0)
    fusion = GatedFusion(in_dims, 6)
    xs = [3 * x for x in inputs(in_dims)]  # larger inputs push the gate towards 0 and 1
    out = fusion(xs)
    z = fusion.last_gate
    assert z.shape == ((7, 6) if len(in_dims) == 2 else (7, len(in_dims), 6))
    assert (z > 0).all() and (z < 1).all()
    h = [torch.tanh(c(x)) for c, x in zip(fusion.candidates, xs, strict=True)]
    if len(in_dims) == 2:
        torch.testing.assert_close(out, z * h[0] + (1 - z) * h[1])
        torch.testing.assert_close(fusion(xs, gate=1.0), h[0])  # the gate picks a modality
        torch.testing.assert_close(fusion(xs, gate=0.0), h[1])
        with pytest.raises(ValueError, match=r"gate must lie in \[0, 1\]"):
            fusion(xs, gate=1.5)
    else:
        torch.testing.assert_close(out, sum(z[:, i] * h[i] for i in range(len(in_dims))))


def test_tfn_holds_unimodal_features_and_pairwise_products_at_documented_positions():
    fusion = TensorFusion([3, 2])
    a, b = inputs([3, 2], batch=4)
    z = fusion([a, b])
    assert z.shape == (4, (3 + 1) * (2 + 1))
    for i in range(3):
        for j in range(2):
            torch.testing.assert_close(z[:, i * 3 + j], a[:, i] * b[:, j])  # a_i b_j
        torch.testing.assert_close(z[:, i * 3 + 2], a[:, i])  # a_i alone
    for j in range(2):
        torch.testing.assert_close(z[:, 3 * 3 + j], b[:, j])  # b_j alone
    torch.testing.assert_close(z[:, -1], torch.ones(4))
    assert fusion.position(1, 0) == 3 and fusion.position(3, 2) == 11


def test_tfn_three_modalities_holds_the_trimodal_products():
    fusion = TensorFusion([2, 3, 2])
    a, b, c = inputs([2, 3, 2], batch=5)
    z = fusion([a, b, c])
    assert z.shape == (5, 3 * 4 * 3)
    torch.testing.assert_close(z[:, fusion.position(1, 2, 0)], a[:, 1] * b[:, 2] * c[:, 0])
    torch.testing.assert_close(z[:, fusion.position(0, 3, 1)], a[:, 0] * c[:, 1])
    torch.testing.assert_close(z[:, fusion.position(2, 3, 1)], c[:, 1])
    with pytest.raises(ValueError, match="index 1 must lie in"):
        fusion.position(0, 4, 0)


@pytest.mark.parametrize("in_dims", [DIMS2, DIMS3])
def test_lmf_equals_tfn_with_its_low_rank_weight(in_dims):
    torch.manual_seed(0)
    lmf = LowRankFusion(in_dims, 4, rank=3)
    xs = inputs(in_dims)
    tfn = TensorFusion(in_dims).tensor(xs)
    torch.testing.assert_close(lmf(xs), tfn @ lmf.full_weight() + lmf.bias, atol=1e-5, rtol=1e-4)


def test_lmf_approximates_a_tfn_multilinear_map_as_rank_grows():
    torch.manual_seed(0)
    d1, d2, out = 6, 5, 3
    weight = torch.randn(d1 + 1, d2 + 1, out)  # a full-rank TFN-style bilinear map
    xs = inputs([d1, d2], batch=200)
    target = TensorFusion([d1, d2]).tensor(xs) @ weight.reshape(-1, out)
    errors = []
    for rank in range(1, d2 + 2):
        lmf = LowRankFusion.from_full_weight(weight, rank)
        errors.append(((lmf(xs) - target).norm() / target.norm()).item())
    assert all(e2 < e1 for e1, e2 in zip(errors, errors[1:], strict=False))  # strictly better
    assert errors[0] > 0.3
    assert errors[-1] < 1e-5  # rank = min(d1, d2) + 1 is exact
    # the weight-space error matches the Eckart-Young bound: the dropped singular values
    lmf = LowRankFusion.from_full_weight(weight, 2)
    dropped = torch.linalg.svdvals(weight.permute(2, 0, 1))[:, 2:]
    err = (lmf.full_weight().reshape(d1 + 1, d2 + 1, out) - weight).norm()
    torch.testing.assert_close(err, dropped.norm(), atol=1e-4, rtol=1e-4)


def test_lmf_factors_are_registered_and_trained():
    torch.manual_seed(0)
    lmf = LowRankFusion(DIMS2, 4, rank=2)
    before = [f.detach().clone() for f in lmf.factors]
    names = {n for n, _ in lmf.named_parameters()}
    assert {"factors.0", "factors.1", "rank_weights", "bias"} <= names
    opt = torch.optim.SGD(lmf.parameters(), lr=0.1)
    lmf(inputs(DIMS2)).pow(2).sum().backward()
    opt.step()
    assert all(not torch.equal(b, f) for b, f in zip(before, lmf.factors, strict=True))


def test_film_scales_and_shifts_the_target_by_the_condition():
    torch.manual_seed(0)
    film = FiLMFusion([4, 3], target=0)
    a, b = inputs([4, 3])
    # at initialisation gamma = 1: the layer is a shift of the target
    gamma, beta = film.gamma_beta([a, b])
    torch.testing.assert_close(gamma, torch.ones_like(gamma))
    with torch.no_grad():
        film.film.weight.normal_()
    gamma, beta = film.gamma_beta([a, b])
    torch.testing.assert_close(film([a, b]), gamma * a + beta)
    # the target does not influence gamma and beta; the condition does
    g2, _ = film.gamma_beta([a + 1, b])
    torch.testing.assert_close(g2, gamma)
    assert FiLMFusion([4, 3], target=1).out_dim == 3


def _reference_mha(attn, dim, heads):
    mha = nn.MultiheadAttention(dim, heads, batch_first=True)
    with torch.no_grad():
        mha.in_proj_weight.copy_(
            torch.cat([attn.q_proj.weight, attn.k_proj.weight, attn.v_proj.weight])
        )
        mha.in_proj_bias.copy_(torch.cat([attn.q_proj.bias, attn.k_proj.bias, attn.v_proj.bias]))
        mha.out_proj.weight.copy_(attn.out_proj.weight)
        mha.out_proj.bias.copy_(attn.out_proj.bias)
    return mha.eval()


def test_cross_attention_equals_torch_multihead_attention_with_copied_weights():
    torch.manual_seed(0)
    dims, dim, heads = [5, 3], 8, 2
    fusion = CrossAttentionFusion(dims, dim, num_heads=heads).eval()
    x_a, x_b = torch.randn(4, 6, 5), torch.randn(4, 9, 3)  # sequences of 6 and 9 positions
    mask_a = torch.ones(4, 6, dtype=torch.bool)
    mask_a[:, 4:] = False
    mask_b = torch.arange(9).expand(4, 9) < torch.tensor([[9], [5], [1], [7]])
    out = fusion([x_a, x_b], masks=[mask_a, mask_b])
    assert out.shape == (4, 2 * dim)
    h_a, h_b = fusion.projections[0](x_a), fusion.projections[1](x_b)
    expected = []
    for (i, j), attn in zip(fusion.pairs, fusion.attention, strict=True):
        q, kv, m_q, m_kv = (h_a, h_b, mask_a, mask_b) if i == 0 else (h_b, h_a, mask_b, mask_a)
        mha = _reference_mha(attn, dim, heads)
        ref, ref_w = mha(q, kv, kv, key_padding_mask=~m_kv)  # torch: True = ignore
        y = q + ref
        keep = m_q.unsqueeze(-1).float()
        expected.append((y * keep).sum(1) / keep.sum(1))
        torch.testing.assert_close(fusion.last_weights[(i, j)].mean(1), ref_w)
    torch.testing.assert_close(out, torch.cat(expected, 1), atol=1e-5, rtol=1e-4)


def test_cross_attention_accepts_vectors_and_sequences_and_checks_masks():
    torch.manual_seed(0)
    fusion = CrossAttentionFusion([5, 3, 4], 8, targets=[0])
    assert fusion.pairs == [(0, 1), (0, 2)] and fusion.out_dim == 16
    out = fusion([torch.randn(2, 7, 5), torch.randn(2, 3), torch.randn(2, 4, 4)])
    assert out.shape == (2, 16)
    xs = [torch.randn(2, 7, 5), torch.randn(2, 3), torch.randn(2, 4, 4)]
    with pytest.raises(ValueError, match=r"masks\[2\] must have shape"):
        fusion(xs, masks=[None, None, torch.ones(2, 5, dtype=torch.bool)])
    with pytest.raises(ValueError, match="at least one real position"):
        fusion(xs, masks=[None, None, torch.zeros(2, 4, dtype=torch.bool)])
    with pytest.raises(ValueError, match="bool tensor"):
        fusion(xs, masks=[None, None, torch.ones(2, 4)])
    with pytest.raises(ValueError, match="masks must be None or a list of 3"):
        fusion(xs, masks=[None])
    # padded positions do not change the result
    x_b = torch.randn(2, 4, 4)
    padded = torch.cat([x_b, 100 * torch.randn(2, 2, 4)], 1)
    mask = torch.tensor([[1, 1, 1, 1, 0, 0]] * 2, dtype=torch.bool)
    a = fusion([xs[0], xs[1], x_b])
    b = fusion([xs[0], xs[1], padded], masks=[None, None, mask])
    torch.testing.assert_close(a, b)


# --- mmcourse.fusion_demo: the notebook's experiments -----------------------------------------


def test_xor_task_each_modality_alone_is_uninformative():
    from mmcourse.fusion_demo import make_xor_modalities

    x, y = make_xor_modalities(2000, noise=0.3, dim=3, seed=0)
    assert x["a"].shape == (2000, 3) and x["b"].shape == (2000, 3) and y.dtype == torch.long
    sign_a, sign_b = x["a"][:, 0] > 0, x["b"][:, 0] > 0
    # the label is the XOR of the two signs (up to the rare noise flips) ...
    assert ((sign_a != sign_b).long() == y).float().mean() > 0.99
    # ... while each sign alone predicts the label at chance
    for sign in (sign_a, sign_b):
        assert abs((sign.long() == y).float().mean() - 0.5) < 0.05
    x2, y2 = make_xor_modalities(2000, noise=0.3, dim=3, seed=0)
    assert torch.equal(x2["a"], x["a"]) and torch.equal(y2, y)  # deterministic
    with pytest.raises(ValueError, match="noise must be"):
        make_xor_modalities(10, noise=-1.0)


def test_additive_fusion_fails_and_multiplicative_fusion_solves_xor():
    from mmcourse.fusion_demo import accuracy_of, make_xor_modalities, train_full_batch
    from mmcourse.models import MultimodalClassifier

    x, y = make_xor_modalities(300, seed=0)
    x_test, y_test = make_xor_modalities(500, seed=1)
    results = {}
    for name, fusion in {
        "concat": ConcatFusion([2, 2]),
        "tfn": TensorFusion([2, 2]),
        "film": FiLMFusion([2, 2]),
    }.items():
        torch.manual_seed(0)
        model = MultimodalClassifier({"a": nn.Identity(), "b": nn.Identity()}, fusion, 2)
        losses = train_full_batch(model, x, y, epochs=30, lr=0.1)
        assert losses[-1] < losses[0]
        results[name] = accuracy_of(model, x_test, y_test)
    assert results["concat"] < 0.6
    assert results["tfn"] > 0.95 and results["film"] > 0.95


def test_train_full_batch_rejects_bad_inputs():
    from mmcourse.fusion_demo import train_full_batch

    model = nn.Linear(2, 2)
    with pytest.raises(TypeError, match="batch must be a non-empty dict"):
        train_full_batch(model, torch.randn(4, 2), torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="labels must be a 1-D int64"):
        train_full_batch(model, {"a": torch.randn(4, 2)}, torch.zeros(4))
    with pytest.raises(ValueError, match=r"batch\['a'\] must be a tensor with 4 rows"):
        train_full_batch(model, {"a": torch.randn(3, 2)}, torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="epochs must be a positive int"):
        train_full_batch(model, {"a": torch.randn(4, 2)}, torch.zeros(4, dtype=torch.long), 0)


def test_compare_fusions_table_on_a_tiny_problem():
    from mmcourse.fusion_demo import classifier_builders, compare_fusions, fusion_zoo

    g = torch.Generator().manual_seed(0)
    n = 90
    labels = torch.arange(n) % 3
    feats = {
        "a": torch.randn(n, 4, generator=g) + labels[:, None],
        "b": torch.randn(n, 3, generator=g) - labels[:, None],
    }
    split = ["train"] * 60 + ["val"] * 15 + ["test"] * 15
    zoo = fusion_zoo([4, 3], num_classes=3, dim=4)
    assert {"concat", "TFN", "LMF", "GMU", "FiLM", "late (mean)"} <= set(zoo)
    encoders = {"a": nn.Identity, "b": nn.Identity}
    builders = classifier_builders({k: zoo[k] for k in ("concat", "TFN")}, encoders, 3)
    table = compare_fusions(builders, feats, labels, split, seeds=(0, 1), epochs=5)
    assert list(table.columns) == [
        "model",
        "seed",
        "test_accuracy",
        "val_accuracy",
        "parameters",
        "seconds",
    ]
    assert len(table) == 4 and table["test_accuracy"].between(0, 1).all()
    assert table.loc[table.model == "TFN", "parameters"].iloc[0] == (5 * 4 + 1) * 4 + 5 * 3
    again = compare_fusions(builders, feats, labels, split, seeds=(0, 1), epochs=5, progress=True)
    assert table["test_accuracy"].tolist() == again["test_accuracy"].tolist()  # seeded; a bar
    with pytest.raises(ValueError, match="split has no 'val' rows"):
        compare_fusions(builders, feats, labels, ["train"] * 90, seeds=(0,), epochs=1)
    with pytest.raises(ValueError, match="one entry per label"):
        compare_fusions(builders, feats, labels, split[:10], seeds=(0,), epochs=1)


def test_gate_demo_logic():
    import numpy as np

    from mmcourse.fusion_demo import (
        boundary_line,
        gate_accuracy,
        gate_sweep,
        gated_score,
        optimal_gate,
        two_noisy_views,
    )

    a, b, y = two_noisy_views(4000, sigma_a=0.6, sigma_b=1.2, seed=0)
    assert a.shape == b.shape == y.shape == (4000,) and set(np.unique(y)) == {0, 1}
    np.testing.assert_allclose(gated_score(a, b, 1.0), a)
    np.testing.assert_allclose(gated_score(a, b, 0.0), b)
    g_star = optimal_gate(0.6, 1.2)
    assert g_star == pytest.approx(1.44 / 1.8)
    gates, accs = gate_sweep(a, b, y)
    best = gates[accs.argmax()]
    assert abs(best - g_star) < 0.15  # the empirical optimum is near the theory
    assert accs.max() > max(gate_accuracy(a, b, y, 1.0), gate_accuracy(a, b, y, 0.0))
    # the boundary passes through the origin and has slope -g / (1 - g)
    xs, ys = boundary_line(0.5)
    np.testing.assert_allclose(ys, -xs)
    xs, ys = boundary_line(1.0)
    np.testing.assert_allclose(xs, [0.0, 0.0])
    with pytest.raises(ValueError, match=r"gate must be a number in \[0, 1\]"):
        gated_score(a, b, 1.5)
    with pytest.raises(ValueError, match="same shape"):
        gated_score(a, b[:5], 0.5)
    with pytest.raises(ValueError, match="must be positive"):
        two_noisy_views(10, sigma_a=0.0)


def test_plot_gate_demo_draws_the_boundary():
    import matplotlib

    matplotlib.use("Agg")
    from mmcourse.fusion_demo import plot_gate_demo, two_noisy_views

    a, b, y = two_noisy_views(50)
    ax = plot_gate_demo(a, b, y, 0.3)
    assert "g = 0.30" in ax.get_title() and len(ax.lines) == 1


def test_av_digit_features_are_standardised_on_train():
    from types import SimpleNamespace

    import numpy as np

    from mmcourse.fusion_demo import av_digit_features

    rng = np.random.default_rng(0)
    n = 30
    data = SimpleNamespace(
        images=rng.random((n, 1, 8, 8), dtype=np.float32),
        audio=rng.standard_normal((n, 4000)).astype(np.float32),
        split=np.array(["train"] * 20 + ["test"] * 10),
        sample_rate=8000,
    )
    feats = av_digit_features(data)
    assert feats["image"].shape == (n, 64) and feats["audio"].shape == (n, 26)
    assert feats["image_seq"].shape == (n, 8, 8) and feats["audio_seq"].shape == (n, 12, 13)
    train = feats["audio"][:20]
    torch.testing.assert_close(train.mean(0), torch.zeros(26), atol=1e-4, rtol=0)
    with pytest.raises(TypeError, match="AVDigits"):
        av_digit_features(SimpleNamespace(images=None))


# --- exercises of notebook 03: a plausible wrong answer fails each check ----------------------


def test_exercise_checks_reject_plausible_wrong_answers():
    from mmcourse.exercises import get

    def stacked_rows(W1, W2):  # a common mistake: W^T, the matrices stacked on top
        return torch.cat([W1.T, W2.T], dim=0)

    def swapped(W1, W2):
        return torch.cat([W2, W1], dim=1)

    def concat_only(x_a, x_b):  # additive features: cannot solve XOR linearly
        return torch.cat([x_a, x_b], dim=1)

    def no_ones(in_dims, out_dim, rank):  # forgets the appended 1s
        tfn = (math.prod(in_dims) + 1) * out_dim
        return {"tfn": tfn, "lmf": rank * sum(in_dims) * out_dim + rank + out_dim}

    cases = [
        ("03.concat_weight", stacked_rows, "side by side"),
        ("03.concat_weight", swapped, "first d_I columns"),
        ("03.xor_features", concat_only, "PRODUCT"),
        ("03.param_counts", no_ones, "appended 1"),
    ]
    for key, wrong, feedback in cases:
        with pytest.raises(AssertionError, match=feedback):
            get(key).check(wrong)
        get(key).check(get(key).solution())  # and the worked solution passes


def test_gmu_and_tfn_equal_their_formulas_written_out():
    # the formulas of notebook 03, section 3, with the modules' own weights
    torch.manual_seed(0)
    x1, x2 = torch.randn(5, 4), torch.randn(5, 3)
    gmu = GatedFusion([4, 3], dim=6)
    h1 = torch.tanh(gmu.candidates[0](x1))
    h2 = torch.tanh(gmu.candidates[1](x2))
    z = torch.sigmoid(gmu.gate(torch.cat([x1, x2], dim=1)))
    torch.testing.assert_close(gmu([x1, x2]), z * h1 + (1 - z) * h2)
    tfn = TensorFusion([4, 3], out_dim=2)
    ones = torch.ones(5, 1)
    outer = torch.einsum("bi,bj->bij", torch.cat([x1, ones], 1), torch.cat([x2, ones], 1))
    torch.testing.assert_close(tfn([x1, x2]), tfn.linear(outer.flatten(1)))
