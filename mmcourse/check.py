"""Claims: the quantitative statements a lesson makes, checked where they are made.

Notebooks are committed without outputs, so executing them only proves that the cells run.
A claim turns a sentence of the lesson ("fusion beats the best single modality") into a
check: it prints a readable line with the figures when the statement holds, and raises an
AssertionError that says what no longer holds when it does not, which fails CI.

    >>> claim(0.96 > 0.81, "fusion {fused:.1%} beats image only {image:.1%}",
    ...       fused=0.96, image=0.81)
    ✓ fusion 96.0% beats image only 81.0%

The numeric forms (:func:`claim_greater`, :func:`claim_less`, :func:`claim_between`,
:func:`claim_close`) also know their **headroom**: how far the value is from making the claim
fail, in the value's own units. A claim about a trained model must keep a headroom clearly
larger than the spread of that value across seeds, thread counts and CPU kernels; the
robustness run (``python -m mmcourse.perturb``) measures both. When the environment variable
``MMCOURSE_CLAIMS_LOG`` names a file, every claim appends one JSON line to it.
"""

from __future__ import annotations

import json
import math
import os
from collections import Counter

import numpy as np
import torch

_seen_templates: Counter = Counter()  # how often each message was claimed in this process


def claim(condition, message: str, **figures) -> None:
    """Check one statement of the lesson.

    ``condition`` must be a boolean (Python, NumPy, or a one-element bool tensor): a string,
    a number or NaN is refused, because ``bool("False")`` would pass silently. ``message`` may
    use ``{name}`` placeholders (with format specs) filled from ``figures``. Prints a ✓ line
    when the statement holds; raises AssertionError otherwise.
    """
    return _settle(_as_bool(condition), message, figures, kind="bool")


def claim_greater(value, bound, message: str, **figures) -> None:
    """Claim that ``value > bound``. Headroom: ``value - bound``.

    ``value`` and ``bound`` join the figures, so the message may print ``{value}``/``{bound}``.
    """
    v, b = _number(value, "value"), _number(bound, "bound")
    return _numeric(v - b, False, message, figures, "greater", value=v, bound=b)


def claim_less(value, bound, message: str, **figures) -> None:
    """Claim that ``value < bound``. Headroom: ``bound - value``."""
    v, b = _number(value, "value"), _number(bound, "bound")
    return _numeric(b - v, False, message, figures, "less", value=v, bound=b)


def claim_between(value, low, high, message: str, **figures) -> None:
    """Claim that ``low <= value <= high``. Headroom: the distance to the nearer end."""
    v, lo, hi = _number(value, "value"), _number(low, "low"), _number(high, "high")
    if lo > hi:
        raise ValueError(f"low must not exceed high, got low={lo} and high={hi}")
    headroom = min(v - lo, hi - v)
    return _numeric(headroom, True, message, figures, "between", value=v, low=lo, high=hi)


def claim_close(
    actual, expected, message: str, rel: float = 1e-6, abs_tol: float = 0.0, **figures
) -> None:
    """Claim that ``actual`` equals ``expected`` within ``rel`` (relative) or ``abs_tol``.

    Headroom: the tolerance left, ``tolerance - |actual - expected|``.
    """
    a, e = _number(actual, "actual"), _number(expected, "expected")
    if not (rel >= 0 and abs_tol >= 0):
        raise ValueError(f"rel and abs_tol must be >= 0, got rel={rel}, abs_tol={abs_tol}")
    tolerance = max(rel * max(abs(a), abs(e)), abs_tol)
    headroom = tolerance - abs(a - e)
    return _numeric(headroom, True, message, figures, "close", actual=a, expected=e)


def _numeric(headroom: float, inclusive: bool, message, figures, kind: str, **numbers) -> None:
    holds = headroom >= 0 if inclusive else headroom > 0
    return _settle(holds, message, {**numbers, **figures}, kind=kind, headroom=headroom)


def _settle(holds: bool, message, figures: dict, kind: str, headroom=None) -> None:
    if not isinstance(message, str) or not message:
        raise TypeError("message must be a non-empty string describing the claim")
    try:
        text = message.format(**figures)
    except (KeyError, IndexError, ValueError) as exc:
        raise ValueError(f"message {message!r} does not match the figures given: {exc}") from exc
    _record(message, text, kind, holds, headroom, figures)
    if holds:
        print(f"✓ {text}")
        return  # nothing to echo: a cell ending in a claim shows only the ✓ line
    listed = ", ".join(f"{k}={_short(v)}" for k, v in figures.items()) or "none given"
    margin = "" if headroom is None else f"  short of holding by {_short(-headroom)}\n"
    raise AssertionError(
        f"✗ This claim of the lesson no longer holds: {text}\n"
        f"  figures: {listed}\n{margin}"
        "  Something upstream changed (data, seed, model or library version); "
        "re-run the notebook from the top, and if it persists, report it with env_report()."
    )


def _as_bool(condition) -> None:
    if isinstance(condition, (bool, np.bool_)):
        return bool(condition)
    if isinstance(condition, np.ndarray) and condition.dtype == bool and condition.size == 1:
        return bool(condition)
    if isinstance(condition, torch.Tensor) and condition.dtype == torch.bool:
        if condition.numel() == 1:
            return bool(condition)
    raise TypeError(
        "condition must be a boolean (True/False, a NumPy bool or a one-element bool tensor), "
        f"got {type(condition).__name__} {_short(condition)}; for a number use claim_greater, "
        "claim_less or claim_between"
    )


def _number(value, name: str) -> float | int:
    """A claim's number as a float (an int stays an int, so that it prints as one)."""
    if isinstance(value, (bool, np.bool_, str)) or value is None:
        raise TypeError(f"{name} must be a real number, got {type(value).__name__} {value!r}")
    if isinstance(value, (int, np.integer)):
        return int(value)
    try:
        number = float(value)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise TypeError(
            f"{name} must be a real number (or a one-element tensor/array), "
            f"got {type(value).__name__} {_short(value)}"
        ) from exc
    if math.isnan(number):
        raise AssertionError(f"✗ {name} is NaN: the computation behind this claim failed")
    return number


def _record(message, text, kind, holds, headroom, figures) -> None:
    """Append the claim to ``$MMCOURSE_CLAIMS_LOG`` (one JSON line) for the robustness run."""
    path = os.environ.get("MMCOURSE_CLAIMS_LOG")
    if not path:
        return
    _seen_templates[message] += 1
    row = {
        "id": f"{message} #{_seen_templates[message]}",
        "text": text,
        "kind": kind,
        "holds": bool(holds),
        "headroom": headroom,
        "value": figures.get("value", figures.get("actual")),
    }
    with open(path, "a", encoding="utf-8") as log:
        log.write(json.dumps(row, ensure_ascii=False, default=float) + "\n")


def _short(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
