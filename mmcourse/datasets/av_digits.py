"""Audio-visual digits: real handwritten digits paired with spoken digit words.

Images are scikit-learn's 1,797 real 8x8 handwritten digits (``load_digits``, UCI ML
hand-written digits, Alpaydin & Kaynak 1998). Audio is the spoken word for the same digit,
synthesised offline by espeak-ng in 12 voices (the "voice bank", shipped in ``data/``),
shifted in time, scaled, and buried in white noise at a controlled signal-to-noise ratio.
Both modalities are degraded on purpose (images: an occluding block and pixel noise;
audio: low SNR) so that neither alone is enough and fusion pays, as in AV-MNIST.
Everything is deterministic: the same seed gives the same bytes on every machine.

The voice bank is the exception: espeak-ng's output is not bit-reproducible, so the shipped
``data/voice_bank/clips.npy`` is the reference and is never regenerated behind your back.
When it is missing or corrupt, ``load_voice_bank`` (and ``load_av_digits``) stop with an
error that says how to restore it; regenerating it is an explicit act:
``regenerate_voice_bank()`` (needs ``pip install "mmcourse[speech]"``; the old file is kept
in ``data/voice_bank/.replaced-*/``), or ``load_voice_bank(regenerate=True)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mmcourse.datasets.cache import data_dir, load_arrays, save_arrays
from mmcourse.datasets.common import SubsetMixin, stratified_split

SAMPLE_RATE = 8000
CLIP_SAMPLES = 4000  # 0.5 s
WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
# (espeak-ng voice, words per minute, pitch 0-99): accents, sexes and speaking rates differ.
VOICES = (
    ("en", 165, 50),
    ("en-us", 175, 40),
    ("en-gb-scotland", 150, 55),
    ("en-029", 160, 45),
    ("en-gb-x-rp", 170, 60),
    ("en+f1", 160, 65),
    ("en+f3", 180, 70),
    ("en+m3", 155, 35),
    ("en-us+m1", 190, 45),
    ("en+f2", 150, 75),
    ("en-gb-x-rp+m7", 165, 30),
    ("en-us+f4", 175, 55),
)
SEED = 2024
IMAGE_NOISE_STD = 0.3
OCCLUDER = 3  # side of the square block, in pixels, hidden in each image
SNR_DB_RANGE = (-15.0, -3.0)


@dataclass
class AVDigits(SubsetMixin):
    """The audio-visual digits set; per-sample arrays share the first axis (see module doc)."""

    images: np.ndarray  # float32 (N, 1, 8, 8) in [0, 1], degraded
    clean_images: np.ndarray  # float32 (N, 1, 8, 8) in [0, 1], as scanned
    audio: np.ndarray  # float32 (N, 4000) waveform at 8 kHz, noisy
    labels: np.ndarray  # int64 (N,)
    voice: np.ndarray  # int64 (N,) index into voice_names
    snr_db: np.ndarray  # float32 (N,) signal-to-noise ratio of the audio
    split: np.ndarray  # str (N,): "train" / "val" / "test"
    voice_names: tuple = tuple(f"{v}@{r}wpm,p{p}" for v, r, p in VOICES)
    classes: tuple = WORDS
    sample_rate: int = SAMPLE_RATE


def _make_voice_bank() -> dict[str, np.ndarray]:
    """Speak every digit word in every voice (needs the espeak-ng engine)."""
    from mmcourse.datasets.speech import synthesize

    bank = np.zeros((len(WORDS), len(VOICES), CLIP_SAMPLES), dtype=np.int16)
    for d, word in enumerate(WORDS):
        for v, (voice, rate, pitch) in enumerate(VOICES):
            clip = synthesize(word, voice, rate, pitch, SAMPLE_RATE)
            loud = np.flatnonzero(np.abs(clip) > 0.02)  # trim silence around the word
            clip = clip[loud[0] : loud[-1] + 1][:CLIP_SAMPLES]
            bank[d, v, : clip.size] = np.round(clip / np.abs(clip).max() * 0.9 * 32767)
    return {"clips": bank}


def _check_voice_bank(arrays: dict[str, np.ndarray]) -> None:
    """The shipped bank's own check: one int16 array of the right shape, no silent clip."""
    clips = arrays.get("clips")
    shape = (len(WORDS), len(VOICES), CLIP_SAMPLES)
    if set(arrays) != {"clips"} or clips is None:
        raise ValueError(f"expected one array 'clips', got {sorted(arrays)}")
    if clips.dtype != np.int16 or clips.shape != shape:
        raise ValueError(f"clips must be int16 {shape}, got {clips.dtype} {clips.shape}")
    if not np.abs(clips).max(axis=-1).all():
        raise ValueError("clips holds a silent clip (all zeros): the bank is damaged")


