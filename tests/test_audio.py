"""mmcourse.audio against librosa (the reference), scipy and torch.stft; batching, gradients,
and the errors a learner meets when feeding it the wrong thing."""

import numpy as np
import pytest
import scipy.fft
import torch

from mmcourse import audio

librosa = pytest.importorskip("librosa")


def _clip(n_samples, sample_rate, seed=0, dtype=np.float64):
    """A chirp plus a tone plus noise: energy spread over many mel bands and frames."""
    rng = np.random.default_rng(seed)
    t = np.arange(n_samples) / sample_rate
    f0, f1 = 100.0, 0.45 * sample_rate
    chirp = np.sin(2 * np.pi * (f0 * t + (f1 - f0) * t**2 / (2 * t[-1])))
    tone = 0.5 * np.sin(2 * np.pi * 0.07 * sample_rate * t)
    return (chirp + tone + 0.05 * rng.standard_normal(n_samples)).astype(dtype)


def _librosa_mfcc(y, sr, n_mfcc, n_fft, hop, n_mels, fmin=0.0, fmax=None, win_length=None):
    return librosa.feature.mfcc(
        y=y, sr=sr, n_mfcc=n_mfcc, n_fft=n_fft, hop_length=hop, n_mels=n_mels, fmin=fmin,
        fmax=fmax, win_length=win_length, htk=True, mel_norm=None, norm="ortho", dct_type=2,
        center=True, pad_mode="reflect", power=2.0, window="hann", dtype=y.dtype,
    )  # fmt: skip


# (sample_rate, seconds, n_mfcc, n_fft, hop_length, n_mels, f_min, f_max, win_length)
SETTINGS = [
    (8000, 0.5, 13, 256, 80, 40, 0.0, None, None),  # the course default
    (16000, 1.0, 20, 512, 160, 64, 0.0, None, None),
    (22050, 0.3, 30, 1024, 256, 80, 50.0, 8000.0, None),
    (8000, 0.26, 13, 200, 100, 26, 0.0, None, None),  # n_fft not a power of two
    (8000, 0.37, 12, 256, 64, 32, 0.0, None, 200),  # window shorter than n_fft, odd length
]


