"""Exercises of notebook 01 (preprocessing)."""

from __future__ import annotations

import numpy as np
import torch

from mmcourse.exercises import register


# ----------------------------------------------------------------------------- 01.standardize
def _check_standardize(answer) -> None:
    rng = np.random.default_rng(7)
    train = rng.normal(loc=[3.0, -1.0, 10.0], scale=[2.0, 0.5, 4.0], size=(200, 3))
    test = rng.normal(loc=[4.0, -1.5, 8.0], scale=[1.0, 1.0, 1.0], size=(60, 3))
    out = answer(train.copy(), test.copy())
    if not (isinstance(out, tuple) and len(out) == 2):
        raise AssertionError("return a pair (train_z, test_z)")
    train_z, test_z = (np.asarray(o, dtype=np.float64) for o in out)
    if train_z.shape != train.shape or test_z.shape != test.shape:
        raise AssertionError(
            f"shapes must stay {train.shape} and {test.shape}, got {train_z.shape} and "
            f"{test_z.shape}; standardise each feature (column), averaging over samples (axis 0)"
        )
    mean, std = train.mean(axis=0), train.std(axis=0)
    if not np.allclose(train_z, (train - mean) / std, atol=1e-3):
        raise AssertionError(
            "train_z should be (train - mean) / std with the mean and std of each column of "
            "train (axis=0); its columns should then have mean 0 and std 1"
        )
    if np.allclose(test_z.mean(axis=0), 0.0, atol=1e-6):
        raise AssertionError(
            "test_z has mean exactly 0: you standardised the test set with its OWN statistics. "
            "Use the training mean and std, as you would for a single new sample at deployment"
        )
    if not np.allclose(test_z, (test - mean) / std, atol=1e-3):
        raise AssertionError("test_z should be (test - train_mean) / train_std")


def _solution_standardize():
    def standardize(train, test):
        mean = train.mean(axis=0)  # statistics of the training split only
        std = train.std(axis=0)
        return (train - mean) / std, (test - mean) / std

    return standardize


register(
    "01.standardize",
    check=_check_standardize,
    solution=_solution_standardize,
    hint="Compute mean and std on train (axis=0) and apply those SAME numbers to test.",
)


# ----------------------------------------------------------------------------- 01.frames
def _check_frames(answer) -> None:
    from mmcourse.audio import frame

    cases = [(4000, 256, 80), (4000, 256, 64), (1000, 200, 100), (513, 64, 16), (300, 128, 128)]
    for n_samples, n_fft, hop in cases:
        for center in (True, False):
            x = torch.zeros(n_samples)
            truth = frame(x, n_fft, hop, center=center).shape[0]
            got = answer(n_samples, n_fft, hop, center)
            if got != truth:
                tip = " (with center=True the padded length is n_samples + 2 * (n_fft // 2))"
                raise AssertionError(
                    f"for {n_samples} samples, n_fft={n_fft}, hop_length={hop}, center={center} "
                    f"the answer is {truth} frames, you gave {got!r}" + (tip if center else "")
                )


def _solution_frames():
    def n_frames(n_samples, n_fft, hop_length, center):
        length = n_samples + 2 * (n_fft // 2) if center else n_samples  # padded length
        return 1 + (length - n_fft) // hop_length  # how many windows fit, one every hop

    return n_frames


register(
    "01.frames",
    check=_check_frames,
    solution=_solution_frames,
    hint="Count the window start positions 0, hop, 2*hop, ... that leave n_fft samples.",
)


# ----------------------------------------------------------------------------- 01.to_db
def _check_to_db(answer) -> None:
    from mmcourse.audio import power_to_db

    g = torch.Generator().manual_seed(3)
    power = torch.rand(40, 51, generator=g, dtype=torch.float64) ** 8 * 1e3
    power[:, :5] = 0.0  # silent frames
    got = answer(power.clone(), 80.0)
    if not isinstance(got, torch.Tensor) or got.shape != power.shape:
        raise AssertionError(f"return a tensor of shape {tuple(power.shape)}")
    want = power_to_db(power, top_db=80.0)
    got = got.to(torch.float64)
    if torch.allclose(got, want, atol=1e-4):
        return
    if not torch.isfinite(got).all():
        raise AssertionError("the result has -inf/NaN: clamp the power to a tiny amin (1e-10) "
                             "before the logarithm")  # fmt: skip
    if got.min() < want.min() - 1e-3:
        raise AssertionError(
            f"values go down to {got.min():.1f} dB; floor them at max - top_db = "
            f"{want.max():.1f} - 80 dB (torch.maximum or clamp_min)"
        )
    ratio = (got.max() / want.max()).item() if want.max() != 0 else float("nan")
    raise AssertionError(
        "the decibel values differ from 10 * log10(power)"
        + (" (did you use the natural log, or 20 instead of 10?)" if abs(ratio - 1) > 0.05 else "")
    )


def _solution_to_db():
    def to_db(power, top_db):
        db = 10 * torch.log10(power.clamp_min(1e-10))  # decibels relative to power 1
        return torch.maximum(db, db.max() - top_db)  # nothing more than top_db below the peak

    return to_db


register(
    "01.to_db",
    check=_check_to_db,
    solution=_solution_to_db,
    hint="10 * log10 of the power (clamped to 1e-10 first), then a floor at max - top_db.",
)


# ----------------------------------------------------------------------------- 01.mixed_tokens
def _check_mixed_tokens(answer) -> None:
    from mmcourse.text import tokenize

    cases = [
        "一只猫在沙发上",
        "A grey cat，在草地上 purring!",
        "下午 3 点, the DOG barked",
    ]
    for text in cases:
        got = answer(text)
        if not isinstance(got, list) or not all(isinstance(t, str) for t in got):
            raise AssertionError(f"return a list of str tokens, got {got!r:.80}")
        want = tokenize(text)
        if got == want:
            continue
        if any(len(t) > 1 and any("\u4e00" <= ch <= "\u9fff" for ch in t) for t in got):
            raise AssertionError(
                f"{text!r} gave {got}: a token holds several Chinese characters. Chinese has no "
                "spaces, so text.split() cannot find its words; make every character one token"
            )

        def letters(tokens):  # one-letter Latin tokens
            return sum(len(t) == 1 and t.isascii() and t.isalpha() for t in tokens)

        if letters(got) > letters(want):
            raise AssertionError(
                f"{text!r} gave {got}: English words were cut into letters (list(text) does "
                "that). Keep runs of Latin letters together as one word"
            )
        if any(not t.strip() or not any(ch.isalnum() for ch in t) for t in got):
            raise AssertionError(
                f"{text!r} gave {got}: spaces or punctuation (including the full-width ，) "
                "became tokens; drop them"
            )
        if any(t != t.lower() for t in got):
            raise AssertionError(f"{text!r} gave {got}: lower-case the text first")
        raise AssertionError(f"{text!r} should give {want}, got {got}")


def _solution_mixed_tokens():
    import re

    def mixed_tokens(text):
        # one token per Chinese character, runs of letters, runs of digits; the rest separates
        return re.findall(r"[\u4e00-\u9fff]|[a-z]+|\d+", text.lower())

    return mixed_tokens


register(
    "01.mixed_tokens",
    check=_check_mixed_tokens,
    solution=_solution_mixed_tokens,
    hint="re.findall with three alternatives: one CJK character [\\u4e00-\\u9fff], a run of "
    "letters [a-z]+, a run of digits \\d+ (after text.lower()).",
)
