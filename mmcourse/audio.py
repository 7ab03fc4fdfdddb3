"""Audio features step by step: waveform -> frames -> window -> STFT -> power -> mel -> dB -> DCT.

Every stage is a small torch function that works on a batch of any leading shape ``(..., T)``
and is differentiable, so the same code serves the lesson (plot each stage) and a model
(compute MFCCs on the fly, on CPU or GPU). ``mfcc`` chains the stages and, configured alike,
matches ``librosa.feature.mfcc`` numerically (tests/test_audio.py proves it):

    librosa.feature.mfcc(y=y, sr=sr, n_mfcc=13, n_fft=256, hop_length=80, n_mels=40,
                         htk=True, mel_norm=None, norm="ortho", center=True,
                         pad_mode="reflect", power=2.0)

i.e. a periodic Hann window, centred frames with reflect padding, the power spectrogram
``|X|^2``, an HTK mel filterbank without area normalisation, ``10 log10`` power with an 80 dB
floor below the loudest value of each clip (``ref=1``, ``amin=1e-10``), and an orthonormal
DCT-II. Two differences from librosa, both deliberate:

* librosa takes the 80 dB floor below the maximum of the *whole array* it is given, so a
  multi-clip array couples the clips; here the maximum is taken per clip (the last two
  dimensions), so ``mfcc(batch)[i] == mfcc(batch[i])`` and equals librosa on clip ``i`` alone.
* a mel filter that covers no FFT bin is an error here (librosa only warns): it would give a
  constant, useless channel.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from mmcourse._checks import check_finite, check_real

__all__ = [
    "MFCC",
    "as_waveform",
    "check_sample_rate",
    "dct_matrix",
    "frame",
    "hz_to_mel",
    "mel_filterbank",
    "mel_spectrogram",
    "mel_to_hz",
    "mfcc",
    "power_spectrogram",
    "power_to_db",
    "window",
]

_FLOAT_DTYPES = (torch.float32, torch.float64)
_WINDOWS = ("hamming", "hann", "rectangular")


# ----------------------------------------------------------------------------- validation
def _positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)


def check_sample_rate(sample_rate, expected: int | None = None) -> int:
    """Return ``sample_rate`` as an int after checking it is a positive integer (in Hz) and,
    when ``expected`` is given, that it equals ``expected`` (features computed at another
    rate would silently mean something else: resample first)."""
    rate = _positive_int(sample_rate, "sample_rate")
    if expected is not None and rate != expected:
        raise ValueError(
            f"sample_rate={rate} Hz does not match the expected {expected} Hz; "
            "resample the audio (or build the feature extractor for this rate)"
        )
    return rate


def as_waveform(waveform, name: str = "waveform") -> torch.Tensor:
    """Check a batch of waveforms ``(..., T)`` and return it as a floating torch tensor.

    Accepts a torch tensor or a NumPy array of float32/float64. Integer audio (e.g. int16 PCM)
    is refused rather than guessed: scale it to [-1, 1] first (``x / 32768``).
    """
    if isinstance(waveform, np.ndarray):
        waveform = torch.from_numpy(waveform)
    if not isinstance(waveform, torch.Tensor):
        raise TypeError(
            f"{name} must be a torch.Tensor or numpy array of shape (..., T), "
            f"got {type(waveform).__name__}"
        )
    if waveform.dtype not in _FLOAT_DTYPES:
        raise TypeError(
            f"{name} must be float32 or float64, got {waveform.dtype}; integer PCM must be "
            "scaled to [-1, 1] first (e.g. x.float() / 32768)"
        )
    if waveform.ndim == 0:
        raise ValueError(f"{name} must have shape (..., T) with at least 1 dimension, got a scalar")
    if waveform.numel() == 0:
        raise ValueError(f"{name} is empty (shape {tuple(waveform.shape)}): nothing to transform")
    if not bool(torch.isfinite(waveform).all()):
        raise ValueError(f"{name} contains NaN or infinite samples (a corrupt clip?)")
    return waveform


# ----------------------------------------------------------------------------- stages
def frame(
    waveform: torch.Tensor,
    frame_length: int,
    hop_length: int,
    center: bool = True,
    pad_mode: str = "reflect",
) -> torch.Tensor:
    """Cut ``(..., T)`` into overlapping frames ``(..., n_frames, frame_length)``.

    With ``center=True`` the signal is padded by ``frame_length // 2`` on both sides so that
    frame ``t`` is centred on sample ``t * hop_length``; then ``n_frames = 1 + T // hop_length``.
    ``pad_mode`` is "reflect" (mirror without repeating the edge sample) or "constant" (zeros).
    """
    return _frame(as_waveform(waveform), frame_length, hop_length, center, pad_mode)


def _frame(waveform, frame_length, hop_length, center, pad_mode) -> torch.Tensor:
    # frame() without the waveform check, for callers that already made it (it scans all samples)
    frame_length = _positive_int(frame_length, "frame_length")
    hop_length = _positive_int(hop_length, "hop_length")
    length = waveform.shape[-1]
    if center:
        pad = frame_length // 2
        if pad_mode not in ("reflect", "constant"):
            raise ValueError(f"pad_mode must be 'reflect' or 'constant', got {pad_mode!r}")
        if pad_mode == "reflect" and length <= pad:
            raise ValueError(
                f"waveform has {length} samples, too short for reflect padding of {pad} "
                f"(needs more than frame_length // 2 = {pad}); use a shorter n_fft or longer clips"
            )
        lead = waveform.shape[:-1]
        flat = waveform.reshape(-1, 1, length)  # F.pad's reflect mode wants (N, C, T)
        flat = nn.functional.pad(flat, (pad, pad), mode=pad_mode)
        waveform = flat.reshape(*lead, length + 2 * pad)
    elif length < frame_length:
        raise ValueError(
            f"waveform has {length} samples, fewer than frame_length={frame_length} (center=False)"
        )
    return waveform.unfold(-1, frame_length, hop_length)


def window(
    name: str = "hann",
    win_length: int = 256,
    n_fft: int | None = None,
    dtype: torch.dtype = torch.float32,
    device=None,
) -> torch.Tensor:
    """A periodic analysis window of ``win_length`` samples, zero-padded (centred) to ``n_fft``.

    "hann": w[n] = 0.5 - 0.5 cos(2 pi n / N); "hamming": 0.54 - 0.46 cos(2 pi n / N);
    "rectangular": ones. Periodic (N = win_length) as in librosa/scipy ``get_window``, so that
    overlapping Hann windows at hop N/4 sum to a constant.
    """
    win_length = _positive_int(win_length, "win_length")
    n_fft = win_length if n_fft is None else _positive_int(n_fft, "n_fft")
    if win_length > n_fft:
        raise ValueError(f"win_length={win_length} must be <= n_fft={n_fft}")
    makers = {
        "hann": lambda: torch.hann_window(win_length, periodic=True, dtype=dtype, device=device),
        "hamming": lambda: torch.hamming_window(
            win_length, periodic=True, dtype=dtype, device=device
        ),
        "rectangular": lambda: torch.ones(win_length, dtype=dtype, device=device),
    }
    if name not in makers:
        raise ValueError(f"window name must be one of {sorted(makers)}, got {name!r}")
    w = makers[name]()
    left = (n_fft - win_length) // 2
    return nn.functional.pad(w, (left, n_fft - win_length - left))


def power_spectrogram(
    waveform: torch.Tensor,
    n_fft: int = 256,
    hop_length: int = 80,
    win_length: int | None = None,
    window_name: str = "hann",
    center: bool = True,
    pad_mode: str = "reflect",
    power: float = 2.0,
) -> torch.Tensor:
    """``|STFT|^power`` of ``(..., T)`` -> ``(..., n_fft // 2 + 1, n_frames)``.

    X[f, t] = sum_n w[n] x[t * hop + n] exp(-2 pi i f n / n_fft); only the non-negative
    frequencies are kept (the spectrum of a real signal is symmetric).
    """
    waveform = as_waveform(waveform)
    n_fft = _positive_int(n_fft, "n_fft")
    win_length = n_fft if win_length is None else _positive_int(win_length, "win_length")
    if window_name not in _WINDOWS:
        raise ValueError(f"window_name must be one of {list(_WINDOWS)}, got {window_name!r}")
    if not isinstance(power, (int, float)) or isinstance(power, bool) or power <= 0:
        raise ValueError(
            f"power must be a positive number (2 = power, 1 = magnitude), got {power!r}"
        )
    w = window(window_name, win_length, n_fft, dtype=waveform.dtype, device=waveform.device)
    frames = _frame(waveform, n_fft, hop_length, center, pad_mode)
    spectrum = torch.fft.rfft(frames * w, dim=-1)  # (..., n_frames, n_fft // 2 + 1)
    # re^2 + im^2 rather than abs()**2: same value, and its gradient is defined at 0
    energy = spectrum.real.square() + spectrum.imag.square()
    out = energy if power == 2.0 else energy.pow(power / 2.0)
    return out.transpose(-1, -2)


def _float64(value, name: str) -> np.ndarray:
    try:
        return np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"{name} must be a number, an array or a tensor of numbers, got {value!r:.60}"
        ) from exc


def hz_to_mel(frequency):
    """HTK mel scale: m = 2595 log10(1 + f / 700). Works on floats, arrays and tensors."""
    if isinstance(frequency, torch.Tensor):
        return 2595.0 * torch.log10(1.0 + frequency / 700.0)
    return 2595.0 * np.log10(1.0 + _float64(frequency, "frequency") / 700.0)


def mel_to_hz(mel):
    """Inverse of :func:`hz_to_mel`: f = 700 (10^(m / 2595) - 1)."""
    if isinstance(mel, torch.Tensor):
        return 700.0 * (torch.pow(10.0, mel / 2595.0) - 1.0)
    return 700.0 * (10.0 ** (_float64(mel, "mel") / 2595.0) - 1.0)


def mel_filterbank(
    sample_rate: int,
    n_fft: int,
    n_mels: int = 40,
    f_min: float = 0.0,
    f_max: float | None = None,
    dtype: torch.dtype = torch.float32,
    device=None,
) -> torch.Tensor:
    """Triangular HTK mel filters ``(n_mels, n_fft // 2 + 1)``, peak 1, no area normalisation.

    Filter i rises linearly from mel point i to 1 at point i+1 and falls to 0 at point i+2,
    where the ``n_mels + 2`` points are equally spaced in mel between ``f_min`` and ``f_max``.
    FFT bin k sits at k * sample_rate / n_fft Hz (the frequencies of ``torch.fft.rfft``), so
    for odd ``n_fft`` the last bin lies below the Nyquist frequency. Equals
    ``librosa.filters.mel(sr=..., n_fft=..., n_mels=..., htk=True, norm=None)`` (to float
    rounding, for even and odd ``n_fft``; tests/test_audio.py checks both).
    Raises ValueError when a filter covers no FFT bin (n_mels too large for n_fft).
    """
    sample_rate = check_sample_rate(sample_rate)
    n_fft = _positive_int(n_fft, "n_fft")
    n_mels = _positive_int(n_mels, "n_mels")
    nyquist = sample_rate / 2.0
    for name, value in (("f_min", f_min), ("f_max", f_max)):
        if (value is not None or name == "f_min") and (
            isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating))
        ):
            raise TypeError(f"{name} must be a number of Hz, got {value!r}")
    f_max = nyquist if f_max is None else float(f_max)
    if not 0.0 <= float(f_min) < f_max:
        raise ValueError(f"need 0 <= f_min < f_max, got f_min={f_min}, f_max={f_max}")
    if f_max > nyquist:
        raise ValueError(f"f_max={f_max} Hz exceeds the Nyquist frequency {nyquist} Hz")
    # computed in float64 NumPy (as librosa does), then cast: the filters are constants.
    # The rfft bins are k * sample_rate / n_fft, k = 0 .. n_fft // 2: the top one is the
    # Nyquist frequency for even n_fft (the exact value, so even n_fft is unchanged), and
    # (n_fft - 1) / 2 * sample_rate / n_fft, below it, for odd n_fft.
    top = nyquist if n_fft % 2 == 0 else (n_fft // 2) * sample_rate / n_fft
    fft_freqs = np.linspace(0.0, top, n_fft // 2 + 1)
    mel_points = np.linspace(hz_to_mel(float(f_min)), hz_to_mel(f_max), n_mels + 2)
    hz_points = mel_to_hz(mel_points)
    widths = np.diff(hz_points)
    ramps = hz_points[:, None] - fft_freqs[None, :]
    rising = -ramps[:-2] / widths[:-1, None]
    falling = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(rising, falling))
    empty = np.flatnonzero(weights.max(axis=1) <= 0)
    if empty.size:
        i = int(empty[0])
        raise ValueError(
            f"n_mels={n_mels} is too large for n_fft={n_fft} at sample_rate={sample_rate}: mel "
            f"filter {i} ({hz_points[i]:.1f}-{hz_points[i + 2]:.1f} Hz) contains no FFT bin "
            f"(bins are {sample_rate / n_fft:.1f} Hz apart); use fewer mels or a larger n_fft"
        )
    return torch.as_tensor(weights, dtype=dtype, device=device)


def mel_spectrogram(
    waveform: torch.Tensor,
    sample_rate: int,
    n_fft: int = 256,
    hop_length: int = 80,
    n_mels: int = 40,
    f_min: float = 0.0,
    f_max: float | None = None,
    **stft_kwargs,
) -> torch.Tensor:
    """Mel power spectrogram ``(..., n_mels, n_frames)``: the filterbank applied to each frame."""
    power = power_spectrogram(waveform, n_fft=n_fft, hop_length=hop_length, **stft_kwargs)
    fb = mel_filterbank(sample_rate, n_fft, n_mels, f_min, f_max, power.dtype, power.device)
    return fb @ power


def power_to_db(
    power: torch.Tensor, top_db: float | None = 80.0, amin: float = 1e-10, ref: float = 1.0
) -> torch.Tensor:
    """10 log10(max(power, amin) / ref), floored at ``top_db`` below each clip's maximum.

    The maximum is taken over the last two dimensions (one spectrogram), so clips in a batch
    do not affect one another. Same as ``librosa.power_to_db(S, ref=ref, amin=amin,
    top_db=top_db)`` applied to one clip; librosa.feature.mfcc uses ref=1.0, top_db=80.
    """
    if not isinstance(power, torch.Tensor) or power.ndim < 2:
        raise ValueError("power must be a tensor of shape (..., bands, frames)")
    if not power.is_floating_point():
        raise TypeError(f"power must be a floating-point tensor, got {power.dtype}")
    if power.numel() == 0:
        raise ValueError(f"power is empty (shape {tuple(power.shape)})")
    check_finite(power, "power")
    if bool((power < 0).any()):
        raise ValueError(
            "power must be non-negative (a power or magnitude spectrogram), got values down to "
            f"{float(power.min()):.4g}"
        )
    check_real(amin, "amin", low=0.0, low_open=True)
    check_real(ref, "ref", low=0.0, low_open=True)
    if top_db is not None:
        check_real(top_db, "top_db", low=0.0, allow_inf=True)
    db = 10.0 * torch.log10(power.clamp_min(amin)) - 10.0 * math.log10(max(amin, ref))
    if top_db is not None:
        peak = db.amax(dim=(-2, -1), keepdim=True)
        db = torch.maximum(db, peak - top_db)
    return db


def dct_matrix(n_out: int, n_in: int, dtype: torch.dtype = torch.float32, device=None):
    """Orthonormal DCT-II as a matrix ``(n_out, n_in)``: rows k = 0 .. n_out - 1 of

    D[k, n] = sqrt(2 / N) cos(pi k (2n + 1) / (2N)),  with row 0 scaled by 1 / sqrt(2).
    Equals ``scipy.fft.dct(x, type=2, norm="ortho")[:n_out]`` applied along the last axis.
    """
    n_out = _positive_int(n_out, "n_out")
    n_in = _positive_int(n_in, "n_in")
    if n_out > n_in:
        raise ValueError(f"n_out={n_out} must be <= n_in={n_in} (a DCT has n_in coefficients)")
    n = torch.arange(n_in, dtype=torch.float64)
    k = torch.arange(n_out, dtype=torch.float64)[:, None]
    basis = torch.cos(math.pi * k * (2 * n + 1) / (2 * n_in)) * math.sqrt(2.0 / n_in)
    basis[0] /= math.sqrt(2.0)
    return basis.to(dtype=dtype, device=device)


def mfcc(
    waveform: torch.Tensor,
    sample_rate: int,
    n_mfcc: int = 13,
    n_fft: int = 256,
    hop_length: int = 80,
    n_mels: int = 40,
    f_min: float = 0.0,
    f_max: float | None = None,
    win_length: int | None = None,
    window_name: str = "hann",
    center: bool = True,
    pad_mode: str = "reflect",
    top_db: float | None = 80.0,
    lifter: float = 0.0,
) -> torch.Tensor:
    """Mel-frequency cepstral coefficients of ``(..., T)`` -> ``(..., n_mfcc, n_frames)``.

    power spectrogram -> HTK mel filterbank -> dB (80 dB floor per clip) -> orthonormal DCT-II,
    keeping the first ``n_mfcc`` coefficients; ``n_frames = 1 + T // hop_length`` when centred.
    ``lifter > 0`` multiplies coefficient k by 1 + (lifter / 2) sin(pi (k + 1) / lifter).
    Defaults suit 8 kHz speech: 32 ms windows every 10 ms.
    """
    n_mfcc = _positive_int(n_mfcc, "n_mfcc")
    n_mels = _positive_int(n_mels, "n_mels")
    if n_mfcc > n_mels:
        raise ValueError(f"n_mfcc={n_mfcc} must be <= n_mels={n_mels} (the DCT has n_mels outputs)")
    check_real(lifter, "lifter", low=0.0)
    mel = mel_spectrogram(
        waveform, sample_rate, n_fft, hop_length, n_mels, f_min, f_max,
        win_length=win_length, window_name=window_name, center=center, pad_mode=pad_mode,
    )  # fmt: skip
    db = power_to_db(mel, top_db=top_db)
    coeffs = dct_matrix(n_mfcc, n_mels, db.dtype, db.device) @ db
    if lifter > 0:
        k = torch.arange(1, n_mfcc + 1, dtype=db.dtype, device=db.device)
        coeffs = coeffs * (1 + (lifter / 2) * torch.sin(math.pi * k / lifter))[:, None]
    return coeffs


class MFCC(nn.Module):
    """:func:`mfcc` as a module for a fixed sample rate, to put in front of an audio encoder.

    ``forward(waveform, sample_rate=None)`` refuses audio at another rate when ``sample_rate``
    is passed. It has no parameters; everything is recomputed on the input's device and dtype.

        >>> feats = MFCC(8000)(torch.randn(4, 4000))      # (4, 13, 51)
    """

    def __init__(self, sample_rate: int, **mfcc_kwargs):
        super().__init__()
        self.sample_rate = check_sample_rate(sample_rate)
        self.mfcc_kwargs = mfcc_kwargs
        # fail now, not at the first batch, when the configuration is impossible
        mfcc(torch.zeros(4 * mfcc_kwargs.get("n_fft", 256)), self.sample_rate, **mfcc_kwargs)

    def forward(self, waveform: torch.Tensor, sample_rate: int | None = None) -> torch.Tensor:
        if sample_rate is not None:
            check_sample_rate(sample_rate, expected=self.sample_rate)
        return mfcc(waveform, self.sample_rate, **self.mfcc_kwargs)

    def extra_repr(self) -> str:
        options = "".join(f", {k}={v!r}" for k, v in self.mfcc_kwargs.items())
        return f"sample_rate={self.sample_rate}{options}"
