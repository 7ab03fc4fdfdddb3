"""seed_everything, get_device, env_report and the claims helper."""

import os
import random

import numpy as np
import pytest
import torch

import mmcourse
from mmcourse.check import claim, claim_between, claim_close


def test_seed_everything_repeats_every_generator():
    def draw():
        return random.random(), np.random.rand(), torch.rand(1).item()

    mmcourse.seed_everything(3)
    first = draw()
    mmcourse.seed_everything(3)
    assert draw() == first
    mmcourse.seed_everything(4)
    assert draw() != first


@pytest.mark.parametrize("bad", [-1, 1.5, "1", True])
def test_seed_everything_rejects_bad_seeds(bad):
    with pytest.raises(ValueError, match="seed"):
        mmcourse.seed_everything(bad)


def test_get_device(monkeypatch):
    assert mmcourse.get_device("cpu").type == "cpu"
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert mmcourse.get_device().type == expected
    monkeypatch.setenv("MMCOURSE_DEVICE", "cpu")
    assert mmcourse.get_device().type == "cpu"
    with pytest.raises(ValueError, match="prefer"):
        mmcourse.get_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA"):
            mmcourse.get_device("cuda")


def test_env_report(capsys):
    report = mmcourse.env_report()
    assert report["torch"] == torch.__version__
    assert report["torch threads"] == torch.get_num_threads()
    assert "torchvision" in capsys.readouterr().out


def test_claim_prints_a_tick_with_the_figures(capsys):
    assert None is claim(
        0.96 > 0.81, "fusion {fused:.1%} beats image {image:.1%}", fused=0.96, image=0.81
    )
    assert capsys.readouterr().out == "✓ fusion 96.0% beats image 81.0%\n"


def test_failed_claim_explains_what_no_longer_holds():
    with pytest.raises(AssertionError) as info:
        claim(0.5 > 0.8, "fusion {fused:.1%} beats image {image:.1%}", fused=0.5, image=0.8)
    text = str(info.value)
    assert "no longer holds" in text and "fusion 50.0% beats image 80.0%" in text
    assert "fused=0.5" in text and "image=0.8" in text


def test_claim_rejects_a_message_that_does_not_match_its_figures():
    with pytest.raises(ValueError, match="does not match"):
        claim(True, "accuracy {acc:.1%}", accuracy=0.9)
    with pytest.raises(TypeError):
        claim(True, "")


def test_claim_between_and_close(capsys):
    claim_between(0.5, 0.4, 0.6, "{value} in [{low}, {high}]")
    with pytest.raises(AssertionError):
        claim_between(0.7, 0.4, 0.6, "{value} in [{low}, {high}]")
    claim_close(1.0 + 1e-9, 1.0, "{actual} equals {expected}")
    with pytest.raises(AssertionError):
        claim_close(1.1, 1.0, "{actual} equals {expected}", rel=1e-3)


def test_threads_are_capped_at_the_available_cpus(monkeypatch):
    from mmcourse.utils import available_cpus, limit_threads

    before = torch.get_num_threads()
    try:
        assert 1 <= available_cpus() <= (os.cpu_count() or 1)
        assert limit_threads() <= available_cpus()
        monkeypatch.setenv("MMCOURSE_THREADS", "1")
        assert limit_threads() == 1 and torch.get_num_threads() == 1
        monkeypatch.setenv("MMCOURSE_THREADS", "0")
        with pytest.raises(ValueError, match="MMCOURSE_THREADS"):
            limit_threads()
    finally:
        torch.set_num_threads(before)


def test_seed_offset_moves_every_seed_the_course_sets(monkeypatch):
    from mmcourse.utils import seed_offset, seeded_generator

    monkeypatch.delenv("MMCOURSE_SEED_OFFSET", raising=False)
    assert seed_offset() == 0 and mmcourse.seed_everything(5) == 5
    base = torch.rand(3, generator=seeded_generator(5))
    monkeypatch.setenv("MMCOURSE_SEED_OFFSET", "2")
    assert mmcourse.seed_everything(5) == 7
    assert torch.equal(torch.rand(3, generator=seeded_generator(3)), base)  # 3 + 2 = 5
    assert not torch.equal(torch.rand(3, generator=seeded_generator(5)), base)
    for bad in ("-1", "one", "1.5"):
        monkeypatch.setenv("MMCOURSE_SEED_OFFSET", bad)
        with pytest.raises(ValueError, match="MMCOURSE_SEED_OFFSET"):
            mmcourse.seed_everything(0)


def test_the_course_uses_one_thread_unless_told_otherwise(monkeypatch):
    from mmcourse.utils import available_cpus, course_threads

    monkeypatch.delenv("MMCOURSE_THREADS", raising=False)
    assert course_threads() == 1
    monkeypatch.setenv("MMCOURSE_THREADS", "64")
    assert course_threads() == available_cpus()  # never more threads than CPUs
    for bad in ("0", "-2", "two"):
        monkeypatch.setenv("MMCOURSE_THREADS", bad)
        with pytest.raises(ValueError, match="MMCOURSE_THREADS"):
            course_threads()
