"""Robustness of multimodal models: missing modalities, modality dropout, noise and occlusion.

Missing inputs are marked with NaN, the convention of pandas and scikit-learn: a row of
``batch[name]`` that is entirely NaN means "this sample has no ``name`` modality". A model
that does not handle missing inputs then fails loudly (NaN logits) instead of silently.
Three ways of coping, compared in notebook 04:

* zero-filling: ``MissingAware(encoder, learned=False)`` feeds zeros to the encoder;
* a learned "missing" embedding: ``MissingAware(encoder, learned=True)`` replaces the
  encoder's output by a trained vector;
* modality dropout (ModDrop; Neverova et al., 2016, IEEE TPAMI): ``ModalityDropout(model)``
  hides modalities at random during training, so the model learns to cope without them.

two corruptions for robustness sweeps: ``add_noise_snr`` (audio) and ``occlude`` (images),
and ``linear_probe`` to see how much each encoder of a fused model has learned.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from mmcourse._checks import check_finite, check_int, check_module, check_real, check_seed
from mmcourse.utils import seeded_generator

Batch = dict[str, torch.Tensor]


def missing_rows(x: torch.Tensor) -> torch.Tensor:
    """Bool (B,): True where a sample's input is entirely NaN (the modality is missing)."""
    if not torch.is_tensor(x) or x.ndim < 1:
        raise TypeError(f"x must be a tensor with a batch axis, got {type(x).__name__}")
    if not x.is_floating_point():
        return torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
    return torch.isnan(x.reshape(x.shape[0], -1)).all(dim=1)


def drop_modality(batch: Batch, name: str, rows: torch.Tensor | None = None) -> Batch:
    """A copy of ``batch`` where modality ``name`` is missing (NaN) for ``rows``.

    ``rows`` is a bool mask (B,); None means every sample. Other entries are shared, not copied.
    """
    if not isinstance(batch, dict) or name not in batch:
        keys = sorted(batch) if isinstance(batch, dict) else type(batch).__name__
        raise KeyError(f"batch has no modality {name!r} to drop (keys: {keys})")
    x = batch[name]
    if not torch.is_tensor(x) or not x.is_floating_point():
        raise TypeError(f"batch[{name!r}] must be a float tensor to be marked missing")
    if rows is None:
        rows = torch.ones(x.shape[0], dtype=torch.bool, device=x.device)
    if rows.dtype != torch.bool or rows.shape != (x.shape[0],):
        raise ValueError(
            f"rows must be a bool mask of shape ({x.shape[0]},), "
            f"got {rows.dtype} {tuple(rows.shape)}"
        )
    shape = (-1,) + (1,) * (x.ndim - 1)
    out = dict(batch)
    out[name] = torch.where(rows.to(x.device).view(shape), torch.full_like(x, float("nan")), x)
    return out


class MissingAware(nn.Module):
    """Wrap an encoder so that it accepts missing inputs (rows that are all NaN).

    Missing rows are replaced by zeros before the encoder (zero-filling). With
    ``learned=True`` their output features are then replaced by a learned vector
    ``self.missing`` (out_dim,), the "missing" embedding; it only learns something if the
    model sees missing samples during training (e.g. with ``ModalityDropout``).
    Shapes: x (B, ...) -> (B, out_dim), like the wrapped encoder.
    """

    def __init__(self, encoder: nn.Module, out_dim: int | None = None, learned: bool = False):
        super().__init__()
        if not isinstance(encoder, nn.Module):
            raise TypeError(f"encoder must be an nn.Module, got {type(encoder).__name__}")
        out_dim = out_dim if out_dim is not None else getattr(encoder, "out_dim", None)
        if not isinstance(out_dim, int) or isinstance(out_dim, bool) or out_dim < 1:
            raise ValueError("out_dim must be a positive int (the encoder has no .out_dim)")
        self.encoder, self.out_dim, self.learned = encoder, out_dim, learned
        self.missing = nn.Parameter(torch.zeros(out_dim)) if learned else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        absent = missing_rows(x)
        if not absent.any():
            return self.encoder(x)
        shape = (-1,) + (1,) * (x.ndim - 1)
        features = self.encoder(torch.where(absent.view(shape), torch.zeros_like(x), x))
        if self.learned:
            features = torch.where(absent[:, None], self.missing.to(features.dtype), features)
        return features


