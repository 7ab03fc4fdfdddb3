"""Text preprocessing: tokenisation, a vocabulary built on the training split, and encoding
to padded id tensors with masks."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence

import torch

PAD, UNK = "<pad>", "<unk>"
_TOKEN = re.compile(r"[a-z]+|[0-9]+")


def tokenize(text: str) -> list[str]:
    """Lower-case words and numbers; punctuation, slashes and underscores separate tokens.

    Like Keras' Tokenizer (which the seed article used), a file path such as
    "images/cat/cat_0042.png" becomes ["images", "cat", "cat", "0042", "png"]: the folder
    name, and with it the label, ends up in the text.
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    return _TOKEN.findall(text.lower())


def _check_texts(texts) -> list[str]:
    if isinstance(texts, str) or not isinstance(texts, Iterable):
        raise TypeError("texts must be a list of strings (not a single string)")
    texts = list(texts)
    bad = [i for i, t in enumerate(texts) if not isinstance(t, str)]
    if bad:
        raise TypeError(
            f"texts must contain only strings; item {bad[0]} is {type(texts[bad[0]]).__name__}"
        )
    return texts


class Vocab:
    """Maps tokens to integer ids. Id 0 is padding, id 1 stands for unknown words.

    Build it on the training split only: words seen only in validation or test data must
    map to <unk>, exactly as unseen words will at deployment.
    """

    def __init__(self, tokens: Sequence[str]):
        if list(tokens[:2]) != [PAD, UNK]:
            raise ValueError(f"tokens must start with {PAD!r} and {UNK!r}")
        if len(set(tokens)) != len(tokens):
            raise ValueError("tokens must be unique")
        self.tokens = list(tokens)
        self.index = {t: i for i, t in enumerate(self.tokens)}

    @classmethod
    def build(cls, texts, min_freq: int = 1, max_size: int | None = None) -> Vocab:
        """Vocabulary of the tokens in ``texts`` seen at least ``min_freq`` times, most
        frequent first (ties alphabetical, so the result is deterministic)."""
        texts = _check_texts(texts)
        if not texts:
            raise ValueError("texts is empty: a vocabulary needs at least one text")
        if min_freq < 1:
            raise ValueError(f"min_freq must be >= 1, got {min_freq}")
        counts = Counter(tok for text in texts for tok in tokenize(text))
        ranked = sorted(
            (t for t, c in counts.items() if c >= min_freq), key=lambda t: (-counts[t], t)
        )
        if max_size is not None:
            ranked = ranked[: max(0, max_size - 2)]
        return cls([PAD, UNK, *ranked])

    def __len__(self) -> int:
        return len(self.tokens)

    def __contains__(self, token: str) -> bool:
        return token in self.index

    def ids(self, text: str) -> list[int]:
        """Token ids of one text; unknown words map to the <unk> id (1)."""
        return [self.index.get(tok, 1) for tok in tokenize(text)]

    def encode(self, texts, max_len: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Encode texts as ``ids`` (B, L) long, padded with 0 (or truncated) to ``max_len``
        (default: the longest text), and ``mask`` (B, L) bool, True at real tokens."""
        texts = _check_texts(texts)
        if not texts:
            raise ValueError("texts is empty: nothing to encode")
        rows = [self.ids(t) for t in texts]
        if max_len is None:
            max_len = max(1, max(len(r) for r in rows))
        if not isinstance(max_len, int) or max_len < 1:
            raise ValueError(f"max_len must be a positive int, got {max_len!r}")
        ids = torch.zeros(len(rows), max_len, dtype=torch.long)
        for i, row in enumerate(rows):
            row = row[:max_len]
            ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
        return ids, ids != 0

    def decode(self, ids) -> str:
        """Tokens of a 1-D id sequence, padding dropped."""
        return " ".join(self.tokens[int(i)] for i in ids if int(i) != 0)


# ----------------------------------------------------------------------------- additions (nb01)
_TAG = re.compile(r"<[^>]+>")
_URL = re.compile(r"(?:https?://|www\.)\S+")


def clean_text(text: str) -> str:
    """Normalise raw text before tokenising: Unicode NFKC (full-width letters, ligatures),
    HTML tags and URLs removed, whitespace collapsed. Case is left to :func:`tokenize`."""
    import unicodedata

    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    text = unicodedata.normalize("NFKC", text)
    text = _URL.sub(" ", _TAG.sub(" ", text))
    return " ".join(text.split())


def unknown_rate(vocab: Vocab, texts) -> float:
    """Fraction of the tokens of ``texts`` that ``vocab`` maps to <unk> (0 = all known)."""
    texts = _check_texts(texts)
    ids = [i for t in texts for i in vocab.ids(t)]
    if not ids:
        raise ValueError("texts contain no tokens")
    return sum(i == 1 for i in ids) / len(ids)


def bag_of_words(vocab: Vocab, texts, binary: bool = True) -> torch.Tensor:
    """Count (or, with ``binary``, presence) matrix (B, len(vocab)) float32: word order is
    thrown away. Column 1 counts unknown words; column 0 (padding) stays 0."""
    texts = _check_texts(texts)
    if not texts:
        raise ValueError("texts is empty: nothing to encode")
    out = torch.zeros(len(texts), len(vocab))
    for row, text in enumerate(texts):
        for i in vocab.ids(text):
            out[row, i] += 1
    return out.clamp_max(1) if binary else out
