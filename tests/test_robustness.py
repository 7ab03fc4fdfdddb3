"""mmcourse.robustness: missing-modality handling, modality dropout, probes and corruptions."""

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler
from torch import nn

from mmcourse.robustness import (
    MissingAware,
    ModalityDropout,
    add_noise_snr,
    drop_modality,
    encode,
    linear_probe,
    missing_rows,
    modality_dropout_mask,
    occlude,
)


class Enc(nn.Module):
    def __init__(self, d_in=4, d_out=3):
        super().__init__()
        self.lin, self.out_dim = nn.Linear(d_in, d_out), d_out

    def forward(self, x):
        return self.lin(x)


class Fused(nn.Module):
    def __init__(self, learned=False):
        super().__init__()
        self.enc = nn.ModuleDict(
            {"a": MissingAware(Enc(), learned=learned), "b": MissingAware(Enc(), learned=learned)}
        )
        self.head = nn.Linear(6, 2)

    def forward(self, batch):
        return self.head(torch.cat([self.enc["a"](batch["a"]), self.enc["b"](batch["b"])], 1))


def test_drop_modality_marks_rows_and_leaves_the_rest():
    batch = {"a": torch.randn(5, 4), "b": torch.randn(5, 4), "label": torch.arange(5)}
    rows = torch.tensor([True, False, True, False, False])
    out = drop_modality(batch, "a", rows)
    assert torch.equal(missing_rows(out["a"]), rows)
    assert torch.equal(out["a"][~rows], batch["a"][~rows])
    assert out["b"] is batch["b"] and not torch.isnan(batch["a"]).any()  # input untouched
    assert missing_rows(drop_modality(batch, "b")["b"]).all()
    assert not missing_rows(torch.arange(3)).any()  # integer inputs are never "missing"


def test_missing_aware_zero_fill_and_learned_embedding():
    torch.manual_seed(0)
    enc = Enc()
    x = torch.randn(4, 4)
    x[1] = float("nan")
    zero = MissingAware(enc)
    out = zero(x)
    assert torch.allclose(out[1], enc(torch.zeros(1, 4))[0])  # zero-filled input
    assert torch.allclose(out[[0, 2, 3]], enc(x[[0, 2, 3]]))
    learned = MissingAware(enc, learned=True)
    with torch.no_grad():
        learned.missing.copy_(torch.tensor([1.0, 2.0, 3.0]))
    out = learned(x)
    assert torch.equal(out[1], torch.tensor([1.0, 2.0, 3.0]))
    assert torch.allclose(out[0], enc(x[:1])[0])
    # the missing embedding receives gradient only from missing samples
    out.sum().backward()
    assert torch.equal(learned.missing.grad, torch.ones(3))
    assert not torch.isnan(enc.lin.weight.grad).any()


def test_plain_encoder_fails_loudly_on_missing_input():
    x = drop_modality({"a": torch.randn(2, 4)}, "a")["a"]
    assert torch.isnan(Enc()(x)).all()


def test_modality_dropout_mask_statistics():
    g = torch.Generator().manual_seed(0)
    mask = modality_dropout_mask(20000, 2, p=0.5, generator=g)
    assert not mask.all(1).any()  # never every modality of one sample
    assert mask.any(1).float().mean() == pytest.approx(0.5, abs=0.02)
    assert mask.float().mean(0) == pytest.approx(torch.tensor([0.25, 0.25]), abs=0.02)
    assert not modality_dropout_mask(100, 3, p=0.0).any()


def test_modality_dropout_only_in_training_and_reproducible():
    torch.manual_seed(0)
    seen = []

    class Spy(nn.Module):
        def forward(self, batch):
            seen.append({k: missing_rows(batch[k]) for k in ("a", "b")})
            return torch.zeros(batch["label"].shape[0], 2)

    batch = {"a": torch.randn(400, 4), "b": torch.randn(400, 4), "label": torch.zeros(400)}
    wrapper = ModalityDropout(Spy(), ["a", "b"], p=0.5)
    wrapper.train()
    torch.manual_seed(1)
    wrapper(batch)
    torch.manual_seed(1)
    wrapper(batch)
    assert torch.equal(seen[0]["a"], seen[1]["a"])
    dropped = seen[0]["a"] | seen[0]["b"]
    assert 0.4 < dropped.float().mean() < 0.6 and not (seen[0]["a"] & seen[0]["b"]).any()
    wrapper.eval()
    wrapper(batch)
    assert not seen[2]["a"].any() and not seen[2]["b"].any()
    assert not torch.isnan(batch["a"]).any()  # the caller's batch is never modified


def test_training_with_modality_dropout_learns_the_missing_embedding():
    from mmcourse.train import fit

    torch.manual_seed(0)
    x_a, x_b = torch.randn(256, 4), torch.randn(256, 4)
    y = (x_a[:, 0] + x_b[:, 0] > 0).long()
    model = Fused(learned=True)
    fit(
        ModalityDropout(model, ["a", "b"], p=0.5),
        [{"a": x_a, "b": x_b, "label": y}],
        epochs=20,
        lr=1e-2,
        progress=False,
        seed=0,
    )
    assert model.enc["a"].missing.abs().sum() > 0  # moved away from its zero init


