"""mmcourse.image: decoding, resizing, train-only channel statistics, augmentation."""

import numpy as np
import pytest
import torch
from torchvision.transforms import v2

from mmcourse import image


def _batch(n=8, c=3, h=12, w=10, seed=0):
    g = torch.Generator().manual_seed(seed)
    scale = torch.linspace(0.3, 1.0, c)[:, None, None]
    return torch.rand(n, c, h, w, generator=g) * scale


def test_to_float_image_decodes_uint8_channels_first():
    rgb = np.zeros((5, 7, 3), dtype=np.uint8)
    rgb[..., 0] = 255
    rgb[2, 3] = [0, 51, 102]
    out = image.to_float_image(rgb)
    assert out.shape == (3, 5, 7) and out.dtype == torch.float32 and type(out) is torch.Tensor
    assert out[0].max() == 1.0 and torch.allclose(out[:, 2, 3], torch.tensor([0.0, 0.2, 0.4]))
    assert image.to_float_image(np.zeros((4, 4), np.uint8)).shape == (1, 4, 4)
    assert image.to_float_image(np.zeros((4, 4, 4), np.uint8)).shape == (3, 4, 4)  # alpha dropped


def test_resize_shapes_and_antialias():
    x = _batch()
    assert image.resize(x, (6, 5)).shape == (8, 3, 6, 5)
    assert image.resize(x[0], 6).shape == (3, 7, 6)  # shorter side -> 6, aspect kept
    # shrinking a fine checkerboard: antialiasing averages it to grey instead of aliasing
    board = (torch.arange(32)[:, None] + torch.arange(32)[None, :]) % 2
    small = image.resize(board.float()[None, None], (8, 8))
    assert torch.allclose(small, torch.full_like(small, 0.5), atol=0.05)


def test_channel_stats_and_normalize():
    x = _batch(n=20)
    mean, std = image.channel_stats(x)
    torch.testing.assert_close(mean, x.mean(dim=(0, 2, 3)))
    torch.testing.assert_close(std, x.std(dim=(0, 2, 3), unbiased=False))
    z = image.normalize(x, mean, std)
    torch.testing.assert_close(z.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-5, rtol=0)
    torch.testing.assert_close(z.std(dim=(0, 2, 3), unbiased=False), torch.ones(3))
    torch.testing.assert_close(image.denormalize(z, mean, std), x)
    # same as torchvision's Normalize
    torch.testing.assert_close(v2.Normalize(mean.tolist(), std.tolist())(x), z)
    # statistics of another split differ: normalising val with its own stats would hide that
    val = _batch(n=20, seed=1) + 0.1
    assert image.normalize(val, mean, std).mean() > 0.2


def test_augmentation_is_per_sample_reproducible_and_label_safe_for_digits():
    x = _batch(n=16, h=16, w=16)
    aug = image.train_augmentation(12, color_jitter=0.2, erase=0.5)
    a = image.apply_per_sample(aug, x, seed=0)
    assert a.shape == (16, 3, 12, 12) and type(a) is torch.Tensor
    assert torch.equal(a, image.apply_per_sample(aug, x, seed=0))
    assert not torch.equal(a, image.apply_per_sample(aug, x, seed=1))
    # per sample: identical inputs get different random crops
    same = x[:1].repeat(6, 1, 1, 1)
    out = image.apply_per_sample(image.train_augmentation(12), same, seed=0)
    assert len({o.sum().item() for o in out}) > 1
    # the global RNG is untouched
    torch.manual_seed(5)
    expected = torch.rand(1)
    torch.manual_seed(5)
    image.apply_per_sample(aug, x, seed=3)
    assert torch.equal(torch.rand(1), expected)
    # digits preset: no flip, so an asymmetric image is never mirrored
    digits = torch.zeros(32, 1, 8, 8)
    digits[:, :, :, :2] = 1.0  # a bar on the left
    kept = image.apply_per_sample(image.train_augmentation(hflip=False), digits, seed=0)
    assert torch.equal(kept, digits)
    flipped = image.apply_per_sample(image.train_augmentation(hflip=True), digits, seed=0)
    assert (flipped[:, :, :, -1].sum(dim=(1, 2)) > 0).any()


def test_train_and_eval_transforms_normalise():
    x = _batch(n=4, h=16, w=16)
    mean, std = image.channel_stats(x)
    ev = image.eval_transform(8, mean, std)
    out = ev(x[0])
    assert out.shape == (3, 8, 8)
    torch.testing.assert_close(out, image.normalize(image.resize(x[0], 8), mean, std))
    aug = image.train_augmentation(8, mean=mean, std=std)
    assert image.apply_per_sample(aug, x).shape == (4, 3, 8, 8)


def test_sample_photos_are_real_and_offline():
    photos = image.load_sample_photos(size=32)
    assert set(photos) == {"chelsea", "astronaut", "coffee", "grace_hopper"}
    for img in photos.values():
        assert img.shape == (3, 32, 32) and 0 <= img.min() and img.max() <= 1
        assert img.std() > 0.05  # a real picture, not a blank


def _varying_crop():
    heights = iter([4, 3, 4])
    return lambda img: img[:, : next(heights)]


@pytest.mark.parametrize(
    "call,error,match",
    [
        (lambda: image.to_float_image(np.zeros((4, 4, 3), np.float32)), TypeError, "uint8"),
        (lambda: image.to_float_image(np.zeros((4, 4, 5), np.uint8)), ValueError, "image must"),
        (lambda: image.channel_stats(torch.rand(3, 4, 4)), ValueError, r"\(N, C, H, W\)"),
        (lambda: image.channel_stats(torch.rand(0, 3, 4, 4)), ValueError, "empty batch"),
        (lambda: image.channel_stats(torch.zeros(2, 3, 4, 4, dtype=torch.uint8)), TypeError, "fl"),
        (lambda: image.channel_stats([1, 2]), TypeError, "torch.Tensor"),
        (lambda: image.normalize(torch.rand(2, 3, 4, 4), [0.5] * 2, [1] * 3), ValueError, "3 val"),
        (lambda: image.normalize(torch.rand(2, 3, 4, 4), [0.5] * 3, [1, 0, 1]), ValueError, "std"),
        (lambda: image.normalize(torch.rand(4, 4), [0.5], [1.0]), ValueError, "images must"),
        (lambda: image.resize(torch.rand(3, 4, 4), 0), ValueError, "size"),
        (lambda: image.train_augmentation(crop_scale=(0.8, 0.5)), ValueError, "crop_scale"),
        (lambda: image.train_augmentation(erase=2), ValueError, "erase"),
        (lambda: image.train_augmentation(translate=1.5), ValueError, "translate"),
        (lambda: image.train_augmentation(mean=[0.5]), ValueError, "both mean and std"),
        (lambda: image.eval_transform(mean=[0.5]), ValueError, "both mean and std"),
        (lambda: image.apply_per_sample(5, torch.rand(2, 1, 4, 4)), TypeError, "callable"),
        (
            lambda: image.apply_per_sample(_varying_crop(), torch.rand(3, 1, 4, 4)),
            ValueError,
            "shapes",
        ),
    ],
)
def test_clear_errors(call, error, match):
    with pytest.raises(error, match=match):
        call()
