"""Exercises of notebook 09 (efficiency and scale).

* 09.adam_bytes:     the bytes that mixed-precision Adam training keeps per model (no activations).
* 09.int8_quantize:  symmetric per-row int8 quantisation of a weight matrix, by hand.
"""

from __future__ import annotations

import torch

from mmcourse.exercises import register


def _call(answer, *args):
    if not callable(answer):
        raise AssertionError(f"your answer should be a function, got {type(answer).__name__}")
    return answer(*args)


# --- 09.adam_bytes ----------------------------------------------------------------------------


def _check_adam_bytes(answer) -> None:
    diagnoses = {
        4: "that is only the fp32 weights: training also keeps gradients and Adam's state",
        8: "weights and gradients only: Adam keeps two moments per parameter too",
        12: "you left out 4 bytes: the fp32 master copy of the weights, or two bytes each of "
        "the bf16 weights and gradients",
        14: "you left out 2 bytes: the bf16 weights or the bf16 gradients",
        10: "Adam's moments are kept in fp32 (4 bytes each), not in bf16",
        20: "in mixed precision the weights and gradients used for the compute are bf16 "
        "(2 bytes), and only the master copy is fp32",
    }
    for n in (1, 1000, 7_000_000_000):
        got = _call(answer, n)
        try:
            got = float(got)
        except (TypeError, ValueError):
            raise AssertionError(f"return a number of bytes, got {type(got).__name__}") from None
        if got != 16 * n:
            per = got / n
            hint = diagnoses.get(
                round(per),
                "count each part: bf16 weights, bf16 gradients, "
                "fp32 master weights, Adam's two fp32 moments",
            )
            raise AssertionError(f"for {n:,} parameters you return {per:g} bytes each: {hint}")


def _solution_adam_bytes():
    def adam_bytes(num_params):
        weights, gradients = 2, 2  # bf16 copies that the forward and backward passes use
        master = 4  # the fp32 weights that the update is applied to
        moments = 4 + 4  # Adam's first and second moments, fp32
        return (weights + gradients + master + moments) * num_params

    return adam_bytes


register(
    "09.adam_bytes",
    check=_check_adam_bytes,
    solution=_solution_adam_bytes,
    hint="Add up bytes per parameter: bf16 weights, bf16 gradients, an fp32 master copy, and "
    "Adam's two fp32 moments; multiply by the number of parameters.",
)


# --- 09.int8_quantize -------------------------------------------------------------------------


def _reference_int8(w):
    scale = w.abs().amax(dim=1, keepdim=True).clamp(min=1e-12) / 127
    return torch.clamp(torch.round(w / scale), -127, 127).to(torch.int8), scale.squeeze(1)


def _check_int8(answer) -> None:
    g = torch.Generator().manual_seed(9)
    w = torch.randn(6, 10, generator=g) * torch.tensor([1.0, 0.01, 5.0, 0.3, 2.0, 0.1])[:, None]
    result = _call(answer, w.clone())
    if not (isinstance(result, tuple) and len(result) == 2):
        raise AssertionError("return a pair (q, scale)")
    q, scale = result
    want_q, want_scale = _reference_int8(w)
    if not torch.is_tensor(q) or q.dtype != torch.int8:
        raise AssertionError(f"q must be an int8 tensor, got {getattr(q, 'dtype', type(q))}")
    scale = torch.as_tensor(scale, dtype=torch.float32).flatten()
    if scale.numel() == 1:
        raise AssertionError(
            "you used one scale for the whole matrix: rows with small weights (row 1 here) then "
            "use only a few of the 255 levels; use one scale per row, max|w_row| / 127"
        )
    if scale.numel() != w.shape[0]:
        raise AssertionError(f"scale needs one value per row ({w.shape[0]}), got {scale.numel()}")
    if torch.allclose(scale, want_scale * 127 / 128, rtol=1e-5) or torch.allclose(
        scale, want_scale * 127 / 255, rtol=1e-5
    ):
        raise AssertionError("divide max|w_row| by 127, so that the largest weight maps to +-127")
    if not torch.allclose(scale, want_scale, rtol=1e-5):
        raise AssertionError("scale should be max|w_row| / 127 for each row")
    if not torch.equal(q, want_q):
        floor = torch.floor(w / want_scale[:, None]).clamp(-127, 127).to(torch.int8)
        if torch.equal(q, floor):
            raise AssertionError(
                "use torch.round, not floor (or int()): floor biases every "
                "weight downwards by half a step on average"
            )
        raise AssertionError("q should be clamp(round(w / scale), -127, 127) as int8")


def _solution_int8():
    def quantize(w):
        scale = w.abs().amax(dim=1, keepdim=True) / 127  # one scale per output row
        q = torch.clamp(torch.round(w / scale), -127, 127).to(torch.int8)
        return q, scale.squeeze(1)

    return quantize


register(
    "09.int8_quantize",
    check=_check_int8,
    solution=_solution_int8,
    hint="scale = w.abs().amax(dim=1, keepdim=True) / 127; q = round(w / scale), clamped to "
    "[-127, 127], as torch.int8.",
)
