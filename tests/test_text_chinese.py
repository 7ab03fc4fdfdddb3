"""Chinese text: the course tokenizer splits it into characters, and every cats-vs-dogs
caption has a Chinese version."""

import pytest

from mmcourse.datasets import cats_dogs, load_cats_dogs
from mmcourse.text import Vocab, chinese_caption, tokenize


def test_tokenize_splits_chinese_into_characters_and_keeps_english_words():
    assert tokenize("一只猫 sitting，在沙发上！") == [
        "一",
        "只",
        "猫",
        "sitting",
        "在",
        "沙",
        "发",
        "上",
    ]
    assert tokenize("Café 三只 cats") == ["café", "三", "只", "cats"]


def test_chinese_caption_examples():
    assert chinese_caption("a grey pet sitting on the grass, barking") == (
        "一只灰色的宠物在草地上坐着，在汪汪叫"
    )
    assert chinese_caption("a white furry friend lying down on a sofa, in the afternoon") == (
        "下午，一只白色的毛茸茸的朋友在沙发上躺着"
    )
    assert chinese_caption("a black animal standing in the snow") == "一只黑色的动物在雪地里站着"


def test_every_phrase_of_the_dataset_has_a_chinese_version():
    # the tables must cover the generator's phrases, or a new phrase would break the lesson
    endings = [*cats_dogs.STRONG["cat"], *cats_dogs.STRONG["dog"], *cats_dogs.WEAK["cat"]]
    endings += [*cats_dogs.WEAK["dog"], *(e for e in cats_dogs.NEUTRAL_ENDINGS if e)]
    for fur in cats_dogs.FURS:
        for place in cats_dogs.PLACES.values():
            for pose in cats_dogs.POSE_WORDS.values():
                for ending in endings:
                    zh = chinese_caption(f"a {fur} pet {pose} {place}, {ending}")
                    assert zh and not any("a" <= ch <= "z" for ch in zh)
    captions = load_cats_dogs().captions
    translated = [chinese_caption(c) for c in captions[:300]]
    vocab = Vocab.build(translated)
    assert all(len(t) == 1 for t in vocab.tokens[2:])  # characters only


@pytest.mark.parametrize("bad", ["a purple pet sitting on the grass", "a grey pet, barking", ""])
def test_chinese_caption_refuses_other_text(bad):
    with pytest.raises(ValueError, match="caption must be a cats-vs-dogs caption"):
        chinese_caption(bad)
    with pytest.raises(TypeError, match="caption must be a str"):
        chinese_caption(3)