def modality_dropout_mask(
    batch_size: int, num_modalities: int, p: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Bool (B, M): True where modality m of sample b is dropped.

    Each sample, with probability ``p``, loses exactly one modality chosen uniformly, so no
    sample ever loses all of them (the ModDrop recipe for two modalities).
    """
    check_int(batch_size, "batch_size")
    check_int(num_modalities, "num_modalities", minimum=2)
    check_real(p, "p", 0.0, 1.0, what="a probability in [0, 1]")
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got {generator!r}")
    drop = torch.rand(batch_size, generator=generator) < p
    which = torch.randint(num_modalities, (batch_size,), generator=generator)
    mask = torch.zeros(batch_size, num_modalities, dtype=torch.bool)
    mask[drop, which[drop]] = True
    return mask


class ModalityDropout(nn.Module):
    """Train ``model`` with modalities hidden at random (ModDrop, Neverova et al. 2016).

    In training mode each sample loses one of ``modalities`` with probability ``p`` (marked
    NaN, see ``drop_modality``); in eval mode the batch passes through untouched. The
    wrapped model must cope with missing inputs, e.g. encoders wrapped in ``MissingAware``.
    The random draws use the global PyTorch generator, so ``fit(seed=...)`` makes them
    reproducible.
    """

    def __init__(self, model: nn.Module, modalities: Sequence[str], p: float = 0.5):
        super().__init__()
        check_module(model, "model")
        if isinstance(modalities, str) or len(modalities) < 2:
            raise ValueError(f"modalities must list at least 2 batch keys, got {modalities!r}")
        check_real(p, "p", 0.0, 1.0, what="a probability in [0, 1]")
        self.model, self.modalities, self.p = model, list(modalities), p

    def forward(self, batch: Batch) -> torch.Tensor:
        if self.training and self.p > 0:
            n = batch["label"].shape[0] if "label" in batch else batch[self.modalities[0]].shape[0]
            mask = modality_dropout_mask(n, len(self.modalities), self.p)
            for m, name in enumerate(self.modalities):
                if mask[:, m].any():
                    batch = drop_modality(batch, name, mask[:, m])
        return self.model(batch)


# ----------------------------------------------------------------------------- imbalance


@torch.no_grad()
def encode(encoder: nn.Module, x: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
    """Features of ``x`` (N, ...) from ``encoder`` in eval mode, on the CPU: (N, d)."""
    check_module(encoder, "encoder")
    if not torch.is_tensor(x) or x.ndim < 2:
        raise TypeError("x must be a tensor (N, ...) of encoder inputs")
    if x.shape[0] == 0:
        raise ValueError(f"x is empty (shape {tuple(x.shape)}): no samples to encode")
    check_int(batch_size, "batch_size")
    was_training = encoder.training
    encoder.eval()
    device = next(encoder.parameters()).device
    out = torch.cat(
        [encoder(x[i : i + batch_size].to(device)).cpu() for i in range(0, x.shape[0], batch_size)]
    )
    encoder.train(was_training)
    return out


def linear_probe(
    encoder: nn.Module, x_train: torch.Tensor, y_train, x_eval: torch.Tensor, y_eval, C: float = 1.0
) -> float:
    """Accuracy of a linear classifier trained on the frozen features of ``encoder``.

    A probe (Alain & Bengio, 2017) asks how much class information an encoder's features
    hold, whatever the rest of the network did with them: here standardised features and
    scikit-learn's multinomial ``LogisticRegression`` (L2, strength ``1/C``), trained on
    ``x_train`` and scored on ``x_eval``.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from threadpoolctl import threadpool_limits

    check_real(C, "C", low=0.0, low_open=True)
    for name, x in (("x_train", x_train), ("x_eval", x_eval)):
        if not torch.is_tensor(x) or x.ndim < 2 or x.shape[0] == 0:
            got = tuple(x.shape) if torch.is_tensor(x) else type(x).__name__
            raise TypeError(
                f"{name} must be a non-empty tensor (N, ...) of encoder inputs, got {got}"
            )
        if not x.is_floating_point():
            raise TypeError(f"{name} must be a floating-point tensor, got {x.dtype}")
        check_finite(x, name)
    f_train, f_eval = encode(encoder, x_train).numpy(), encode(encoder, x_eval).numpy()
    y_train, y_eval = torch.as_tensor(y_train).numpy(), torch.as_tensor(y_eval).numpy()
    for name, y in (("y_train", y_train), ("y_eval", y_eval)):
        if y.dtype.kind not in "iu" or (y.size and y.min() < 0):
            raise ValueError(
                f"{name} must be non-negative integer class labels, got dtype {y.dtype}"
            )
    if np.unique(y_train).size < 2:
        raise ValueError(f"y_train must hold at least 2 classes, got only {np.unique(y_train)}")
    if y_train.shape != (f_train.shape[0],) or y_eval.shape != (f_eval.shape[0],):
        raise ValueError(
            f"y_train/y_eval must be (N,) labels matching x_train/x_eval, got "
            f"{y_train.shape} for {f_train.shape[0]} and {y_eval.shape} for "
            f"{f_eval.shape[0]} samples"
        )
    probe = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=2000))
    with threadpool_limits(limits=1):  # a small problem: BLAS threads cost more than they save
        probe.fit(f_train, y_train)
    return float((probe.predict(f_eval) == y_eval).mean())


