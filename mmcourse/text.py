"""Text preprocessing: tokenisation, a vocabulary built on the training split, and encoding
to padded id tensors with masks."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np
import torch

PAD, UNK = "<pad>", "<unk>"
# Scripts written without spaces between words: each character is one token (as in BERT's
# basic tokenizer): CJK ideographs (with extensions and compatibility forms), kana.
_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002fa1f"
# A word: letters of any script (\w minus digits and "_") and combining accents, so that
# "café" written with a combining acute (e + U+0301) stays one word; numbers: digit runs.
_TOKEN = re.compile(rf"[{_CJK}]|(?:(?![{_CJK}])[^\W\d_]|[\u0300-\u036f])+|\d+")


def tokenize(text: str) -> list[str]:
    """Lower-case words and numbers; punctuation, slashes and underscores separate tokens.

    Like Keras' Tokenizer (which the seed article used), a file path such as
    "images/cat/cat_0042.png" becomes ["images", "cat", "cat", "0042", "png"]: the folder
    name, and with it the label, ends up in the text.

    Unicode-aware: letters of every script count, accents included ("café naïve" ->
    ["café", "naïve"]), and Chinese or Japanese, written without spaces, is split into
    characters ("一只猫" -> ["一", "只", "猫"]). English text tokenises exactly as with the
    ASCII rule ``[a-z]+|[0-9]+``.
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
        if isinstance(tokens, str) or not isinstance(tokens, Sequence):
            raise TypeError(f"tokens must be a list of str tokens, got {type(tokens).__name__}")
        bad = next((t for t in tokens if not isinstance(t, str)), None)
        if bad is not None:
            raise TypeError(f"tokens must all be str, got {bad!r}")
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
        if isinstance(min_freq, bool) or not isinstance(min_freq, int) or min_freq < 1:
            raise ValueError(f"min_freq must be an int >= 1, got {min_freq!r}")
        if max_size is not None and (
            isinstance(max_size, bool) or not isinstance(max_size, int) or max_size < 3
        ):
            raise ValueError(
                f"max_size must be None or an int >= 3 (<pad>, <unk> and one word), "
                f"got {max_size!r}"
            )
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
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        return [self.index.get(tok, 1) for tok in tokenize(text)]

    def encode(self, texts, max_len: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Encode texts as ``ids`` (B, L) long, padded with 0 (or truncated) to ``max_len``
        (default: the longest text), and ``mask`` (B, L) bool, True at real tokens.

        A text without a single token (empty, or only punctuation) is refused: its row would
        be all padding, which no encoder can read (a mean over zero tokens is undefined).
        """
        texts = _check_texts(texts)
        if not texts:
            raise ValueError("texts is empty: nothing to encode")
        rows = [self.ids(t) for t in texts]
        empty = [i for i, row in enumerate(rows) if not row]
        if empty:
            raise ValueError(
                f"texts[{empty[0]}] = {texts[empty[0]]!r} has no token (word or number) to "
                f"encode ({len(empty)} such text(s)); drop it or give it a word, e.g. {UNK!r}"
            )
        if max_len is None:
            max_len = max(1, max(len(r) for r in rows))
        if isinstance(max_len, bool) or not isinstance(max_len, int) or max_len < 1:
            raise ValueError(f"max_len must be a positive int, got {max_len!r}")
        ids = torch.zeros(len(rows), max_len, dtype=torch.long)
        for i, row in enumerate(rows):
            row = row[:max_len]
            ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
        return ids, ids != 0

    def decode(self, ids) -> str:
        """Tokens of a 1-D id sequence, padding dropped."""
        if isinstance(ids, torch.Tensor):
            if ids.ndim != 1 or ids.is_floating_point() or ids.dtype == torch.bool:
                raise ValueError(
                    f"ids must be a 1-D integer sequence, got a {ids.dtype} tensor of shape "
                    f"{tuple(ids.shape)}"
                )
            ids = ids.tolist()
        if isinstance(ids, (str, bytes)) or not isinstance(ids, Iterable):
            raise TypeError(f"ids must be a 1-D sequence of token ids, got {ids!r:.60}")
        ids = list(ids)
        bad = [
            i for i in ids if isinstance(i, bool) or not isinstance(i, (int, np.integer))
            or not 0 <= i < len(self.tokens)
        ]  # fmt: skip
        if bad:
            raise ValueError(
                f"ids must be token ids in [0, {len(self.tokens)}) (the vocabulary's size), "
                f"got {bad[0]!r}"
            )
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


def _check_vocab(vocab) -> Vocab:
    if not isinstance(vocab, Vocab):
        raise TypeError(f"vocab must be a mmcourse.text.Vocab, got {type(vocab).__name__}")
    return vocab


def unknown_rate(vocab: Vocab, texts) -> float:
    """Fraction of the tokens of ``texts`` that ``vocab`` maps to <unk> (0 = all known)."""
    _check_vocab(vocab)
    texts = _check_texts(texts)
    ids = [i for t in texts for i in vocab.ids(t)]
    if not ids:
        raise ValueError("texts contain no tokens")
    return sum(i == 1 for i in ids) / len(ids)


def bag_of_words(vocab: Vocab, texts, binary: bool = True) -> torch.Tensor:
    """Count (or, with ``binary``, presence) matrix (B, len(vocab)) float32: word order is
    thrown away. Column 1 counts unknown words; column 0 (padding) stays 0."""
    _check_vocab(vocab)
    texts = _check_texts(texts)
    if not texts:
        raise ValueError("texts is empty: nothing to encode")
    out = torch.zeros(len(texts), len(vocab))
    for row, text in enumerate(texts):
        for i in vocab.ids(text):
            out[row, i] += 1
    return out.clamp_max(1) if binary else out


# ----------------------------------------------------------------------------- Chinese (nb01)
# Chinese renderings of the phrases from which the cats-vs-dogs captions are composed
# (mmcourse.datasets.cats_dogs), so that the course has bilingual captions to tokenise.
_ZH_FUR = {"black": "黑色", "white": "白色", "ginger": "橘色", "grey": "灰色", "brown": "棕色"}
_ZH_NOUN = {"pet": "宠物", "animal": "动物", "furry friend": "毛茸茸的朋友"}
_ZH_POSE = {"sitting": "坐着", "standing": "站着", "lying down": "躺着"}
_ZH_PLACE = {
    "on the grass": "在草地上",
    "on a sofa": "在沙发上",
    "in the snow": "在雪地里",
    "on the beach": "在海滩上",
}
_ZH_ACTION = {
    "purring": "在打呼噜",
    "meowing": "在喵喵叫",
    "grooming its whiskers": "在梳理胡须",
    "chasing a mouse": "在追老鼠",
    "barking": "在汪汪叫",
    "wagging its tail": "在摇尾巴",
    "fetching a stick": "在捡树枝",
    "chewing a bone": "在啃骨头",
    "napping in the sun": "在晒太阳打盹",
    "watching a bird": "在看鸟",
    "playing with a ball": "在玩球",
    "waiting by the door": "在门边等着",
    "looking at the camera": "看着镜头",
}
_ZH_TIME = {"in the afternoon": "下午，"}  # a time goes first in Chinese
_CAPTION = re.compile(
    rf"a ({'|'.join(_ZH_FUR)}) ({'|'.join(_ZH_NOUN)}) ({'|'.join(_ZH_POSE)}) "
    rf"({'|'.join(_ZH_PLACE)})(?:, (.+))?"
)


def chinese_caption(caption: str) -> str:
    """The Chinese version of a cats-vs-dogs caption ("a grey pet sitting on the grass,
    barking" -> "一只灰色的宠物在草地上坐着，在汪汪叫").

    Only captions composed by ``mmcourse.datasets.load_cats_dogs`` can be translated (the
    phrase tables cover exactly its phrases); anything else raises ValueError.
    """
    if not isinstance(caption, str):
        raise TypeError(f"caption must be a str, got {type(caption).__name__}")
    match = _CAPTION.fullmatch(caption)
    ending = match and match.group(5)
    if not match or (ending and ending not in _ZH_ACTION and ending not in _ZH_TIME):
        raise ValueError(
            f"caption must be a cats-vs-dogs caption such as 'a grey pet sitting on the "
            f"grass, barking', got {caption!r}"
        )
    fur, noun, pose, place = (match.group(i) for i in range(1, 5))
    text = f"一只{_ZH_FUR[fur]}的{_ZH_NOUN[noun]}{_ZH_PLACE[place]}{_ZH_POSE[pose]}"
    if ending in _ZH_TIME:
        return _ZH_TIME[ending] + text
    return f"{text}，{_ZH_ACTION[ending]}" if ending else text