def load_voice_bank(regenerate: bool = False) -> np.ndarray:
    """int16 (10 words, 12 voices, 4000 samples): each digit word spoken by each voice.

    The shipped bank is authoritative: when it is missing or corrupt this raises
    ``CacheError`` (saying how to restore it) unless ``regenerate=True``, which synthesises
    a new bank with espeak-ng (slightly different clips; the old file is kept aside).
    """
    if not isinstance(regenerate, bool):
        raise TypeError(f"regenerate must be True or False, got {regenerate!r}")
    arrays = load_arrays(
        "voice_bank", _make_voice_bank, check=_check_voice_bank, regenerate=regenerate
    )
    return arrays["clips"]


def regenerate_voice_bank() -> np.ndarray:
    """Synthesise the voice bank again with espeak-ng and make it the reference.

    An explicit act, because espeak-ng does not give the same bytes twice (two voices add
    random breath noise): every audio result of the course moves a little. The previous
    ``clips.npy`` is moved into ``data/voice_bank/.replaced-*/``, never deleted.
    """
    arrays = _make_voice_bank()
    _check_voice_bank(arrays)
    save_arrays("voice_bank", arrays, data_dir())
    return arrays["clips"]


def _make_images() -> dict[str, np.ndarray]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    clean = (digits.images / 16.0).astype(np.float32)[:, None]
    rng = np.random.default_rng(SEED)
    n = clean.shape[0]
    images = clean.copy()
    rows = rng.integers(0, 8 - OCCLUDER + 1, n)
    cols = rng.integers(0, 8 - OCCLUDER + 1, n)
    for i in range(n):  # an occluder hides a different part of each digit
        images[i, 0, rows[i] : rows[i] + OCCLUDER, cols[i] : cols[i] + OCCLUDER] = 0.0
    images += rng.normal(0.0, IMAGE_NOISE_STD, images.shape).astype(np.float32)
    labels = digits.target.astype(np.int64)
    return {
        "clean_images": clean,
        "images": np.clip(images, 0.0, 1.0),
        "labels": labels,
        "split": stratified_split(labels, seed=SEED),
    }


def _mix_audio(bank: np.ndarray, labels: np.ndarray) -> dict[str, np.ndarray]:
    """Pick a voice, shift and scale the word, add white noise at a random SNR.

    Built row by row into one float32 array to keep peak memory low (Binder has 2 GB)."""
    rng = np.random.default_rng(SEED + 1)
    n = labels.size
    voice = rng.integers(0, bank.shape[1], n)
    shift = rng.integers(0, SAMPLE_RATE // 10, n)  # up to 0.1 s of delay
    gain = rng.uniform(0.5, 1.0, n).astype(np.float32)
    snr_db = rng.uniform(*SNR_DB_RANGE, n).astype(np.float32)
    audio = np.zeros((n, CLIP_SAMPLES), dtype=np.float32)
    for i in range(n):
        speech = audio[i]
        speech[shift[i] :] = bank[labels[i], voice[i], : CLIP_SAMPLES - shift[i]] / 32768.0
        speech *= gain[i]
        power = np.mean(speech**2)
        noise = rng.standard_normal(CLIP_SAMPLES).astype(np.float32)
        speech += noise * np.sqrt(power / 10 ** (snr_db[i] / 10))
    return {"audio": audio, "voice": voice.astype(np.int64), "snr_db": snr_db}


def load_av_digits() -> AVDigits:
    """Load the audio-visual digits set (verifying, and if needed regenerating, data/)."""
    arrays = load_arrays("av_digits", _make_images)
    audio = _mix_audio(load_voice_bank(), arrays["labels"])
    return AVDigits(**arrays, **audio)
