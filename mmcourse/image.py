"""Image preprocessing: decode, resize, normalise with training statistics, augment.

Thin, checked wrappers around ``torchvision.transforms.v2`` (the well-kept library does the
pixel work) plus the two things a course must get right and libraries leave to the user:
per-channel statistics computed on the TRAINING split only, and augmentation that is applied
per sample, reproducibly, only to training data.

Shapes: one image (C, H, W), a batch (N, C, H, W), float values in [0, 1] before normalising.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torchvision.transforms import v2

from mmcourse._checks import check_int, check_real, check_seed
from mmcourse.splits import Standardizer
from mmcourse.utils import offset_seed

__all__ = [
    "apply_per_sample",
    "channel_stats",
    "denormalize",
    "eval_transform",
    "load_sample_photos",
    "normalize",
    "resize",
    "to_float_image",
    "train_augmentation",
]


def _check_batch(images, name: str = "images") -> torch.Tensor:
    if isinstance(images, np.ndarray):
        images = torch.from_numpy(images)
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor (N, C, H, W), got {type(images).__name__}")
    if images.ndim != 4:
        raise ValueError(f"{name} must have shape (N, C, H, W), got {tuple(images.shape)}")
    if images.shape[0] == 0:
        raise ValueError(f"{name} is an empty batch (shape {tuple(images.shape)})")
    if not images.is_floating_point():
        raise TypeError(
            f"{name} must be floating point in [0, 1], got {images.dtype}; "
            "decode with to_float_image first"
        )
    return images


def to_float_image(image) -> torch.Tensor:
    """Decode a uint8 picture (H, W, 3) or (H, W) as loaded by skimage/matplotlib/PIL into a
    float32 tensor (C, H, W) in [0, 1] (channels first, as PyTorch expects)."""
    if isinstance(image, torch.Tensor):
        image = image.numpy()
    image = np.asarray(image)
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3 or image.shape[-1] not in (1, 3, 4):
        raise ValueError(f"image must be (H, W), (H, W, 3) or (H, W, 4), got {image.shape}")
    if image.size == 0:
        raise ValueError(f"image is empty (shape {image.shape})")
    if image.dtype != np.uint8:
        raise TypeError(f"image must be uint8 (0..255) as decoded from a file, got {image.dtype}")
    decode = v2.Compose([v2.ToImage(), v2.ToDtype(torch.float32, scale=True)])
    return decode(np.array(image[:, :, :3])).as_subclass(torch.Tensor)  # copy: writable


def resize(images: torch.Tensor, size: int | Sequence[int]) -> torch.Tensor:
    """Resize (..., C, H, W) to ``size`` (int: the shorter side; (h, w): exactly), bilinear with
    antialiasing so that shrinking does not alias fine detail into moiré."""
    _check_image_tensor(images, allow_uint8=True)
    if isinstance(size, int):
        size = [size]
    if (
        not isinstance(size, (list, tuple))
        or len(size) not in (1, 2)
        or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in size)
    ):
        raise ValueError(f"size must be a positive int or (height, width), got {size!r}")
    return v2.functional.resize(images, list(size), antialias=True)


def channel_stats(images) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and standard deviation (C,), averaged over samples and pixels.

    Compute them on the TRAINING images only: using validation or test images would let the
    evaluation data shape the preprocessing (a mild but real leak).
    """
    images = _check_batch(images)
    if not bool(torch.isfinite(images).all()):
        raise ValueError("images contain NaN/inf: clean them (splits.find_nonfinite) first")
    scaler = Standardizer(dims=(0, 2, 3)).fit(images)
    as_t = dict(dtype=images.dtype)
    return (torch.as_tensor(scaler.mean.ravel(), **as_t),
            torch.as_tensor(scaler.std.ravel(), **as_t))  # fmt: skip


def _check_image_tensor(images, allow_uint8: bool = False) -> None:
    """images: a (C, H, W) or (N, ..., C, H, W) tensor with pixels, float (or uint8)."""
    if not isinstance(images, torch.Tensor) or images.ndim < 3:
        got = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"images must be a tensor of shape (C, H, W) or (N, C, H, W), got {got}")
    if not (images.is_floating_point() or (allow_uint8 and images.dtype == torch.uint8)):
        raise TypeError(
            f"images must be floating point in [0, 1]{' (or uint8)' if allow_uint8 else ''}, "
            f"got {images.dtype}; decode with to_float_image or x.float() / 255 first"
        )
    if images.numel() == 0:
        raise ValueError(f"images is empty (shape {tuple(images.shape)})")


def _as_stats(value, name: str, images) -> torch.Tensor:
    try:
        stat = torch.as_tensor(value, dtype=images.dtype, device=images.device).reshape(-1)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise TypeError(f"{name} must be numbers, one per channel, got {value!r:.60}") from exc
    if not bool(torch.isfinite(stat).all()):
        raise ValueError(f"{name} must be finite numbers, got {stat.tolist()}")
    return stat


def _check_stats(images, mean, std):
    _check_image_tensor(images)
    mean = _as_stats(mean, "mean", images)
    std = _as_stats(std, "std", images)
    channels = images.shape[-3]
    if mean.numel() != channels or std.numel() != channels:
        raise ValueError(f"mean and std need {channels} values (one per channel), "
                         f"got {mean.numel()} and {std.numel()}")  # fmt: skip
    if (std <= 0).any():
        raise ValueError(f"std must be positive, got {std.tolist()}")
    return mean[:, None, None], std[:, None, None]


