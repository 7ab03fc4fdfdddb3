"""Notebook 11's exercises: typical wrong answers get a feedback that names the mistake."""

import pytest
import torch

from mmcourse.exercises import get


def _feedback(key, answer) -> str:
    with pytest.raises(AssertionError) as info:
        get(key).check(answer)
    return str(info.value)


@pytest.mark.parametrize(
    "wrong, words",
    [
        (lambda size, patch, strategy: size // patch, "one side"),
        (lambda size, patch, strategy: (size // patch) ** 2 + 1, "drops the [CLS]"),
        (lambda size, patch, strategy: (size // patch) ** 2, "keeps the [CLS]"),
        (lambda size, patch, strategy: size * size // patch, "not size^2 / patch"),
    ],
)
def test_image_tokens_feedback(wrong, words):
    assert words in _feedback("11.image_tokens", wrong)


def _shifted(ids, n):
    labels = torch.full_like(ids, -100)
    labels[-n - 1 : -1] = ids[-n:]
    return labels


def _without_eos(ids, n):
    labels = torch.full_like(ids, -100)
    labels[-n:-1] = ids[-n:-1]
    return labels


def _zeros(ids, n):
    labels = torch.zeros_like(ids)
    labels[-n:] = ids[-n:]
    return labels


@pytest.mark.parametrize(
    "wrong, words",
    [
        (lambda ids, n: ids, "the prompt must be -100"),
        (_shifted, "do not shift"),
        (_without_eos, "<eos> included"),
        (_zeros, "not 0"),
    ],
)
def test_answer_labels_feedback(wrong, words):
    assert words in _feedback("11.answer_labels", wrong)


def test_nb11_solutions_pass():
    for key in ("11.image_tokens", "11.answer_labels"):
        exercise = get(key)
        exercise.check(exercise.solution())
