"""Notebook 10's exercise checks diagnose the typical wrong answers."""

import numpy as np

from mmcourse.exercises import get


def feedback(key, answer):
    try:
        get(key).check(answer)
    except AssertionError as exc:
        return str(exc)
    return "passed"


def test_attack_auc_wrong_direction_and_ties():
    def greater(m, o):
        m, o = np.asarray(m, float)[:, None], np.asarray(o, float)[None, :]
        return ((m > o).sum() + 0.5 * (m == o).sum()) / (m.size * o.size)

    def no_ties(m, o):
        m, o = np.asarray(m, float)[:, None], np.asarray(o, float)[None, :]
        return (m < o).sum() / (m.size * o.size)

    assert "LOW" in feedback("10.attack_auc", greater)
    assert "tie" in feedback("10.attack_auc", no_ties)
    assert feedback("10.attack_auc", get("10.attack_auc").solution()) == "passed"


def test_ppv_swapped_rates_and_missing_base_rate():
    def swapped(p, fpr, fnr):
        return p * (1 - fpr) / (p * (1 - fpr) + (1 - p) * fnr)

    def no_base_rate(p, fpr, fnr):
        return (1 - fnr) / ((1 - fnr) + fpr)

    assert "swapped" in feedback("10.ppv", swapped)
    assert "base rate" in feedback("10.ppv", no_base_rate)
    assert feedback("10.ppv", get("10.ppv").solution()) == "passed"
