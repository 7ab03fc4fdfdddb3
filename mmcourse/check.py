"""Claims: the quantitative statements a lesson makes, checked where they are made.

Notebooks are committed without outputs, so executing them only proves that the cells run.
A claim turns a sentence of the lesson ("fusion beats the best single modality") into a
check: it prints a readable line with the figures when the statement holds, and raises an
AssertionError that says what no longer holds when it does not, which fails CI.

    >>> claim(0.96 > 0.81, "fusion {fused:.1%} beats image only {image:.1%}",
    ...       fused=0.96, image=0.81)
    ✓ fusion 96.0% beats image only 81.0%
"""

from __future__ import annotations

import math


def claim(condition, message: str, **figures) -> bool:
    """Check one statement of the lesson.

    ``message`` may use ``{name}`` placeholders (with format specs) filled from ``figures``.
    Returns True when the statement holds; raises AssertionError otherwise.
    """
    if not isinstance(message, str) or not message:
        raise TypeError("message must be a non-empty string describing the claim")
    try:
        text = message.format(**figures)
    except (KeyError, IndexError, ValueError) as exc:
        raise ValueError(f"message {message!r} does not match the figures given: {exc}") from exc
    if bool(condition):
        print(f"✓ {text}")
        return True
    listed = ", ".join(f"{k}={_short(v)}" for k, v in figures.items()) or "none given"
    raise AssertionError(
        f"✗ This claim of the lesson no longer holds: {text}\n"
        f"  figures: {listed}\n"
        "  Something upstream changed (data, seed, model or library version); "
        "re-run the notebook from the top, and if it persists, report it with env_report()."
    )


def claim_between(value: float, low: float, high: float, message: str, **figures) -> bool:
    """Claim that ``low <= value <= high``; ``value``, ``low`` and ``high`` join the figures."""
    return claim(low <= value <= high, message, value=value, low=low, high=high, **figures)


def claim_close(
    actual: float, expected: float, message: str, rel: float = 1e-6, abs_tol: float = 0.0, **figures
) -> bool:
    """Claim that ``actual`` equals ``expected`` within the given tolerances."""
    ok = math.isclose(float(actual), float(expected), rel_tol=rel, abs_tol=abs_tol)
    return claim(ok, message, actual=actual, expected=expected, **figures)


def _short(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