@pytest.mark.parametrize("sr,sec,n_mfcc,n_fft,hop,n_mels,fmin,fmax,win", SETTINGS)
def test_mfcc_matches_librosa(sr, sec, n_mfcc, n_fft, hop, n_mels, fmin, fmax, win):
    y = _clip(int(sr * sec), sr)
    expected = _librosa_mfcc(y, sr, n_mfcc, n_fft, hop, n_mels, fmin, fmax, win)
    ours = audio.mfcc(
        torch.from_numpy(y), sr, n_mfcc=n_mfcc, n_fft=n_fft, hop_length=hop, n_mels=n_mels,
        f_min=fmin, f_max=fmax, win_length=win,
    )  # fmt: skip
    assert ours.shape == expected.shape == (n_mfcc, 1 + len(y) // hop)
    np.testing.assert_allclose(ours.numpy(), expected, rtol=1e-5, atol=1e-4)


def test_mfcc_float32_matches_librosa_float32():
    y = _clip(4000, 8000, seed=3, dtype=np.float32)
    expected = _librosa_mfcc(y, 8000, 13, 256, 80, 40)
    ours = audio.mfcc(torch.from_numpy(y), 8000)
    assert ours.dtype == torch.float32
    np.testing.assert_allclose(ours.numpy(), expected, rtol=1e-4, atol=2e-3)


def test_mfcc_quiet_clip_hits_the_80_db_floor_like_librosa():
    # a click in silence: most frames sit at the floor, 80 dB below the peak
    y = np.zeros(4000)
    y[2000:2010] = 1.0
    y += 1e-9 * _clip(4000, 8000)
    expected = _librosa_mfcc(y, 8000, 13, 256, 80, 40)
    np.testing.assert_allclose(audio.mfcc(torch.from_numpy(y), 8000).numpy(), expected, atol=1e-3)
    mel_db = audio.power_to_db(audio.mel_spectrogram(torch.from_numpy(y), 8000))
    assert mel_db.max() - mel_db.min() == pytest.approx(80.0)


def test_stages_match_their_references():
    sr, n_fft, hop = 8000, 256, 80
    y = _clip(4000, sr)
    x = torch.from_numpy(y)
    # STFT power vs torch.stft and librosa.stft
    ours = audio.power_spectrogram(x, n_fft, hop)
    ref_torch = torch.stft(
        x, n_fft, hop, window=torch.hann_window(n_fft, dtype=x.dtype), center=True,
        pad_mode="reflect", return_complex=True,
    ).abs() ** 2  # fmt: skip
    ref_librosa = np.abs(librosa.stft(y, n_fft=n_fft, hop_length=hop, pad_mode="reflect")) ** 2
    np.testing.assert_allclose(ours.numpy(), ref_torch.numpy(), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(ours.numpy(), ref_librosa, rtol=1e-6, atol=1e-8)
    # framing: frame t is centred on sample t * hop
    frames = audio.frame(x, n_fft, hop)
    assert frames.shape == (1 + 4000 // hop, n_fft)
    assert torch.equal(frames[10, n_fft // 2], x[10 * hop])
    # mel filterbank, several settings
    for sr_, n_fft_, n_mels, fmin, fmax in [(8000, 256, 40, 0, None), (16000, 512, 64, 30, 7000)]:
        ref = librosa.filters.mel(
            sr=sr_, n_fft=n_fft_, n_mels=n_mels, fmin=fmin, fmax=fmax, htk=True, norm=None,
            dtype=np.float64,
        )  # fmt: skip
        ours_fb = audio.mel_filterbank(sr_, n_fft_, n_mels, fmin, fmax, dtype=torch.float64)
        np.testing.assert_allclose(ours_fb.numpy(), ref, atol=1e-12)
    np.testing.assert_allclose(audio.hz_to_mel(1000.0), librosa.hz_to_mel(1000.0, htk=True))
    np.testing.assert_allclose(audio.mel_to_hz(audio.hz_to_mel(440.0)), 440.0)
    # dB with the 80 dB floor
    S = librosa.feature.melspectrogram(
        y=y, sr=sr, n_fft=n_fft, hop_length=hop, n_mels=40, htk=True, norm=None,
        pad_mode="reflect",
    )  # fmt: skip
    np.testing.assert_allclose(
        audio.power_to_db(torch.from_numpy(S)).numpy(), librosa.power_to_db(S), atol=1e-9
    )
    # orthonormal DCT-II vs scipy, and orthonormality
    m = np.random.default_rng(1).standard_normal((40, 7))
    D = audio.dct_matrix(13, 40, dtype=torch.float64)
    np.testing.assert_allclose(
        (D @ torch.from_numpy(m)).numpy(), scipy.fft.dct(m, type=2, norm="ortho", axis=0)[:13]
    )
    full = audio.dct_matrix(40, 40, dtype=torch.float64)
    torch.testing.assert_close(full @ full.T, torch.eye(40, dtype=torch.float64))


def test_framing_equals_numpy_reflect_pad_where_librosa_tail_differs():
    """librosa >= 0.10 pads the tail of the signal separately; when that tail segment is not
    longer than n_fft // 2 (here 2000 samples, n_fft=200, hop=100), numpy's reflect runs out
    of samples and librosa's LAST frame differs from padding the whole signal. Ours is the
    textbook definition (equal to torch.stft); librosa agrees on every other frame."""
    y = _clip(2000, 8000)
    ours = audio.power_spectrogram(torch.from_numpy(y), 200, 100).numpy()
    padded = np.pad(y, 100, mode="reflect")
    frames = np.stack([padded[t * 100 : t * 100 + 200] for t in range(21)])
    textbook = np.abs(np.fft.rfft(frames * np.hanning(201)[:200], axis=-1)).T ** 2
    np.testing.assert_allclose(ours, textbook, rtol=1e-9, atol=1e-9)
    ref = np.abs(librosa.stft(y, n_fft=200, hop_length=100, pad_mode="reflect")) ** 2
    np.testing.assert_allclose(ours[:, :-1], ref[:, :-1], rtol=1e-9, atol=1e-9)


def test_window_matches_scipy_periodic_windows():
    scipy_signal = pytest.importorskip("scipy.signal")
    for name in ("hann", "hamming"):
        ref = scipy_signal.get_window(name, 200, fftbins=True)
        np.testing.assert_allclose(audio.window(name, 200, dtype=torch.float64).numpy(), ref)
    padded = audio.window("hann", 200, n_fft=256)
    assert padded.shape == (256,) and padded[:28].abs().sum() == 0 and padded[-28:].sum() == 0


def test_batched_equals_per_clip_and_librosa_per_clip():
    clips = np.stack([_clip(4000, 8000, seed=s) * (0.01 + s) for s in range(6)])
    batch = torch.from_numpy(clips).reshape(3, 2, 4000)
    out = audio.mfcc(batch, 8000)
    assert out.shape == (3, 2, 13, 51)
    for i in range(6):
        single = audio.mfcc(torch.from_numpy(clips[i]), 8000)
        torch.testing.assert_close(out.reshape(6, 13, 51)[i], single)
        np.testing.assert_allclose(
            single.numpy(), _librosa_mfcc(clips[i], 8000, 13, 256, 80, 40), rtol=1e-5, atol=1e-4
        )


def test_gradients_flow_and_are_correct():
    x = torch.from_numpy(_clip(4000, 8000, seed=2)).requires_grad_(True)
    audio.mfcc(x, 8000).square().sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    small = torch.from_numpy(_clip(40, 8000, seed=4)).requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda w: audio.mfcc(w, 8000, n_mfcc=3, n_fft=16, hop_length=8, n_mels=3), (small,)
    )


def test_mfcc_module_and_numpy_input():
    module = audio.MFCC(8000, n_mels=30)
    x = _clip(4000, 8000, dtype=np.float32)
    out = module(torch.from_numpy(x), sample_rate=8000)
    torch.testing.assert_close(out, audio.mfcc(x, 8000, n_mels=30))  # numpy accepted
    with pytest.raises(ValueError, match="sample_rate=16000 Hz does not match"):
        module(torch.from_numpy(x), sample_rate=16000)
    with pytest.raises(ValueError, match="n_mfcc"):
        audio.MFCC(8000, n_mfcc=50)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu():
    x = torch.from_numpy(_clip(4000, 8000, dtype=np.float32)).repeat(4, 1)
    torch.testing.assert_close(audio.mfcc(x.cuda(), 8000).cpu(), audio.mfcc(x, 8000), atol=1e-2,
                               rtol=1e-4)  # fmt: skip


X = torch.zeros(4000)


@pytest.mark.parametrize(
    "call,error,match",
    [
        (lambda: audio.mfcc([0.0] * 4000, 8000), TypeError, "waveform must be a torch.Tensor"),
        (lambda: audio.mfcc(torch.zeros(4000, dtype=torch.int16), 8000), TypeError, "float32"),
        (lambda: audio.mfcc(torch.tensor(1.0), 8000), ValueError, "at least 1 dimension"),
        (lambda: audio.mfcc(torch.zeros(0, 4000), 8000), ValueError, "empty"),
        (lambda: audio.mfcc(torch.full((4000,), float("nan")), 8000), ValueError, "NaN"),
        (lambda: audio.mfcc(X, 0), ValueError, "sample_rate must be a positive int"),
        (lambda: audio.mfcc(X, 8000.0), ValueError, "sample_rate must be a positive int"),
        (lambda: audio.mfcc(X, True), ValueError, "sample_rate"),
        (lambda: audio.mfcc(X, 8000, n_mels=128), ValueError, "n_mels=128 is too large"),
        (lambda: audio.mfcc(X, 8000, n_mfcc=41), ValueError, "n_mfcc=41 must be <= n_mels=40"),
        (lambda: audio.mfcc(X, 8000, n_fft=0), ValueError, "n_fft"),
        (lambda: audio.mfcc(X, 8000, hop_length=-1), ValueError, "hop_length"),
        (lambda: audio.mfcc(X, 8000, f_max=5000), ValueError, "Nyquist"),
        (lambda: audio.mfcc(X, 8000, f_min=3000, f_max=2000), ValueError, "f_min < f_max"),
        (lambda: audio.mfcc(X, 8000, win_length=300), ValueError, "win_length=300"),
        (lambda: audio.mfcc(torch.zeros(100), 8000), ValueError, "too short for reflect"),
        (lambda: audio.mfcc(X, 8000, pad_mode="edge"), ValueError, "pad_mode"),
        (lambda: audio.mfcc(X, 8000, window_name="kaiser"), ValueError, "window_name"),
        (lambda: audio.power_to_db(torch.ones(5)), ValueError, "power must be a tensor"),
        (lambda: audio.dct_matrix(5, 3), ValueError, "n_out=5"),
        (lambda: audio.check_sample_rate(16000, expected=8000), ValueError, "resample"),
    ],
)
def test_clear_errors(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_librosa_only_warns_where_we_raise_for_empty_mel_filters():
    with pytest.warns(UserWarning, match="Empty filters"):
        librosa.filters.mel(sr=8000, n_fft=256, n_mels=128, htk=True, norm=None)
    with pytest.raises(ValueError, match="contains no FFT bin"):
        audio.mel_filterbank(8000, 256, 128)


def test_exercises_accept_solutions_and_reject_plausible_mistakes():
    from mmcourse.exercises import get

    frames, to_db = get("01.frames"), get("01.to_db")
    frames.check(frames.solution())
    to_db.check(to_db.solution())
    with pytest.raises(AssertionError, match="padded length"):
        frames.check(lambda n, n_fft, hop, center: n // hop)  # forgets the +1
    with pytest.raises(AssertionError, match="floor them"):
        to_db.check(lambda p, top_db: 10 * torch.log10(p.clamp_min(1e-10)))
    with pytest.raises(AssertionError, match="natural log"):
        to_db.check(lambda p, top_db: (lambda d: torch.maximum(d, d.max() - top_db))(
            10 * torch.log(p.clamp_min(1e-10))))  # fmt: skip
    with pytest.raises(AssertionError, match="NaN"):
        to_db.check(lambda p, top_db: 10 * torch.log10(p))
