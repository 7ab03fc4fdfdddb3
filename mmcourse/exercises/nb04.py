"""Exercises of notebook 04 (training and evaluation)."""

from __future__ import annotations

import numpy as np
import torch

from mmcourse.exercises import register
from mmcourse.metrics import expected_calibration_error

# ----------------------------------------------------------------------------- 04.early_stopping


def _reference_stop(val_losses, patience):
    best, best_epoch, bad = float("inf"), 0, 0
    for epoch, loss in enumerate(val_losses, start=1):
        if loss < best:
            best, best_epoch, bad = loss, epoch, 0
        else:
            bad += 1
        if bad >= patience:
            return best_epoch, epoch
    return best_epoch, len(val_losses)


_STOP_CASES = [
    ([1.0, 0.8, 0.7, 0.75, 0.9, 1.0, 1.2], 2),  # stops at 5, best 3
    ([1.0, 0.9, 0.8, 0.7, 0.6], 2),  # never stops: still improving
    ([0.5, 0.6, 0.4, 0.45, 0.46, 0.47, 0.3], 3),  # a late improvement comes too late
    ([1.0, 1.0, 1.0, 1.0], 2),  # equal is not better
    ([2.0, 1.0, 1.1, 0.9, 1.2, 1.3], 1),  # patience 1: stop at the first bad epoch
]


def _check_early_stopping(answer) -> None:
    for losses, patience in _STOP_CASES:
        expected = _reference_stop(losses, patience)
        got = answer(list(losses), patience)
        if got is None:
            raise NotImplementedError
        got = tuple(int(v) for v in got)
        assert got == expected, (
            f"for val_losses={losses} and patience={patience} the answer is "
            f"(best_epoch, stop_epoch) = {expected}, you returned {got}. Epochs count from 1; "
            "an epoch counts as bad when its loss is not strictly below the best so far."
        )


def _solution_early_stopping():
    def stop_epochs(val_losses, patience):
        best, best_epoch, bad = float("inf"), 0, 0
        for epoch, loss in enumerate(val_losses, start=1):
            if loss < best:  # strictly better: a new best, reset the counter
                best, best_epoch, bad = loss, epoch, 0
            else:
                bad += 1
            if bad >= patience:  # patience bad epochs in a row: stop here
                return best_epoch, epoch
        return best_epoch, len(val_losses)  # ran out of epochs first

    return stop_epochs


register(
    "04.early_stopping",
    check=_check_early_stopping,
    solution=_solution_early_stopping,
    hint="Walk through the losses keeping the best value, its epoch, and a counter of epochs "
    "since the last improvement; stop when the counter reaches patience.",
)

# ----------------------------------------------------------------------------- 04.ece


def _ece_cases():
    rng = np.random.default_rng(4)
    for n, k, sharp in ((50, 3, 1.0), (400, 10, 3.0), (200, 2, 0.3)):
        logits = rng.normal(size=(n, k)) * sharp
        probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
        labels = np.where(rng.random(n) < 0.7, probs.argmax(1), rng.integers(0, k, n))
        yield probs, labels


def _check_ece(answer) -> None:
    for n_bins in (10, 5):
        for probs, labels in _ece_cases():
            got = answer(probs.copy(), labels.copy(), n_bins)
            if got is None:
                raise NotImplementedError
            expected = expected_calibration_error(probs, labels, n_bins)
            assert np.isclose(float(got), expected, atol=1e-6), (
                f"with {len(labels)} samples and n_bins={n_bins} the ECE is {expected:.4f}, "
                f"you returned {float(got):.4f}. Weight each bin's |accuracy - confidence| by "
                "the fraction of samples in it, and use the top probability as confidence."
            )


def _solution_ece():
    def ece(probs, labels, n_bins=10):
        confidence = probs.max(axis=1)  # how sure the model says it is
        correct = probs.argmax(axis=1) == labels  # whether it was right
        edges = np.linspace(0, 1, n_bins + 1)
        total = 0.0
        for lo, hi in zip(edges[:-1], edges[1:], strict=True):
            in_bin = (confidence > lo) & (confidence <= hi)
            if in_bin.any():
                gap = abs(correct[in_bin].mean() - confidence[in_bin].mean())
                total += in_bin.mean() * gap  # weight: fraction of samples in the bin
        return total

    return ece


register(
    "04.ece",
    check=_check_ece,
    solution=_solution_ece,
    hint="confidence = probs.max(1); correct = probs.argmax(1) == labels; bins (lo, hi] from "
    "np.linspace(0, 1, n_bins + 1); sum over bins of (bin size / N) * |acc - conf|.",
)

# ----------------------------------------------------------------------------- 04.snr


def _check_snr(answer) -> None:
    g = torch.Generator().manual_seed(0)
    signal = torch.randn(3, 1000, generator=g) * torch.tensor([[1.0], [0.2], [3.0]])
    noise = torch.randn(3, 1000, generator=g)
    for snr_db in (10.0, 0.0, -6.0):
        got = answer(signal.clone(), snr_db, noise.clone())
        if got is None:
            raise NotImplementedError
        got = torch.as_tensor(got)
        assert got.shape == signal.shape, f"expected shape {tuple(signal.shape)}, got {got.shape}"
        added = got - signal
        ratio = 10 * torch.log10(signal.pow(2).mean(1) / added.pow(2).mean(1))
        expected = signal.pow(2).mean(1, keepdim=True) / 10 ** (snr_db / 10)
        scale = torch.sqrt(expected / noise.pow(2).mean(1, keepdim=True))
        assert torch.allclose(got, signal + noise * scale, atol=1e-4), (
            f"at snr_db={snr_db} the clips come out at SNR {[round(float(r), 2) for r in ratio]}"
            " dB. Scale the noise of each clip (row) so that its power (mean square) is "
            "P_signal / 10**(snr_db / 10), then add it."
        )


def _solution_snr():
    def mix_at_snr(signal, snr_db, noise):
        p_signal = signal.pow(2).mean(dim=-1, keepdim=True)  # power of each clip
        p_noise = noise.pow(2).mean(dim=-1, keepdim=True)
        target = p_signal / 10 ** (snr_db / 10)  # SNR_dB = 10 log10(P_signal / P_noise)
        return signal + noise * torch.sqrt(target / p_noise)

    return mix_at_snr


register(
    "04.snr",
    check=_check_snr,
    solution=_solution_snr,
    hint="Power = mean of squares over the last axis (per clip). Solve "
    "snr_db = 10 log10(P_signal / P_noise) for P_noise, then multiply the noise by "
    "sqrt(P_noise_wanted / P_noise_now).",
)
