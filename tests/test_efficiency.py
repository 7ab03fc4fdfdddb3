"""mmcourse.efficiency against references: torchao, torch.nn.utils.prune, hand-computed values."""

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mmcourse import efficiency as E


def mlp(seed=0, d=16, h=32, k=5):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(d, h), nn.ReLU(), nn.Linear(h, k))


class DictMLP(nn.Module):
    def __init__(self, d=16, h=32, k=5):
        super().__init__()
        self.net = mlp(0, d, h, k)

    def forward(self, batch):
        return self.net(batch["x"])


def test_training_bytes_16_per_parameter_for_mixed_precision_adam():
    parts = E.training_bytes(1000)
    assert parts["total"] == 16_000
    assert parts["master weights"] == 4000 and parts["optimizer"] == 8000
    assert E.training_bytes(10, "fp32 SGD (no momentum)")["total"] == 80
    with pytest.raises(ValueError, match="recipe"):
        E.training_bytes(10, "adam")
    with pytest.raises(ValueError, match="num_params"):
        E.training_bytes(-1)


def test_measured_training_bytes_of_adam_is_16_bytes_per_fp32_parameter():
    model = mlp()
    opt = torch.optim.AdamW(model.parameters())
    model(torch.randn(4, 16)).sum().backward()
    opt.step()
    n = sum(p.numel() for p in model.parameters())
    measured = E.measured_training_bytes(model, opt)
    assert measured == {"weights": 4 * n, "gradients": 4 * n, "optimizer": 8 * n}
    assert sum(measured.values()) == E.training_bytes(n, "fp32 Adam")["total"]


def test_activation_bytes_grow_with_the_batch():
    model = mlp()
    small = E.activation_bytes(model, torch.randn(10, 16))
    large = E.activation_bytes(model, torch.randn(100, 16))
    weights = sum(p.numel() * 4 for p in model.parameters() if p.ndim == 2)
    # input, hidden (ReLU output, shared by the second layer) and weights for the backward
    assert small > 10 * (16 + 32) * 4
    assert large - small == pytest.approx(90 * (16 + 32) * 4, rel=0.35)
    assert large < 100 * (16 + 32 + 32) * 4 + 2 * weights


def test_quantize_int8_round_trip_error_is_at_most_half_a_step():
    w = torch.randn(8, 20)
    w[3] = 0  # a zero row must not divide by zero
    q, scale = E.quantize_int8(w)
    assert q.dtype == torch.int8 and scale.shape == (8,)
    assert int(q.abs().max()) == 127  # the largest weight of a row maps to +-127
    error = (E.dequantize_int8(q, scale) - w).abs()
    assert bool((error <= scale[:, None] / 2 + 1e-7).all())
    assert bool((q[3] == 0).all())
    with pytest.raises(TypeError, match="weight"):
        E.quantize_int8(torch.randn(3))
    with pytest.raises(ValueError, match="qmax"):
        E.quantize_int8(w, qmax=200)


def test_int8_agrees_with_torchao_weight_only():
    pytest.importorskip("torchao")
    from torchao.quantization import Int8WeightOnlyConfig, quantize_

    model = mlp()
    library = copy.deepcopy(model)
    quantize_(library, Int8WeightOnlyConfig())
    for mine, theirs in zip((model[0], model[2]), (library[0], library[2]), strict=True):
        q, scale = E.quantize_int8(mine.weight, qmax=127.5)  # torchao's convention
        torch.testing.assert_close(theirs.weight.scale.flatten(), scale)
        differ = theirs.weight.qdata.int() - q.int()
        assert int(differ.abs().max()) <= 1  # only ties at exactly -127.5 round apart
        assert float((differ != 0).float().mean()) < 0.02
    x = torch.randn(7, 16)
    ours = E.quantize_model_int8(model)
    assert isinstance(ours[0], E.Int8Linear)
    torch.testing.assert_close(ours(x), model(x), atol=0.02, rtol=0)
    torch.testing.assert_close(ours(x), library(x), atol=0.02, rtol=0)
    assert E.tensor_bytes(ours.state_dict().values()) < 0.4 * E.tensor_bytes(model.parameters())


def test_magnitude_prune_zeroes_the_smallest_weights_and_keeps_the_file_size():
    from torch.nn.utils import prune

    model = mlp()
    pruned = E.magnitude_prune(model, 0.5)
    assert E.sparsity(pruned) == pytest.approx(0.5, abs=0.01)
    assert E.sparsity(model) == 0  # the original is untouched
    reference = copy.deepcopy(model[0])
    prune.l1_unstructured(reference, "weight", amount=0.5)
    assert torch.equal(reference.weight, pruned[0].weight)
    kept = pruned[0].weight != 0
    assert float(model[0].weight.abs()[kept].min()) >= float(model[0].weight.abs()[~kept].max())
    # same shapes, same dtype: the saved file does not shrink
    assert E.tensor_bytes(pruned.parameters()) == E.tensor_bytes(model.parameters())
    assert E.serialized_bytes(pruned) == pytest.approx(E.serialized_bytes(model), rel=0.05)
    with pytest.raises(ValueError, match="amount"):
        E.magnitude_prune(model, 1.5)


