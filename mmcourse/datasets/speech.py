"""Offline synthetic speech with the espeak-ng engine (only needed to rebuild the voice bank).

The course ships the generated clips in ``data/voice_bank/``; this module is used only when
that bank is regenerated on purpose (``mmcourse.datasets.av_digits.regenerate_voice_bank``).
It drives the espeak-ng C library bundled in the ``espeakng-loader`` wheel through ctypes,
in synchronous mode, collecting 16-bit samples from the synthesis callback. The speech is
robotic: it is labelled synthetic everywhere.
"""

from __future__ import annotations

import ctypes
from math import gcd

import numpy as np

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_ESPEAK_RATE, _ESPEAK_PITCH = 1, 3
_POS_CHARACTER = 1
_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
)


class _Engine:
    """One initialised espeak-ng library (it keeps global state, so we make it once)."""

    _instance = None

    def __init__(self):
        try:
            import espeakng_loader
        except ImportError as exc:
            raise RuntimeError(
                "Regenerating the speech bank needs the espeak-ng engine: "
                "pip install 'mmcourse[speech]' (the espeakng-loader wheel), or restore "
                "data/voice_bank/ from the repository (git checkout -- data/)."
            ) from exc
        self.lib = ctypes.CDLL(espeakng_loader.get_library_path())
        self.lib.espeak_Initialize.restype = ctypes.c_int
        self.lib.espeak_Initialize.argtypes = [
            ctypes.c_int,
            ctypes.c_int,
            ctypes.c_char_p,
            ctypes.c_int,
        ]
        rate = self.lib.espeak_Initialize(
            _AUDIO_OUTPUT_SYNCHRONOUS, 0, espeakng_loader.get_data_path().encode(), 0
        )
        if rate <= 0:
            raise RuntimeError("espeak-ng failed to initialise")
        self.sample_rate = rate
        self._chunks: list[np.ndarray] = []
        self._callback = _CALLBACK(self._collect)  # keep a reference: C holds the pointer
        self.lib.espeak_SetSynthCallback(self._callback)

    @classmethod
    def get(cls) -> _Engine:
        if cls._instance is None:
            cls._instance = cls()
        return cls._instance

    def _collect(self, samples, count, _events) -> int:
        if count > 0:
            self._chunks.append(np.ctypeslib.as_array(samples, shape=(count,)).copy())
        return 0  # 0 = carry on synthesising

    def say(self, text: str, voice: str, rate: int, pitch: int) -> np.ndarray:
        if self.lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise ValueError(f"espeak-ng has no voice {voice!r}")
        self.lib.espeak_SetParameter(_ESPEAK_RATE, rate, 0)
        self.lib.espeak_SetParameter(_ESPEAK_PITCH, pitch, 0)
        self._chunks = []
        data = text.encode() + b"\0"
        self.lib.espeak_Synth(data, len(data), 0, _POS_CHARACTER, 0, 0, None, None)
        self.lib.espeak_Synchronize()
        return np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.int16)


def synthesize(
    text: str, voice: str = "en", rate: int = 170, pitch: int = 50, sample_rate: int = 8000
) -> np.ndarray:
    """Speak ``text`` with espeak-ng; returns float32 samples in [-1, 1] at ``sample_rate``."""
    from scipy.signal import resample_poly

    engine = _Engine.get()
    samples = engine.say(text, voice, rate, pitch).astype(np.float32) / 32768.0
    common = gcd(engine.sample_rate, sample_rate)
    return resample_poly(samples, sample_rate // common, engine.sample_rate // common).astype(
        np.float32
    )
