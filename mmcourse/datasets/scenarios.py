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
CONDITIONS = ("day", "night", "fog")
# clothes and car paints: red, blue, yellow, white, black, green, orange, navy
PALETTE = np.array(
    [[0.85, 0.15, 0.1], [0.1, 0.25, 0.8], [0.95, 0.85, 0.1], [0.95, 0.95, 0.95],
     [0.05, 0.05, 0.05], [0.15, 0.65, 0.2], [0.95, 0.5, 0.05], [0.05, 0.07, 0.18]],
    np.float32,
)
OBSTACLE_KINDS = ("none", "pedestrian", "car")


@dataclass
class Driving(SubsetMixin):
    """Camera + range map -> obstacle ahead (1) or clear road (0)."""

    images: np.ndarray  # float32 (N, 3, 16, 16) in [0, 1]: RGB camera frame
    depth: np.ndarray  # float32 (N, 1, 16, 16) in [0, 1]: nearness, 0 = no return
    labels: np.ndarray  # int64 (N,): 0 clear, 1 obstacle
    condition: np.ndarray  # str (N,): "day" / "night" / "fog"
    kind: np.ndarray  # int64 (N,): index into OBSTACLE_KINDS
    distance: np.ndarray  # float32 (N,): metres to the obstacle (NaN when clear)
    decoy: np.ndarray  # bool (N,): a flat look-alike is painted on the road (clear cases)
    split: np.ndarray  # str (N,): "train" / "val" / "test"
    conditions: tuple = CONDITIONS
    kinds: tuple = OBSTACLE_KINDS
    classes: tuple = ("clear", "obstacle")


def _make_driving(n: int = 960, seed: int = SEEDS["driving"]) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    size = DRIVING_SIZE
    yy, xx = _grid(size)
    # balanced labels within each condition: n / 6 of every (condition, label) pair
    cells = rng.permutation(np.arange(n) % 6)
    condition, y = cells // 2, (cells % 2).astype(np.int64)
    # --- the scene: sky above the horizon, road below, ground distance shrinking downwards
    ground_dist = np.where(
        yy > HORIZON, FOCAL_HEIGHT / np.maximum(yy + 0.5 - HORIZON, 1e-3), np.inf
    )  # (H, W) metres
    sky = np.array([0.55, 0.70, 0.90], np.float32)[:, None, None]
    road = np.array([0.42, 0.42, 0.44], np.float32)[:, None, None]
    scene = np.where(yy < HORIZON, sky, road * (0.9 + 0.02 * (yy - HORIZON)))  # (3, H, W)
    scene = np.broadcast_to(scene, (n, 3, size, size)).copy()
    scene *= rng.uniform(0.9, 1.1, (n, 1, 1, 1))  # exposure varies from frame to frame
    scene += 0.03 * _smooth_noise(rng, (n, size, size), 1)[:, None]  # road texture, clutter
    # --- an obstacle (pedestrian or car) at a random distance and lateral offset
    kind = np.where(y == 1, np.where(rng.random(n) < 0.6, 1, 2), 0)
    dist = rng.uniform(4.0, 18.0, n)
    height_m = np.where(kind == 2, rng.uniform(1.3, 1.6, n), rng.uniform(1.5, 1.9, n))
    width_m = np.where(kind == 2, rng.uniform(1.6, 1.9, n), rng.uniform(0.4, 0.6, n))
    base = HORIZON + FOCAL_HEIGHT / dist  # the row where the obstacle touches the road
    centre = size / 2 + FOCAL * rng.uniform(-2.5, 2.5, n) / dist
    half_w = FOCAL * width_m / dist / 2
    centre = np.clip(centre, half_w + 0.5, size - half_w - 0.5)
    top = base - FOCAL * height_m / dist
    shape = _box(yy, xx, top, base, centre - half_w, centre + half_w)  # (N, H, W) coverage
    colour = PALETTE[rng.integers(0, len(PALETTE), n)] + rng.normal(0, 0.05, (n, 3))
    colour = colour.astype(np.float32)[:, :, None, None]  # clothes or paint
    # a flat look-alike on clear roads (a pedestrian painted on the tarmac, a reflection in a
    # puddle): drawn in the camera exactly like an obstacle, but absent from the range map
    decoy = (y == 0) & (rng.random(n) < 0.35)
    visible = (y == 1) | decoy
    cover = shape[:, None] * visible[:, None, None, None]
    image = scene * (1 - cover) + colour * cover
    # --- conditions: night lets little light in; fog blends towards grey with distance
    obj_dist = np.where(cover[:, 0] > 0.5, _col(dist), ground_dist)  # metres, per pixel
    night, fog = condition == 1, condition == 2
    transmission = np.exp(-obj_dist / _col(rng.uniform(3.0, 6.0, n)))  # visibility 3-6 m
    foggy = image * transmission[:, None] + 0.75 * (1 - transmission[:, None])
    image = np.where(fog[:, None, None, None], foggy, image)
    light = np.where(night, rng.uniform(0.05, 0.1, n), 1.0)[:, None, None, None]
    image = image * light + rng.normal(0, 0.02, image.shape)  # the sensor's own noise
    # auto-exposure: the camera amplifies a dark frame to a normal brightness, noise included
    image = image * (0.45 / image.mean(axis=(1, 2, 3), keepdims=True))
    # --- range sensor (lidar-like): 8 sparse beams (rows, three above the horizon), missed
    # returns, range noise; pedestrians beyond ~20 m are too thin to be hit reliably
    hit = (shape > 0.5) & (y == 1)[:, None, None]
    range_m = np.where(hit, _col(dist), np.broadcast_to(ground_dist, hit.shape))
    range_m = range_m * (1 + rng.normal(0, 0.03, range_m.shape))
    beams = np.zeros(size, bool)
    beams[[3, 4, 5, 6, 7, 9, 11, 13]] = True  # denser near the horizon, like a real scanner
    # pulses are lost at random (more in fog) and mostly lost on dark, low-reflectivity surfaces
    dark = (colour.max(axis=(1, 2, 3)) < 0.2)[:, None, None] & hit
    lost = np.where(dark, 0.8, np.where(fog, 0.3, 0.1)[:, None, None])
    valid = beams[None, :, None] & (rng.random(range_m.shape) > lost)
    nearness = np.where(valid & np.isfinite(range_m), 1 - range_m / MAX_RANGE, 0.0)
    nearness = np.clip(nearness, 0, 1)
    # fog also scatters some pulses back early: spurious near returns
    clutter = fog[:, None, None] & (rng.random(range_m.shape) < 0.03) & beams[None, :, None]
    nearness = np.where(clutter, rng.uniform(0.8, 1.0, range_m.shape), nearness)
    returns = (valid & hit & ~clutter).sum(axis=(1, 2))  # range points that hit the obstacle
    distance = np.where(y == 1, dist, np.nan).astype(np.float32)
    strata = condition * 2 + y  # keep every (condition, label) cell's share across splits
    return {
        "images": _to_uint8(image),
        "depth": _to_uint8(nearness[:, None]),
        "labels": y,
        "condition": np.asarray(CONDITIONS)[condition],
        "kind": kind.astype(np.int64),
        "distance": distance,
        "decoy": decoy,
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
        distance=a["distance"],
        decoy=a["decoy"],
        returns=a["returns"],
        split=a["split"],
    )