def normalize(images: torch.Tensor, mean, std) -> torch.Tensor:
    """(x - mean_c) / std_c per channel c: the training images get mean 0, std 1 per channel."""
    mean, std = _check_stats(images, mean, std)
    return (images - mean) / std


def denormalize(images: torch.Tensor, mean, std) -> torch.Tensor:
    """Undo :func:`normalize` (to display a normalised image)."""
    mean, std = _check_stats(images, mean, std)
    return images * std + mean


def train_augmentation(
    size: int | None = None,
    crop_scale: tuple[float, float] = (0.6, 1.0),
    hflip: bool = True,
    rotation: float = 0.0,
    translate: float = 0.0,
    color_jitter: float = 0.0,
    erase: float = 0.0,
    mean=None,
    std=None,
) -> v2.Compose:
    """A random augmentation pipeline for TRAINING images (C, H, W) float in [0, 1].

    Only label-preserving changes belong here: flipping a cat leaves a cat, but mirroring a
    handwritten 2 or rotating a 6 by 180 degrees does not leave the same digit — so for digits
    use ``hflip=False`` and small ``rotation``/``translate``. ``size`` enables a random
    resized crop (scale ``crop_scale`` of the area); ``erase`` is the probability of erasing a
    random rectangle (simulated occlusion); ``mean``/``std`` append a normalisation.
    """
    if size is not None:
        check_int(size, "size")
    if (
        not isinstance(crop_scale, (tuple, list))
        or len(crop_scale) != 2
        or not all(isinstance(c, (int, float)) and not isinstance(c, bool) for c in crop_scale)
        or not 0 < crop_scale[0] <= crop_scale[1] <= 1
    ):
        raise ValueError(f"crop_scale must satisfy 0 < low <= high <= 1, got {crop_scale}")
    for name, value in (("color_jitter", color_jitter), ("erase", erase)):
        check_real(value, name, 0.0, 1.0)
    check_real(rotation, "rotation", low=0.0)
    check_real(translate, "translate", 0.0, 1.0, high_open=True)
    steps = []
    if size is not None:
        steps.append(v2.RandomResizedCrop(size, scale=crop_scale, antialias=True))
    if hflip:
        steps.append(v2.RandomHorizontalFlip(p=0.5))
    if rotation or translate:
        steps.append(v2.RandomAffine(degrees=rotation, translate=(translate, translate)))
    if color_jitter:
        c = color_jitter
        steps.append(v2.ColorJitter(brightness=c, contrast=c, saturation=c, hue=min(c, 0.5) / 4))
    if erase:
        steps.append(v2.RandomErasing(p=erase, scale=(0.05, 0.2), value=0.0))
    if (mean is None) != (std is None):
        raise ValueError("give both mean and std, or neither")
    if mean is not None:
        steps.append(v2.Normalize(mean=list(map(float, mean)), std=list(map(float, std))))
    return v2.Compose(steps or [v2.Identity()])


def eval_transform(size: int | None = None, mean=None, std=None) -> v2.Compose:
    """The deterministic counterpart for validation/test: resize (+ centre crop), normalise."""
    if size is not None:
        check_int(size, "size")
    steps = [v2.Resize(size, antialias=True), v2.CenterCrop(size)] if size is not None else []
    if (mean is None) != (std is None):
        raise ValueError("give both mean and std, or neither")
    if mean is not None:
        steps.append(v2.Normalize(mean=list(map(float, mean)), std=list(map(float, std))))
    return v2.Compose(steps or [v2.Identity()])


def apply_per_sample(transform, images, seed: int | None = 0) -> torch.Tensor:
    """Apply ``transform`` to each image of a batch (N, C, H, W) separately.

    v2 transforms draw ONE set of random parameters per call, so calling them on a whole
    batch would flip/crop every image identically. With ``seed`` the result is reproducible
    and the global random state is left untouched.
    """
    images = _check_batch(images)
    if not callable(transform):
        raise TypeError(f"transform must be callable, got {type(transform).__name__}")
    if seed is not None:
        check_seed(seed)
    with torch.random.fork_rng(devices=[]):
        if seed is not None:
            torch.manual_seed(offset_seed(seed))  # moves with the robustness run
        out = [torch.as_tensor(transform(img)) for img in images]
    shapes = {tuple(o.shape) for o in out}
    if len(shapes) != 1:
        raise ValueError(f"transform produced images of different shapes {sorted(shapes)}; "
                         "add a resize or crop to a fixed size")  # fmt: skip
    return torch.stack(out).as_subclass(torch.Tensor)


def load_sample_photos(size: int | None = None) -> dict[str, torch.Tensor]:
    """Real photos shipped inside scikit-image and matplotlib (no download): chelsea the cat,
    the astronaut Eileen Collins, a cup of coffee, and Grace Hopper. Float (3, H, W) in [0, 1];
    ``size`` resizes the shorter side and centre-crops to a square."""
    import matplotlib.pyplot as plt
    import skimage.data
    from matplotlib import cbook

    photos = {name: getattr(skimage.data, name)() for name in ("chelsea", "astronaut", "coffee")}
    with cbook.get_sample_data("grace_hopper.jpg") as f:
        photos["grace_hopper"] = plt.imread(f)
    out = {name: to_float_image(img) for name, img in photos.items()}
    if size is not None:
        crop = eval_transform(size)
        out = {name: crop(img).as_subclass(torch.Tensor) for name, img in out.items()}
    return out
