"""Argument checks shared by the course's modules: every error names the argument and says
what was expected, so that a wrong call fails at the call, not deep inside PyTorch or NumPy.

Private: the public functions of each module call these; nothing here changes a valid value
(an int stays that int, a float that float).
"""

from __future__ import annotations

import math
import numbers

import numpy as np
import torch


def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _is_real(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def check_int(value, name: str, minimum: int | None = 1, maximum: int | None = None):
    """``value`` must be an int (not a bool) in ``[minimum, maximum]``; returns it unchanged."""
    if (
        not _is_int(value)
        or (minimum is not None and value < minimum)
        or (maximum is not None and value > maximum)
    ):
        if minimum == 1 and maximum is None:
            what = "a positive int"
        elif minimum == 0 and maximum is None:
            what = "a non-negative int"
        elif maximum is None:
            what = f"an int >= {minimum}"
        elif minimum is None:
            what = f"an int <= {maximum}"
        else:
            what = f"an int in [{minimum}, {maximum}]"
        raise ValueError(f"{name} must be {what}, got {value!r}")
    return value


def check_seed(value, name: str = "seed"):
    """A seed: a non-negative int."""
    return check_int(value, name, minimum=0)


def check_real(
    value,
    name: str,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    allow_inf: bool = False,
    what: str | None = None,
):
    """``value`` must be a real number (not a bool, not NaN; infinite only with ``allow_inf``)
    inside the interval given by ``low``/``high`` (open ends with ``low_open``/``high_open``).
    Returns it unchanged. ``what`` replaces the generated description in the message."""
    ok = _is_real(value) and not math.isnan(value) and (allow_inf or math.isfinite(value))
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value < high if high_open else value <= high
    if not ok:
        parts = [] if allow_inf else ["finite"]
        if low is not None and high is not None:
            where = f" in {'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
        elif low is not None:
            where = f" {'>' if low_open else '>='} {low}"
        elif high is not None:
            where = f" {'<' if high_open else '<='} {high}"
        else:
            where = ""
        kind = " ".join([*parts, "number"])
        raise ValueError(f"{name} must be {what or f'a {kind}{where}'}, got {value!r}")
    return value


def check_dropout(value, name: str = "dropout"):
    """A dropout probability in [0, 1)."""
    return check_real(value, name, 0.0, 1.0, high_open=True)


def check_finite(x, name: str):
    """Raise when the tensor or array ``x`` holds NaN or an infinity (say where)."""
    if isinstance(x, torch.Tensor):
        if x.is_floating_point() or x.is_complex():
            bad = ~torch.isfinite(x)
            if bool(bad.any()):
                count, first = int(bad.sum()), tuple(bad.nonzero()[0].tolist())
                raise ValueError(
                    f"{name} contains {count} NaN/inf value(s) (first at index {first}); "
                    "find and remove them before this step"
                )
        return x
    array = np.asarray(x)
    if array.dtype.kind in "fc":
        bad = ~np.isfinite(array)
        if bad.any():
            first = tuple(int(i) for i in np.argwhere(bad)[0])
            raise ValueError(
                f"{name} contains {int(bad.sum())} NaN/inf value(s) (first at index {first}); "
                "find and remove them before this step"
            )
    return x


def check_module(value, name: str = "model"):
    if not isinstance(value, torch.nn.Module):
        raise TypeError(f"{name} must be a torch.nn.Module, got {type(value).__name__}")
    return value


def check_callable(value, name: str):
    if not callable(value):
        raise TypeError(f"{name} must be a function (callable), got {type(value).__name__}")
    return value
