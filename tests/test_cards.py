"""Tests of mmcourse.cards: every section present, numbers formatted, gaps refused."""

import pytest

from mmcourse import cards

FIELDS = {
    "model_details": "a CNN",
    "intended_use": ["teaching"],
    "factors": ["cue"],
    "metrics": "accuracy",
    "evaluation_data": "test split",
    "training_data": "train split",
    "quantitative_analyses": {"accuracy": 0.8567, "parameters": 12345, "AUC": "0.81"},
    "ethical_considerations": ["none"],
    "caveats_and_recommendations": ["one seed"],
}


def test_model_card_has_mitchells_sections_in_order():
    text = cards.model_card("demo", **FIELDS)
    positions = [text.index(f"### {s[0].upper()}{s[1:]}") for s in cards.MODEL_CARD_SECTIONS]
    assert positions == sorted(positions)
    assert "| accuracy | 85.7% |" in text and "| parameters | 12,345 |" in text
    assert "| AUC | 0.81 |" in text and "- teaching" in text


def test_table_of_rows():
    text = cards.model_card(
        "demo", **{**FIELDS, "quantitative_analyses": {"low": {"FPR": 0.1}, "high": {"FPR": 0.2}}}
    )
    assert "| | FPR |" in text and "| high | 20.0% |" in text


def test_missing_or_empty_sections_are_errors():
    with pytest.raises(KeyError, match="training data"):
        cards.model_card("demo", **{k: v for k, v in FIELDS.items() if k != "training_data"})
    with pytest.raises(ValueError, match="factors"):
        cards.model_card("demo", **{**FIELDS, "factors": []})
    with pytest.raises(KeyError, match="unknown"):
        cards.model_card("demo", **FIELDS, colour="blue")
    with pytest.raises(ValueError, match="not finite"):
        cards.model_card("demo", **{**FIELDS, "quantitative_analyses": {"x": float("nan")}})


def test_datasheet_sections():
    sheet = cards.datasheet(
        "set", **{s.replace(" ", "_"): f"about {s}" for s in cards.DATASHEET_SECTIONS}
    )
    assert sheet.startswith("## Datasheet: set")
    assert all(f"about {s}" in sheet for s in cards.DATASHEET_SECTIONS)
