"""Additions to mmcourse.text used by notebook 01: cleaning, unknown-word rate, bag of words."""

import pytest
import torch
from sklearn.feature_extraction.text import CountVectorizer

from mmcourse.text import Vocab, bag_of_words, clean_text, tokenize, unknown_rate


def test_clean_text():
    raw = "  Ｃａｔ <b>on</b> the\tmat!\n see https://example.com/x?y=1 ﬁne  "
    assert clean_text(raw) == "Cat on the mat! see fine"
    assert tokenize(clean_text(raw)) == ["cat", "on", "the", "mat", "see", "fine"]
    with pytest.raises(TypeError, match="text must be a str"):
        clean_text(None)


def test_unknown_rate_train_vs_test():
    vocab = Vocab.build(["a cat on a mat", "a dog"])
    assert unknown_rate(vocab, ["a cat"]) == 0.0
    assert unknown_rate(vocab, ["a zebra on a sofa"]) == pytest.approx(2 / 5)
    with pytest.raises(ValueError, match="no tokens"):
        unknown_rate(vocab, ["!!!"])


def test_bag_of_words_matches_sklearn_counts():
    texts = ["the cat sat on the cat mat", "a dog ran", "the dog and the cat"]
    vocab = Vocab.build(texts)
    counts = bag_of_words(vocab, texts, binary=False)
    ref = CountVectorizer(token_pattern=r"[a-z]+|[0-9]+").fit(texts)
    dense = ref.transform(texts).toarray()
    for word, col in ref.vocabulary_.items():
        assert torch.equal(counts[:, vocab.index[word]], torch.tensor(dense[:, col]).float())
    binary = bag_of_words(vocab, ["cat cat zebra"])
    assert binary[0, vocab.index["cat"]] == 1 and binary[0, 1] == 1 and binary[0, 0] == 0
    assert binary.shape == (1, len(vocab))
    with pytest.raises(TypeError, match="not a single string"):
        bag_of_words(vocab, "the cat")
    with pytest.raises(ValueError, match="empty"):
        bag_of_words(vocab, [])
