"""Exercises of notebook 08 (applications).

* 08.false_positive_rate: the share of benign posts that a moderation model flags, per group.
* 08.fuse_independent:    combine two probabilities from conditionally independent evidence
                          (Bayes' rule in log-odds: the "naive Bayes" late fusion).
"""

from __future__ import annotations

import numpy as np

from mmcourse.exercises import register


def _call(answer, *args):
    if not callable(answer):
        raise AssertionError(f"your answer should be a function, got {type(answer).__name__}")
    return answer(*args)


# --- 08.false_positive_rate -------------------------------------------------------------------


def _reference_fpr(y_true, y_pred):
    from mmcourse.applications import false_positive_rate

    return false_positive_rate(y_true, y_pred)


def _check_fpr(answer) -> None:
    rng = np.random.default_rng(8)
    for n, p_pos, p_flag in ((50, 0.3, 0.4), (200, 0.7, 0.2), (31, 0.5, 0.9)):
        y_true = (rng.random(n) < p_pos).astype(int)
        y_pred = (rng.random(n) < p_flag).astype(int)
        y_true[:2], y_pred[:2] = 0, (1, 0)  # at least one false positive and one true negative
        got = _call(answer, y_true.copy(), y_pred.copy())
        want = _reference_fpr(y_true, y_pred)
        try:
            got = float(got)
        except (TypeError, ValueError):
            raise AssertionError(f"return one number, got {type(got).__name__}") from None
        if not np.isclose(got, want, atol=1e-9):
            tp = int(np.sum((y_true == 1) & (y_pred == 1)))
            fp = int(np.sum((y_true == 0) & (y_pred == 1)))
            tn = int(np.sum((y_true == 0) & (y_pred == 0)))
            raise AssertionError(
                f"with FP={fp}, TN={tn}, TP={tp} (n={n}) the false positive rate is "
                f"FP / (FP + TN) = {want:.4f}; you returned {got:.4f}. Count only the benign "
                "posts (y_true == 0) in the denominator, not all posts and not the flagged ones."
            )


def _solution_fpr():
    def false_positive_rate(y_true, y_pred):
        y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
        benign = y_true == 0  # the denominator: every benign post
        return float(np.mean(y_pred[benign] == 1))  # the share of them that got flagged

    return false_positive_rate


register(
    "08.false_positive_rate",
    check=_check_fpr,
    solution=_solution_fpr,
    hint="FPR = FP / (FP + TN): among the posts whose true label is 0, the fraction predicted 1.",
)


# --- 08.fuse_independent ----------------------------------------------------------------------


def _logit(p):
    return np.log(p) - np.log1p(-p)


def _reference_fuse(p_a, p_b, prior):
    z = _logit(p_a) + _logit(p_b) - _logit(prior)
    return 1 / (1 + np.exp(-z))


def _check_fuse(answer) -> None:
    rng = np.random.default_rng(80)
    cases = [
        (np.array([0.5, 0.9, 0.2]), np.array([0.5, 0.9, 0.7]), 0.5),
        (rng.uniform(0.05, 0.95, 20), rng.uniform(0.05, 0.95, 20), 0.5),
        (rng.uniform(0.05, 0.95, 20), rng.uniform(0.05, 0.95, 20), 0.2),
    ]
    for p_a, p_b, prior in cases:
        got = np.asarray(_call(answer, p_a.copy(), p_b.copy(), prior), dtype=float)
        want = _reference_fuse(p_a, p_b, prior)
        if got.shape != want.shape:
            raise AssertionError(
                f"return one probability per sample, shape {want.shape}; got shape {got.shape}"
            )
        if not np.allclose(got, want, atol=1e-6):
            i = int(np.argmax(np.abs(got - want)))
            raise AssertionError(
                f"for p_a={p_a[i]:.3f}, p_b={p_b[i]:.3f}, prior={prior} the fused probability is "
                f"{want[i]:.4f}; you returned {got[i]:.4f}. Two sources that both say 0.9 should "
                "make you MORE sure than 0.9 (averaging cannot do that); and the prior is counted "
                "in both p_a and p_b, so subtract it once."
            )


def _solution_fuse():
    def fuse_independent(p_a, p_b, prior=0.5):
        def logit(p):
            return np.log(p) - np.log1p(-p)

        # posterior log-odds = log-odds from a + log-odds from b - the prior counted twice
        z = logit(p_a) + logit(p_b) - logit(prior)
        return 1 / (1 + np.exp(-z))

    return fuse_independent


register(
    "08.fuse_independent",
    check=_check_fuse,
    solution=_solution_fuse,
    hint="Work in log-odds, logit(p) = log(p / (1 - p)): independent evidence adds up. Each p "
    "already contains the prior, so subtract logit(prior) once, then apply the sigmoid.",
)
