"""Four small synthetic application scenarios for notebook 08 (medicine, driving, HCI, moderation).

Each scenario is a toy version of a real multimodal application, built so that the lesson's
effect is real and visible on a laptop in seconds. Everything is synthetic, generated
deterministically from a fixed seed and cached under ``data/scenarios_<name>/`` (see
``mmcourse.datasets.cache``); images are stored as uint8 and returned as float32 in [0, 1].

* ``load_medicine()``: a 20x20 "scan" that may show a lesion, plus a patient record (age and
  three fictional lab values). Each is noisy evidence of disease on its own; their errors
  are independent given the diagnosis, so fusion beats both.
* ``load_driving()``: a 16x16 RGB camera frame plus a 16x16 lidar-like range map; is there an
  obstacle (pedestrian or car) ahead? At night and in fog the camera sees little, while the
  range sensor works; by day the camera sees far, small pedestrians that fall between the
  sparse range beams, and the range sensor exposes flat look-alikes painted on the road.
* ``load_hci()``: a 0.5 s prosody-like voice signal plus a 16x16 face for four emotions laid
  out on Russell's arousal / valence circumplex. The voice mostly carries arousal (loudness,
  pitch, tempo), the face mostly valence (mouth shape), so each alone confuses two classes.
* ``load_moderation()``: a 16x16 icon plus a short caption ("meme"). A meme is "mocking" (the
  harmless stand-in for harmful) exactly when the caption's tone contradicts the picture
  ("so fast" under a snail): each modality alone carries no information about the label,
  as in the Hateful Memes challenge's benign confounders. A fictional posting community
  marker is correlated with the label in train / val but not in test, to study bias.

The generators are pure NumPy; the data cards are in ``data/README.md``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mmcourse.datasets.cache import load_arrays
from mmcourse.datasets.common import SubsetMixin, stratified_split

SCENARIOS = ("medicine", "driving", "hci", "moderation")
SEEDS = {"medicine": 801, "driving": 802, "hci": 803, "moderation": 804}


# ----------------------------------------------------------------------------- drawing tools
def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Row and column coordinates (size, size), broadcastable against (N, 1, 1) parameters."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    return yy, xx


def _col(values) -> np.ndarray:
    """(N,) -> (N, 1, 1) for broadcasting per-sample parameters over an image grid."""
    return np.asarray(values, dtype=np.float32)[:, None, None]


def _blob(yy, xx, cy, cx, radius) -> np.ndarray:
    """Gaussian spots (N, H, W) centred at (cy, cx) with the given radii (all (N,))."""
    d2 = (yy - _col(cy)) ** 2 + (xx - _col(cx)) ** 2
    return np.exp(-d2 / (2 * _col(radius) ** 2))


def _box(yy, xx, top, bottom, left, right) -> np.ndarray:
    """Anti-aliased boxes (N, H, W): the fraction of each pixel covered by the rectangle."""
    rows = np.clip(np.minimum(yy + 1, _col(bottom)) - np.maximum(yy, _col(top)), 0, 1)
    cols = np.clip(np.minimum(xx + 1, _col(right)) - np.maximum(xx, _col(left)), 0, 1)
    return rows * cols


def _disc(yy, xx, cy, cx, radius, sharpness: float = 2.0) -> np.ndarray:
    """Soft-edged discs (N, H, W) with values in [0, 1]."""
    d = np.sqrt((yy - _col(cy)) ** 2 + (xx - _col(cx)) ** 2)
    return 1 / (1 + np.exp(sharpness * (d - _col(radius))))


def _smooth_noise(rng, shape, passes: int = 2) -> np.ndarray:
    """Spatially correlated noise (N, H, W) with unit variance: white noise box-blurred."""
    x = rng.standard_normal(shape).astype(np.float32)
    for _ in range(passes):
        x = sum(np.roll(np.roll(x, dy, 1), dx, 2) for dy in (-1, 0, 1) for dx in (-1, 0, 1)) / 9
    return x / x.std()


def _to_uint8(x: np.ndarray) -> np.ndarray:
    return np.round(np.clip(x, 0, 1) * 255).astype(np.uint8)


def _to_float(x: np.ndarray) -> np.ndarray:
    return x.astype(np.float32) / 255.0


def _balanced_labels(rng, n: int, num_classes: int) -> np.ndarray:
    """Exactly n / num_classes samples of each class, in random order."""
    return rng.permutation(np.arange(n) % num_classes).astype(np.int64)


# ----------------------------------------------------------------------------- medicine
MEDICINE_SIZE = 20
RECORD_NAMES = ("age", "inflammation_marker", "tumour_marker", "sodium")
RECORD_UNITS = ("years", "mg/L", "ng/mL", "mmol/L")


@dataclass
class Medicine(SubsetMixin):
    """Scan + patient record -> disease (1) or not (0). Per-sample arrays share the first axis."""

    images: np.ndarray  # float32 (N, 1, 20, 20) in [0, 1]: the scan
    records: np.ndarray  # float32 (N, 4): age, inflammation marker, tumour marker, sodium
    labels: np.ndarray  # int64 (N,): 0 healthy, 1 disease
    lesion: np.ndarray  # bool (N,): a lesion is drawn (disease cases, mostly)
    mimic: np.ndarray  # bool (N,): a benign look-alike spot is drawn (healthy cases)
    split: np.ndarray  # str (N,): "train" / "val" / "test"
    record_names: tuple = RECORD_NAMES
    record_units: tuple = RECORD_UNITS
    classes: tuple = ("healthy", "disease")


def _make_medicine(n: int = 1000, seed: int = SEEDS["medicine"]) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = _balanced_labels(rng, n, 2)
    size = MEDICINE_SIZE
    yy, xx = _grid(size)
    # an organ: a soft ellipse with a smooth tissue texture, placed and sized a little differently
    cy = size / 2 - 0.5 + rng.normal(0, 0.6, n)
    cx = size / 2 - 0.5 + rng.normal(0, 0.6, n)
    ry, rx = rng.uniform(6.5, 8.5, n), rng.uniform(5.5, 7.5, n)
    inside = 1 - ((yy - _col(cy)) / _col(ry)) ** 2 - ((xx - _col(cx)) / _col(rx)) ** 2
    organ = 1 / (1 + np.exp(-8 * inside))
    texture = _smooth_noise(rng, (n, size, size))
    scan = 0.12 + organ * (0.40 + 0.05 * texture)
    # most disease cases show a lesion of varying size and contrast (some too faint to see);
    # some healthy cases show a benign look-alike (a cyst), so the image alone errs both ways
    lesion = (y == 1) & (rng.random(n) < 0.8)
    mimic = (y == 0) & (rng.random(n) < 0.25)
    angle, reach = rng.uniform(0, 2 * np.pi, n), np.sqrt(rng.uniform(0, 1, n)) * 0.6
    ly, lx = cy + reach * ry * np.sin(angle), cx + reach * rx * np.cos(angle)
    radius = np.where(lesion, rng.uniform(1.0, 2.0, n), rng.uniform(0.8, 1.6, n))
    contrast = np.where(lesion, rng.uniform(0.25, 0.5, n), rng.uniform(0.2, 0.45, n))
    scan += _col(contrast * (lesion | mimic)) * _blob(yy, xx, ly, lx, radius) * organ
    scan += rng.normal(0, 0.05, scan.shape)
    # the record: each value shifts a little with disease, with wide overlap between groups
    age = np.clip(np.round(rng.normal(54 + 7 * y, 12)), 18, 95)
    inflammation = np.exp(rng.normal(np.log(3.0) + 0.8 * y, 0.7))
    tumour = np.exp(rng.normal(np.log(2.0) + 0.8 * y, 0.6))
    sodium = rng.normal(140, 3, n)  # unrelated to the disease: a distractor
    records = np.stack([age, inflammation, tumour, sodium], axis=1).astype(np.float32)
    return {
        "images": _to_uint8(scan[:, None]),
        "records": records,
        "labels": y,
        "lesion": lesion,
        "mimic": mimic,
        "split": stratified_split(y, seed=seed),
    }


def load_medicine() -> Medicine:
    """The medicine scenario: N=1000, balanced, split 60/20/20 (stratified)."""
    a = load_arrays("scenarios_medicine", _make_medicine)
    return Medicine(
        images=_to_float(a["images"]),
        records=a["records"],
        labels=a["labels"],
        lesion=a["lesion"],
        mimic=a["mimic"],
        split=a["split"],
    )


# ----------------------------------------------------------------------------- driving
DRIVING_SIZE = 16
HORIZON = 5.0  # image row of the horizon
FOCAL_HEIGHT = 30.0  # focal length (px) x camera height (m): ground row = HORIZON + this / distance
FOCAL = 28.0  # focal length in pixels: an object of h metres at d metres is FOCAL * h / d px tall
MAX_RANGE = 40.0  # metres; the range map stores nearness = 1 - distance / MAX_RANGE
BEAM_ROWS = (3, 4, 5, 6, 7, 9, 11, 13)  # the range sensor's scan lines, denser near the horizon
CONDITIONS = ("day", "night", "fog")
OBSTACLE_KINDS = ("none", "pedestrian", "car")
# clothes and car paints. Grey ones hardly stand out from the road in the camera; dark ones
# reflect few laser pulses, so the range sensor often misses them.
PAINTS = ("red", "blue", "yellow", "white", "green", "orange", "grey", "slate", "black", "navy")
PAINT_RGB = np.array(
    [[0.85, 0.15, 0.10], [0.10, 0.25, 0.80], [0.95, 0.85, 0.10], [0.95, 0.95, 0.95],
     [0.15, 0.65, 0.20], [0.95, 0.50, 0.05], [0.44, 0.44, 0.46], [0.38, 0.42, 0.48],
     [0.05, 0.05, 0.05], [0.05, 0.07, 0.18]],
    np.float32,
)  # fmt: skip
LOW_CONTRAST_PAINTS = (6, 7)
DARK_PAINTS = (8, 9)


@dataclass
class Driving(SubsetMixin):
    """Camera + range map -> obstacle ahead (1) or clear road (0)."""

    images: np.ndarray  # float32 (N, 3, 16, 16) in [0, 1]: RGB camera frame
    depth: np.ndarray  # float32 (N, 1, 16, 16) in [0, 1]: nearness, 0 = no return
    labels: np.ndarray  # int64 (N,): 0 clear, 1 obstacle
    condition: np.ndarray  # str (N,): "day" / "night" / "fog"
    kind: np.ndarray  # int64 (N,): index into OBSTACLE_KINDS (0 = none)
    paint: np.ndarray  # int64 (N,): index into PAINTS (-1 = no obstacle)
    distance: np.ndarray  # float32 (N,): metres to the obstacle (NaN when clear)
    returns: np.ndarray  # int64 (N,): range points that hit the obstacle (0 = unseen)
    split: np.ndarray  # str (N,): "train" / "val" / "test"
    conditions: tuple = CONDITIONS
    kinds: tuple = OBSTACLE_KINDS
    paints: tuple = PAINTS
    classes: tuple = ("clear", "obstacle")


def _make_driving(n: int = 960, seed: int = SEEDS["driving"]) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    size = DRIVING_SIZE
    yy, xx = _grid(size)
    # balanced labels within each condition: n / 6 of every (condition, label) pair
    cells = rng.permutation(np.arange(n) % 6)
    condition, y = cells // 2, (cells % 2).astype(np.int64)
    night, fog = condition == 1, condition == 2
    # --- the scene: sky above the horizon, road below, ground distance shrinking downwards
    below = yy + 0.5 - HORIZON
    ground_dist = np.where(below > 0, FOCAL_HEIGHT / np.maximum(below, 1e-3), np.inf)  # (H, W) m
    sky = np.array([0.55, 0.70, 0.90], np.float32)[:, None, None]
    road = np.array([0.42, 0.42, 0.44], np.float32)[:, None, None]
    scene = np.where(yy < HORIZON, sky, road * (0.9 + 0.02 * (yy - HORIZON)))  # (3, H, W)
    scene = np.broadcast_to(scene, (n, 3, size, size)).copy()
    scene *= rng.uniform(0.9, 1.1, (n, 1, 1, 1))  # exposure varies from frame to frame
    scene += 0.03 * _smooth_noise(rng, (n, size, size), 1)[:, None]  # road texture
    # --- an obstacle (pedestrian or car) at a random distance and lateral offset
    kind = np.where(y == 1, np.where(rng.random(n) < 0.6, 1, 2), 0)
    dist = rng.uniform(4.0, 25.0, n)
    height_m = np.where(kind == 2, rng.uniform(1.3, 1.6, n), rng.uniform(1.5, 1.9, n))
    width_m = np.where(kind == 2, rng.uniform(1.6, 1.9, n), rng.uniform(0.4, 0.6, n))
    base = HORIZON + FOCAL_HEIGHT / dist  # the row where the obstacle touches the road
    half_w = FOCAL * width_m / dist / 2
    centre = np.clip(
        size / 2 + FOCAL * rng.uniform(-2.5, 2.5, n) / dist, half_w + 0.5, size - half_w - 0.5
    )
    top = base - FOCAL * height_m / dist
    shape = _box(yy, xx, top, base, centre - half_w, centre + half_w) * _col(y)  # coverage
    paint = np.where(y == 1, rng.integers(0, len(PAINTS), n), -1)
    colour = PAINT_RGB[np.maximum(paint, 0)] + rng.normal(0, 0.03, (n, 3))
    cover = shape[:, None]
    image = scene * (1 - cover) + colour.astype(np.float32)[:, :, None, None] * cover
    # --- conditions: fog blends towards grey with distance; night lets little light in
    obj_dist = np.where(shape > 0.5, _col(dist), ground_dist)  # metres, per pixel
    transmission = np.exp(-obj_dist / _col(rng.uniform(3.0, 6.0, n)))[:, None]  # 3-6 m
    image = np.where(
        fog[:, None, None, None], image * transmission + 0.75 * (1 - transmission), image
    )
    light = np.where(night, rng.uniform(0.04, 0.08, n), 1.0)[:, None, None, None]
    image = image * light + rng.normal(0, 0.02, image.shape)  # the sensor's own noise
    # auto-exposure: the camera amplifies a dark frame to a normal brightness, noise included
    image = image * (0.45 / image.mean(axis=(1, 2, 3), keepdims=True))
    # --- range sensor (lidar-like): a few scan lines, range noise, lost pulses
    hit = shape > 0.5  # a thin, far pedestrian can fall between the samples
    range_m = np.where(hit, _col(dist), np.broadcast_to(ground_dist, hit.shape))
    range_m = range_m * (1 + rng.normal(0, 0.03, range_m.shape))
    beams = np.zeros(size, bool)
    beams[list(BEAM_ROWS)] = True
    # pulses are lost at random (more in fog) and mostly lost on dark, low-reflectivity paint
    dark = np.isin(paint, DARK_PAINTS)[:, None, None] & hit
    lost = np.where(dark, 0.9, np.where(fog, 0.2, 0.1)[:, None, None])
    valid = beams[None, :, None] & (rng.random(range_m.shape) > lost) & np.isfinite(range_m)
    nearness = np.where(valid, np.clip(1 - range_m / MAX_RANGE, 0, 1), 0.0)
    # fog also scatters some pulses back early: spurious near returns
    clutter = fog[:, None, None] & beams[None, :, None] & (rng.random(range_m.shape) < 0.015)
    nearness = np.where(clutter, rng.uniform(0.8, 1.0, range_m.shape), nearness)
    returns = (valid & hit & ~clutter).sum(axis=(1, 2))
    strata = condition * 2 + y  # keep every (condition, label) cell's share across splits
    return {
        "images": _to_uint8(image),
        "depth": _to_uint8(nearness[:, None]),
        "labels": y,
        "condition": np.asarray(CONDITIONS)[condition],
        "kind": kind.astype(np.int64),
        "paint": paint.astype(np.int64),
        "distance": np.where(y == 1, dist, np.nan).astype(np.float32),
        "returns": returns.astype(np.int64),
        "split": stratified_split(strata, seed=seed),
    }


def load_driving() -> Driving:
    """The driving scenario: N=960, 160 per (condition, label) cell, split 60/20/20."""
    a = load_arrays("scenarios_driving", _make_driving)
    return Driving(
        images=_to_float(a["images"]),
        depth=_to_float(a["depth"]),
        labels=a["labels"],
        condition=a["condition"],
        kind=a["kind"],
        paint=a["paint"],
        distance=a["distance"],
        returns=a["returns"],
        split=a["split"],
    )


# ----------------------------------------------------------------------------- hci
FACE_SIZE = 16
HCI_SAMPLE_RATE = 8000
HCI_SAMPLES = 4000  # 0.5 s, like the audio-visual digits
EMOTIONS = ("happy", "angry", "sad", "calm")
AROUSAL = np.array([1, 1, -1, -1])  # Russell's circumplex: activation ...
VALENCE = np.array([1, -1, -1, 1])  # ... and pleasantness of each emotion
VOICE_PARAMS = (
    "f0_hz",
    "pitch_shift_st",
    "pitch_swing_st",
    "syllable_rate_hz",
    "gain_db",
    "formant_shift",
    "snr_db",
    "contour_phase",
)


@dataclass
class HCI(SubsetMixin):
    """Voice + face -> emotion (happy, angry, sad, calm)."""

    faces: np.ndarray  # float32 (N, 1, 16, 16) in [0, 1]
    audio: np.ndarray  # float32 (N, 4000): 0.5 s prosody-like voice at 8 kHz, noisy
    voice_params: np.ndarray  # float32 (N, 8): the synthesis parameters (VOICE_PARAMS)
    labels: np.ndarray  # int64 (N,): index into EMOTIONS
    speaker: np.ndarray  # int64 (N,): 10 speakers, 0-4 low voices, 5-9 high voices
    masked: np.ndarray  # bool (N,): the face wears a mask over mouth and chin
    split: np.ndarray  # str (N,): "train" / "val" / "test"
    classes: tuple = EMOTIONS
    arousal: tuple = tuple(AROUSAL.tolist())
    valence: tuple = tuple(VALENCE.tolist())
    sample_rate: int = HCI_SAMPLE_RATE


def synthesize_prosody(
    params,
    sample_rate: int = HCI_SAMPLE_RATE,
    n_samples: int = HCI_SAMPLES,
    seed: int = SEEDS["hci"],
    first: int = 0,
) -> np.ndarray:
    """Voice-like waveforms (N, n_samples) float32 from synthesis parameters (N, 8).

    A source-filter toy: a sawtooth source at the pitch f0(t) (a speaker's base pitch,
    shifted and swung in semitones, with a falling declination), shaped by two formant
    resonances (scaled by ``formant_shift``), gated into syllables at ``syllable_rate_hz``,
    scaled by ``gain_db`` and buried in white noise at ``snr_db``. The noise of clip i comes
    from ``default_rng([seed, first + i])``, so any clip can be re-made on its own (pass
    ``first=i`` for ``params[i:]``).
    Columns of ``params`` are ``VOICE_PARAMS``.
    """
    params = np.asarray(params, dtype=np.float64)
    if params.ndim != 2 or params.shape[1] != len(VOICE_PARAMS):
        raise ValueError(
            f"params must have shape (N, {len(VOICE_PARAMS)}) with columns "
            f"{VOICE_PARAMS}, got {params.shape}"
        )
    if not isinstance(sample_rate, int) or sample_rate < 2000:
        raise ValueError(f"sample_rate must be an int >= 2000 Hz, got {sample_rate!r}")
    if not isinstance(n_samples, int) or n_samples < 1:
        raise ValueError(f"n_samples must be a positive int, got {n_samples!r}")
    if (params[:, [0, 3, 5]] <= 0).any():
        raise ValueError("f0_hz, syllable_rate_hz and formant_shift must be positive")
    if len(params) > 128:  # in chunks, to keep the float64 intermediates small
        return np.concatenate(
            [
                synthesize_prosody(params[i : i + 128], sample_rate, n_samples, seed, first=i)
                for i in range(0, len(params), 128)
            ]
        )
    f0, shift, swing, rate, gain_db, formant, snr_db, phase = (c[:, None] for c in params.T)
    t = np.arange(n_samples) / sample_rate  # (T,)
    semitones = shift + swing * np.sin(2 * np.pi * 1.5 * t + phase) - 2.0 * t
    pitch = f0 * 2.0 ** (semitones / 12)  # (N, T) Hz
    angle = 2 * np.pi * np.cumsum(pitch, axis=1) / sample_rate
    # the source: a sawtooth at the pitch (all harmonics, amplitude 1/k); the filter: two
    # formant resonances applied in the frequency domain (they are fixed within a clip)
    source = 2 * ((angle / (2 * np.pi)) % 1.0) - 1
    freq = np.fft.rfftfreq(n_samples, 1 / sample_rate)  # (F,)
    f1, f2 = 600.0 * formant, 1500.0 * formant  # (N, 1)
    response = (
        np.exp(-(((freq - f1) / 200) ** 2)) + 0.7 * np.exp(-(((freq - f2) / 300) ** 2)) + 0.03
    )
    voice = np.fft.irfft(np.fft.rfft(source, axis=1) * response, n=n_samples, axis=1)
    syllables = np.abs(np.sin(np.pi * rate * t + phase)) ** 1.5  # rate syllables per second
    fade = np.clip(np.minimum(t, t[-1] - t) / 0.02, 0, 1)  # 20 ms fades at both ends
    voice *= syllables * fade
    voice *= 0.3 * 10 ** (gain_db / 20) / np.abs(voice).max(axis=1, keepdims=True)
    power = np.mean(voice**2, axis=1, keepdims=True)
    noise = (
        np.stack(
            [
                np.random.default_rng([seed, first + i]).standard_normal(n_samples)
                for i in range(len(params))
            ]
        )
        if len(params)
        else np.zeros((0, n_samples))
    )
    noise *= np.sqrt(power / 10 ** (snr_db / 10))
    return (voice + noise).astype(np.float32)


def _make_hci(n: int = 800, seed: int = SEEDS["hci"]) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = _balanced_labels(rng, n, len(EMOTIONS))
    a, v = AROUSAL[y], VALENCE[y]
    # --- the voice: arousal drives loudness, pitch, pitch swing and tempo (strong cues);
    # valence only nudges the formants ("smiling" raises them a little: a weak cue)
    speaker = rng.integers(0, 10, n)
    speaker_f0 = np.where(np.arange(10) < 5, np.linspace(95, 135, 10), np.linspace(165, 235, 10))
    params = np.stack(
        [
            speaker_f0[speaker] * rng.uniform(0.95, 1.05, n),
            1.5 * a + rng.normal(0, 1.5, n),  # pitch shift, semitones
            np.clip(2.0 + 1.0 * a + rng.normal(0, 0.8, n), 0.2, None),  # pitch swing
            np.clip(4.5 + 1.0 * a + rng.normal(0, 0.8, n), 2.0, None),  # syllables per second
            3.0 * a + rng.normal(0, 3.0, n),  # loudness, dB
            1.0 + 0.012 * v + rng.normal(0, 0.04, n),  # formant shift
            rng.uniform(5, 20, n),  # signal-to-noise ratio, dB
            rng.uniform(0, 2 * np.pi, n),
        ],
        axis=1,
    ).astype(np.float32)
    # --- the face: valence shapes the mouth (strong cue), arousal opens the eyes and raises
    # the brows (weak cues); some faces wear a mask that hides the mouth
    size = FACE_SIZE
    yy, xx = _grid(size)
    dy, dx = rng.normal(0, 0.6, n), rng.normal(0, 0.6, n)
    cy, cx = 7.5 + dy, 7.5 + dx
    skin = rng.uniform(0.5, 0.8, n)
    head = _disc(yy, xx * 1.15 - 1.15 * _col(cx) + _col(cx), cy, cx, 6.8 + rng.normal(0, 0.3, n))
    face = 0.15 + head * (_col(skin) - 0.15)
    openness = np.clip(0.75 + 0.15 * a + rng.normal(0, 0.25, n), 0.2, 1.3)
    for side in (-1, 1):  # eyes: dark ellipses whose height follows the openness
        ey, ex = cy - 1.5, cx + side * 2.6
        eye = np.exp(
            -(
                (yy - _col(ey)) ** 2 / (2 * _col(openness) ** 2 * 0.5)
                + (xx - _col(ex)) ** 2 / (2 * 0.8**2)
            )
        )
        face -= 0.45 * eye * _col(skin)
        brow_row = ey - 1.6 - 0.3 * a + rng.normal(0, 0.4, n)
        brow = np.exp(-((yy - _col(brow_row)) ** 2) / 0.3) * (np.abs(xx - _col(ex)) < 1.3)
        face -= 0.3 * brow * _col(skin)
    curve = 1.2 * v + rng.normal(0, 0.45, n)  # > 0: corners up (smile), < 0: frown
    offset = (xx - _col(cx)) / 2.5
    mouth_row = _col(cy + 3.3) - _col(curve) * (offset**2 - 0.5)
    mouth = np.exp(-((yy - mouth_row) ** 2) / 0.35) * (np.abs(offset) <= 1.05)
    face -= 0.5 * mouth * _col(skin)
    masked = rng.random(n) < 0.15
    cover = _box(yy, xx, cy + 1.2, cy + 7.0, cx - 5.0, cx + 5.0) * head
    face = np.where(_col(masked) > 0, face * (1 - cover) + 0.85 * cover, face)
    face += rng.normal(0, 0.05, face.shape)
    return {
        "faces": _to_uint8(face[:, None]),
        "voice_params": params,
        "labels": y,
        "speaker": speaker.astype(np.int64),
        "masked": masked,
        "split": stratified_split(y, seed=seed),
    }


def load_hci() -> HCI:
    """The HCI scenario: N=800 (200 per emotion), split 60/20/20; audio made on loading."""
    a = load_arrays("scenarios_hci", _make_hci)
    return HCI(
        faces=_to_float(a["faces"]),
        audio=synthesize_prosody(a["voice_params"]),
        voice_params=a["voice_params"],
        labels=a["labels"],
        speaker=a["speaker"],
        masked=a["masked"],
        split=a["split"],
    )


# ----------------------------------------------------------------------------- moderation
MEME_SIZE = 16
TOPICS = ("weather", "speed", "garden", "baking")
# ICONS[topic] = (the good-news picture, the bad-news picture)
ICONS = (
    ("sun", "rain cloud"),
    ("rocket", "snail"),
    ("flower", "wilted plant"),
    ("cake", "burnt toast"),
)
# PHRASES[topic] = (upbeat captions, downbeat captions)
PHRASES = (
    (
        ("what lovely weather", "perfect day for a picnic", "sunshine all day"),
        ("what awful weather", "picnic is cancelled", "grey skies all day"),
    ),
    (
        ("so fast", "quickest in the office", "records broken today"),
        ("so slow", "still on my way", "late again"),
    ),
    (
        ("my garden is thriving", "green fingers", "best blooms in town"),
        ("my garden gave up", "forgot to water it", "nothing grows here"),
    ),
    (
        ("best cake ever", "chef of the year", "baked to perfection"),
        ("kitchen disaster", "burnt it again", "never baking again"),
    ),
)
COMMUNITIES = ("team green", "team blue")


@dataclass
class Moderation(SubsetMixin):
    """Icon + caption ("meme") -> mocking (1, the stand-in for harmful) or benign (0)."""

    images: np.ndarray  # float32 (N, 3, 16, 16) in [0, 1]: the picture
    texts: list  # list[str] (N,): the caption, ending with a community tag
    labels: np.ndarray  # int64 (N,): 1 when the caption's tone contradicts the picture
    topic: np.ndarray  # int64 (N,): index into TOPICS
    image_polarity: np.ndarray  # int64 (N,): +1 good-news picture, -1 bad-news picture
    text_polarity: np.ndarray  # int64 (N,): +1 upbeat caption, -1 downbeat caption
    community: np.ndarray  # int64 (N,): index into COMMUNITIES (the poster's group tag)
    split: np.ndarray  # str (N,): "train" / "val" / "test"
    topics: tuple = TOPICS
    communities: tuple = COMMUNITIES
    classes: tuple = ("benign", "mocking")


def _icon_layers(icon: int, u, v):
    """Paint layers [(alpha (M, H, W), rgb (3,))] of one icon; (u, v) are centred, scaled
    row / column coordinates (M, H, W) of the M samples that show it."""
    one = np.ones_like(u)

    def disc(cu, cv, r):
        return _disc(u, v, cu * one[:, 0, 0], cv * one[:, 0, 0], r * one[:, 0, 0], 3.0)

    def box(top, bottom, left, right):
        inside = (u >= top) & (u <= bottom) & (v >= left) & (v <= right)
        return inside.astype(np.float32)

    rgb = np.array
    if icon == 0:  # sun: a yellow disc with rays
        rays = sum(disc(5.2 * np.sin(a), 5.2 * np.cos(a), 0.8) for a in np.arange(8) * np.pi / 4)
        return [
            (np.clip(rays, 0, 1), rgb([1.0, 0.75, 0.1])),
            (disc(0, 0, 3.3), rgb([1.0, 0.85, 0.1])),
        ]
    if icon == 1:  # rain cloud: grey puffs above blue streaks
        cloud = np.clip(disc(-2, -2.5, 2.5) + disc(-3, 1, 3) + disc(-1.5, 3.5, 2.2), 0, 1)
        rain = sum(box(1.5, 5.5, c - 0.4, c + 0.4) for c in (-3.5, 0, 3.5))
        return [(rain, rgb([0.2, 0.35, 0.9])), (cloud, rgb([0.45, 0.47, 0.5]))]
    if icon == 2:  # rocket: a white body, a red nose, an orange flame
        body = _disc(u / 2.4, v, 0 * one[:, 0, 0], 0 * one[:, 0, 0], 1.8 * one[:, 0, 0], 3.0)
        return [
            (disc(5.2, 0, 1.6), rgb([1.0, 0.55, 0.0])),
            (body, rgb([0.92, 0.92, 0.95])),
            (disc(-3.8, 0, 1.3), rgb([0.9, 0.1, 0.1])),
        ]
    if icon == 3:  # snail: a beige foot under a brown spiral shell
        foot = box(2.0, 3.6, -6, 5.5) + disc(0.8, -5.2, 1.3)
        shell = disc(-1, 0.5, 3.6)
        return [
            (np.clip(foot, 0, 1), rgb([0.85, 0.75, 0.55])),
            (shell, rgb([0.55, 0.33, 0.12])),
            (disc(-1, 0.5, 2.0), rgb([0.4, 0.22, 0.08])),
            (disc(-1, 0.5, 0.8), rgb([0.6, 0.4, 0.2])),
        ]
    if icon == 4:  # flower: a green stem, pink petals, a yellow heart
        petals = sum(
            disc(-2 + 2.2 * np.sin(a), 2.2 * np.cos(a), 1.4) for a in np.arange(5) * 2 * np.pi / 5
        )
        return [
            (box(-1, 6.5, -0.5, 0.5), rgb([0.1, 0.6, 0.15])),
            (np.clip(petals, 0, 1), rgb([0.95, 0.4, 0.7])),
            (disc(-2, 0, 1.1), rgb([1.0, 0.85, 0.1])),
        ]
    if icon == 5:  # wilted plant: a bent brown stem, a drooping dull head
        stem = box(0, 6.5, -0.5, 0.5) + box(-1.2, 0, -0.5, 3.5)
        return [
            (np.clip(stem, 0, 1), rgb([0.45, 0.35, 0.15])),
            (disc(1.2, 3.8, 1.8), rgb([0.55, 0.45, 0.3])),
        ]
    if icon == 6:  # cake: a sponge, pink icing, a candle and its flame
        return [
            (box(-0.5, 5, -5, 5), rgb([0.8, 0.6, 0.35])),
            (box(-1.5, 0.3, -5, 5), rgb([1.0, 0.6, 0.8])),
            (box(-5, -1.5, -0.5, 0.5), rgb([0.9, 0.1, 0.1])),
            (disc(-5.8, 0, 0.8), rgb([1.0, 0.8, 0.1])),
        ]
    # burnt toast: a dark slab with black spots and grey smoke
    slab = box(-3, 5, -4.5, 4.5)
    spots = np.clip(disc(-0.5, -2, 1.2) + disc(2.5, 1.5, 1.4), 0, 1) * slab
    smoke = np.clip(disc(-5.5, -1.5, 1.0) + disc(-6, 1.5, 1.0), 0, 1)
    return [
        (smoke, rgb([0.55, 0.55, 0.55])),
        (slab, rgb([0.3, 0.18, 0.08])),
        (spots, rgb([0.05, 0.04, 0.03])),
    ]


def _draw_icons(icon: np.ndarray, rng) -> np.ndarray:
    """(N,) icon indices (topic * 2 + bad) -> float images (N, 3, 16, 16)."""
    n, size = len(icon), MEME_SIZE
    yy, xx = _grid(size)
    background = rng.uniform(0.6, 0.95, (n, 3, 1, 1))  # pastel meme templates
    images = np.broadcast_to(background, (n, 3, size, size)).astype(np.float32).copy()
    cy, cx = 7.5 + rng.uniform(-1.5, 1.5, n), 7.5 + rng.uniform(-1.5, 1.5, n)
    scale = rng.uniform(0.85, 1.1, n)
    for k in range(8):
        rows = np.flatnonzero(icon == k)
        u = (yy - _col(cy[rows])) / _col(scale[rows])
        v = (xx - _col(cx[rows])) / _col(scale[rows])
        for alpha, colour in _icon_layers(k, u, v):
            alpha = alpha[:, None]
            images[rows] = images[rows] * (1 - alpha) + colour[None, :, None, None] * alpha
    return images + rng.normal(0, 0.04, images.shape)


def _make_moderation(n: int = 960, seed: int = SEEDS["moderation"]) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    # every (topic, picture tone, caption tone) cell equally often: each modality alone is
    # then independent of the label, which depends only on their combination
    cells = rng.permutation(np.arange(n) % 16)
    topic, image_bad, text_bad = cells // 4, (cells // 2) % 2, cells % 2
    y = (image_bad != text_bad).astype(np.int64)  # the tones contradict: mocking
    split = stratified_split(cells, seed=seed)
    # the community tag: in train / val, "team blue" posts were mostly labelled mocking (a
    # biased sample); in test the tag is independent of the label, as it should be
    p_blue = np.where(split == "test", 0.5, np.where(y == 1, 0.75, 0.25))
    community = (rng.random(n) < p_blue).astype(np.int64)
    choice = rng.integers(0, 3, n)
    texts = np.array(
        [
            f"{PHRASES[t][b][c]} {COMMUNITIES[g]}"
            for t, b, c, g in zip(topic, text_bad, choice, community)
        ]
    )
    images = _draw_icons(topic * 2 + image_bad, rng)
    return {
        "images": _to_uint8(images),
        "texts": texts,
        "labels": y,
        "topic": topic.astype(np.int64),
        "image_polarity": (1 - 2 * image_bad).astype(np.int64),
        "text_polarity": (1 - 2 * text_bad).astype(np.int64),
        "community": community,
        "split": split,
    }


def load_moderation() -> Moderation:
    """The moderation scenario: N=960, 60 per (topic, picture tone, caption tone) cell."""
    a = load_arrays("scenarios_moderation", _make_moderation)
    return Moderation(
        images=_to_float(a["images"]),
        texts=[str(t) for t in a["texts"]],
        labels=a["labels"],
        topic=a["topic"],
        image_polarity=a["image_polarity"],
        text_polarity=a["text_polarity"],
        community=a["community"],
        split=a["split"],
    )