def test_linear_probe_matches_sklearn_on_identity_features():
    rng = np.random.default_rng(0)
    x = torch.tensor(rng.normal(size=(200, 5)), dtype=torch.float32)
    y = (x[:, 0] > 0).long()
    identity = nn.Sequential(nn.Flatten())
    identity.register_parameter("dummy", nn.Parameter(torch.zeros(1)))  # for the device
    acc = linear_probe(identity, x[:150], y[:150], x[150:], y[150:])
    scaler = StandardScaler().fit(x[:150].numpy())
    ref = LogisticRegression(max_iter=2000).fit(scaler.transform(x[:150].numpy()), y[:150])
    assert acc == pytest.approx(ref.score(scaler.transform(x[150:].numpy()), y[150:]))
    assert acc > 0.9
    assert encode(identity, x).shape == (200, 5)
    with pytest.raises(ValueError, match="y_train"):
        linear_probe(identity, x[:150], y[:10], x[150:], y[150:])


def test_add_noise_snr_hits_the_requested_ratio():
    t = torch.linspace(0, 1, 8000)
    clean = torch.stack(
        [torch.sin(2 * torch.pi * 440 * t), 0.1 * torch.sin(2 * torch.pi * 200 * t)]
    )
    for snr in (20.0, 0.0, -10.0):
        noisy = add_noise_snr(clean, snr, seed=1)
        noise = noisy - clean
        measured = 10 * torch.log10(clean.pow(2).mean(1) / noise.pow(2).mean(1))
        assert torch.allclose(measured, torch.tensor([snr, snr]), atol=1e-3)
    assert torch.equal(add_noise_snr(clean, 5.0, seed=3), add_noise_snr(clean, 5.0, seed=3))
    assert torch.equal(add_noise_snr(clean, float("inf")), clean)
    assert isinstance(add_noise_snr(clean.numpy(), 5.0), torch.Tensor)


def test_occlude_hides_one_square_per_image():
    images = torch.ones(50, 1, 8, 8)
    out = occlude(images, 3, seed=0)
    hidden = (out == 0).sum(dim=(1, 2, 3))
    assert torch.equal(hidden, torch.full((50,), 9))
    assert torch.equal(occlude(images, 0), images)
    assert (occlude(images, 8) == 0).all()
    positions = {tuple(torch.nonzero(o[0] == 0)[0].tolist()) for o in out}
    assert len(positions) > 5  # different places in different images
    assert torch.equal(out, occlude(images, 3, seed=0))


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: drop_modality({"a": torch.zeros(2, 3)}, "b"), KeyError, "no modality 'b'"),
        (
            lambda: drop_modality({"a": torch.zeros(2, 3)}, "a", torch.ones(3).bool()),
            ValueError,
            "rows",
        ),
        (lambda: drop_modality({"a": torch.zeros(2).long()}, "a"), TypeError, "float"),
        (lambda: MissingAware(nn.ReLU()), ValueError, "out_dim"),
        (lambda: MissingAware("enc", 3), TypeError, "nn.Module"),
        (lambda: modality_dropout_mask(4, 1, 0.5), ValueError, "num_modalities"),
        (lambda: modality_dropout_mask(4, 2, 1.5), ValueError, "probability"),
        (lambda: modality_dropout_mask(0, 2, 0.5), ValueError, "batch_size"),
        (lambda: ModalityDropout(nn.ReLU(), "ab"), ValueError, "modalities"),
        (lambda: ModalityDropout(nn.ReLU(), ["a", "b"], p=-0.1), ValueError, "probability"),
        (lambda: add_noise_snr(torch.zeros(3).long(), 5.0), TypeError, "float"),
        (lambda: add_noise_snr(torch.zeros(3), "loud"), ValueError, "snr_db"),
        (lambda: occlude(torch.zeros(8, 8), 2), ValueError, r"\(B, C, H, W\)"),
        (lambda: occlude(torch.zeros(1, 1, 8, 8), 9), ValueError, "size"),
        (lambda: missing_rows([1.0]), TypeError, "tensor"),
    ],
)
def test_bad_input(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_exercise_snr_solution_passes_and_wrong_answers_fail():
    from mmcourse.exercises import get

    exercise = get("04.snr")
    exercise.check(exercise.solution())

    def amplitude_not_power(signal, snr_db, noise):  # uses 20 log10 of the power ratio
        p_signal = signal.pow(2).mean(-1, keepdim=True)
        return signal + noise * torch.sqrt(p_signal / 10 ** (snr_db / 20))

    def whole_batch_power(signal, snr_db, noise):  # one power for all clips, not per clip
        return signal + noise * torch.sqrt(signal.pow(2).mean() / 10 ** (snr_db / 10))

    for wrong in (amplitude_not_power, whole_batch_power):
        with pytest.raises(AssertionError, match="SNR"):
            exercise.check(wrong)
    # the library function uses the same definition as the exercise
    signal = torch.randn(2, 500)
    noisy = add_noise_snr(signal, 3.0, seed=0)
    noise = torch.randn(signal.shape, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(noisy, exercise.solution()(signal, 3.0, noise))
