"""Tokenisation, vocabulary and encoding."""

import pytest
import torch

from mmcourse.text import Vocab, tokenize


def test_tokenize_splits_paths_like_keras_and_leaks_the_folder_name():
    assert tokenize("images/cat/cat_0042.png") == ["images", "cat", "cat", "0042", "png"]
    assert tokenize("A Ginger pet, PURRING!") == ["a", "ginger", "pet", "purring"]


def test_vocab_is_built_by_frequency_and_maps_unknown_words():
    vocab = Vocab.build(["a cat a dog", "a cat"])
    assert vocab.tokens == ["<pad>", "<unk>", "a", "cat", "dog"]
    assert vocab.ids("a zebra") == [2, 1]
    assert Vocab.build(["a cat a dog"], min_freq=2).tokens == ["<pad>", "<unk>", "a"]
    assert len(Vocab.build(["a b c d e"], max_size=4)) == 4


def test_encode_pads_truncates_and_masks():
    vocab = Vocab.build(["a cat sat", "a dog"])
    ids, mask = vocab.encode(["a cat sat", "a dog"])
    assert ids.shape == (2, 3) and ids.dtype == torch.long
    assert mask.tolist() == [[True, True, True], [True, True, False]]
    ids, mask = vocab.encode(["a cat sat"], max_len=2)
    assert ids.tolist() == [[vocab.index["a"], vocab.index["cat"]]]
    assert vocab.decode(vocab.encode(["a dog"], max_len=4)[0][0]) == "a dog"


@pytest.mark.parametrize(
    "bad, error", [("a cat", TypeError), ([1, 2], TypeError), ([], ValueError)]
)
def test_bad_texts_are_named(bad, error):
    with pytest.raises(error, match="texts"):
        Vocab.build(bad)


def test_bad_max_len_and_tokens():
    vocab = Vocab.build(["a"])
    with pytest.raises(ValueError, match="max_len"):
        vocab.encode(["a"], max_len=0)
    with pytest.raises(ValueError, match="<pad>"):
        Vocab(["a", "b"])
    with pytest.raises(TypeError, match="text"):
        tokenize(3)
