"""Exercises of notebook 10 (responsible multimodal AI)."""

from __future__ import annotations

import math

import numpy as np

from mmcourse.exercises import register

# --------------------------------------------------------------------------- 10.attack_auc
# The membership attacker's skill, by counting pairs.


def _reference_auc(members, others) -> float:
    members, others = np.asarray(members, float), np.asarray(others, float)
    lower = (members[:, None] < others[None, :]).sum()
    ties = (members[:, None] == others[None, :]).sum()
    return float((lower + 0.5 * ties) / (members.size * others.size))


def _check_attack_auc(auc):
    if not callable(auc):
        raise AssertionError("answer with a function auc(member_losses, nonmember_losses)")
    cases = [
        ([0.1, 0.2], [0.3, 0.4]),  # every member below every non-member: 1
        ([0.3, 0.4], [0.1, 0.2]),  # the other way round: 0
        ([0.1, 0.5], [0.5, 0.9, 0.2]),  # one tie
        ([1.0, 1.0], [1.0, 1.0]),  # all tied: chance
    ]
    for members, others in cases:
        got = float(auc(members, others))
        want = _reference_auc(members, others)
        if math.isclose(got, 1 - want) and not math.isclose(want, 0.5):
            raise AssertionError(
                f"for members {members} and non-members {others} you gave {got:.3f}, the "
                f"expected value is {want:.3f}: the attack says 'member' when the loss is LOW, "
                "so count pairs where the member's loss is below the non-member's"
            )
        if not math.isclose(got, want, abs_tol=1e-9):
            hint = " Count a tie as one half." if members == [1.0, 1.0] or 0.5 in members else ""
            raise AssertionError(
                f"for members {members} and non-members {others} expected {want:.3f}, got "
                f"{got:.3f}.{hint}"
            )
    rng = np.random.default_rng(1)  # a larger random case, against scikit-learn's ROC AUC
    from sklearn.metrics import roc_auc_score

    members, others = rng.exponential(0.5, 60).round(1), rng.exponential(1.0, 40).round(1)
    want = roc_auc_score(np.r_[np.ones(60), np.zeros(40)], -np.r_[members, others])
    got = float(auc(members, others))
    if not math.isclose(got, want, abs_tol=1e-9):
        raise AssertionError(f"on 100 random rounded losses expected {want:.4f}, got {got:.4f}")


def _solution_attack_auc():
    def auc(member_losses, nonmember_losses):
        m = np.asarray(member_losses, dtype=float)[:, None]  # (M, 1)
        o = np.asarray(nonmember_losses, dtype=float)[None, :]  # (1, O)
        # every (member, non-member) pair: does the attacker rank the member as "more member"?
        wins = (m < o).sum() + 0.5 * (m == o).sum()
        return wins / (m.size * o.size)

    return auc


register(
    "10.attack_auc",
    check=_check_attack_auc,
    solution=_solution_attack_auc,
    hint="Compare every member with every non-member (broadcast a column against a row); "
    "a lower member loss is a win, a tie half a win; divide by the number of pairs.",
)


# --------------------------------------------------------------------------- 10.ppv
# Chouldechova (2017): the precision a classifier must have, given the base rate and its
# error rates.


def _reference_ppv(base_rate, fpr, fnr) -> float:
    tp = base_rate * (1 - fnr)
    fp = (1 - base_rate) * fpr
    return tp / (tp + fp)


def _check_ppv(ppv):
    if not callable(ppv):
        raise AssertionError("answer with a function ppv(base_rate, fpr, fnr)")
    for p, fpr, fnr in ((0.5, 0.1, 0.2), (0.2, 0.1, 0.2), (0.3, 0.25, 0.05)):
        got, want = float(ppv(p, fpr, fnr)), _reference_ppv(p, fpr, fnr)
        if math.isclose(got, _reference_ppv(p, fnr, fpr)) and fpr != fnr:
            raise AssertionError(
                "FPR and FNR are swapped: false positives come from the negatives, "
                "(1 - p) * FPR; true positives are the positives not missed, p * (1 - FNR)"
            )
        if math.isclose(got, _reference_ppv(0.5, fpr, fnr)) and p != 0.5:
            raise AssertionError(
                f"for base rate {p} expected {want:.3f}, got {got:.3f}: the base rate is "
                "missing; weight the positives by p and the negatives by 1 - p"
            )
        if not math.isclose(got, want, rel_tol=1e-9):
            raise AssertionError(f"ppv({p}, {fpr}, {fnr}) should be {want:.4f}, got {got:.4f}")


def _solution_ppv():
    def ppv(base_rate, fpr, fnr):
        true_flags = base_rate * (1 - fnr)  # positives caught
        false_flags = (1 - base_rate) * fpr  # negatives flagged by mistake
        return true_flags / (true_flags + false_flags)

    # Equal FPR and FNR in two groups, different base rates -> different precision:
    # ppv(0.48, 0.16, 0.25) = 0.81 but ppv(0.30, 0.16, 0.25) = 0.67.
    return ppv


register(
    "10.ppv",
    check=_check_ppv,
    solution=_solution_ppv,
    hint="Out of all examples, a share p * (1 - FNR) is flagged correctly and a share "
    "(1 - p) * FPR is flagged by mistake; precision is the first over their sum.",
)