# ----------------------------------------------------------------------------- corruptions
def _as_float_tensor(value, name: str, shape: str) -> torch.Tensor:
    try:
        x = torch.as_tensor(value)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise TypeError(
            f"{name} must be a float array/tensor {shape}, got {type(value).__name__}"
        ) from exc
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a float array/tensor {shape}, got {x.dtype}")
    return x


def add_noise_snr(waveform, snr_db: float, seed: int = 0) -> torch.Tensor:
    r"""Add white Gaussian noise to each clip at signal-to-noise ratio ``snr_db``.

    :math:`\mathrm{SNR_{dB}} = 10 \log_{10}(P_\text{signal} / P_\text{noise})`, with P the
    mean square of each clip (..., T): the noise drawn is scaled so that its power is exactly
    ``P_signal / 10**(snr_db / 10)``.
    Returns a new float tensor; ``snr_db=float('inf')`` returns the clips unchanged.
    """
    x = _as_float_tensor(waveform, "waveform", "(..., T)")
    if x.ndim < 1 or x.shape[-1] == 0 or x.numel() == 0:
        raise ValueError(
            f"waveform must be a non-empty array/tensor (..., T), got {tuple(x.shape)}"
        )
    check_real(snr_db, "snr_db", allow_inf=True)
    check_seed(seed)
    if snr_db == float("inf"):
        return x.clone()
    if snr_db == float("-inf"):
        raise ValueError("snr_db must not be -inf (that would be noise of infinite power)")
    generator = seeded_generator(seed)
    noise = torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device)
    p_signal = x.pow(2).mean(dim=-1, keepdim=True)
    p_noise = noise.pow(2).mean(dim=-1, keepdim=True)  # scale the noise actually drawn
    return x + noise * torch.sqrt(p_signal / 10 ** (snr_db / 10) / p_noise)


def occlude(images, size: int, seed: int = 0, value: float = 0.0) -> torch.Tensor:
    """Hide a ``size`` x ``size`` square at a random position of each image (B, C, H, W).

    The square lies fully inside the image; ``size=0`` returns a copy unchanged.
    """
    x = _as_float_tensor(images, "images", "(B, C, H, W)")
    if x.ndim != 4 or not x.is_floating_point():
        raise ValueError(f"images must be float (B, C, H, W), got {x.dtype} {tuple(x.shape)}")
    if x.shape[0] == 0:
        raise ValueError(f"images is an empty batch (shape {tuple(x.shape)})")
    h, w = x.shape[-2:]
    check_int(size, "size", minimum=0, maximum=min(h, w))
    check_seed(seed)
    check_real(value, "value")
    out = x.clone()
    if size == 0:
        return out
    generator = seeded_generator(seed)
    top = torch.randint(h - size + 1, (x.shape[0],), generator=generator)
    left = torch.randint(w - size + 1, (x.shape[0],), generator=generator)
    rows = torch.arange(h)[None, :, None]
    cols = torch.arange(w)[None, None, :]
    inside = (
        (rows >= top[:, None, None])
        & (rows < top[:, None, None] + size)
        & (cols >= left[:, None, None])
        & (cols < left[:, None, None] + size)
    )
    return out.masked_fill(inside[:, None].to(x.device), value)