def test_distillation_loss_against_a_hand_computed_kl():
    s, t = torch.randn(6, 4), torch.randn(6, 4)
    labels = torch.tensor([0, 1, 2, 3, 0, 1])
    T = 3.0
    p, log_q = F.softmax(t / T, 1), F.log_softmax(s / T, 1)
    kl = (p * (p.log() - log_q)).sum(1).mean()
    assert float(E.distillation_loss(s, t, temperature=T)) == pytest.approx(float(T**2 * kl))
    mixed = E.distillation_loss(s, t, labels, temperature=T, alpha=0.3)
    expected = 0.3 * T**2 * kl + 0.7 * F.cross_entropy(s, labels)
    assert float(mixed) == pytest.approx(float(expected), rel=1e-6)
    assert float(E.distillation_loss(t, t)) == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError, match="labels"):
        E.distillation_loss(s, t, alpha=0.5)
    with pytest.raises(ValueError, match="same shape"):
        E.distillation_loss(s, t[:, :3])
    with pytest.raises(ValueError, match="temperature"):
        E.distillation_loss(s, t, temperature=0)


def test_lora_starts_as_the_base_layer_trains_few_parameters_and_merges_exactly():
    model = mlp()
    lora = E.add_lora(model, rank=2, alpha=4)
    x = torch.randn(9, 16)
    torch.testing.assert_close(lora(x), model(x))  # B = 0 at the start
    trainable = sum(p.numel() for p in lora.parameters() if p.requires_grad)
    assert trainable == 2 * (16 + 32) + 2 * (32 + 5)
    opt = torch.optim.SGD([p for p in lora.parameters() if p.requires_grad], lr=0.5)
    for _ in range(3):
        opt.zero_grad()
        F.cross_entropy(lora(x), torch.arange(9) % 5).backward()
        opt.step()
    assert not torch.allclose(lora(x), model(x))  # the adapter learned something
    torch.testing.assert_close(lora[0].base.weight, model[0].weight)  # the base is frozen
    merged = E.merge_lora(lora)
    assert isinstance(merged[0], nn.Linear) and lora[0].scaling == 2.0
    torch.testing.assert_close(merged(x), lora(x), atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="rank"):
        E.LoRALinear(nn.Linear(3, 2), rank=5)
    with pytest.raises(TypeError, match="nn.Linear"):
        E.LoRALinear(nn.Conv1d(2, 2, 1))


def test_training_step_flops_is_six_n_d_minus_the_first_input_gradient():
    model = DictMLP()
    d = 50
    batch = {"x": torch.randn(d, 16), "label": torch.arange(d) % 5}
    n_weights = 16 * 32 + 32 * 5
    flops = E.training_step_flops(model, batch)
    # forward 2ND, backward 4ND, minus the input gradient of the first layer (2 N_1 D)
    assert flops == 6 * n_weights * d - 2 * 16 * 32 * d
    assert all(p.grad is None for p in model.parameters())  # no gradients left behind


def test_exercises_of_notebook_09_catch_the_typical_wrong_answers():
    from mmcourse.exercises import get

    adam = get("09.adam_bytes")
    adam.check(adam.solution())
    for per_param, says in ((12, "master copy"), (4, "only the fp32 weights"), (20, "bf16")):
        with pytest.raises(AssertionError, match=says):
            adam.check(lambda n, b=per_param: b * n)

    int8 = get("09.int8_quantize")
    int8.check(int8.solution())

    def per_tensor(w):
        scale = w.abs().max() / 127
        return torch.round(w / scale).to(torch.int8), scale

    def floor(w):
        scale = w.abs().amax(1, keepdim=True) / 127
        return torch.floor(w / scale).to(torch.int8), scale.squeeze(1)

    def by_128(w):
        scale = w.abs().amax(1, keepdim=True) / 128
        return torch.round(w / scale).clamp(-128, 127).to(torch.int8), scale.squeeze(1)

    for wrong, says in ((per_tensor, "one scale per row"), (floor, "round"), (by_128, "127")):
        with pytest.raises(AssertionError, match=says):
            int8.check(wrong)
    # and the library function is a correct answer
    int8.check(E.quantize_int8)
