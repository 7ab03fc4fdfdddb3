"""Fairness through a modality: a voice + face scenario whose group the voice gives away.

The scenario is a variant of notebook 08's HCI set (``mmcourse.datasets.load_hci``): a call
centre's assistant sees the caller's face and hears the voice, and flags *high-arousal*
callers (excited or angry: the emotions "happy" and "angry") for a human to pick up. The
group attribute is the **voice register**: speakers 0-4 have low voices (about 95-135 Hz),
5-9 high ones (about 165-235 Hz), roughly the split between most men's and most women's
voices. The voice reveals the group; the face (in this set) does not.

The voice front end measures three prosodic features, with measurement noise:

* the pitch excursion (how far the pitch swings), in **Hz** (``voice_hz``) or in
  **semitones** relative to the speaker's own pitch (``voice_semitones``);
* the syllable rate (syllables per second) and the loudness (dB).

The same swing of s semitones is ``f0 (2^(s/12) - 1)`` Hz: about twice as many Hz for a
voice an octave higher. A front end that measures in Hz therefore hears high voices as more
agitated, and a model trained on it flags calm high-voiced callers more often: a group gap
that comes in through one modality. Measuring in semitones (a perceptual, speaker-relative
scale) removes the cause. High-arousal callers are made rarer among high voices (a share
``drop_share`` of them is left out), so that the two groups' base rates differ, which is
what makes fairness definitions conflict (Kleinberg et al. 2017; Chouldechova 2017).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from mmcourse._checks import check_int, check_real, check_seed
from mmcourse.utils import offset_seed

GROUPS = ("low voice", "high voice")
VOICE_FEATURES = ("pitch excursion", "syllable rate", "loudness")
DATA_SEED = 1010  # the variant's own fixed seed: the data do not move with the seed offset


@dataclass
class VoiceFairness:
    """The fairness variant of the HCI scenario (see the module doc)."""

    face: np.ndarray  # float32 (N, 64): the 16x16 face, average-pooled to 8x8
    voice_hz: np.ndarray  # float32 (N, 3): VOICE_FEATURES, the excursion in Hz
    voice_semitones: np.ndarray  # float32 (N, 3): VOICE_FEATURES, the excursion in semitones
    labels: np.ndarray  # int64 (N,): 1 = high arousal (excited or angry), 0 = calm or sad
    group: np.ndarray  # int64 (N,): index into GROUPS
    speaker: np.ndarray  # int64 (N,)
    groups: tuple = GROUPS

    def features(self, modalities=("face", "voice_hz")) -> np.ndarray:
        """The named feature blocks side by side (N, D)."""
        if isinstance(modalities, str):
            modalities = (modalities,)
        known = ("face", "voice_hz", "voice_semitones")
        if not modalities or not set(modalities) <= set(known):
            raise ValueError(f"modalities must be names from {known}, got {modalities!r}")
        return np.concatenate([getattr(self, m) for m in modalities], axis=1)


def load_voice_fairness(drop_share: float = 0.4) -> VoiceFairness:
    """Build the variant from ``load_hci()`` (deterministic; see the module doc).

    drop_share: the share of high-arousal high-voiced callers left out, so that base rates
    differ between the groups (0 keeps them equal).
    """
    from mmcourse.datasets import load_hci

    check_real(drop_share, "drop_share", low=0.0, high=1.0, high_open=True)
    hci = load_hci()
    p = hci.voice_params.astype(np.float64)
    rng = np.random.default_rng(DATA_SEED)
    n = len(hci.labels)
    arousal = np.asarray(hci.arousal)[hci.labels]
    labels = (arousal > 0).astype(np.int64)
    group = (hci.speaker >= 5).astype(np.int64)
    keep = ~((group == 1) & (labels == 1) & (rng.random(n) < drop_share))
    # the measured prosody: true value + the front end's measurement noise
    swing_st = p[:, 2] + rng.normal(0, 1.2, n)
    pitch_hz = p[:, 0] * 2.0 ** (p[:, 1] / 12)  # the speaker's pitch in this clip
    swing_hz = pitch_hz * (2.0 ** (swing_st / 12) - 1)
    rate = p[:, 3] + rng.normal(0, 1.5, n)
    loudness = p[:, 4] + rng.normal(0, 6.0, n)
    faces = hci.faces[:, 0].reshape(n, 8, 2, 8, 2).mean(axis=(2, 4)).reshape(n, 64)
    return VoiceFairness(
        face=faces[keep].astype(np.float32),
        voice_hz=np.stack([swing_hz, rate, loudness], 1)[keep].astype(np.float32),
        voice_semitones=np.stack([swing_st, rate, loudness], 1)[keep].astype(np.float32),
        labels=labels[keep],
        group=group[keep],
        speaker=hci.speaker[keep].astype(np.int64),
    )


def _binary(y, name: str) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1 or y.size == 0 or not np.isin(y, (0, 1)).all():
        raise ValueError(f"{name} must be a non-empty 1-D array of 0/1 labels")
    return y.astype(np.int64)


def group_metrics(y_true, y_pred, group, names=None) -> pd.DataFrame:
    """Per-group rates, by counting (fairlearn's ``MetricFrame`` computes the same):

    accuracy; FPR = FP / (FP + TN), the share of true negatives flagged; FNR = FN / (FN +
    TP), the share of true positives missed; selection rate = share flagged (demographic
    parity compares it); precision (PPV) = TP / (TP + FP), what a flag is worth (predictive
    parity compares it); base rate = share of true positives; n. One row per group.
    """
    y_true, y_pred = _binary(y_true, "y_true"), _binary(y_pred, "y_pred")
    group = np.asarray(group)
    if not (y_true.shape == y_pred.shape == group.shape):
        raise ValueError(
            f"y_true, y_pred and group must have the same length, got {y_true.shape}, "
            f"{y_pred.shape} and {group.shape}"
        )
    rows = {}
    for g in np.unique(group):
        t, p = y_true[group == g], y_pred[group == g]
        tp, fp = int(((t == 1) & (p == 1)).sum()), int(((t == 0) & (p == 1)).sum())
        fn, tn = int(((t == 1) & (p == 0)).sum()), int(((t == 0) & (p == 0)).sum())
        label = names[int(g)] if names is not None else g
        rows[label] = {
            "accuracy": (tp + tn) / len(t),
            "FPR": fp / max(fp + tn, 1),
            "FNR": fn / max(fn + tp, 1),
            "selection rate": (tp + fp) / len(t),
            "precision": tp / max(tp + fp, 1),
            "base rate": (tp + fn) / len(t),
            "n": len(t),
        }
    return pd.DataFrame(rows).T


def cross_predict(
    features: np.ndarray,
    labels: np.ndarray,
    group: np.ndarray,
    mitigation: str | None = None,
    folds: int = 5,
    seed: int = 0,
    C: float = 0.1,
) -> np.ndarray:
    """Out-of-fold 0/1 predictions of a logistic regression (standardised features): every
    example is predicted by a model that did not train on it, so all N examples count in
    the per-group rates (a held-out split would leave a few dozen per group).

    mitigation: None, or "equalized_odds": fairlearn's ``ThresholdOptimizer`` (Hardt, Price
    & Srebro 2016) picks per-group (randomised) thresholds on the training folds so that
    FPR and FNR match across groups; it needs the group at prediction time. The folds and
    the optimizer's coin flips follow ``seed + MMCOURSE_SEED_OFFSET``.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    features = np.asarray(features, dtype=np.float64)
    labels, group = _binary(labels, "labels"), np.asarray(group)
    if features.ndim != 2 or len(features) != len(labels) or len(group) != len(labels):
        raise ValueError("features (N, D), labels (N,) and group (N,) must share N")
    if mitigation not in (None, "equalized_odds"):
        raise ValueError(f"mitigation must be None or 'equalized_odds', got {mitigation!r}")
    check_int(folds, "folds", minimum=2)
    check_seed(seed)
    check_real(C, "C", low=0.0, low_open=True)
    used = offset_seed(seed)
    strata = labels * 2 + (group == group.max())  # every fold keeps each (group, label) share
    split = StratifiedKFold(folds, shuffle=True, random_state=used).split(features, strata)
    out = np.zeros(len(labels), dtype=np.int64)
    for train, test in split:
        model = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=2000))
        if mitigation is None:
            model.fit(features[train], labels[train])
            out[test] = model.predict(features[test])
            continue
        from fairlearn.postprocessing import ThresholdOptimizer

        fair = ThresholdOptimizer(
            estimator=model, constraints="equalized_odds", predict_method="predict_proba"
        )
        fair.fit(features[train], labels[train], sensitive_features=group[train])
        out[test] = fair.predict(
            features[test], sensitive_features=group[test], random_state=used
        ).astype(np.int64)
    return out
